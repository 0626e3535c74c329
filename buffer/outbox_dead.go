package buffer

import (
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The dead letters: listing them, retrying or dropping them (editDead), and
// AddDeadLetter for an item that goes to them without being delivered.
// What moves a leased item here (Batch.DeadLetter, a Nack past MaxAttempts)
// is in outbox_lease.go; recover, in outbox_replay.go, moves here an item
// whose deliveries cut short by crashes reached MaxAttempts.

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
