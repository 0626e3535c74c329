package buffer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// smallDisk mounts a tmpfs of the given size on a fresh folder: a real file
// system that runs out of space, for the disk-full tests. It needs root (as
// test/run and CI have).
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Fatalf("mounting a %s tmpfs for the disk-full test failed (%v): run the tests as root, as ./test/run does", size, err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

func TestSpoolOnAFullDiskRefusesWithErrFull(t *testing.T) {
	ctx := context.Background()
	dir := smallDisk(t, "4m")
	s := openTestSpool(t, filepath.Join(dir, "spool"), SpoolOptions{}) // no quota: the disk is the limit
	var stored []string
	var err error
	for i := 0; i < 100; i++ {
		key := fmt.Sprintf("1.2.%d", i)
		if _, _, err = s.Store(ctx, key, "g", nil, bytes.NewReader(randomBytes(uint64(i), 300<<10))); err != nil {
			break
		}
		stored = append(stored, key)
	}
	if !errors.Is(err, ErrFull) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("after %d stores: %v, want ErrFull wrapping ENOSPC", len(stored), err)
	}
	if n := countFiles(t, filepath.Join(dir, "spool", "tmp")); n != 0 {
		t.Fatalf("the refused store left %d files in tmp/", n)
	}
	for i, key := range stored {
		if !bytes.Equal(readAll(t, s, key), randomBytes(uint64(i), 300<<10)) {
			t.Fatalf("%s changed after the disk filled", key)
		}
	}
	// Room again: the spool takes instances again, without a restart.
	if err := s.Remove(ctx, stored[0]); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Store(ctx, "after", "g", nil, bytes.NewReader(randomBytes(99, 100<<10))); err != nil {
		t.Fatalf("store after freeing room: %v", err)
	}
}

func TestOutboxOnAFullDiskRefusesWithErrFull(t *testing.T) {
	ctx := context.Background()
	defer func(n int64) { journalSize = n }(journalSize)
	journalSize = 1 << 20
	dir := smallDisk(t, "12m") // room for the 8 MiB reserve, the journal and some items
	path := filepath.Join(dir, "outbox.db")
	o := openTestOutbox(t, path, OutboxOptions{})
	payload := strings.Repeat("x", 4000)
	var appended int
	var err error
	for i := 0; i < 5000; i++ {
		if _, err = o.Append(ctx, Item{Key: "k", Payload: []byte(fmt.Sprintf("%05d%s", i, payload))}); err != nil {
			break
		}
		appended++
	}
	if !errors.Is(err, ErrFull) {
		t.Fatalf("after %d appends: %v, want ErrFull", appended, err)
	}
	t.Logf("%d appends before the disk was full: %v", appended, err)
	crashClose(o)
	// Reopen on the still full disk: the gateway must start, with every
	// acknowledged item, and deliver them.
	o = openTestOutbox(t, path, OutboxOptions{})
	if got := o.Stats().Waiting; got != appended {
		t.Fatalf("%d items after reopen, want the %d acknowledged", got, appended)
	}
	seen := 0
	for seen < appended {
		b, err := o.Lease(ctx, 100, time.Minute) // waits for the checkpoint retries
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range b.Items {
			if want := fmt.Sprintf("%05d", seen); string(it.Payload[:5]) != want {
				t.Fatalf("item %q, want %s", it.Payload[:5], want)
			}
			seen++
		}
		if err := b.Ack(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := o.Append(ctx, Item{Key: "k", Payload: []byte(payload)}); err != nil {
		t.Fatalf("append after delivering freed room: %v", err)
	}
	t.Logf("reserve given up to keep delivering: %v", o.c.reserveUsed.Load())
}
