package buffer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

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
	if err := s.flushOverlay(ctx, false); err != nil {
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

// An open that refuses a spool whose index.db is missing (lost or moved
// aside) must leave everything as it found it, its journal included: the
// error tells the operator to put index.db back, and the entries journalled
// but not yet applied to that index.db are then needed to keep the
// instances they name. Were the journal emptied by the refused open, those
// acknowledged instances' files would be removed as files no entry names.
func TestSpoolRefusingAMissingIndexKeepsTheJournal(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "spool")
	index := filepath.Join(dir, "index.db")
	s := openTestSpool(t, dir, SpoolOptions{})
	if _, _, err := s.Store(ctx, "K1", "g", nil, bytes.NewReader(randomBytes(1, 5000))); err != nil {
		t.Fatal(err)
	}
	s.Close()
	backup, err := os.ReadFile(index) // index.db as it is before K2
	if err != nil {
		t.Fatal(err)
	}
	s = openTestSpool(t, dir, SpoolOptions{})
	if _, _, err := s.Store(ctx, "K2", "g", nil, bytes.NewReader(randomBytes(2, 5000))); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// The state a crash before K2 was applied leaves: K2 only in the journal.
	if err := os.WriteFile(index, backup, 0o600); err != nil {
		t.Fatal(err)
	}

	// index.db moved aside: the open refuses.
	if err := os.Rename(index, index+".aside"); err != nil {
		t.Fatal(err)
	}
	if s, err := OpenSpool(dir, SpoolOptions{Logger: quiet}); err == nil {
		s.Close()
		t.Fatal("OpenSpool without index.db but with files in objects/ succeeded")
	}
	// Put back, as the error says.
	if err := os.Rename(index+".aside", index); err != nil {
		t.Fatal(err)
	}
	s = openTestSpool(t, dir, SpoolOptions{})
	for i, key := range []string{"K1", "K2"} {
		if _, err := s.Get(key); err != nil {
			t.Fatalf("%s after index.db was put back: %v (open found %+v)", key, err, s.Stats().AtOpen)
		}
		if !bytes.Equal(readAll(t, s, key), randomBytes(uint64(i+1), 5000)) {
			t.Fatalf("%s has other bytes", key)
		}
	}
}

// zeroJournalRecord13c overwrites the record seq of the journal file at
// path with zeros: what is on disk when that record's write never reached
// it (its fdatasync failed and the kernel dropped the page).
func zeroJournalRecord13c(t *testing.T, path string, seq uint64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off+16 <= len(b); {
		n := int(binary.LittleEndian.Uint32(b[off:]))
		if n < 8 || off+8+n > len(b) {
			break
		}
		if binary.LittleEndian.Uint64(b[off+8:]) == seq {
			clear(b[off : off+8+n])
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			return
		}
		off += 8 + n
	}
	t.Fatalf("record %d not found in the journal", seq)
}

// After an fdatasync of the journal failed, the records it should have
// made durable may never reach the disk (the kernel marks the pages clean:
// fsyncgate), and the journal is read at open only up to the first record
// missing. A later Commit must not be acknowledged on a later fdatasync's
// word: its record lies after the hole and would be lost with a power cut.
// Either it is refused, or it survives the hole.
func TestSpoolJournalAfterAFailedFdatasyncAcknowledgesNothingBeyondIt(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "spool")
	s := openTestSpool(t, dir, SpoolOptions{})
	stopApplier13c(s)
	if _, _, err := s.Store(ctx, "R", "g", nil, bytes.NewReader(randomBytes(5, 3000))); err != nil {
		t.Fatal(err)
	}
	failed := false
	s.journal.syncMu.Lock()
	s.journal.fdatasync = func(f *os.File) error {
		if !failed {
			failed = true
			return syscall.EIO
		}
		return fdatasyncFile(f)
	}
	s.journal.syncMu.Unlock()

	if _, _, err := s.Store(ctx, "A", "g", nil, bytes.NewReader(randomBytes(1, 3000))); err == nil {
		t.Fatal("a Commit whose journal fdatasync failed succeeded")
	}
	seqA := s.journal.seq
	_, _, errB := s.Store(ctx, "B", "g", nil, bytes.NewReader(randomBytes(2, 3000)))
	if errB != nil {
		t.Logf("the Commit after the failed fdatasync is refused: %v", errB)
		// Refusals go on until a restart: nothing is acknowledged on a journal with a hole.
		if _, _, err := s.Store(ctx, "C", "g", nil, bytes.NewReader(randomBytes(3, 3000))); err == nil {
			t.Fatal("a later Commit on the journal that failed was acknowledged")
		}
		if n, _ := s.Unfinished(); n != 0 {
			t.Fatalf("%d writers unfinished after refused commits", n)
		}
		// A replacement does not use the journal: it is still taken.
		if _, outcome, err := s.Store(ctx, "R", "g", nil, bytes.NewReader(randomBytes(6, 3000))); err != nil || outcome != Replaced {
			t.Fatalf("a replacement after the failed fdatasync: %v %v", outcome, err)
		}
		if !bytes.Equal(readAll(t, s, "R"), randomBytes(6, 3000)) {
			t.Fatal("R has other bytes than its replacement")
		}
		return
	}
	// B was acknowledged. A power cut: A's record never reached the disk.
	c := crashCopy13c(t, s)
	zeroJournalRecord13c(t, filepath.Join(c, "index.journal"), seqA)
	s2 := openTestSpool(t, c, SpoolOptions{})
	if _, err := s2.Get("B"); err != nil {
		t.Fatalf("acknowledged B is lost behind the record whose fdatasync failed: %v", err)
	}
}

// fillDisk13c writes a file into dir until the disk is full.
func fillDisk13c(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	// Smaller writes take what is left.
	for {
		if _, err := f.Write(buf[:512]); err != nil {
			break
		}
	}
}

// A removal frees room, and on a full disk it may use the reserve; so must
// the apply of journalled entries it needs first, and the one before Each
// and Group, with which the pruner finds what to remove: else a disk
// filled while new entries wait in the journal stops every removal, and
// the gateway can neither take nor free anything.
func TestSpoolOnAFullDiskWithEntriesInTheJournalStillRemoves(t *testing.T) {
	for _, first := range []string{"Remove", "Each", "Group"} {
		t.Run(first, func(t *testing.T) {
			ctx := context.Background()
			disk := smallDisk(t, "24m")
			s := openTestSpool(t, filepath.Join(disk, "spool"), SpoolOptions{})
			stopApplier13c(s)
			attrs := map[string]string{"header": string(bytes.Repeat([]byte("x"), 3000))}
			for i := 0; i < 60; i++ {
				if _, _, err := s.Store(ctx, fmt.Sprintf("K%d", i), fmt.Sprintf("g%d", i%3), attrs, bytes.NewReader(randomBytes(uint64(i), 20<<10))); err != nil {
					t.Fatal(err)
				}
			}
			fillDisk13c(t, disk)
			switch first {
			case "Each":
				n := 0
				if err := s.Each(func(Instance) bool { n++; return true }); err != nil || n != 60 {
					t.Fatalf("Each on a full disk: %d entries, %v", n, err)
				}
			case "Group":
				if g, err := s.Group("g0"); err != nil || len(g) != 20 {
					t.Fatalf("Group on a full disk: %d entries, %v", len(g), err)
				}
			}
			if err := s.Remove(ctx, "K0"); err != nil {
				t.Fatalf("Remove on a full disk with entries in the journal: %v", err)
			}
			if _, err := s.Get("K0"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("K0 after Remove: %v", err)
			}
			for i := 1; i < 60; i++ {
				if !bytes.Equal(readAll(t, s, fmt.Sprintf("K%d", i)), randomBytes(uint64(i), 20<<10)) {
					t.Fatalf("K%d changed", i)
				}
			}
			if st := s.Stats(); st.Instances != 59 {
				t.Fatalf("%d instances counted, want 59", st.Instances)
			}
		})
	}
}

// Under a steady stream of Commits (four associations), some Commit is
// nearly always under way when the applier runs; the journal, which
// started again only when none was, then grew for as long as the stream
// lasted (10 MB for 6,000 instances here), beyond any quota, and its file
// never shrank. It must start again once past journalRestartAt however
// busy the spool is, and every acknowledged instance must survive.
func TestSpoolJournalStartsAgainUnderASteadyStream(t *testing.T) {
	c, r := journalChunk, journalRestartAt
	t.Cleanup(func() { journalChunk, journalRestartAt = c, r }) // after the spools close
	journalChunk, journalRestartAt = 64<<10, 16<<10
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "spool")
	s := openTestSpool(t, dir, SpoolOptions{})
	const writers, each = 4, 1500
	var wg sync.WaitGroup
	for g := 0; g < writers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, _, err := s.Store(ctx, fmt.Sprintf("1.2.3.%d.%d", g, i), "study", nil, bytes.NewReader(randomBytes(uint64(g*each+i), 2000))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	s.journal.mu.Lock()
	size, seq := s.journal.size, s.journal.seq
	s.journal.mu.Unlock()
	// A record is about 300 bytes: all of them would be 1.8 MB.
	if size > 1<<20 {
		t.Errorf("the journal file is %d bytes after %d records: it did not start again while Commits were under way", size, seq)
	}
	s2 := openTestSpool(t, crashCopy13c(t, s), SpoolOptions{})
	if rep := s2.Stats().AtOpen; rep.Instances != writers*each {
		t.Fatalf("after a crash: %+v, want %d instances", rep, writers*each)
	}
}

// Two records of one key, neither applied: the key was stored, removed
// and stored again (into another study) while a Commit under way held the
// applied mark back, and a power cut kept the first file (its unlink not
// yet durable). Both files are whole; the later record wins, and the
// earlier one's group must not go on listing the key, or the instance of
// one study would be assembled and forwarded with the other.
func TestSpoolReplayOfAKeyStoredTwiceKeepsOnlyTheLastGroup(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	s := openTestSpool(t, dir, SpoolOptions{})
	s.Close()
	first := fileEntry(t, dir, "first", "K", 0, randomBytes(1, 3000))
	first.Group = "study-1"
	second := fileEntry(t, dir, "second", "K", 0, randomBytes(2, 4000))
	second.Group = "study-2"
	journalled(t, dir, first, second)

	s = openTestSpool(t, dir, SpoolOptions{})
	if in, err := s.Get("K"); err != nil || in.SHA256 != second.SHA256 || in.Group != "study-2" {
		t.Fatalf("K after the replay: %+v %v", in, err)
	}
	if g, err := s.Group("study-1"); err != nil || len(g) != 0 {
		t.Fatalf("study-1 lists %d entries (%v) after K was stored again into study-2", len(g), err)
	}
	if g, _ := s.Group("study-2"); len(g) != 1 {
		t.Fatalf("study-2 lists %d entries", len(g))
	}
	if st := s.Stats(); st.Instances != 1 || st.Bytes != 4000 {
		t.Fatalf("stats %+v", st)
	}
	if err := s.Remove(context.Background(), "K"); err != nil {
		t.Fatal(err)
	}
	if n := countFiles(t, filepath.Join(dir, "objects")); n > spareFiles {
		t.Fatalf("%d files left in objects/", n)
	}
}

// Close while stores, replacements and removals are under way: nothing
// panics or hangs, every store acknowledged before or during Close is
// there after the next open, and a writer Close caught is refused.
func TestSpoolCloseWhileCommitsAreUnderWay(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "spool")
	s, err := OpenSpool(dir, SpoolOptions{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	acked := map[string]string{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := 0; ; i++ {
				key := fmt.Sprintf("k%d.%d", g, i%20)
				data := randomBytes(uint64(g*1000+i), 2000+i)
				if i%7 == 3 {
					if err := s.Remove(ctx, key); err == nil {
						mu.Lock()
						delete(acked, key)
						mu.Unlock()
					}
					continue
				}
				in, _, err := s.Store(ctx, key, "g", nil, bytes.NewReader(data))
				if err != nil {
					if i > 40 { // refused after Close: done
						return
					}
					continue
				}
				mu.Lock()
				acked[key] = in.SHA256
				mu.Unlock()
			}
		}()
	}
	close(start)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 40 {
			break
		}
		runtime.Gosched()
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	if n, _ := s.Unfinished(); n != 0 {
		t.Fatalf("%d writers unfinished after every store returned", n)
	}
	s = openTestSpool(t, dir, SpoolOptions{})
	for key, sum := range acked {
		in, err := s.Get(key)
		if err != nil || in.SHA256 != sum {
			t.Fatalf("%s acknowledged with %s: after reopen %+v %v (open found %+v)", key, sum[:8], in, err, s.Stats().AtOpen)
		}
	}
	if rep := s.Stats().AtOpen; rep.MissingFile+rep.WrongSize != 0 {
		t.Fatalf("open found %+v", rep)
	}
}

// A spool the release before the journal left after a crash: an index of
// format /1, files named <key hash>-<content hash>, tmp/ with a spare, a
// partial file and the .commit file of a new instance caught between its
// index entry and its rename (entry without file: never acknowledged), an
// instance renamed into place whose Commit had not returned, and a file
// no entry names. It opens with each counted as such, keeps the rest, and
// takes duplicates, replacements and removals of the old entries.
func TestSpoolOpensWhatTheFirstFormatLeftAfterACrash(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "spool")
	s := openTestSpool(t, dir, SpoolOptions{})
	s.Close()
	os.Remove(filepath.Join(dir, "index.db"))
	os.Remove(filepath.Join(dir, "index.journal"))
	oldName := func(key string, content []byte) string {
		kh := sha256.Sum256([]byte(key))
		khex := hex.EncodeToString(kh[:16])
		return filepath.Join("objects", khex[:2], khex+"-"+sha(content)[:32])
	}
	entry := func(key string, content []byte) Instance {
		return Instance{Key: key, Group: "study", File: oldName(key, content), Size: int64(len(content)), SHA256: sha(content), Stored: time.Now().UTC()}
	}
	a, b, c, d := randomBytes(1, 3000), randomBytes(2, 4000), randomBytes(3, 5000), randomBytes(4, 6000)
	kept, renamed, committing := entry("kept", a), entry("renamed", b), entry("committing", c)
	for _, f := range []struct {
		rel  string
		data []byte
	}{{kept.File, a}, {renamed.File, b}, {oldName("orphan", d), d},
		{filepath.Join("tmp", filepath.Base(committing.File)+".commit"), c},
		{filepath.Join("tmp", "spare-00112233.part"), nil},
		{filepath.Join("tmp", "445566.part"), d[:100]}} {
		if err := os.WriteFile(filepath.Join(dir, f.rel), f.data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	db, err := bolt.Open(filepath.Join(dir, "index.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		m, _ := tx.CreateBucket(metaBucket)
		m.Put(formatKey, []byte("wardgate-spool/1"))
		ib, _ := tx.CreateBucket(instancesBucket)
		gb, _ := tx.CreateBucket(groupsBucket)
		g, _ := gb.CreateBucket([]byte("study"))
		for _, in := range []Instance{kept, renamed, committing} {
			v, _ := json.Marshal(in)
			ib.Put([]byte(in.Key), v)
			g.Put([]byte(in.Key), nil)
		}
		return nil
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	s = openTestSpool(t, dir, SpoolOptions{})
	rep := s.Stats().AtOpen
	want := ReconcileReport{Instances: 2, Bytes: 7000, TempRemoved: 2, OrphanRemoved: 1, CutShort: 1}
	if rep != want {
		t.Fatalf("open found %+v, want %+v", rep, want)
	}
	if g, _ := s.Group("study"); len(g) != 2 {
		t.Fatalf("the study lists %d instances, want 2", len(g))
	}
	if _, outcome, err := s.Store(ctx, "kept", "study", nil, bytes.NewReader(a)); err != nil || outcome != Duplicate {
		t.Fatalf("the same content again: %v %v", outcome, err)
	}
	if _, outcome, err := s.Store(ctx, "kept", "study", nil, bytes.NewReader(d)); err != nil || outcome != Replaced {
		t.Fatalf("other content: %v %v", outcome, err)
	}
	if _, err := os.Stat(filepath.Join(dir, kept.File)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the replaced file of the old naming is still there: %v", err)
	}
	if err := s.RemoveVersion(ctx, "renamed", renamed.SHA256); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Instances != 1 || st.Bytes != 6000 {
		t.Fatalf("stats %+v", st)
	}
	s.Close()
	s = openTestSpool(t, dir, SpoolOptions{})
	if rep := s.Stats().AtOpen; rep != (ReconcileReport{Instances: 1, Bytes: 6000}) {
		t.Fatalf("second open found %+v", rep)
	}
	if !bytes.Equal(readAll(t, s, "kept"), d) {
		t.Fatal("kept has other bytes")
	}
}

// Every way a store can end (committed, duplicate, replaced, aborted,
// refused by the quota, its file's fsync failing for a new key and for a
// replacement, an invalid key, a write after SHA256) leaves the counts
// right: nothing in flight, no writer unfinished, no hasher goroutine left,
// the stored bytes and instances as stored; and the failed new key's
// journal record, durable without its file, is dropped at the next open.
func TestSpoolAccountsForEveryWayAStoreEnds(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "spool")
	s := openTestSpool(t, dir, SpoolOptions{QuotaBytes: 100 << 10})
	check := func(step string, instances, bytes int64) {
		t.Helper()
		st := s.Stats()
		if n, _ := s.Unfinished(); n != 0 || st.InFlightBytes != 0 || st.Instances != instances || st.Bytes != bytes {
			t.Fatalf("after %s: %d unfinished, stats %+v; want %d instances of %d bytes", step, n, st, instances, bytes)
		}
	}
	goroutines := runtime.NumGoroutine()
	store := func(key string, data []byte) (StoreOutcome, error) {
		_, o, err := s.Store(ctx, key, "g", nil, bytes.NewReader(data))
		return o, err
	}
	if _, err := store("a", randomBytes(1, 10000)); err != nil {
		t.Fatal(err)
	}
	check("a store", 1, 10000)
	if o, err := store("a", randomBytes(1, 10000)); err != nil || o != Duplicate {
		t.Fatal(o, err)
	}
	check("a duplicate", 1, 10000)
	if o, err := store("a", randomBytes(2, 20000)); err != nil || o != Replaced {
		t.Fatal(o, err)
	}
	check("a replacement", 1, 20000)
	w, _ := s.Create()
	w.Write(randomBytes(3, 5000))
	w.Abort()
	check("an abort", 1, 20000)
	if _, err := store("big", randomBytes(4, 90<<10)); !errors.Is(err, ErrFull) {
		t.Fatalf("over the quota: %v", err)
	}
	check("a refusal by the quota", 1, 20000)
	if _, err := store("", randomBytes(5, 100)); err == nil {
		t.Fatal("an empty key was taken")
	}
	check("an invalid key", 1, 20000)
	w, _ = s.Create()
	w.Write(randomBytes(6, 100))
	w.SHA256()
	if _, err := w.Write(randomBytes(6, 100)); err == nil {
		t.Fatal("a write after SHA256 was taken")
	}
	w.Abort()
	check("a write after SHA256", 1, 20000)
	// The file's fsync fails (its descriptor closed under it): for a new key...
	w, _ = s.Create()
	w.Write(randomBytes(7, 3000))
	w.f.Close()
	if _, _, err := w.Commit(ctx, "b", "g", nil); err == nil {
		t.Fatal("a Commit whose fsync failed succeeded")
	}
	check("a new key's failed fsync", 1, 20000)
	if _, err := s.Get("b"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("b after its failed Commit: %v", err)
	}
	// ...and for a replacement, which keeps what was stored.
	w, _ = s.Create()
	w.Write(randomBytes(8, 3000))
	w.f.Close()
	if _, _, err := w.Commit(ctx, "a", "g", nil); err == nil {
		t.Fatal("a replacement whose fsync failed succeeded")
	}
	check("a replacement's failed fsync", 1, 20000)
	if !bytes.Equal(readAll(t, s, "a"), randomBytes(2, 20000)) {
		t.Fatal("a changed after a failed replacement")
	}
	if err := s.Remove(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	check("a removal", 0, 0)
	if n := runtime.NumGoroutine(); n > goroutines {
		t.Errorf("%d goroutines, %d before the stores: hashers left running?", n, goroutines)
	}
	// The journal record of b is durable, its file is not there.
	c := crashCopy13c(t, s)
	s2 := openTestSpool(t, c, SpoolOptions{})
	if rep := s2.Stats().AtOpen; rep.Instances != 0 || rep.MissingFile+rep.WrongSize != 0 {
		t.Fatalf("open found %+v", rep)
	}
	if _, err := s2.Get("b"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("b after the open: %v", err)
	}
}
