package buffer

import (
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// An outbox can also be a durable window: items that are read back whole at
// open (Scan) and removed by their owner when done with (Remove), never
// leased. The charting window keeps the readings of intervals not yet
// charted this way.

// Scan calls fn with every waiting item, payload included, in ID order. It
// stops at fn's first error and returns it.
func (o *Outbox) Scan(fn func(Item) error) error {
	if err := o.checkpoint(); err != nil {
		return err
	}
	return o.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(itemsBucket).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			it, err := decodeItem(keyID(k), v, true)
			if err != nil {
				continue // counted at open, left in place
			}
			if err := fn(it); err != nil {
				return err
			}
		}
		return nil
	})
}

// Remove deletes the given waiting items in one durable commit; ids that
// are not waiting (already removed) are skipped. A leased item is refused:
// Remove is for an outbox whose items are never leased.
func (o *Outbox) Remove(ctx context.Context, ids ...uint64) error {
	if len(ids) == 0 {
		return nil
	}
	ids = dedupe(ids)
	o.mu.Lock()
	for _, id := range ids {
		if _, leased := o.leases[id]; leased {
			o.mu.Unlock()
			return fmt.Errorf("outbox: item %d is leased; Remove is for items never leased", id)
		}
	}
	o.mu.Unlock()
	// Items still in the journal are moved into bbolt first.
	if err := o.checkpoint(); err != nil {
		return err
	}
	return o.c.doFreeing(ctx, func(tx *bolt.Tx) error {
		var d delta
		bk := tx.Bucket(itemsBucket)
		var found [][]byte
		for _, id := range ids { // find all before the first write
			if old := bk.Get(idKey(id)); old != nil {
				found = append(found, idKey(id))
				d.bytes -= int64(len(old)) + itemOverhead
				d.waiting--
			}
		}
		for _, k := range found {
			if err := bk.Delete(k); err != nil {
				return err
			}
		}
		tx.OnCommit(func() {
			o.mu.Lock()
			o.applyLocked(d)
			o.signalLocked(true)
			o.mu.Unlock()
		})
		return nil
	})
}
