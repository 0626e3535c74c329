package buffer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// journalled writes entries to the journal of the (closed) spool in dir as
// a Commit cut short by a crash would have: records durable, not applied.
func journalled(t *testing.T, dir string, entries ...Instance) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, "index.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	var applied uint64
	db.View(func(tx *bolt.Tx) error { applied = getApplied(tx); return nil })
	db.Close()
	j, _, err := openSpoolJournal(filepath.Join(dir, "index.journal"), applied)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	for _, in := range entries {
		seq, err := j.append(in)
		if err != nil {
			t.Fatal(err)
		}
		if err := j.sync(seq); err != nil {
			t.Fatal(err)
		}
	}
}

// fileEntry writes content as an instance file (a header of hashFrom
// bytes, then the hashed content) and returns its entry.
func fileEntry(t *testing.T, dir, name, key string, hashFrom int, content []byte) Instance {
	t.Helper()
	rel := filepath.Join("objects", "0a", writerPrefix+name)
	body := append(bytes.Repeat([]byte{'H'}, hashFrom), content...)
	if err := os.WriteFile(filepath.Join(dir, rel), body, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	return Instance{Key: key, Group: "g", File: rel, Size: int64(len(body)), HashFrom: int64(hashFrom), SHA256: hex.EncodeToString(sum[:])}
}

// At open, journalled entries not yet in index.db are replayed when their
// file is whole (size and SHA-256 of the content after its header), and
// dropped with their file as stores a crash cut short otherwise: a file
// that is short, one whose bytes differ, one that is missing. A record of
// a key index.db already has never overwrites it.
func TestSpoolReplaysItsJournal(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "spool")
	s := openTestSpool(t, dir, SpoolOptions{})
	if _, _, err := s.Store(ctx, "stored", "g", nil, bytes.NewReader(randomBytes(1, 5000))); err != nil {
		t.Fatal(err)
	}
	before, _ := s.Get("stored")
	s.Close()

	whole := fileEntry(t, dir, "whole", "whole", 132, randomBytes(2, 4000))
	short := fileEntry(t, dir, "short", "short", 132, randomBytes(3, 4000))
	os.Truncate(filepath.Join(dir, short.File), 1000)
	changed := fileEntry(t, dir, "changed", "changed", 132, randomBytes(4, 4000))
	os.WriteFile(filepath.Join(dir, changed.File), append(bytes.Repeat([]byte{'H'}, 132), randomBytes(5, 4000)...), 0o600)
	missing := fileEntry(t, dir, "missing", "missing", 0, randomBytes(6, 100))
	os.Remove(filepath.Join(dir, missing.File))
	stale := fileEntry(t, dir, "stale", "stored", 0, randomBytes(7, 100)) // an older record of a key index.db has
	// Records no Commit writes: no key, a file outside objects/. Nothing is
	// touched for them.
	outside := filepath.Join(filepath.Dir(dir), "outside")
	os.WriteFile(outside, []byte("not the spool's"), 0o600)
	nokey := Instance{Key: "", File: filepath.Join("objects", "0a", "w-x"), Size: 1}
	escape := Instance{Key: "escape", File: filepath.Join("..", "outside"), Size: 15}
	journalled(t, dir, whole, short, changed, missing, stale, nokey, escape)

	s = openTestSpool(t, dir, SpoolOptions{})
	rep := s.Stats().AtOpen
	// The stale record's file is named by no entry: removed like any file
	// of a store that never finished.
	if rep.CutShort != 5 || rep.TempRemoved != 1 || rep.Instances != 2 || rep.MissingFile+rep.WrongSize != 0 {
		t.Fatalf("reconcile: %+v, want 2 instances, 5 records dropped and the stale record's file removed", rep)
	}
	if _, err := os.Stat(outside); err != nil {
		t.Fatalf("a record naming a file outside the spool removed it: %v", err)
	}
	// Replayed, the journal is zeros: nothing of this round can be read
	// again after new records.
	if b, _ := os.ReadFile(filepath.Join(dir, "index.journal")); len(b) == 0 || !bytes.Equal(b, make([]byte, len(b))) {
		t.Fatal("the journal is not zeroed after its replay")
	}
	if got, err := s.Get("whole"); err != nil || got.SHA256 != whole.SHA256 {
		t.Fatalf("the whole instance: %+v %v", got, err)
	}
	if got, _ := s.Get("stored"); got.File != before.File || got.SHA256 != before.SHA256 {
		t.Fatalf("a stale record overwrote index.db's entry: %+v", got)
	}
	for _, k := range []string{"short", "changed", "missing"} {
		if _, err := s.Get(k); err == nil {
			t.Fatalf("%s was kept", k)
		}
	}
	if n := countFiles(t, filepath.Join(dir, "objects")); n != 2 {
		t.Fatalf("%d files in objects/, want 2", n)
	}
	// Replayed once: the next open finds nothing to replay.
	s.Close()
	s = openTestSpool(t, dir, SpoolOptions{})
	if rep := s.Stats().AtOpen; rep.CutShort != 0 || rep.Instances != 2 {
		t.Fatalf("second open: %+v", rep)
	}
}

// The journal starts again at 0 once everything in it is applied, and a
// record of the earlier round left behind the new ones is never read as
// new.
func TestSpoolJournalRestartsAndIgnoresOldRecords(t *testing.T) {
	defer func(c, r int64) { journalChunk, journalRestartAt = c, r }(journalChunk, journalRestartAt)
	journalChunk, journalRestartAt = 64<<10, 16<<10
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "spool")
	s := openTestSpool(t, dir, SpoolOptions{})
	for i := 0; i < 200; i++ {
		if _, _, err := s.Store(ctx, "k"+string(rune('a'+i%26))+string(rune('a'+i/26)), "g", map[string]string{"pad": string(bytes.Repeat([]byte{'x'}, 300))}, bytes.NewReader(randomBytes(uint64(i), 2000))); err != nil {
			t.Fatal(err)
		}
		if i%50 == 49 {
			if err := s.flushOverlay(ctx, false); err != nil {
				t.Fatal(err)
			}
		}
	}
	if s.journal.off > 40<<10 {
		t.Fatalf("the journal is %d bytes in: it never started again", s.journal.off)
	}
	s.Close()
	s = openTestSpool(t, dir, SpoolOptions{})
	if rep := s.Stats().AtOpen; rep.Instances != 200 || rep.CutShort+rep.MissingFile+rep.WrongSize+rep.OrphanRemoved+rep.TempRemoved != 0 {
		t.Fatalf("reopen: %+v", rep)
	}
}

// A spool index written before the journal (format /1) opens, keeps its
// instances and is marked /2, so that the earlier release refuses it.
func TestSpoolOpensAnIndexOfTheFirstFormat(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "spool")
	s := openTestSpool(t, dir, SpoolOptions{})
	data := randomBytes(9, 3000)
	s.Store(ctx, "old", "g", nil, bytes.NewReader(data))
	s.Close()
	db, err := bolt.Open(filepath.Join(dir, "index.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error {
		tx.DeleteBucket(spoolMetaBucket)
		return tx.Bucket(metaBucket).Put(formatKey, []byte("wardgate-spool/1"))
	})
	db.Close()
	os.Remove(filepath.Join(dir, "index.journal"))
	s = openTestSpool(t, dir, SpoolOptions{})
	if !bytes.Equal(readAll(t, s, "old"), data) {
		t.Fatal("the instance of the /1 index changed")
	}
	s.Close()
	if err := inspect(filepath.Join(dir, "index.db"), "wardgate-spool/1", nil, nil); err == nil {
		t.Fatal("the index still reads as /1")
	}
}
