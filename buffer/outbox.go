package buffer

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

const outboxFormat = "wardgate-outbox/1"

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

var (
	appliedKey = []byte("journal_lsn") // LSN up to which the journal is in bbolt
	lastIDKey  = []byte("last_id")
)

// checkpointDelay is the least time between two checkpoints: under load,
// appends gather for this long and move into bbolt in one commit.
const checkpointDelay = 50 * time.Millisecond

// checkpointPerItem scales the pause after a checkpoint with its size: a
// trickle is checkpointed (and delivered) at once, a flood in big commits.
const checkpointPerItem = 50 * time.Microsecond

// checkpointMinPause bounds checkpoints to 200 a second, so that their bbolt
// flushes do not crowd out the journal's under a steady stream of appends.
const checkpointMinPause = 5 * time.Millisecond

type lease struct {
	token uint64
	until time.Time
}

// scanCache remembers, after a scan that found nothing to lease, where it
// ended and which keys were blocked, so that an Append (which only adds items
// after that point) costs a scan of the new items rather than of the backlog.
type scanCache struct {
	valid   bool
	after   uint64
	blocked map[string]bool
	nextDue time.Time
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
	makeReserve(path + ".reserve")
	o.c = newCommitter(db, path+".reserve")
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

// recover counts what is stored and releases the leases of earlier runs, in
// one transaction, before the outbox takes any call. bbolt may panic on a
// damaged page; that becomes an error.
func (o *Outbox) recover() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("damaged (%v); move the file aside to start an empty outbox", r)
		}
	}()
	var rep OpenReport
	err = o.db.Update(func(tx *bolt.Tx) error {
		items, err := tx.CreateBucketIfNotExists(itemsBucket)
		if err != nil {
			return err
		}
		dead, err := tx.CreateBucketIfNotExists(deadBucket)
		if err != nil {
			return err
		}
		var release []Item
		err = items.ForEach(func(k, v []byte) error {
			rep.Waiting++
			rep.Bytes += int64(len(v)) + itemOverhead
			it, err := decodeItem(keyID(k), v, true)
			if err != nil {
				rep.Corrupt++
				return nil
			}
			if it.leaseRun != 0 {
				release = append(release, it)
			}
			return nil
		})
		if err != nil {
			return err
		}
		err = dead.ForEach(func(k, v []byte) error {
			rep.Dead++
			rep.Bytes += int64(len(v)) + itemOverhead
			return nil
		})
		if err != nil {
			return err
		}
		now := o.opts.Now()
		for _, it := range release {
			rep.LeasesReleased++
			it.leaseRun = 0
			if o.opts.MaxAttempts > 0 && it.Attempts >= o.opts.MaxAttempts {
				d := DeadLetter{Item: it, At: now, Reason: fmt.Sprintf(
					"delivery was cut short %d times (did the gateway crash while sending it?); last error: %s",
					it.Attempts, it.LastError)}
				v := d.encode()
				old := items.Get(idKey(it.ID))
				if err := items.Delete(idKey(it.ID)); err != nil {
					return err
				}
				if err := dead.Put(idKey(it.ID), v); err != nil {
					return err
				}
				rep.GaveUp++
				rep.Waiting--
				rep.Dead++
				rep.Bytes += int64(len(v)) - int64(len(old))
				continue
			}
			if err := items.Put(idKey(it.ID), it.encode()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return diskFull(err)
	}
	o.atOpen = rep
	o.waiting, o.dead, o.bytes = rep.Waiting, rep.Dead, rep.Bytes
	return nil
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
	encoded := make([][]byte, len(items))
	var size int64
	for i, it := range items {
		switch {
		case len(it.Key) > maxKeyLen:
			return nil, fmt.Errorf("outbox: item %d: key of %d bytes is longer than %d", i, len(it.Key), maxKeyLen)
		case len(it.Kind) > maxKindLen:
			return nil, fmt.Errorf("outbox: item %d: kind of %d bytes is longer than %d", i, len(it.Kind), maxKindLen)
		case len(it.Payload) > o.opts.MaxItemBytes:
			return nil, fmt.Errorf("outbox: item %d: payload of %d bytes is larger than the limit of %d", i, len(it.Payload), o.opts.MaxItemBytes)
		}
		stored := Item{Key: it.Key, Kind: it.Kind, Payload: it.Payload, Enqueued: now}
		encoded[i] = stored.encode()
		size += int64(len(encoded[i])) + itemOverhead
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

	ids, err := o.j.append(ctx, encoded)
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

// openJournal replays what the journal holds beyond bbolt's applied LSN, in
// one bbolt transaction, and sets up the journal for new appends.
func (o *Outbox) openJournal() error {
	var applied, lastID uint64
	err := o.db.View(func(tx *bolt.Tx) error {
		m := tx.Bucket(metaBucket)
		if v := m.Get(appliedKey); len(v) == 8 {
			applied = binary.BigEndian.Uint64(v)
		}
		if v := m.Get(lastIDKey); len(v) == 8 {
			lastID = binary.BigEndian.Uint64(v)
		}
		for _, name := range [][]byte{itemsBucket, deadBucket} {
			// The largest journal-assigned id: below the range of AddDeadLetter.
			c := tx.Bucket(name).Cursor()
			k, _ := c.Seek(idKey(rejectedIDBase))
			if k == nil {
				k, _ = c.Last()
			} else {
				k, _ = c.Prev()
			}
			if k != nil && keyID(k) < rejectedIDBase {
				lastID = max(lastID, keyID(k))
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	j, recs, err := openJournal(o.path+".journal", applied)
	if err != nil {
		return err
	}
	keepTail := false
	if len(recs) > 0 {
		var d delta
		skipped := 0
		last := recs[len(recs)-1].lsn
		err = o.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(itemsBucket)
			for _, r := range recs {
				for _, it := range r.items {
					lastID = max(lastID, it.id)
					if old := b.Get(idKey(it.id)); old != nil {
						// A record beyond the applied LSN cannot hold an item
						// that is already in bbolt; never overwrite one.
						if !bytes.Equal(old, it.value) {
							skipped++
						}
						continue
					}
					d.waiting++
					d.bytes += int64(len(it.value)) + itemOverhead
					if err := b.Put(idKey(it.id), it.value); err != nil {
						return err
					}
				}
			}
			return putMarks(tx, last, lastID)
		})
		switch {
		case errors.Is(diskFull(err), ErrFull):
			// The records are safe in the journal. Start anyway, so that
			// deliveries can go on and free room, and keep them pending
			// until a checkpoint succeeds.
			o.log.Error("disk full: journalled items cannot move into bbolt yet; they stay in the journal",
				"items", countItems(recs), "err", err)
			keepTail = true
			j.keepTail()
			for _, r := range recs {
				o.journalledLocked(r)
			}
			o.atOpen.Waiting += countItems(recs)
		case err != nil:
			j.f.Close()
			return fmt.Errorf("outbox %s: replay journal: %w", o.path, err)
		default:
			o.applyLocked(d)
			o.atOpen.Replayed = d.waiting
			o.atOpen.Waiting += d.waiting
			o.atOpen.Bytes += d.bytes
			if skipped > 0 {
				o.atOpen.Corrupt += skipped
				o.log.Error("journal records disagree with items already stored; the stored items were kept", "items", skipped)
			}
		}
	}
	if !keepTail {
		if err := j.restart(); err != nil {
			j.f.Close()
			return fmt.Errorf("outbox %s: journal: %w", o.path, err)
		}
	}
	j.next = lastID + 1
	j.beforeWrap = o.checkpoint
	j.committed = o.journalled
	o.j = j
	return nil
}

func putMarks(tx *bolt.Tx, applied, lastID uint64) error {
	m := tx.Bucket(metaBucket)
	if err := m.Put(appliedKey, idKey(applied)); err != nil {
		return err
	}
	return m.Put(lastIDKey, idKey(lastID))
}

func countItems(recs []journalRecord) int {
	n := 0
	for _, r := range recs {
		n += len(r.items)
	}
	return n
}

// journalled takes the items of a record that is now durable in the journal.
func (o *Outbox) journalled(r journalRecord) {
	o.mu.Lock()
	o.journalledLocked(r)
	o.counters.Appended += uint64(len(r.items))
	o.mu.Unlock()
	select {
	case o.cpKick <- struct{}{}:
	default:
	}
}

func (o *Outbox) journalledLocked(r journalRecord) {
	o.pending = append(o.pending, r.items...)
	for _, it := range r.items {
		o.pendingBytes += int64(len(it.value)) + itemOverhead
	}
	o.pendingLSN = r.lsn
}

// checkpointRetry spaces the retries of a failed checkpoint (a full disk).
const checkpointRetry = time.Second

// checkpointLoop moves journalled items into bbolt after each burst of
// appends; leftOver says a replay that met a full disk left items pending.
func (o *Outbox) checkpointLoop(leftOver bool) {
	defer close(o.cpDone)
	retry := make(<-chan time.Time)
	if leftOver {
		retry = time.After(checkpointRetry)
	}
	for {
		select {
		case <-o.cpStop:
			return
		case <-o.cpKick:
		case <-retry:
		}
		// Appends are checkpointed at once, then the loop pauses in
		// proportion to how many there were (5 to 50 ms): an idle gateway
		// delivers without delay, a busy one makes few, large bbolt commits.
		retry = make(<-chan time.Time)
		if o.holdCheckpoints.Load() { // tests: leave appends in the journal
			continue
		}
		o.mu.Lock()
		n := len(o.pending)
		o.mu.Unlock()
		if err := o.checkpoint(); err != nil && !errors.Is(err, ErrClosed) {
			o.log.Error("checkpoint failed; appended items stay in the journal and it is tried again", "err", err)
			retry = time.After(checkpointRetry)
		}
		select {
		case <-o.cpStop:
			return
		case <-time.After(min(checkpointDelay, max(checkpointMinPause, time.Duration(n)*checkpointPerItem))):
		}
	}
}

// checkpoint moves every pending item into bbolt, with the journal LSN they
// came from, in one commit.
func (o *Outbox) checkpoint() error {
	o.cpMu.Lock()
	defer o.cpMu.Unlock()
	o.mu.Lock()
	items, lsn := o.pending[:len(o.pending):len(o.pending)], o.pendingLSN
	o.mu.Unlock()
	if len(items) == 0 {
		return nil
	}
	var size int64
	for _, it := range items {
		size += int64(len(it.value)) + itemOverhead
	}
	return o.c.do(context.Background(), func(tx *bolt.Tx) error {
		b := tx.Bucket(itemsBucket)
		for _, it := range items {
			if err := b.Put(idKey(it.id), it.value); err != nil {
				return err
			}
		}
		if err := putMarks(tx, lsn, items[len(items)-1].id); err != nil {
			return err
		}
		tx.OnCommit(func() {
			o.mu.Lock()
			o.pending = append([]journalItem(nil), o.pending[len(items):]...)
			o.pendingBytes -= size
			o.bytes += size
			o.waiting += len(items)
			o.signalLocked(false)
			o.mu.Unlock()
		})
		return nil
	})
}

// signalLocked wakes the goroutines waiting in Lease. A change other than an
// append (an ack, a nack, a release) may unblock keys, so it drops the scan
// cache.
func (o *Outbox) signalLocked(invalidate bool) {
	if invalidate {
		o.scan.valid = false
	}
	close(o.changed)
	o.changed = make(chan struct{})
}

// Lease waits until at least one item is ready for delivery and returns up to
// max of them, in ID order, leased for ttl: until the batch settles them (or
// ttl passes) no other Lease returns them. Items sharing a Key come in append
// order, and an item is not ready while an earlier one with its Key is leased
// or waiting for a retry. Lease returns ctx's error when ctx ends first, and
// ErrClosed after Close.
func (o *Outbox) Lease(ctx context.Context, max int, ttl time.Duration) (*Batch, error) {
	if max <= 0 {
		max = 1
	}
	for {
		o.mu.Lock()
		if o.closed {
			o.mu.Unlock()
			return nil, ErrClosed
		}
		wake := o.changed
		items, nextDue, err := o.scanLocked(max)
		if err != nil {
			o.mu.Unlock()
			return nil, err
		}
		if len(items) > 0 {
			o.nextToken++
			b := &Batch{o: o, token: o.nextToken, open: make(map[uint64]bool, len(items))}
			until := o.opts.Now().Add(ttl)
			for _, it := range items {
				if _, ok := o.leases[it.ID]; ok {
					o.counters.LeasesExpired++
				}
				o.leases[it.ID] = lease{token: b.token, until: until}
				b.open[it.ID] = true
			}
			o.scan.valid = false
			o.leasing.Add(1) // Close waits for this write before it releases leases
			o.mu.Unlock()
			// The wait is over: the lease is written even if ctx ends now.
			err := o.persistLease(context.WithoutCancel(ctx), b, items)
			o.leasing.Done()
			if err != nil {
				return nil, err
			}
			return b, nil
		}
		o.mu.Unlock()

		var timer *time.Timer
		var due <-chan time.Time
		if !nextDue.IsZero() {
			timer = time.NewTimer(nextDue.Sub(o.opts.Now()))
			due = timer.C
		}
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-wake:
		case <-due:
		}
		if timer != nil {
			timer.Stop()
		}
		if err != nil {
			return nil, err
		}
	}
}

// scanLocked finds up to max items ready now. When there are none it returns
// the time at which one becomes ready (a retry time or a lease expiry), or
// zero if only an append can make one ready.
func (o *Outbox) scanLocked(max int) ([]Item, time.Time, error) {
	now := o.opts.Now()
	start := uint64(0)
	blocked := map[string]bool{}
	var nextDue time.Time
	if o.scan.valid && (o.scan.nextDue.IsZero() || now.Before(o.scan.nextDue)) {
		start, blocked, nextDue = o.scan.after+1, o.scan.blocked, o.scan.nextDue
	}
	due := func(t time.Time) {
		if nextDue.IsZero() || t.Before(nextDue) {
			nextDue = t
		}
	}
	var found []Item
	last := start - 1
	if start == 0 {
		last = 0
	}
	err := o.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(itemsBucket).Cursor()
		for k, v := c.Seek(idKey(start)); k != nil; k, v = c.Next() {
			id := keyID(k)
			last = id
			it, err := decodeItem(id, v, false)
			if err != nil {
				continue // counted at open; never leased
			}
			if l, ok := o.leases[id]; ok && now.Before(l.until) {
				due(l.until)
				if it.Key != "" {
					blocked[it.Key] = true
				}
				continue
			}
			if it.Key != "" && blocked[it.Key] {
				continue
			}
			if it.NotBefore.After(now) {
				due(it.NotBefore)
				if it.Key != "" {
					blocked[it.Key] = true
				}
				continue
			}
			it.Payload = append([]byte(nil), v[len(v)-payloadLen(v):]...)
			found = append(found, it)
			if len(found) == max {
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return nil, time.Time{}, err
	}
	if len(found) == 0 {
		o.scan = scanCache{valid: true, after: last, blocked: blocked, nextDue: nextDue}
	}
	return found, nextDue, nil
}

// payloadLen is the length of the payload at the end of an encoded item.
func payloadLen(v []byte) int {
	it, _ := decodeItem(0, v, false)
	return len(v) - itemHeaderLen - len(it.Key) - len(it.Kind) - len(it.LastError)
}

// persistLease writes the new attempt count and this run's lease mark of each
// item, so that a crash during delivery is seen at the next Open.
func (o *Outbox) persistLease(ctx context.Context, b *Batch, items []Item) error {
	err := o.c.doFreeing(ctx, func(tx *bolt.Tx) error {
		bk := tx.Bucket(itemsBucket)
		stored := make([]Item, len(items))
		for i := range items { // check all before the first write
			v := bk.Get(idKey(items[i].ID))
			if v == nil {
				return fmt.Errorf("outbox: leased item %d vanished", items[i].ID)
			}
			it, err := decodeItem(items[i].ID, v, true)
			if err != nil {
				return err
			}
			stored[i] = it
		}
		for i, it := range stored {
			it.Attempts++
			it.leaseRun = o.run
			items[i].Attempts = it.Attempts
			if err := bk.Put(idKey(it.ID), it.encode()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		o.mu.Lock()
		for id := range b.open {
			if l, ok := o.leases[id]; ok && l.token == b.token {
				delete(o.leases, id)
			}
		}
		o.signalLocked(true)
		o.mu.Unlock()
		return err
	}
	b.Items = items
	return nil
}

// Batch is a set of leased items. Each item is settled once: acknowledged
// (delivered), nacked (to be retried), dead-lettered or released.
type Batch struct {
	// Items are the leased items, in ID order.
	Items []Item

	o     *Outbox
	token uint64
	mu    sync.Mutex
	open  map[uint64]bool
}

// Ack removes the given items (all unsettled items when ids is empty): they
// were delivered.
func (b *Batch) Ack(ctx context.Context, ids ...uint64) error {
	return b.settle(ctx, ids, func(tx *bolt.Tx, it Item, old []byte, d *delta) error {
		if err := tx.Bucket(itemsBucket).Delete(idKey(it.ID)); err != nil {
			return err
		}
		d.bytes -= int64(len(old)) + itemOverhead
		d.waiting--
		d.acked++
		return nil
	})
}

// Nack puts the given items (all unsettled ones when ids is empty) back for a
// retry after the backoff for their attempt count, or after minDelay if that
// is longer (a server's Retry-After). reason is kept with the item and must
// not hold patient data. An item that has reached MaxAttempts goes to the
// dead letters instead.
func (b *Batch) Nack(ctx context.Context, reason string, minDelay time.Duration, ids ...uint64) error {
	o := b.o
	now := o.opts.Now()
	return b.settle(ctx, ids, func(tx *bolt.Tx, it Item, old []byte, d *delta) error {
		if o.opts.MaxAttempts > 0 && it.Attempts >= o.opts.MaxAttempts {
			return moveToDead(tx, it, old, fmt.Sprintf("gave up after %d attempts: %s", it.Attempts, reason), now, d)
		}
		delay := o.opts.Backoff.Delay(it.Attempts)
		if minDelay > delay {
			delay = minDelay
		}
		it.NotBefore = now.Add(delay)
		it.LastError = truncate(reason, maxErrLen)
		it.leaseRun = 0
		v := it.encode()
		if err := tx.Bucket(itemsBucket).Put(idKey(it.ID), v); err != nil {
			return err
		}
		d.bytes += int64(len(v)) - int64(len(old))
		d.nacked++
		return nil
	})
}

// DeadLetter moves the given items (all unsettled ones when ids is empty) to
// the dead letters with reason (for a rejected FHIR write, the server's
// OperationOutcome). reason must not hold patient data.
func (b *Batch) DeadLetter(ctx context.Context, reason string, ids ...uint64) error {
	now := b.o.opts.Now()
	return b.settle(ctx, ids, func(tx *bolt.Tx, it Item, old []byte, d *delta) error {
		return moveToDead(tx, it, old, reason, now, d)
	})
}

// Release gives the given items (all unsettled ones when ids is empty) back
// without a delay, as if they had not been leased: for a deliverer that
// stops before sending them. Their attempt count stays.
func (b *Batch) Release(ctx context.Context, ids ...uint64) error {
	return b.settle(ctx, ids, func(tx *bolt.Tx, it Item, old []byte, d *delta) error {
		it.leaseRun = 0
		return tx.Bucket(itemsBucket).Put(idKey(it.ID), it.encode())
	})
}

func moveToDead(tx *bolt.Tx, it Item, old []byte, reason string, now time.Time, d *delta) error {
	it.leaseRun = 0
	dl := DeadLetter{Item: it, Reason: reason, At: now}
	v := dl.encode()
	if err := tx.Bucket(itemsBucket).Delete(idKey(it.ID)); err != nil {
		return err
	}
	if err := tx.Bucket(deadBucket).Put(idKey(it.ID), v); err != nil {
		return err
	}
	d.bytes += int64(len(v)) - int64(len(old))
	d.waiting--
	d.dead++
	d.deadLettered++
	return nil
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

// settle applies fn to each of ids that this batch still holds, in one
// durable commit, then ends their leases. Items whose lease was lost are left
// alone and reported with ErrLeaseLost after the others are settled.
func (b *Batch) settle(ctx context.Context, ids []uint64, fn func(tx *bolt.Tx, it Item, old []byte, d *delta) error) error {
	o := b.o
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(ids) == 0 {
		for id := range b.open {
			ids = append(ids, id)
		}
	}
	ids = dedupe(ids)
	var mine, lost []uint64
	o.mu.Lock()
	for _, id := range ids {
		if !b.open[id] {
			o.mu.Unlock()
			return fmt.Errorf("outbox: item %d is not an unsettled item of this batch", id)
		}
		if l, ok := o.leases[id]; ok && l.token == b.token {
			mine = append(mine, id)
		} else {
			lost = append(lost, id)
		}
	}
	o.mu.Unlock()

	if len(mine) > 0 {
		err := o.c.doFreeing(ctx, func(tx *bolt.Tx) error {
			var d delta
			bk := tx.Bucket(itemsBucket)
			type found struct {
				it  Item
				old []byte
			}
			var todo []found
			for _, id := range mine { // decode all before the first write
				old := bk.Get(idKey(id))
				if old == nil {
					continue
				}
				it, err := decodeItem(id, old, true)
				if err != nil {
					return err
				}
				todo = append(todo, found{it, old})
			}
			for _, f := range todo {
				if err := fn(tx, f.it, f.old, &d); err != nil {
					return err
				}
			}
			tx.OnCommit(func() {
				o.mu.Lock()
				o.applyLocked(d)
				for _, id := range mine {
					if l, ok := o.leases[id]; ok && l.token == b.token {
						delete(o.leases, id)
					}
				}
				o.signalLocked(true)
				o.mu.Unlock()
			})
			return nil
		})
		if err != nil {
			return err
		}
	}
	for _, id := range ids {
		delete(b.open, id)
	}
	if len(lost) > 0 {
		return fmt.Errorf("outbox: %w for %d item(s) (lease ran out; another delivery has them)", ErrLeaseLost, len(lost))
	}
	return nil
}

// DeadLetters returns up to max dead letters (all when max <= 0), oldest
// first, with their payloads.
func (o *Outbox) DeadLetters(max int) ([]DeadLetter, error) {
	var out []DeadLetter
	err := o.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(deadBucket).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			d, err := decodeDead(keyID(k), v, true)
			if err != nil {
				return err
			}
			out = append(out, d)
			if max > 0 && len(out) == max {
				break
			}
		}
		return nil
	})
	return out, err
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

// RetryDead moves dead letters (all when ids is empty) back to the waiting
// items, in their original place, with their attempt count reset. It returns
// how many it moved.
func (o *Outbox) RetryDead(ctx context.Context, ids ...uint64) (int, error) {
	return o.editDead(ctx, ids, func(tx *bolt.Tx, dl DeadLetter, old []byte, d *delta) error {
		it := dl.Item
		it.Attempts, it.NotBefore, it.leaseRun = 0, time.Time{}, 0
		it.LastError = truncate("retried from the dead letters; was: "+dl.Reason, maxErrLen)
		v := it.encode()
		if err := tx.Bucket(deadBucket).Delete(idKey(it.ID)); err != nil {
			return err
		}
		if err := tx.Bucket(itemsBucket).Put(idKey(it.ID), v); err != nil {
			return err
		}
		d.bytes += int64(len(v)) - int64(len(old))
		d.dead--
		d.waiting++
		return nil
	})
}

// DropDead deletes dead letters (all when ids is empty) for good. It returns
// how many it deleted.
func (o *Outbox) DropDead(ctx context.Context, ids ...uint64) (int, error) {
	return o.editDead(ctx, ids, func(tx *bolt.Tx, dl DeadLetter, old []byte, d *delta) error {
		if err := tx.Bucket(deadBucket).Delete(idKey(dl.ID)); err != nil {
			return err
		}
		d.bytes -= int64(len(old)) + itemOverhead
		d.dead--
		return nil
	})
}

func (o *Outbox) editDead(ctx context.Context, ids []uint64, fn func(tx *bolt.Tx, dl DeadLetter, old []byte, d *delta) error) (int, error) {
	n := 0
	err := o.c.doFreeing(ctx, func(tx *bolt.Tx) error {
		n = 0 // the op may run twice (see committer.reserve)
		bk := tx.Bucket(deadBucket)
		if len(ids) == 0 {
			c := bk.Cursor()
			for k, _ := c.First(); k != nil; k, _ = c.Next() {
				ids = append(ids, keyID(k))
			}
		}
		ids = dedupe(ids)
		dls := make([]DeadLetter, len(ids))
		olds := make([][]byte, len(ids))
		for i, id := range ids { // check all before the first write
			olds[i] = bk.Get(idKey(id))
			if olds[i] == nil {
				return fmt.Errorf("outbox: dead letter %d: %w", id, ErrNotFound)
			}
			dl, err := decodeDead(id, olds[i], true)
			if err != nil {
				return err
			}
			dls[i] = dl
		}
		var d delta
		for i := range ids {
			if err := fn(tx, dls[i], olds[i], &d); err != nil {
				return err
			}
			n++
		}
		tx.OnCommit(func() {
			o.mu.Lock()
			o.applyLocked(d)
			o.signalLocked(true)
			o.mu.Unlock()
		})
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
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

// rejectedIDBase marks the IDs of items that go straight to the dead letters
// (AddDeadLetter): they come from the dead-letter bucket's own sequence, in
// a range the journal's IDs never reach.
const rejectedIDBase = 1 << 63

// AddDeadLetter stores an item directly as a dead letter, with the reason it
// cannot be delivered (for example a resource that failed validation: a bug
// to look at, never to be posted). It is durable when it returns, and can be
// retried or dropped like any other dead letter.
func (o *Outbox) AddDeadLetter(ctx context.Context, it Item, reason string) (uint64, error) {
	if len(it.Key) > maxKeyLen || len(it.Kind) > maxKindLen || len(it.Payload) > o.opts.MaxItemBytes {
		return 0, fmt.Errorf("outbox: dead letter too large")
	}
	now := o.opts.Now()
	d := DeadLetter{Item: Item{Key: it.Key, Kind: it.Kind, Payload: it.Payload, Enqueued: now}, Reason: reason, At: now}
	v := d.encode()
	size := int64(len(v)) + itemOverhead
	o.mu.Lock()
	if q := o.opts.QuotaBytes; q > 0 && o.bytes+o.pendingBytes+o.reserved+size > q {
		o.counters.RefusedFull++
		o.mu.Unlock()
		return 0, &fullError{msg: "outbox is at its quota; a dead letter was refused"}
	}
	o.mu.Unlock()
	var id uint64
	err := o.c.do(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(deadBucket)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		id = rejectedIDBase | seq
		if err := b.Put(idKey(id), v); err != nil {
			return err
		}
		tx.OnCommit(func() {
			o.mu.Lock()
			o.applyLocked(delta{bytes: size, dead: 1, deadLettered: 1})
			o.mu.Unlock()
		})
		return nil
	})
	return id, err
}
