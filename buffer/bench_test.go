package buffer

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkAppend measures durable appends of 300-byte items, one and eight
// items per Append call, by 1 and by 16 concurrent appenders. It reports
// items/s, group commits/s (each is one journal write and one fdatasync:
// Append has returned for every item in it) and items per group commit, and
// the bbolt commits/s of the checkpoints that move items from the journal
// into bbolt (two fdatasyncs each).
func BenchmarkAppend(b *testing.B) {
	for _, appenders := range []int{1, 16} {
		for _, perCall := range []int{1, 8} {
			b.Run(fmt.Sprintf("appenders=%d/items_per_call=%d", appenders, perCall), func(b *testing.B) {
				benchAppend(b, appenders, perCall)
			})
		}
	}
}

func benchAppend(b *testing.B, appenders, perCall int) {
	o, err := OpenOutbox(filepath.Join(b.TempDir(), "outbox.db"), OutboxOptions{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer o.Close()
	ctx := context.Background()
	payload := bytes.Repeat([]byte("x"), 300)
	batch := make([]Item, perCall)
	for i := range batch {
		batch[i] = Item{Key: "bed-12", Kind: "observation", Payload: payload}
	}
	calls := (b.N + perCall - 1) / perCall
	var next atomic.Int64
	before := o.Stats().Counters
	b.SetBytes(int64(300 * perCall))
	b.ResetTimer()
	var wg sync.WaitGroup
	for g := 0; g < appenders; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(calls) {
				if _, err := o.Append(ctx, batch...); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	after := o.Stats().Counters
	items := float64(calls * perCall)
	syncs := float64(after.JournalSyncs - before.JournalSyncs)
	commits := float64(after.Commits - before.Commits)
	secs := b.Elapsed().Seconds()
	b.ReportMetric(items/secs, "items/s")
	b.ReportMetric(syncs/secs, "group-commits/s")
	b.ReportMetric(items/syncs, "items/group-commit")
	b.ReportMetric(commits/secs, "bbolt-commits/s")
	b.ReportMetric(0, "ns/op")
}

const instanceSize = 512 << 10

// BenchmarkSpoolStore stores 0.5 MB instances the way the DICOM SCP will:
// streamed in 16 KiB writes to a temp file, fsync, rename, directory fsync,
// index commit.
func BenchmarkSpoolStore(b *testing.B) {
	s, err := OpenSpool(filepath.Join(b.TempDir(), "spool"), SpoolOptions{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	data := randomBytes(1, instanceSize)
	ctx := context.Background()
	b.SetBytes(instanceSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w, err := s.Create()
		if err != nil {
			b.Fatal(err)
		}
		for p := data; len(p) > 0; p = p[16<<10:] {
			if _, err := w.Write(p[:16<<10]); err != nil {
				b.Fatal(err)
			}
		}
		if _, _, err := w.Commit(ctx, fmt.Sprintf("1.2.3.%d", i), "1.2.3", nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "instances/s")
}

// BenchmarkPlainWriteFsyncRename is the baseline for BenchmarkSpoolStore: the
// same bytes written in the same pieces, fsynced and renamed, nothing else.
func BenchmarkPlainWriteFsyncRename(b *testing.B) {
	dir := b.TempDir()
	data := randomBytes(1, instanceSize)
	b.SetBytes(instanceSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tmp := filepath.Join(dir, fmt.Sprintf("%d.part", i))
		f, err := os.Create(tmp)
		if err != nil {
			b.Fatal(err)
		}
		for p := data; len(p) > 0; p = p[16<<10:] {
			if _, err := f.Write(p[:16<<10]); err != nil {
				b.Fatal(err)
			}
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		f.Close()
		if err := os.Rename(tmp, filepath.Join(dir, fmt.Sprint(i))); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "instances/s")
}
