package buffer

import (
	"context"
	"errors"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// maxOpsPerCommit bounds one group commit so that a flood of writers cannot
// make a single transaction (and the latency of everyone in it) unbounded.
const maxOpsPerCommit = 4096

// An op is one caller's share of a group commit. apply runs inside the shared
// read-write transaction; it must check everything it needs before its first
// write and return an error only before writing, so that a refused op leaves
// the transaction as it found it. apply may register tx.OnCommit hooks to
// update in-memory state once the commit is durable.
type op struct {
	apply func(tx *bolt.Tx) error
	// frees marks an op that removes data or lets delivery go on (lease,
	// ack, dead-letter edits, spool removal): only a batch holding one may
	// use the reserve.
	frees bool
	err   error
	done  chan error
}

// committer runs every write to one bbolt file, taking all ops waiting at the
// end of a commit into the next one (group commit).
type committer struct {
	db *bolt.DB
	// reserve is a file of spare room: when a commit meets a full disk, it
	// is deleted and the commit tried once more, so that acks and removals,
	// which free room, can still be written on a disk that something else
	// filled. It is made again at the next open.
	reserve string
	ops     chan *op
	stop    chan struct{}
	stopped chan struct{}
	closing sync.Once

	commits     atomic.Uint64 // transactions committed
	applied     atomic.Uint64 // ops applied in them
	reserveUsed atomic.Bool   // the reserve was given up to a full disk
}

// reserveSize is the most spare room kept beside each bbolt file, and the
// room kept for a store without a quota.
const reserveSize = 8 << 20

// reserveSizeFor sizes a reserve: given, or a 128th of the store's quota
// between 1 and 8 MiB. The commits it is for (acks, removals) free pages
// of the file itself; the reserve covers the pages bbolt writes before it
// frees the old ones.
func reserveSizeFor(quota, given int64) int64 {
	switch {
	case given > 0:
		return given
	case quota <= 0:
		return reserveSize
	}
	return min(max(quota/128, 1<<20), reserveSize)
}

// makeReserve writes the reserve file of size bytes if it is missing or of
// another size (and there is room).
func makeReserve(path string, size int64) {
	if info, err := os.Stat(path); err == nil && info.Size() == size {
		return
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return
	}
	_, err = f.Write(make([]byte, size))
	if err == nil {
		err = f.Sync()
	}
	f.Close()
	if err != nil {
		os.Remove(path) // no room for it now: the next open tries again
	}
}

func newCommitter(db *bolt.DB, reserve string) *committer {
	c := &committer{
		db:      db,
		reserve: reserve,
		ops:     make(chan *op, maxOpsPerCommit),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	go c.loop()
	return c
}

// do runs apply in the next group commit and returns once that commit is
// durable (nil, or apply's own error), or the commit's error. The context
// bounds only the wait for a place in the queue: once queued, the op is
// committed or refused, and do waits for that answer so that a caller never
// mistakes a stored item for a lost one.
func (c *committer) do(ctx context.Context, apply func(tx *bolt.Tx) error) error {
	return c.submit(ctx, &op{apply: apply, done: make(chan error, 1)})
}

// doFreeing is do for an op that frees room or lets delivery go on; on a
// full disk it may use the reserve.
func (c *committer) doFreeing(ctx context.Context, apply func(tx *bolt.Tx) error) error {
	return c.submit(ctx, &op{apply: apply, frees: true, done: make(chan error, 1)})
}

func (c *committer) submit(ctx context.Context, o *op) error {
	select {
	case <-c.stop:
		return ErrClosed
	default:
	}
	select {
	case c.ops <- o:
	default:
		select {
		case c.ops <- o:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.stop:
			return ErrClosed
		}
	}
	select {
	case err := <-o.done:
		return err
	case <-c.stopped:
		// The loop answers every op it applied before it ends; an op still in
		// the channel was never applied.
		select {
		case err := <-o.done:
			return err
		default:
			return ErrClosed
		}
	}
}

func (c *committer) loop() {
	defer close(c.stopped)
	batch := make([]*op, 0, 64)
	for {
		select {
		case o := <-c.ops:
			batch = append(batch[:0], o)
		case <-c.stop:
			// Finish whatever was queued before the stop, then refuse.
			for {
				select {
				case o := <-c.ops:
					c.commit([]*op{o})
				default:
					return
				}
			}
		}
		// Let callers woken by the previous commit come back before this one
		// starts (as PostgreSQL's commit_delay does, without a fixed delay):
		// otherwise commits alternate between one op and all the others.
		runtime.Gosched()
	drain:
		for len(batch) < maxOpsPerCommit {
			select {
			case o := <-c.ops:
				batch = append(batch, o)
			default:
				break drain
			}
		}
		c.commit(batch)
	}
}

func (c *committer) commit(batch []*op) {
	update := func() error {
		return c.db.Update(func(tx *bolt.Tx) error {
			for _, o := range batch {
				o.err = o.apply(tx)
			}
			return nil
		})
	}
	err := update()
	frees := false
	for _, o := range batch {
		frees = frees || o.frees
	}
	if frees && errors.Is(diskFull(err), ErrFull) && c.reserve != "" {
		if rmErr := os.Remove(c.reserve); rmErr == nil {
			c.reserveUsed.Store(true)
			err = update() // the ops run again from scratch: the failed transaction was rolled back
		}
	}
	if err == nil {
		c.commits.Add(1)
		c.applied.Add(uint64(len(batch)))
	}
	err = diskFull(err)
	for _, o := range batch {
		if err != nil {
			o.done <- err
		} else {
			o.done <- o.err
		}
	}
}

// close stops taking ops, commits those already queued and returns when the
// loop has ended.
func (c *committer) close() {
	c.closing.Do(func() { close(c.stop) })
	<-c.stopped
}
