package buffer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func openTestSpool(t *testing.T, dir string, opts SpoolOptions) *Spool {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	s, err := OpenSpool(dir, opts)
	if err != nil {
		t.Fatalf("OpenSpool: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func readAll(t *testing.T, s *Spool, key string) []byte {
	t.Helper()
	f, _, err := s.Open(key)
	if err != nil {
		t.Fatalf("Open(%s): %v", key, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSpoolStoresBitExactAndSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTestSpool(t, dir, SpoolOptions{})
	data := randomBytes(1, 512<<10)
	in, outcome, err := s.Store(ctx, "1.2.3.4.1", "1.2.3", map[string]string{"modality": "CT"}, bytes.NewReader(data))
	if err != nil || outcome != Stored {
		t.Fatalf("Store: %v %v", outcome, err)
	}
	if in.Size != int64(len(data)) || in.SHA256 != sha(data) {
		t.Fatalf("entry: %+v", in)
	}
	if _, _, err := s.Store(ctx, "1.2.3.4.2", "1.2.3", nil, bytes.NewReader(data[:1000])); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = openTestSpool(t, dir, SpoolOptions{})
	if r := s.Stats().AtOpen; r.Instances != 2 || r.OrphanRemoved+r.TempRemoved+r.MissingFile+r.WrongSize != 0 {
		t.Fatalf("reconcile after a clean close: %+v", r)
	}
	if !bytes.Equal(readAll(t, s, "1.2.3.4.1"), data) {
		t.Fatal("stored bytes differ")
	}
	got, err := s.Get("1.2.3.4.1")
	if err != nil || got.Attrs["modality"] != "CT" || got.Group != "1.2.3" {
		t.Fatalf("Get: %+v %v", got, err)
	}
	study, err := s.Group("1.2.3")
	if err != nil || len(study) != 2 {
		t.Fatalf("Group: %d %v", len(study), err)
	}
	if _, err := s.Get("9.9"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get missing: %v", err)
	}
}

func TestSpoolKeepsOneCopyOfADuplicateAndReplacesDifferentContent(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTestSpool(t, dir, SpoolOptions{})
	a, b := randomBytes(1, 4000), randomBytes(2, 5000)
	if _, o, err := s.Store(ctx, "k", "g", nil, bytes.NewReader(a)); err != nil || o != Stored {
		t.Fatal(o, err)
	}
	if _, o, err := s.Store(ctx, "k", "g", nil, bytes.NewReader(a)); err != nil || o != Duplicate {
		t.Fatalf("second identical store: %v %v", o, err)
	}
	if st := s.Stats(); st.Instances != 1 || st.Bytes != 4000 || st.Duplicates != 1 {
		t.Fatalf("stats after duplicate: %+v", st)
	}
	if _, o, err := s.Store(ctx, "k", "g2", nil, bytes.NewReader(b)); err != nil || o != Replaced {
		t.Fatalf("different content: %v %v", o, err)
	}
	if !bytes.Equal(readAll(t, s, "k"), b) {
		t.Fatal("replacement not read back")
	}
	if st := s.Stats(); st.Instances != 1 || st.Bytes != 5000 || st.Replaced != 1 {
		t.Fatalf("stats after replace: %+v", st)
	}
	if g, _ := s.Group("g"); len(g) != 0 {
		t.Fatalf("old group still lists the instance: %+v", g)
	}
	if n := countFiles(t, filepath.Join(dir, "objects")); n != 1 {
		t.Fatalf("%d files in objects/, want 1", n)
	}
	if err := s.Remove(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if n := countFiles(t, filepath.Join(dir, "objects")); n != 0 {
		t.Fatalf("%d files after Remove", n)
	}
	if err := s.Remove(ctx, "k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Remove: %v", err)
	}
}

// countFiles counts the files under dir, leaving out the empty spares an
// open spool keeps ready.
func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, e := d.Info(); e == nil && info.Size() == 0 && strings.HasPrefix(d.Name(), writerPrefix) {
				return nil
			}
			n++
		}
		return err
	})
	return n
}

func TestSpoolQuotaRefusesWithErrFullAndKeepsWhatIsStored(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTestSpool(t, dir, SpoolOptions{QuotaBytes: 1 << 20})
	first := randomBytes(1, 700<<10)
	if _, _, err := s.Store(ctx, "a", "g", nil, bytes.NewReader(first)); err != nil {
		t.Fatal(err)
	}
	_, _, err := s.Store(ctx, "b", "g", nil, bytes.NewReader(randomBytes(2, 400<<10)))
	if !errors.Is(err, ErrFull) {
		t.Fatalf("store past the quota: %v, want ErrFull", err)
	}
	if n := countFiles(t, filepath.Join(dir, "tmp")); n != 0 {
		t.Fatalf("a refused store left %d files in tmp/", n)
	}
	if st := s.Stats(); st.Bytes != 700<<10 || st.InFlightBytes != 0 || st.RefusedFull != 1 {
		t.Fatalf("stats: %+v", st)
	}
	if !bytes.Equal(readAll(t, s, "a"), first) {
		t.Fatal("the stored instance changed")
	}
	if _, _, err := s.Store(ctx, "c", "g", nil, bytes.NewReader(randomBytes(3, 300<<10))); err != nil {
		t.Fatalf("a store that fits: %v", err)
	}
}

func TestSpoolReconcilesWhatACrashLeft(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTestSpool(t, dir, SpoolOptions{})
	for _, k := range []string{"keep", "lose-file", "shrink"} {
		if _, _, err := s.Store(ctx, k, "g", nil, bytes.NewReader(randomBytes(uint64(len(k)), 3000))); err != nil {
			t.Fatal(err)
		}
	}
	// A store cut short before its rename, one cut short after it, a file
	// deleted by hand and one truncated by hand.
	w, _ := s.Create()
	w.Write([]byte("partial"))
	lost, _ := s.Get("lose-file")
	shrunk, _ := s.Get("shrink")
	s.Close()
	os.MkdirAll(filepath.Join(dir, "objects", "ab"), 0o700)
	os.WriteFile(filepath.Join(dir, "objects", "ab", "ab00-unindexed"), []byte("x"), 0o600)
	os.Remove(filepath.Join(dir, lost.File))
	os.Truncate(filepath.Join(dir, shrunk.File), 10)

	s = openTestSpool(t, dir, SpoolOptions{})
	want := ReconcileReport{Instances: 1, Bytes: 3000, TempRemoved: 1, OrphanRemoved: 1, MissingFile: 1, WrongSize: 1}
	if r := s.Stats().AtOpen; r != want {
		t.Fatalf("reconcile: %+v, want %+v", r, want)
	}
	if n := countFiles(t, filepath.Join(dir, "objects")); n != 1 {
		t.Fatalf("%d files left, want 1", n)
	}
	if g, _ := s.Group("g"); len(g) != 1 || g[0].Key != "keep" {
		t.Fatalf("group after reconcile: %+v", g)
	}
}

func TestSpoolWithALostIndexDeletesNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTestSpool(t, dir, SpoolOptions{})
	if _, _, err := s.Store(ctx, "k", "g", nil, strings.NewReader("instance")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	os.Remove(filepath.Join(dir, "index.db"))
	for i := 0; i < 2; i++ { // and a second start does not take the first's empty index for real
		_, err := OpenSpool(dir, SpoolOptions{Logger: quiet})
		if err == nil || !strings.Contains(err.Error(), "index was lost") {
			t.Fatalf("open %d without index: %v", i, err)
		}
	}
	if n := countFiles(t, filepath.Join(dir, "objects")); n != 1 {
		t.Fatalf("%d files left, want 1", n)
	}
}

func TestSpoolConcurrentStoresOfTheSameKey(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTestSpool(t, dir, SpoolOptions{})
	data := randomBytes(7, 100<<10)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := s.Store(ctx, "same", "g", nil, bytes.NewReader(data)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	st := s.Stats()
	if st.Instances != 1 || st.Stored != 1 || st.Duplicates != 7 || st.Bytes != int64(len(data)) {
		t.Fatalf("stats: %+v", st)
	}
	if !bytes.Equal(readAll(t, s, "same"), data) {
		t.Fatal("content differs")
	}
	s.Close()
	s = openTestSpool(t, dir, SpoolOptions{})
	if r := s.Stats().AtOpen; r.Instances != 1 || r.OrphanRemoved != 0 {
		t.Fatalf("reconcile: %+v", r)
	}
}

func TestSpoolWriterReadsBackBeforeCommit(t *testing.T) {
	s := openTestSpool(t, t.TempDir(), SpoolOptions{})
	w, err := s.Create()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "DICM-header-and-more")
	buf := make([]byte, 4)
	if _, err := w.ReaderAt().ReadAt(buf, 0); err != nil || string(buf) != "DICM" {
		t.Fatalf("ReadAt: %q %v", buf, err)
	}
	if _, err := s.Get("k"); !errors.Is(err, ErrNotFound) {
		t.Fatal("visible before Commit")
	}
	w.Abort()
	if _, _, err := w.Commit(context.Background(), "k", "g", nil); err == nil {
		t.Fatal("Commit after Abort succeeded")
	}
}

func TestSpoolWithoutAGroup(t *testing.T) {
	ctx := context.Background()
	s := openTestSpool(t, t.TempDir(), SpoolOptions{})
	if _, o, err := s.Store(ctx, "k", "", nil, strings.NewReader("a")); err != nil || o != Stored {
		t.Fatalf("store without a group: %v %v", o, err)
	}
	if _, o, err := s.Store(ctx, "k", "", nil, strings.NewReader("b")); err != nil || o != Replaced {
		t.Fatalf("replace without a group: %v %v", o, err)
	}
	if err := s.Remove(ctx, "k"); err != nil {
		t.Fatal(err)
	}
}

// A duplicate whose commit fails must not take the stored copy's file with it.
func TestAFailedDuplicateStoreKeepsTheStoredCopy(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTestSpool(t, dir, SpoolOptions{})
	data := randomBytes(3, 5000)
	if _, _, err := s.Store(ctx, "k", "g", nil, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	w, _ := s.Create()
	w.Write(data)
	s.c.close() // the index can take no more commits
	if _, o, err := w.Commit(ctx, "k", "g", nil); err != nil || o != Duplicate {
		t.Fatalf("duplicate with the index closed: %v %v", o, err)
	}
	w, _ = s.Create()
	w.Write(randomBytes(4, 5000))
	if _, _, err := w.Commit(ctx, "k", "g", nil); err == nil {
		t.Fatal("a replacement committed with the index closed")
	}
	if !bytes.Equal(readAll(t, s, "k"), data) {
		t.Fatal("the stored copy was lost")
	}
	if n := countFiles(t, filepath.Join(dir, "objects")); n != 1 {
		t.Fatalf("%d files in objects/, want 1", n)
	}
}

func TestSpoolRemoveVersionRemovesOnlyThatContent(t *testing.T) {
	ctx := context.Background()
	s := openTestSpool(t, t.TempDir(), SpoolOptions{})
	old, _, err := s.Store(ctx, "k", "g", nil, bytes.NewReader([]byte("first")))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Store(ctx, "k", "g", nil, bytes.NewReader([]byte("second"))); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveVersion(ctx, "k", old.SHA256); !errors.Is(err, ErrNotFound) {
		t.Fatalf("RemoveVersion of the replaced content: %v, want ErrNotFound", err)
	}
	if got := readAll(t, s, "k"); string(got) != "second" {
		t.Fatalf("after a refused RemoveVersion the instance holds %q", got)
	}
	if err := s.RemoveVersion(ctx, "k", sha([]byte("second"))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after RemoveVersion: %v", err)
	}
	if g, _ := s.Group("g"); len(g) != 0 {
		t.Fatalf("group still lists %d instances", len(g))
	}
}
