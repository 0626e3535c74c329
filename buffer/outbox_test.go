package buffer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// clock is a settable time source for tests.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func openTestOutbox(t *testing.T, path string, opts OutboxOptions) *Outbox {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	o, err := OpenOutbox(path, opts)
	if err != nil {
		t.Fatalf("OpenOutbox: %v", err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

func items(key string, payloads ...string) []Item {
	var out []Item
	for _, p := range payloads {
		out = append(out, Item{Key: key, Kind: "test", Payload: []byte(p)})
	}
	return out
}

// tryLease leases what is ready now, without waiting.
func tryLease(t *testing.T, o *Outbox, max int) *Batch {
	t.Helper()
	if err := o.checkpoint(); err != nil { // do not wait for the checkpoint loop
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b, err := o.Lease(ctx, max, time.Minute)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	if err != nil {
		t.Fatalf("Lease: %v", err)
	}
	return b
}

func payloads(b *Batch) []string {
	if b == nil {
		return nil
	}
	var out []string
	for _, it := range b.Items {
		out = append(out, string(it.Payload))
	}
	return out
}

func eq(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("%s: got %q, want %q", what, got, want)
	}
}

func TestAppendLeaseAckSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := openTestOutbox(t, path, OutboxOptions{})
	ids, err := o.Append(ctx, items("bed-12", "a", "b", "c")...)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 3 || ids[0] >= ids[1] || ids[1] >= ids[2] {
		t.Fatalf("ids %v are not increasing", ids)
	}
	o.Close()

	o = openTestOutbox(t, path, OutboxOptions{})
	if got := o.Stats(); got.Waiting != 3 || got.AtOpen.Waiting != 3 {
		t.Fatalf("after reopen: %+v", got)
	}
	b := tryLease(t, o, 2)
	eq(t, "first lease", payloads(b), []string{"a", "b"})
	if b.Items[0].Attempts != 1 || b.Items[0].Key != "bed-12" || b.Items[0].Kind != "test" {
		t.Fatalf("leased item: %+v", b.Items[0])
	}
	if err := b.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	o.Close()

	o = openTestOutbox(t, path, OutboxOptions{})
	b = tryLease(t, o, 10)
	eq(t, "after ack and reopen", payloads(b), []string{"c"})
	if o.Stats().AtOpen.LeasesReleased != 0 {
		t.Fatalf("a clean close left leases: %+v", o.Stats().AtOpen)
	}
}

func TestKeyOrderIsKeptAcrossRetries(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	o := openTestOutbox(t, filepath.Join(t.TempDir(), "outbox.db"), OutboxOptions{Now: clk.Now,
		Backoff: Backoff{Initial: 10 * time.Second, Max: time.Minute, Multiplier: 2}})
	for _, it := range []Item{
		{Key: "bed-12", Payload: []byte("12-1")},
		{Key: "bed-14", Payload: []byte("14-1")},
		{Key: "bed-12", Payload: []byte("12-2")},
		{Payload: []byte("unordered")},
	} {
		if _, err := o.Append(ctx, it); err != nil {
			t.Fatal(err)
		}
	}
	b1 := tryLease(t, o, 1)
	eq(t, "lease 1", payloads(b1), []string{"12-1"})
	// 12-2 waits for 12-1, the others are free.
	b2 := tryLease(t, o, 10)
	eq(t, "lease 2", payloads(b2), []string{"14-1", "unordered"})
	if err := b2.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b1.Nack(ctx, "HTTP 503", 0); err != nil {
		t.Fatal(err)
	}
	// 12-1 is backing off, and 12-2 must not overtake it.
	if b := tryLease(t, o, 10); b != nil {
		t.Fatalf("leased %q while bed-12's first reading waits for its retry", payloads(b))
	}
	clk.Advance(11 * time.Second)
	b3 := tryLease(t, o, 10)
	eq(t, "after the backoff", payloads(b3), []string{"12-1", "12-2"})
	if b3.Items[0].Attempts != 2 || b3.Items[1].Attempts != 1 {
		t.Fatalf("attempts: %d, %d", b3.Items[0].Attempts, b3.Items[1].Attempts)
	}
	// A dead-lettered item no longer holds back its key.
	if err := b3.DeadLetter(ctx, "rejected: invalid code", b3.Items[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := b3.Nack(ctx, "timeout", 0, b3.Items[1].ID); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	eq(t, "after dead letter", payloads(tryLease(t, o, 10)), []string{"12-2"})
}

func TestNackHonoursMinDelayAndMaxAttempts(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	o := openTestOutbox(t, filepath.Join(t.TempDir(), "outbox.db"), OutboxOptions{Now: clk.Now, MaxAttempts: 3,
		Backoff: Backoff{Initial: time.Second, Max: 4 * time.Second, Multiplier: 2}})
	if _, err := o.Append(ctx, items("k", "x")...); err != nil {
		t.Fatal(err)
	}
	b := tryLease(t, o, 1)
	if err := b.Nack(ctx, "HTTP 429", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	clk.Advance(20 * time.Second)
	if tryLease(t, o, 1) != nil {
		t.Fatal("leased before the server's Retry-After")
	}
	clk.Advance(11 * time.Second)
	for attempt := 2; attempt <= 3; attempt++ {
		b = tryLease(t, o, 1)
		if b == nil || b.Items[0].Attempts != attempt || b.Items[0].LastError != "HTTP 429" && attempt == 2 {
			t.Fatalf("attempt %d: %+v", attempt, b)
		}
		if err := b.Nack(ctx, "HTTP 429", 0); err != nil {
			t.Fatal(err)
		}
		clk.Advance(5 * time.Second)
	}
	if tryLease(t, o, 1) != nil {
		t.Fatal("leased after MaxAttempts")
	}
	dl, err := o.DeadLetters(0)
	if err != nil || len(dl) != 1 || !strings.Contains(dl[0].Reason, "gave up after 3 attempts") {
		t.Fatalf("dead letters: %+v, %v", dl, err)
	}
	if s := o.Stats(); s.Waiting != 0 || s.Dead != 1 || s.Counters.DeadLettered != 1 || s.Counters.Nacked != 2 {
		t.Fatalf("stats: %+v", s)
	}
}

func TestBackoffGrowsAndIsCapped(t *testing.T) {
	b := Backoff{Initial: time.Second, Max: time.Minute, Multiplier: 2}
	for _, tc := range []struct {
		attempts int
		r        float64
		want     time.Duration
	}{
		{1, 0, 500 * time.Millisecond},
		{1, 0.999999, time.Second},
		{3, 0, 2 * time.Second},
		{7, 0.5, 45 * time.Second},
		{8, 0, 30 * time.Second}, // 128 s capped to 60 s, then jittered
		{1000, 1, time.Minute},
	} {
		got := b.delay(tc.attempts, tc.r).Round(time.Millisecond)
		if got != tc.want.Round(time.Millisecond) {
			t.Errorf("delay(%d, %v) = %v, want %v", tc.attempts, tc.r, got, tc.want)
		}
	}
}

func TestExpiredLeaseIsTakenAgainAndTheLateAckIsRefused(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	o := openTestOutbox(t, filepath.Join(t.TempDir(), "outbox.db"), OutboxOptions{Now: clk.Now})
	if _, err := o.Append(ctx, items("k", "x")...); err != nil {
		t.Fatal(err)
	}
	stuck := tryLease(t, o, 1)
	clk.Advance(2 * time.Minute)
	again := tryLease(t, o, 1)
	eq(t, "re-lease", payloads(again), []string{"x"})
	if err := stuck.Ack(ctx); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("late ack: %v, want ErrLeaseLost", err)
	}
	if err := again.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	if s := o.Stats(); s.Waiting != 0 || s.Counters.LeasesExpired != 1 {
		t.Fatalf("stats: %+v", s)
	}
}

func TestLeaseWaitsForAnAppend(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o := openTestOutbox(t, filepath.Join(t.TempDir(), "outbox.db"), OutboxOptions{})
	got := make(chan *Batch)
	go func() {
		b, err := o.Lease(ctx, 10, time.Minute)
		if err != nil {
			t.Error(err)
		}
		got <- b
	}()
	if _, err := o.Append(ctx, items("k", "late")...); err != nil {
		t.Fatal(err)
	}
	eq(t, "woken lease", payloads(<-got), []string{"late"})
}

func TestCloseEndsAWaitingLease(t *testing.T) {
	o := openTestOutbox(t, filepath.Join(t.TempDir(), "outbox.db"), OutboxOptions{})
	done := make(chan error)
	go func() {
		_, err := o.Lease(context.Background(), 10, time.Minute)
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	o.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("Lease after Close: %v", err)
	}
	if _, err := o.Append(context.Background(), items("k", "x")...); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
}

func TestDeadLettersCanBeListedRetriedAndDropped(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := openTestOutbox(t, path, OutboxOptions{})
	if _, err := o.Append(ctx, items("k", "a", "b", "c")...); err != nil {
		t.Fatal(err)
	}
	b := tryLease(t, o, 10)
	if err := b.DeadLetter(ctx, `OperationOutcome: {"severity":"error","code":"invalid"}`, b.Items[0].ID, b.Items[2].ID); err != nil {
		t.Fatal(err)
	}
	if err := b.Ack(ctx); err != nil { // b
		t.Fatal(err)
	}
	o.Close()
	o = openTestOutbox(t, path, OutboxOptions{})
	dl, err := o.DeadLetters(0)
	if err != nil || len(dl) != 2 || string(dl[0].Payload) != "a" || !strings.Contains(dl[1].Reason, "invalid") {
		t.Fatalf("dead letters: %+v %v", dl, err)
	}
	if n, err := o.RetryDead(ctx, dl[0].ID); n != 1 || err != nil {
		t.Fatalf("RetryDead: %d %v", n, err)
	}
	b = tryLease(t, o, 10)
	eq(t, "retried", payloads(b), []string{"a"})
	if b.Items[0].Attempts != 1 || !strings.Contains(b.Items[0].LastError, "retried from the dead letters") {
		t.Fatalf("retried item: %+v", b.Items[0])
	}
	if _, err := o.DropDead(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Fatalf("DropDead of a missing id: %v", err)
	}
	if n, err := o.DropDead(ctx); n != 1 || err != nil {
		t.Fatalf("DropDead all: %d %v", n, err)
	}
	if s := o.Stats(); s.Dead != 0 || s.Waiting != 1 {
		t.Fatalf("stats: %+v", s)
	}
}

func TestQuotaRefusesWithoutLosingWhatIsStored(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := openTestOutbox(t, path, OutboxOptions{QuotaBytes: 10_000})
	payload := strings.Repeat("v", 300)
	var stored int
	var err error
	for i := 0; i < 100; i++ {
		if _, err = o.Append(ctx, items("k", fmt.Sprintf("%03d%s", i, payload))...); err != nil {
			break
		}
		stored++
	}
	if !errors.Is(err, ErrFull) || stored == 0 || stored > 30 {
		t.Fatalf("after %d appends: %v, want ErrFull", stored, err)
	}
	if s := o.Stats(); s.Bytes > 10_000 || s.Counters.RefusedFull != 1 {
		t.Fatalf("stats: %+v", s)
	}
	o.Close()
	o = openTestOutbox(t, path, OutboxOptions{QuotaBytes: 10_000})
	if _, err := o.Append(ctx, items("k", payload)...); !errors.Is(err, ErrFull) {
		t.Fatalf("append over quota after reopen: %v", err)
	}
	b := tryLease(t, o, 1000)
	if len(b.Items) != stored {
		t.Fatalf("%d items after reopen, want %d", len(b.Items), stored)
	}
	for i, it := range b.Items {
		if !strings.HasPrefix(string(it.Payload), fmt.Sprintf("%03d", i)) {
			t.Fatalf("item %d holds %q", i, it.Payload[:3])
		}
	}
	if err := b.Ack(ctx, b.Items[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Append(ctx, items("k", payload)...); err != nil {
		t.Fatalf("append after an ack freed room: %v", err)
	}
}

func TestAppendRefusesOversizedItems(t *testing.T) {
	o := openTestOutbox(t, filepath.Join(t.TempDir(), "outbox.db"), OutboxOptions{MaxItemBytes: 100})
	for _, it := range []Item{
		{Payload: make([]byte, 101)},
		{Key: strings.Repeat("k", maxKeyLen+1)},
		{Kind: strings.Repeat("k", maxKindLen+1)},
	} {
		if _, err := o.Append(context.Background(), Item{Payload: []byte("ok")}, it); err == nil {
			t.Fatalf("oversized item accepted")
		}
	}
	if o.Stats().Waiting != 0 {
		t.Fatal("a refused call stored part of its items")
	}
}

// crashClose closes the outbox as a crash would leave it: leases stay on disk.
func crashClose(o *Outbox) {
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
	o.j.close()
	close(o.cpStop)
	<-o.cpDone
	o.c.close()
	o.db.Close()
}

func TestLeasesLeftByACrashAreReleasedAndCounted(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := openTestOutbox(t, path, OutboxOptions{MaxAttempts: 2})
	if _, err := o.Append(ctx, items("k", "poison")...); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Append(ctx, items("j", "fine")...); err != nil {
		t.Fatal(err)
	}
	b := tryLease(t, o, 10)
	eq(t, "first", payloads(b), []string{"poison", "fine"})
	crashClose(o)

	o = openTestOutbox(t, path, OutboxOptions{MaxAttempts: 2})
	if r := o.Stats().AtOpen; r.LeasesReleased != 2 || r.GaveUp != 0 {
		t.Fatalf("open report: %+v", r)
	}
	b = tryLease(t, o, 10)
	eq(t, "after the first crash", payloads(b), []string{"poison", "fine"})
	if err := b.Ack(ctx, b.Items[1].ID); err != nil {
		t.Fatal(err)
	}
	crashClose(o)

	// The poison item has now cut two deliveries short: it goes to the dead
	// letters instead of crashing the gateway for ever.
	o = openTestOutbox(t, path, OutboxOptions{MaxAttempts: 2})
	if r := o.Stats().AtOpen; r.LeasesReleased != 1 || r.GaveUp != 1 || r.Dead != 1 || r.Waiting != 0 {
		t.Fatalf("open report: %+v", r)
	}
	dl, _ := o.DeadLetters(0)
	if len(dl) != 1 || !strings.Contains(dl[0].Reason, "cut short 2 times") {
		t.Fatalf("dead letters: %+v", dl)
	}
}

func TestConcurrentAppendersShareCommits(t *testing.T) {
	ctx := context.Background()
	o := openTestOutbox(t, filepath.Join(t.TempDir(), "outbox.db"), OutboxOptions{})
	const appenders, each = 16, 100
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[uint64]bool{}
	for g := 0; g < appenders; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				ids, err := o.Append(ctx, Item{Key: fmt.Sprint(g), Payload: []byte(fmt.Sprintf("%d-%d", g, i))})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				seen[ids[0]] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	s := o.Stats()
	if len(seen) != appenders*each || s.Waiting != appenders*each {
		t.Fatalf("%d ids, %d waiting", len(seen), s.Waiting)
	}
	if c := s.Counters; c.JournalCalls != appenders*each || c.JournalSyncs >= c.JournalCalls {
		t.Fatalf("%d journal syncs for %d appends: no sync was shared", c.JournalSyncs, c.JournalCalls)
	}
	t.Logf("%d appends in %d journal syncs", s.Counters.JournalCalls, s.Counters.JournalSyncs)
	// Each appender's items come out in its own order.
	last := map[string]int{}
	for {
		b := tryLease(t, o, 500)
		if b == nil {
			break
		}
		for _, it := range b.Items {
			var g, i int
			fmt.Sscanf(string(it.Payload), "%d-%d", &g, &i)
			if prev, ok := last[it.Key]; ok && i != prev+1 {
				t.Fatalf("key %s: item %d after %d", it.Key, i, prev)
			}
			last[it.Key] = i
		}
		if err := b.Ack(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// Append returns only once an fdatasync that began after its record was
// written has returned, and so after every earlier record is flushed too:
// each flush is slowed at random, and every appender checks its IDs against
// those that the last finished flush covered.
func TestAppendReturnsOnlyAfterItsRecordIsFlushed(t *testing.T) {
	ctx := context.Background()
	o := openTestOutbox(t, filepath.Join(t.TempDir(), "outbox.db"), OutboxOptions{})
	var flushed atomic.Uint64 // every ID below it is on disk
	r := rand.New(rand.NewPCG(1, 2))
	o.j.fdatasync = func(f *os.File) error { // runs in the journal's loop
		written := o.j.next // every ID below it has been written
		time.Sleep(time.Duration(r.IntN(300)) * time.Microsecond)
		err := fdatasyncFile(f)
		if err == nil {
			flushed.Store(written)
		}
		return err
	}
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				ids, err := o.Append(ctx, items(fmt.Sprint(g), strings.Split("abc"[:1+i%3], "")...)...)
				if err != nil {
					t.Error(err)
					return
				}
				if last, f := ids[len(ids)-1], flushed.Load(); last >= f {
					t.Errorf("item %d acknowledged while only the items below %d were flushed", last, f)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// A file that is not an outbox is reported, names itself, and is not changed.
func TestForeignOrDamagedFileIsLeftUntouched(t *testing.T) {
	foreignBolt := func(path string) {
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		db.Update(func(tx *bolt.Tx) error {
			b, _ := tx.CreateBucket([]byte("someone-else"))
			return b.Put([]byte("k"), []byte("v"))
		})
		db.Close()
	}
	spoolIndex := func(path string) {
		db, _, err := openBolt(path, spoolFormat)
		if err != nil {
			t.Fatal(err)
		}
		db.Close()
	}
	damaged := func(path string) {
		o, err := OpenOutbox(path, OutboxOptions{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		o.Append(context.Background(), items("k", "x")...)
		o.Close()
		b, _ := os.ReadFile(path)
		for i := 0; i < 2*4096; i++ { // both meta pages
			b[i] ^= 0x5a
		}
		os.WriteFile(path, b, 0o600)
	}
	damagedPages := func(path string) {
		o, err := OpenOutbox(path, OutboxOptions{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 50; i++ {
			o.Append(context.Background(), items("k", strings.Repeat("x", 1000))...)
		}
		o.Close()
		b, _ := os.ReadFile(path)
		for i := 2 * 4096; i < len(b); i++ { // every page but the meta pages
			b[i] = 0xff
		}
		os.WriteFile(path, b, 0o600)
	}
	for _, tc := range []struct {
		name string
		make func(path string)
		want string
	}{
		{"damaged data pages", damagedPages, "damaged"},
		{"text", func(p string) { os.WriteFile(p, []byte("site: ward-4b\n"), 0o600) }, "not a wardgate store"},
		{"random", func(p string) { os.WriteFile(p, bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 5000), 0o600) }, "not a wardgate store"},
		{"short", func(p string) { os.WriteFile(p, []byte{1}, 0o600) }, "outbox.db"},
		{"foreign bbolt", foreignBolt, "not a wardgate store"},
		{"spool index", spoolIndex, `holds format "wardgate-spool/2"`},
		{"damaged meta pages", damaged, "damaged"},
		{"directory", func(p string) { os.Mkdir(p, 0o700) }, "is a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "outbox.db")
			tc.make(path)
			before, _ := os.ReadFile(path)
			o, err := OpenOutbox(path, OutboxOptions{Logger: quiet})
			if err == nil {
				o.Close()
				t.Fatal("opened a file that is not an outbox")
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %s and say %q", err, path, tc.want)
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(before, after) {
				t.Fatal("the file was changed")
			}
		})
	}
}

func TestSecondOpenOfTheSameFileFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	openTestOutbox(t, path, OutboxOptions{})
	_, err := OpenOutbox(path, OutboxOptions{Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("second open: %v", err)
	}
}

func TestJournalIsReplayedAfterACrash(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := openTestOutbox(t, path, OutboxOptions{})
	o.holdCheckpoints.Store(true)
	if _, err := o.Append(ctx, items("k", "a", "b")...); err != nil {
		t.Fatal(err)
	}
	crashClose(o) // before any checkpoint could run
	o = openTestOutbox(t, path, OutboxOptions{})
	if r := o.Stats().AtOpen; r.Replayed != 2 || r.Waiting != 2 {
		t.Fatalf("open report: %+v", r)
	}
	ids, err := o.Append(ctx, items("k", "c")...)
	if err != nil {
		t.Fatal(err)
	}
	b := tryLease(t, o, 10)
	eq(t, "after replay", payloads(b), []string{"a", "b", "c"})
	if b.Items[2].ID != ids[0] || b.Items[1].ID >= ids[0] {
		t.Fatalf("ids after replay: %d %d, new %d", b.Items[1].ID, b.Items[2].ID, ids[0])
	}
	b.Ack(ctx)
	crashClose(o)
	// Acked items are not brought back by a second replay.
	o = openTestOutbox(t, path, OutboxOptions{})
	if r := o.Stats().AtOpen; r.Replayed != 0 || r.Waiting != 0 {
		t.Fatalf("second open report: %+v", r)
	}
}

func TestJournalWrapsAroundWithoutLosingItems(t *testing.T) {
	defer func(n int64) { journalSize = n }(journalSize)
	journalSize = 64 << 10
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := openTestOutbox(t, path, OutboxOptions{})
	payload := strings.Repeat("p", 900)
	for i := 0; i < 300; i++ { // about four times the journal
		if _, err := o.Append(ctx, items("k", fmt.Sprintf("%04d%s", i, payload))...); err != nil {
			t.Fatal(err)
		}
	}
	big := strings.Repeat("B", 100<<10) // larger than the whole journal: it grows
	if _, err := o.Append(ctx, items("k", big)...); err != nil {
		t.Fatal(err)
	}
	crashClose(o)
	o = openTestOutbox(t, path, OutboxOptions{})
	b := tryLease(t, o, 1000)
	if len(b.Items) != 301 {
		t.Fatalf("%d items after wrap and crash, want 301", len(b.Items))
	}
	for i, it := range b.Items[:300] {
		if !strings.HasPrefix(string(it.Payload), fmt.Sprintf("%04d", i)) {
			t.Fatalf("item %d is %q", i, it.Payload[:4])
		}
	}
	if string(b.Items[300].Payload) != big {
		t.Fatal("the large item differs")
	}
}

func TestForeignJournalIsLeftUntouched(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	os.WriteFile(path+".journal", []byte("not a journal"), 0o600)
	_, err := OpenOutbox(path, OutboxOptions{Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), path+".journal") {
		t.Fatalf("open with a foreign journal: %v", err)
	}
	if b, _ := os.ReadFile(path + ".journal"); string(b) != "not a journal" {
		t.Fatal("the journal was changed")
	}
}

func TestRepeatedIDsAreSettledOnce(t *testing.T) {
	ctx := context.Background()
	o := openTestOutbox(t, filepath.Join(t.TempDir(), "outbox.db"), OutboxOptions{})
	o.Append(ctx, items("k", "a", "b")...)
	b := tryLease(t, o, 10)
	id := b.Items[0].ID
	if err := b.DeadLetter(ctx, "bad", id, id); err != nil {
		t.Fatal(err)
	}
	if n, err := o.RetryDead(ctx, id, id); n != 1 || err != nil {
		t.Fatalf("RetryDead with a repeated id: %d %v", n, err)
	}
	if s := o.Stats(); s.Waiting != 2 || s.Dead != 0 {
		t.Fatalf("stats after a repeated retry: %+v", s)
	}
}

func TestAddDeadLetterKeepsABrokenItemOutOfDelivery(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := openTestOutbox(t, path, OutboxOptions{})
	o.Append(ctx, items("k", "fine")...)
	id, err := o.AddDeadLetter(ctx, Item{Key: "k", Kind: "fhir", Payload: []byte("broken")}, "invalid Observation: status")
	if err != nil || id < rejectedIDBase {
		t.Fatalf("AddDeadLetter: %d %v", id, err)
	}
	eq(t, "leased", payloads(tryLease(t, o, 10)), []string{"fine"})
	o.Close()
	o = openTestOutbox(t, path, OutboxOptions{})
	dl, _ := o.DeadLetters(0)
	if len(dl) != 1 || dl[0].ID != id || dl[0].Reason != "invalid Observation: status" || o.Stats().Dead != 1 {
		t.Fatalf("dead letters after reopen: %+v", dl)
	}
	// Appends after a reopen never take its id.
	ids, _ := o.Append(ctx, items("k", "later")...)
	if ids[0] >= rejectedIDBase {
		t.Fatalf("append id %d in the dead-letter range", ids[0])
	}
}
