package buffer

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// dirWriter writes a backup's files into a folder, checking each size.
type dirWriter struct {
	dir   string
	mu    sync.Mutex
	names []string
}

func (d *dirWriter) File(name string, size int64, write func(io.Writer) error) error {
	p := filepath.Join(d.dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := write(f); err != nil {
		return err
	}
	if info, err := f.Stat(); err != nil || info.Size() != size {
		return fmt.Errorf("%s: wrote %v bytes, announced %d (%v)", name, info.Size(), size, err)
	}
	d.mu.Lock()
	d.names = append(d.names, name)
	d.mu.Unlock()
	return nil
}

// A backup of an outbox in use holds every item acknowledged before it
// began, including those still only in the journal, and opens as an
// outbox with nothing to replay.
func TestOutboxBackupWhileAppending(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "outbox.db")
	o := openTestOutbox(t, p, OutboxOptions{})
	o.holdCheckpoints.Store(true) // the first items stay in the journal
	var before []string
	for i := range 500 {
		before = append(before, fmt.Sprint("before-", i))
	}
	if _, err := o.Append(ctx, items("k", before...)...); err != nil {
		t.Fatal(err)
	}
	o.holdCheckpoints.Store(false)

	stop := make(chan struct{})
	var during atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := o.Append(ctx, items("k", fmt.Sprint("during-", w, "-", i))...); err != nil {
					t.Error(err)
					return
				}
				during.Add(1)
			}
		}()
	}
	for during.Load() < 200 {
		runtime.Gosched() // let the appenders run before the copy starts
	}
	backup := &dirWriter{dir: t.TempDir()}
	if err := o.Backup("outbox.db", backup); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()

	c := openTestOutbox(t, filepath.Join(backup.dir, "outbox.db"), OutboxOptions{})
	r := c.Stats().AtOpen
	if r.Replayed != 0 || r.Corrupt != 0 {
		t.Fatalf("the copy opened with %+v, want nothing to replay", r)
	}
	got := map[string]bool{}
	for {
		b := tryLease(t, c, 1000)
		if b == nil || len(b.Items) == 0 {
			break
		}
		for _, s := range payloads(b) {
			got[s] = true
		}
		if err := b.Ack(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range before {
		if !got[s] {
			t.Fatalf("%s, acknowledged before the backup, is not in it", s)
		}
	}
	if len(got) < 700 {
		t.Fatalf("the copy holds %d items, want the 500 before and the 200+ appended before the copy began", len(got))
	}
	t.Logf("copy holds %d of %d items", len(got), 500+int(during.Load()))
}

// A backup of a spool in use holds every instance its index named at the
// backup's moment, whole, even those removed while it was being copied,
// and opens with nothing to reconcile.
func TestSpoolBackupWhileRemoving(t *testing.T) {
	ctx := context.Background()
	s := openTestSpool(t, t.TempDir(), SpoolOptions{})
	data := map[string][]byte{}
	for i := range 40 {
		key := fmt.Sprint("1.2.3.", i)
		data[key] = randomBytes(uint64(i+1), 10_000+i*997)
		if _, _, err := s.Store(ctx, key, "1.2.3", nil, bytes.NewReader(data[key])); err != nil {
			t.Fatal(err)
		}
	}
	// Every removal waits for the links, then runs while the files are
	// still being copied.
	var removed atomic.Int64
	backup := &dirWriter{dir: t.TempDir()}
	w := writerFunc(func(name string, size int64, write func(io.Writer) error) error {
		if name == "spool/index.db" {
			for i := range 20 {
				if err := s.Remove(ctx, fmt.Sprint("1.2.3.", i)); err != nil {
					return err
				}
				removed.Add(1)
			}
		}
		return backup.File(name, size, write)
	})
	if err := s.Backup(ctx, "spool", w); err != nil {
		t.Fatal(err)
	}
	if removed.Load() != 20 {
		t.Fatalf("%d removed during the copy", removed.Load())
	}
	c := openTestSpool(t, filepath.Join(backup.dir, "spool"), SpoolOptions{})
	if r := c.Stats().AtOpen; r.Instances != 40 || r.OrphanRemoved+r.TempRemoved+r.MissingFile+r.WrongSize+r.CutShort != 0 {
		t.Fatalf("the copy opened with %+v, want the 40 instances and nothing to reconcile", r)
	}
	for key, want := range data {
		if !bytes.Equal(readAll(t, c, key), want) {
			t.Fatalf("%s differs in the copy", key)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(s.Dir(), "tmp")); len(entries) != 0 {
		t.Fatalf("the backup left %d entries in tmp/", len(entries))
	}
}

type writerFunc func(name string, size int64, write func(io.Writer) error) error

func (f writerFunc) File(name string, size int64, write func(io.Writer) error) error {
	return f(name, size, write)
}
