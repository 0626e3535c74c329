package buffer

import (
	"context"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Delivery: Lease finds ready items (scanLocked), writes their lease to disk
// (persistLease) and hands them out as a Batch; the Batch settles each item
// once, with Ack, Nack, DeadLetter or Release, in one durable commit per call
// (settle).

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
