package buffer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// What Open does before the outbox takes calls: recover counts what bbolt
// holds and releases the leases an earlier run left; openJournal replays the
// journal records that the last checkpoint had not applied, in one bbolt
// transaction, so that each record is applied exactly once. The journal's
// file format and how a torn record is told apart are in journal.go.

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
	j, recs, err := openJournal(o.path+".journal", applied, o.journalBytes(), o.opts.Lazy)
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
		if err := j.shrink(); err != nil {
			o.log.Warn("the journal could not be cut to its size; it stays larger", "err", err)
		}
	}
	j.next = lastID + 1
	j.beforeWrap = o.checkpoint
	j.committed = o.journalled
	o.j = j
	return nil
}

func countItems(recs []journalRecord) int {
	n := 0
	for _, r := range recs {
		n += len(r.items)
	}
	return n
}
