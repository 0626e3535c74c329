package buffer

import (
	"context"
	"errors"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The way of an appended item from the journal into bbolt: journalled takes
// the items of a record once its fdatasync has returned and keeps them
// pending; checkpointLoop, woken by each record, moves every pending item
// into bbolt (checkpoint) in one commit that also records (putMarks) the
// journal LSN they came from. Only then can they be leased. Under a stream of
// appends the loop pauses between checkpoints so that they come in few,
// large commits.

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

func putMarks(tx *bolt.Tx, applied, lastID uint64) error {
	m := tx.Bucket(metaBucket)
	if err := m.Put(appliedKey, idKey(applied)); err != nil {
		return err
	}
	return m.Put(lastIDKey, idKey(lastID))
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
		// Checkpointed items always go after every stored one (IDs only
		// grow), the append-only case that bbolt's FillPercent is for: leaf
		// pages split full rather than half full (the default, made for
		// random inserts), so a checkpoint writes half the pages.
		b.FillPercent = 1
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
