package buffer

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatalf("%s: %v", filepath.Base(path), err)
	}
	return info.Size()
}

func missing(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("%s exists (%v), want none yet", filepath.Base(path), err)
	}
}

// The journal and the reserve are sized from the quota: a store with a
// small quota does not carry 40 MiB of files for nothing.
func TestJournalAndReserveAreSizedFromTheQuota(t *testing.T) {
	for _, c := range []struct {
		quota            int64
		journal, reserve int64
	}{
		{0, 32 << 20, 8 << 20},
		{1 << 30, 16 << 20, 8 << 20},
		{256 << 20, 4 << 20, 2 << 20},
		{16 << 20, 4 << 20, 1 << 20},
		{4 << 40, 32 << 20, 8 << 20},
	} {
		p := filepath.Join(t.TempDir(), "outbox.db")
		o := openTestOutbox(t, p, OutboxOptions{QuotaBytes: c.quota})
		if _, err := o.Append(context.Background(), items("k", "x")...); err != nil {
			t.Fatal(err)
		}
		o.Close()
		if got := fileSize(t, p+".journal"); got != c.journal {
			t.Errorf("quota %d: journal of %d bytes, want %d", c.quota, got, c.journal)
		}
		if got := fileSize(t, p+".reserve"); got != c.reserve {
			t.Errorf("quota %d: reserve of %d bytes, want %d", c.quota, got, c.reserve)
		}
	}
}

// A journal made larger than the quota now asks for (by a release that did
// not size journals, or before the quota was lowered) is cut at the next
// open, after its records are in bbolt: what it held is kept.
func TestALargerJournalIsCutAfterItsRecordsAreApplied(t *testing.T) {
	p := filepath.Join(t.TempDir(), "outbox.db")
	o := openTestOutbox(t, p, OutboxOptions{})
	if _, err := o.Append(context.Background(), items("k", "a", "b", "c")...); err != nil {
		t.Fatal(err)
	}
	crashClose(o) // the items are in the journal only
	if got := fileSize(t, p+".journal"); got != 32<<20 {
		t.Fatalf("journal of %d bytes before, want 32 MiB", got)
	}
	o = openTestOutbox(t, p, OutboxOptions{QuotaBytes: 64 << 20})
	if got := fileSize(t, p+".journal"); got != 4<<20 {
		t.Errorf("journal of %d bytes after, want 4 MiB", got)
	}
	if got := fileSize(t, p+".reserve"); got != 1<<20 {
		t.Errorf("reserve of %d bytes after, want 1 MiB", got)
	}
	eq(t, "items after the cut", payloads(tryLease(t, o, 10)), []string{"a", "b", "c"})
	// And it goes on working in the smaller file, across its wraps.
	for i := range 3000 {
		if _, err := o.Append(context.Background(), items("w", string(rune('a'+i%26)))...); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	o.Close()
	o = openTestOutbox(t, p, OutboxOptions{QuotaBytes: 64 << 20})
	if s := o.Stats(); s.Waiting != 3003 {
		t.Fatalf("%d waiting after reopening, want 3003", s.Waiting)
	}
}

// A lazy store (the held frames) makes its journal and reserve at the first
// append, not at open: a ward where nothing is ever held carries neither.
// Once made, they are the store's like any other's.
func TestALazyStoreMakesItsJournalAtTheFirstAppend(t *testing.T) {
	p := filepath.Join(t.TempDir(), "held.db")
	opts := OutboxOptions{QuotaBytes: 256 << 20, Lazy: true}
	o := openTestOutbox(t, p, opts)
	missing(t, p+".journal")
	missing(t, p+".reserve")
	o.Close()
	o = openTestOutbox(t, p, opts) // reopened, still unwritten
	missing(t, p+".journal")
	if _, err := o.Append(context.Background(), items("k", "held")...); err != nil {
		t.Fatal(err)
	}
	if got := fileSize(t, p+".journal"); got != 4<<20 {
		t.Errorf("journal of %d bytes, want 4 MiB", got)
	}
	if got := fileSize(t, p+".reserve"); got != 2<<20 {
		t.Errorf("reserve of %d bytes, want 2 MiB", got)
	}
	crashClose(o) // acknowledged means durable, in a journal made a moment ago too
	o = openTestOutbox(t, p, opts)
	eq(t, "after a crash", payloads(tryLease(t, o, 10)), []string{"held"})
}
