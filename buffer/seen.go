package buffer

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

var seenFormat = SeenFormat.String()

var (
	firstBucket = []byte("first") // key → first receipt (unix ns, 8 bytes), then 1 if its time was unknown
	orderBucket = []byte("order") // receipt (8 bytes) + key → nothing, oldest first
)

// Delivery is one message as a transport handed it over: a key naming its
// content, when it was received, whether the transport says it is a
// redelivery of one it handed over before (MQTT DUP), and whether its time
// is unknown (it may have waited somewhere before it came).
type Delivery struct {
	Key         string
	At          time.Time
	Redelivered bool
	Unknown     bool
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

// FirstSeen records ds in one durable commit and returns, for each, how it
// was first received: for a redelivery of a key the store holds, the time
// (and unknown mark) it holds; otherwise the delivery as it is, which it
// keeps.
func (s *Seen) FirstSeen(ctx context.Context, ds []Delivery) ([]Delivery, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]Delivery, len(ds))
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.n
	err := s.db.Update(func(tx *bolt.Tx) error {
		n = s.n
		first, order := tx.Bucket(firstBucket), tx.Bucket(orderBucket)
		for i, d := range ds {
			key := []byte(d.Key)
			old := first.Get(key)
			if d.Redelivered && len(old) >= 8 {
				out[i] = Delivery{Key: d.Key, At: time.Unix(0, int64(binary.BigEndian.Uint64(old))), Redelivered: true,
					Unknown: len(old) > 8 && old[8] == 1}
				continue
			}
			if len(old) >= 8 {
				if err := order.Delete(append(append([]byte(nil), old[:8]...), key...)); err != nil {
					return err
				}
			} else {
				n++
			}
			var v [9]byte
			binary.BigEndian.PutUint64(v[:8], uint64(d.At.UnixNano()))
			if d.Unknown {
				v[8] = 1
			}
			if err := first.Put(key, v[:]); err != nil {
				return err
			}
			if err := order.Put(append(append([]byte(nil), v[:8]...), key...), nil); err != nil {
				return err
			}
			out[i] = d
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
