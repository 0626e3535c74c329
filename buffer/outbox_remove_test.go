package buffer

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
)

// An outbox used as a durable window: items are read back whole after a
// reopen, and those its owner removed stay removed, whether they were still
// in the journal or already in bbolt.
func TestRemoveAndScanSurviveAReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "window.db")
	o := openTestOutbox(t, path, OutboxOptions{})
	var ids []uint64
	for i := range 10 {
		got, err := o.Append(ctx, Item{Kind: "window", Payload: fmt.Appendf(nil, "frame %d", i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, got...)
	}
	if err := o.Remove(ctx, ids[0], ids[3], ids[3], ids[9]); err != nil {
		t.Fatal(err)
	}
	if err := o.Remove(ctx, ids[0]); err != nil { // already gone: nothing to do
		t.Fatal(err)
	}
	if s := o.Stats(); s.Waiting != 7 {
		t.Fatalf("waiting %d after removing 3 of 10, want 7", s.Waiting)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	o = openTestOutbox(t, path, OutboxOptions{})
	var got []string
	if err := o.Scan(func(it Item) error { got = append(got, string(it.Payload)); return nil }); err != nil {
		t.Fatal(err)
	}
	want := []string{"frame 1", "frame 2", "frame 4", "frame 5", "frame 6", "frame 7", "frame 8"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after reopen: %q, want %q", got, want)
	}
}

// Remove refuses an item that is out on a lease: the two ways of taking
// items out of an outbox are never mixed on one item.
func TestRemoveRefusesALeasedItem(t *testing.T) {
	ctx := context.Background()
	o := openTestOutbox(t, filepath.Join(t.TempDir(), "o.db"), OutboxOptions{})
	ids, err := o.Append(ctx, Item{Kind: "x", Payload: []byte("a")})
	if err != nil {
		t.Fatal(err)
	}
	b, err := o.Lease(ctx, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Remove(ctx, ids...); err == nil {
		t.Fatal("a leased item was removed")
	}
	b.Release(ctx)
}
