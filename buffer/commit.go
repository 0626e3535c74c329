package buffer

import (
	"context"
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
	err   error
	done  chan error
}

// committer runs every write to one bbolt file, taking all ops waiting at the
// end of a commit into the next one (group commit).
type committer struct {
	db      *bolt.DB
	ops     chan *op
	stop    chan struct{}
	stopped chan struct{}
	closing sync.Once

	commits atomic.Uint64 // transactions committed
	applied atomic.Uint64 // ops applied in them
}

func newCommitter(db *bolt.DB) *committer {
	c := &committer{
		db:      db,
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
	o := &op{apply: apply, done: make(chan error, 1)}
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
	err := c.db.Update(func(tx *bolt.Tx) error {
		for _, o := range batch {
			o.err = o.apply(tx)
		}
		return nil
	})
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
