package buffer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The Outbox itself: its options, state and counts, OpenOutbox, Append,
// Close and the views of what it holds (Stats, Waiting). The rest is beside
// it: outbox_replay.go (what Open finds and replays), outbox_checkpoint.go
// (from the journal into bbolt), outbox_lease.go (delivery: leases and their
// settlement) and outbox_dead.go (the dead letters); the journal itself is in
// journal.go and the group commit of bbolt writes in commit.go.

var outboxFormat = OutboxFormat.String()

var (
	itemsBucket = []byte("items")
	deadBucket  = []byte("dead")
)

// itemOverhead approximates what bbolt spends on disk per item beyond the
// encoded value (the 8-byte key, the leaf element, page slack), so that the
// quota tracks the file rather than the payloads alone.
const itemOverhead = 32

// DefaultMaxItemBytes bounds one item (an ImagingStudy of a large CT series is
// well under it).
const DefaultMaxItemBytes = 16 << 20

// OutboxOptions tunes an Outbox; the zero value is usable.
type OutboxOptions struct {
	// QuotaBytes bounds what the outbox holds (waiting items and dead
	// letters); 0 means no bound.
	QuotaBytes int64
	// MaxItemBytes bounds one item's payload; 0 means DefaultMaxItemBytes.
	MaxItemBytes int
	// Backoff spaces the retries of a nacked item; zero means DefaultBackoff.
	Backoff Backoff
	// MaxAttempts moves an item to the dead letters once it has been leased
	// this many times without success; 0 means retry for ever (an outage of
	// the FHIR server must not turn readings into dead letters).
	MaxAttempts int
	// JournalBytes is the size the journal is made with (it grows for a
	// record larger than itself); a journal larger than it with nothing to
	// replay is cut to it at open. 0 sizes it from QuotaBytes: a
	// sixty-fourth, between 4 and 32 MiB (32 MiB without a quota).
	JournalBytes int64
	// ReserveBytes is the spare room kept beside the file for a full disk
	// (see the package comment). 0 sizes it from QuotaBytes: a 128th,
	// between 1 and 8 MiB (8 MiB without a quota).
	ReserveBytes int64
	// Lazy leaves the journal and the reserve unmade until the first
	// Append: a store that is seldom written (the held frames, written
	// only while a reading waits) carries neither until it is.
	Lazy bool
	// Logger receives the outbox's own reports; nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock, for tests; nil means time.Now.
	Now func() time.Time
}

// Outbox is the durable queue between the gateway's inputs and the FHIR
// server. See the package documentation for what is durable when.
type Outbox struct {
	path string
	db   *bolt.DB
	c    *committer
	opts OutboxOptions
	log  *slog.Logger
	run  uint64 // this run's id, written into leases

	mu        sync.Mutex
	closed    bool
	leases    map[uint64]lease
	nextToken uint64
	waiting   int   // items in the items bucket, leased or not
	dead      int   // dead letters
	bytes     int64 // committed bytes, items and dead letters
	reserved  int64 // bytes of appends waiting for their commit
	changed   chan struct{}
	scan      scanCache
	counters  OutboxCounters
	atOpen    OpenReport

	// Appends go to the journal first and wait there in pending until a
	// checkpoint moves them into bbolt; only then can they be leased.
	j            *journal
	pending      []journalItem
	pendingBytes int64
	pendingLSN   uint64
	cpMu         sync.Mutex
	leasing      sync.WaitGroup // lease writes under way
	// holdCheckpoints stops the checkpoint loop (for tests of replay).
	holdCheckpoints atomic.Bool
	cpKick          chan struct{}
	cpStop          chan struct{}
	cpDone          chan struct{}
}

// OutboxCounters count what passed through the outbox since Open.
type OutboxCounters struct {
	Appended      uint64 // items committed by Append
	Acked         uint64 // items delivered and removed
	Nacked        uint64 // failed deliveries put back for a retry
	DeadLettered  uint64 // items moved to the dead letters
	RefusedFull   uint64 // items refused because the outbox was full
	LeasesExpired uint64 // leases that ran out and were taken again
	Commits       uint64 // bbolt transactions committed
	Ops           uint64 // operations in them (acks, leases, checkpoints, ...)
	JournalSyncs  uint64 // journal writes, one fdatasync each
	JournalCalls  uint64 // Append calls they carried
}

// OpenReport says what Open found left by the previous run.
type OpenReport struct {
	Waiting        int // items waiting for delivery
	Dead           int // dead letters
	Bytes          int64
	LeasesReleased int // deliveries a crash cut short, to be made again
	GaveUp         int // of those, items moved to the dead letters by MaxAttempts
	Corrupt        int // items that could not be decoded (left in place)
	Replayed       int // items appended before the stop that the journal moved into bbolt
}

// OutboxStats is a snapshot for the status page and metrics.
type OutboxStats struct {
	Waiting    int // not yet delivered, including leased
	Leased     int // being delivered now
	Dead       int
	Bytes      int64
	QuotaBytes int64
	Oldest     time.Time // enqueue time of the oldest waiting item
	Counters   OutboxCounters
	AtOpen     OpenReport
}

// OpenOutbox opens (or creates) the outbox file at path. A file that is not a
// wardgate outbox is reported and left untouched.
func OpenOutbox(path string, opts OutboxOptions) (*Outbox, error) {
	if opts.MaxItemBytes <= 0 {
		opts.MaxItemBytes = DefaultMaxItemBytes
	}
	if opts.Backoff.Initial <= 0 {
		opts.Backoff = DefaultBackoff
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	db, _, err := openBolt(path, outboxFormat)
	if err != nil {
		return nil, err
	}
	o := &Outbox{
		path:    path,
		db:      db,
		opts:    opts,
		log:     opts.Logger.With("store", "outbox"),
		leases:  make(map[uint64]lease),
		changed: make(chan struct{}),
	}
	for o.run == 0 {
		o.run = rand.Uint64()
	}
	if err := o.recover(); err != nil {
		db.Close()
		return nil, fmt.Errorf("outbox %s: %w", path, err)
	}
	if err := o.openJournal(); err != nil {
		db.Close()
		return nil, err
	}
	reserve := path + ".reserve"
	if o.j.f != nil {
		makeReserve(reserve, reserveSizeFor(opts.QuotaBytes, opts.ReserveBytes))
	} else {
		o.j.onCreate = func() { makeReserve(reserve, reserveSizeFor(opts.QuotaBytes, opts.ReserveBytes)) }
	}
	o.c = newCommitter(db, reserve)
	o.cpKick, o.cpStop, o.cpDone = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	go o.checkpointLoop(len(o.pending) > 0)
	o.j.start()
	r := o.atOpen
	o.log.Info("outbox open", "path", path, "waiting", r.Waiting, "dead", r.Dead, "bytes", r.Bytes, "replayed", r.Replayed)
	if r.LeasesReleased > 0 {
		o.log.Warn("deliveries cut short by the last stop will be made again",
			"items", r.LeasesReleased, "gave_up", r.GaveUp)
	}
	if r.Corrupt > 0 {
		o.log.Error("outbox items that cannot be decoded were left in place", "items", r.Corrupt)
	}
	return o, nil
}

// journalBytes is the size of a new journal.
func (o *Outbox) journalBytes() int64 {
	if o.opts.JournalBytes > 0 {
		return o.opts.JournalBytes
	}
	return journalSizeFor(o.opts.QuotaBytes)
}

// Path is the outbox's file.
func (o *Outbox) Path() string { return o.path }

// Append stores items durably and returns their IDs, once the commit that
// holds them is on disk. The items of one call are stored together or not at
// all. Only Key, Kind and Payload of each item are used. When the outbox
// would pass its quota the call fails with an error matching ErrFull and
// nothing is stored.
func (o *Outbox) Append(ctx context.Context, items ...Item) ([]uint64, error) {
	if len(items) == 0 {
		return nil, nil
	}
	now := o.opts.Now()
	var size int64
	frameBytes := 0
	for i, it := range items {
		switch {
		case len(it.Key) > maxKeyLen:
			return nil, fmt.Errorf("outbox: item %d: key of %d bytes is longer than %d", i, len(it.Key), maxKeyLen)
		case len(it.Kind) > maxKindLen:
			return nil, fmt.Errorf("outbox: item %d: kind of %d bytes is longer than %d", i, len(it.Kind), maxKindLen)
		case len(it.Payload) > o.opts.MaxItemBytes:
			return nil, fmt.Errorf("outbox: item %d: payload of %d bytes is larger than the limit of %d", i, len(it.Payload), o.opts.MaxItemBytes)
		}
		n := itemHeaderLen + len(it.Key) + len(it.Kind) + len(it.Payload)
		size += int64(n) + itemOverhead
		frameBytes += journalFrameHead + n
	}
	// The items go to the journal framed as in its records, in one buffer
	// whose parts the checkpoint later puts into bbolt.
	frames := make([]byte, 0, frameBytes)
	for _, it := range items {
		stored := Item{Key: it.Key, Kind: it.Kind, Payload: it.Payload, Enqueued: now}
		frames = appendFrame(frames, &stored)
	}

	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil, ErrClosed
	}
	if q := o.opts.QuotaBytes; q > 0 && o.bytes+o.pendingBytes+o.reserved+size > q {
		o.counters.RefusedFull += uint64(len(items))
		used := o.bytes + o.pendingBytes + o.reserved
		o.mu.Unlock()
		return nil, &fullError{msg: fmt.Sprintf("outbox holds %d of its %d bytes; %d more refused", used, q, size)}
	}
	o.reserved += size
	o.mu.Unlock()

	ids := make([]uint64, len(items))
	err := o.j.append(ctx, frames, ids)
	o.mu.Lock()
	o.reserved -= size
	if errors.Is(err, ErrFull) {
		o.counters.RefusedFull += uint64(len(items))
	}
	o.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// delta is what one operation changes in the outbox's counts, applied to the
// in-memory state once its commit is durable.
type delta struct {
	bytes         int64
	waiting, dead int
	acked, nacked uint64
	deadLettered  uint64
}

func (o *Outbox) applyLocked(d delta) {
	o.bytes += d.bytes
	o.waiting += d.waiting
	o.dead += d.dead
	o.counters.Acked += d.acked
	o.counters.Nacked += d.nacked
	o.counters.DeadLettered += d.deadLettered
}

// Waiting returns up to max waiting items (all when max <= 0) in ID order,
// without payloads: for `wardgate queue list`.
func (o *Outbox) Waiting(max int) ([]Item, error) {
	if err := o.checkpoint(); err != nil {
		return nil, err
	}
	var out []Item
	err := o.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(itemsBucket).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			it, err := decodeItem(keyID(k), v, false)
			if err != nil {
				return err
			}
			out = append(out, it)
			if max > 0 && len(out) == max {
				break
			}
		}
		return nil
	})
	return out, err
}

// dedupe returns ids without repeats, in their first order.
func dedupe(ids []uint64) []uint64 {
	seen := make(map[uint64]bool, len(ids))
	out := ids[:0:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// Stats returns a snapshot of the outbox.
func (o *Outbox) Stats() OutboxStats {
	o.mu.Lock()
	s := OutboxStats{
		Waiting:    o.waiting + len(o.pending),
		Dead:       o.dead,
		Bytes:      o.bytes + o.pendingBytes,
		QuotaBytes: o.opts.QuotaBytes,
		Counters:   o.counters,
		AtOpen:     o.atOpen,
	}
	now := o.opts.Now()
	for _, l := range o.leases {
		if now.Before(l.until) {
			s.Leased++
		}
	}
	closed := o.closed
	o.mu.Unlock()
	if o.c != nil {
		s.Counters.Commits = o.c.commits.Load()
		s.Counters.Ops = o.c.applied.Load()
	}
	if o.j != nil {
		s.Counters.JournalSyncs = o.j.syncs.Load()
		s.Counters.JournalCalls = o.j.calls.Load()
	}
	if !closed {
		_ = o.db.View(func(tx *bolt.Tx) error {
			if k, v := tx.Bucket(itemsBucket).Cursor().First(); k != nil {
				if it, err := decodeItem(keyID(k), v, false); err == nil {
					s.Oldest = it.Enqueued
				}
			}
			return nil
		})
	}
	return s
}

// Close stops taking calls, commits what is queued, releases the leases still
// held (their items are delivered again at the next Open without counting as
// a crash) and closes the file.
func (o *Outbox) Close() error {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil
	}
	o.closed = true
	o.signalLocked(true)
	o.mu.Unlock()

	// Appends already queued are written; then everything goes into bbolt so
	// that the next open has nothing to replay.
	o.j.close()
	close(o.cpStop)
	<-o.cpDone
	if err := o.checkpoint(); err != nil {
		o.log.Warn("final checkpoint failed; the journal will be replayed at the next open", "err", err)
	}
	o.leasing.Wait()
	o.mu.Lock()
	held := make([]uint64, 0, len(o.leases))
	for id := range o.leases {
		held = append(held, id)
	}
	o.mu.Unlock()

	if len(held) > 0 {
		err := o.c.do(context.Background(), func(tx *bolt.Tx) error {
			bk := tx.Bucket(itemsBucket)
			for _, id := range held {
				v := bk.Get(idKey(id))
				if v == nil {
					continue
				}
				it, err := decodeItem(id, v, true)
				if err != nil {
					continue
				}
				it.leaseRun = 0
				if err := bk.Put(idKey(id), it.encode()); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			o.log.Warn("could not release leases at close; they will be released at the next open", "err", err)
		}
	}
	o.c.close()
	return o.db.Close()
}
