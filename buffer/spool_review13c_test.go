package buffer

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// stopApplier13c stops the spool's applier: journalled entries then stay
// in the overlay until the test (or a replacement, removal, Group, Each)
// applies them. Close no longer applies them either: what a test leaves in
// the overlay is left to the next open, as after a crash.
func stopApplier13c(s *Spool) {
	close(s.stopApply)
	<-s.applyDone
	s.stopApply = nil
}

// crashCopy13c copies the spool's folder as a SIGKILL at this instant would
// leave it (everything written is in the page cache, so in the copy) and
// returns the copy's path. Nothing may write to the spool meanwhile.
func crashCopy13c(t *testing.T, s *Spool) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "spool")
	err := filepath.WalkDir(s.dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(s.dir, p)
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(to, 0o700)
		case rel == "index.db":
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.View(func(tx *bolt.Tx) error { return tx.CopyFile(filepath.Join(dst, "index.db"), 0o600) }); err != nil {
		t.Fatal(err)
	}
	return dst
}

func appliedMark13c(t *testing.T, s *Spool) uint64 {
	t.Helper()
	var applied uint64
	s.db.View(func(tx *bolt.Tx) error { applied = getApplied(tx); return nil })
	return applied
}

// A Commit whose journal record was written before another's, but which
// puts its entry in the overlay only after the applier has taken the
// overlay's entries (and so ends while the applier works), must not be
// counted as applied: the applied mark would pass its record, the next open
// would not replay it, and the instance, acknowledged, would be lost in a
// crash before the following apply (its file removed as one no entry names).
func TestSpoolAppliedMarkNeverPassesACommitThatEndedDuringTheApply(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "spool")
	s := openTestSpool(t, dir, SpoolOptions{})
	stopApplier13c(s)

	// A: its record is written, its Commit is still flushing its file.
	a := fileEntry(t, dir, "a", "A", 0, randomBytes(1, 3000))
	seqA, err := s.journal.append(a)
	if err != nil {
		t.Fatal(err)
	}
	// B: a Commit after it, finished (in the overlay).
	if _, _, err := s.Store(ctx, "B", "g", nil, bytes.NewReader(randomBytes(2, 3000))); err != nil {
		t.Fatal(err)
	}
	// A's Commit ends (as commitNew does) once the apply has taken the overlay.
	spoolFlushHook = func() {
		spoolFlushHook = nil
		if err := s.journal.sync(seqA); err != nil {
			t.Error(err)
		}
		s.ovMu.Lock()
		s.overlay["A"] = overlayEntry{a, seqA}
		s.ovMu.Unlock()
		s.journal.done(seqA)
	}
	t.Cleanup(func() { spoolFlushHook = nil })
	if err := s.flushOverlay(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("A"); err != nil {
		t.Fatalf("A after its Commit: %v", err)
	}
	if got := appliedMark13c(t, s); got >= seqA {
		t.Errorf("index.db records the journal applied through %d, past A's record %d, which is only in the overlay", got, seqA)
	}
	// SIGKILL now: A was acknowledged.
	s2 := openTestSpool(t, crashCopy13c(t, s), SpoolOptions{})
	for _, key := range []string{"A", "B"} {
		if _, err := s2.Get(key); err != nil {
			t.Errorf("after a crash, acknowledged %s: %v (open found %+v)", key, err, s2.Stats().AtOpen)
		}
	}
}
