package buffer

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

const seenFormat = "wardgate-seen/1"

var (
	firstBucket = []byte("first") // key → first receipt (unix ns, 8 bytes)
	orderBucket = []byte("order") // receipt (8 bytes) + key → nothing, oldest first
)

// Delivery is one message as a transport handed it over: a key naming its
// content, when it was received, and whether the transport says it is a
// redelivery of one it handed over before (MQTT DUP).
type Delivery struct {
	Key         string
	At          time.Time
	Redelivered bool
}

// SeenOptions bound a Seen store; zero values take the defaults.
type SeenOptions struct {
	MaxEntries int           // 200,000 when zero
	MaxAge     time.Duration // 7 days when zero
}

// Seen remembers, durably and for a bounded time, when recent messages were
// first received. A message without a time of its own is identified by its
// receipt; when the transport delivers it again (its acknowledgement was
// lost with a connection, or the gateway stopped before sending it), Seen
// gives back the first receipt, so the readings map to the same
// Observations. A new message whose content equals an older one's is a new
// measurement and gets its own time: content alone never makes two
// messages one.
//
// FirstSeen is durable when it returns nil, so a caller records a message
// before it commits the message's readings: a crash in between then finds
// the first receipt at the redelivery.
type Seen struct {
	db   *bolt.DB
	opts SeenOptions
	mu   sync.Mutex
	n    int
}

// OpenSeen opens (or creates) the store at path.
func OpenSeen(path string, opts SeenOptions) (*Seen, error) {
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 200_000
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = 7 * 24 * time.Hour
	}
	db, _, err := openBolt(path, seenFormat)
	if err != nil {
		return nil, err
	}
	s := &Seen{db: db, opts: opts}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{firstBucket, orderBucket} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		s.n = tx.Bucket(firstBucket).Stats().KeyN
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("%s: %w", path, diskFull(err))
	}
	return s, nil
}

// FirstSeen records ds in one durable commit and returns, for each, the
// time it was first received: for a redelivery of a key the store holds,
// the time it holds; otherwise the delivery's own time, which it keeps.
func (s *Seen) FirstSeen(ctx context.Context, ds []Delivery) ([]time.Time, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]time.Time, len(ds))
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.n
	err := s.db.Update(func(tx *bolt.Tx) error {
		n = s.n
		first, order := tx.Bucket(firstBucket), tx.Bucket(orderBucket)
		for i, d := range ds {
			key := []byte(d.Key)
			old := first.Get(key)
			if d.Redelivered && len(old) == 8 {
				out[i] = time.Unix(0, int64(binary.BigEndian.Uint64(old)))
				continue
			}
			if len(old) == 8 {
				if err := order.Delete(append(append([]byte(nil), old...), key...)); err != nil {
					return err
				}
			} else {
				n++
			}
			var at [8]byte
			binary.BigEndian.PutUint64(at[:], uint64(d.At.UnixNano()))
			if err := first.Put(key, at[:]); err != nil {
				return err
			}
			if err := order.Put(append(at[:], key...), nil); err != nil {
				return err
			}
			out[i] = d.At
		}
		// Past the bounds, the oldest go: a redelivery comes within hours.
		cutoff := uint64(time.Now().Add(-s.opts.MaxAge).UnixNano())
		c := order.Cursor()
		for k, _ := c.First(); k != nil && len(k) >= 8; k, _ = c.First() {
			if n <= s.opts.MaxEntries && binary.BigEndian.Uint64(k[:8]) >= cutoff {
				break
			}
			if err := first.Delete(k[8:]); err != nil {
				return err
			}
			if err := c.Delete(); err != nil {
				return err
			}
			n--
		}
		return nil
	})
	if err != nil {
		return nil, diskFull(err)
	}
	s.n = n
	return out, nil
}

// Len is the number of messages remembered.
func (s *Seen) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// Close closes the store.
func (s *Seen) Close() error { return s.db.Close() }
