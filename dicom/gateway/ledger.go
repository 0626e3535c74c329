package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/wardgate/wardgate/buffer"
	"github.com/wardgate/wardgate/dicom/dataset"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Ledger records, durably, what has become of spooled instances after they
// were acknowledged: which studies were handed to the FHIR side (with the
// headers handed over, so that a late instance re-describes the whole study
// even when earlier ones have left the spool), and which instances each
// forward destination has, or refused for good.
//
// It never sits on the acknowledgement path. What the spool holds is the
// work; the ledger only says what of it is done. A mark lost in a crash
// makes the work happen again (a study handed over twice, an instance sent
// twice): both are idempotent downstream.
//
// Every mark carries the SHA-256 of the content it is about, so that an
// instance replaced by different content is work again.
type Ledger struct {
	db         *buffer.Store
	unreadable atomic.Uint64
}

// Unreadable counts the marks read since the ledger was opened that could
// not be decoded (and were taken as absent).
func (l *Ledger) Unreadable() uint64 { return l.unreadable.Load() }

// LedgerFormat marks a ledger file (spool/ledger.db); ledgers written
// before the mark existed hold only the charted and forwarded buckets and
// are adopted. A newer version is refused (buffer.NewerFormatError).
var LedgerFormat = buffer.Format{Name: "wardgate-dicom-ledger", Version: 1}

var ledgerFormat = LedgerFormat.String()

var (
	chartedBucket   = []byte("charted")   // study UID → SOP instance UID → ChartedMark
	forwardedBucket = []byte("forwarded") // destination → SOP instance UID → ForwardMark
)

// ChartedMark says that an instance's content was in a study handed over
// to the FHIR side at HandedAt, and, once the record acknowledged an
// ImagingStudy made at or after that, that it is Delivered. Only a
// delivered instance may leave the spool.
type ChartedMark struct {
	SHA256    string                 `json:"sha256"`
	Header    dataset.InstanceHeader `json:"header"`
	HandedAt  time.Time              `json:"handed_at"`
	Delivered bool                   `json:"delivered,omitempty"`
}

// ForwardMark says that a destination has an instance's content (Dead
// false), or refused it for good (Dead true, with the reason). A refusal
// keeps the instance in the spool until someone retries it (the mark goes)
// or drops it (Dropped: the destination will never have it, and the
// instance may leave the spool without it).
type ForwardMark struct {
	SHA256  string    `json:"sha256"`
	Dead    bool      `json:"dead,omitempty"`
	Dropped bool      `json:"dropped,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	At      time.Time `json:"at"`
}

// OpenLedger opens or creates the ledger file at path, as a buffer.Store:
// a file that is not a ledger is reported and left untouched.
func OpenLedger(path string) (*Ledger, error) {
	st, err := buffer.OpenStore(path, ledgerFormat, buffer.StoreOptions{
		Adopt: []string{string(chartedBucket), string(forwardedBucket)},
		// Its writes touch a few pages of a file that holds a month of
		// studies: 2 MiB of reserve covers them on a full disk.
		ReserveBytes: 2 << 20,
	})
	if err != nil {
		return nil, fmt.Errorf("dicom ledger: %w", err)
	}
	err = st.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{chartedBucket, forwardedBucket} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("dicom ledger %s: %w", path, err)
	}
	return &Ledger{db: st}, nil
}

// Close closes the ledger file.
func (l *Ledger) Close() error { return l.db.Close() }

// MarkCharted records that study is being handed over with these
// instances (SOP Instance UID → mark), in one durable commit. It is written
// before the hand-over: a mark that is not Delivered is work still to do,
// at a restart too. A mark for the same content that was already delivered
// stays delivered.
func (l *Ledger) MarkCharted(study string, marks map[string]ChartedMark) error {
	return putMarks(l.db, chartedBucket, study, marks, func(old, m ChartedMark) bool {
		return old.Delivered && old.SHA256 == m.SHA256
	})
}

// Charted returns the marks of a study's instances handed over so far.
func (l *Ledger) Charted(study string) (map[string]ChartedMark, error) {
	return readMarks[ChartedMark](l, chartedBucket, study)
}

// MarkStudyDelivered records that the record acknowledged an ImagingStudy
// of study that was queued at enqueued: every instance handed over at or
// before then is in it.
func (l *Ledger) MarkStudyDelivered(study string, enqueued time.Time) error {
	return l.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(chartedBucket).Bucket([]byte(study))
		if b == nil {
			return nil
		}
		type kv struct{ k, v []byte }
		var changed []kv
		err := b.ForEach(func(k, v []byte) error {
			var m ChartedMark
			if json.Unmarshal(v, &m) != nil || m.Delivered || m.HandedAt.IsZero() || m.HandedAt.After(enqueued) {
				return nil
			}
			m.Delivered = true
			nv, err := json.Marshal(m)
			if err != nil {
				return err
			}
			changed = append(changed, kv{append([]byte(nil), k...), nv})
			return nil
		})
		if err != nil {
			return err
		}
		for _, c := range changed {
			if err := b.Put(c.k, c.v); err != nil {
				return err
			}
		}
		return nil
	})
}

// IsDelivered reports whether the instance key of study, with content sha,
// is in an ImagingStudy the record acknowledged.
func (l *Ledger) IsDelivered(study, key, sha string) bool {
	var m ChartedMark
	found := false
	l.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(chartedBucket).Bucket([]byte(study))
		if b == nil {
			return nil
		}
		if v := b.Get([]byte(key)); v != nil && json.Unmarshal(v, &m) == nil {
			found = true
		}
		return nil
	})
	return found && m.SHA256 == sha && m.Delivered
}

// MarkForwarded records marks (SOP Instance UID → mark) for destination in
// one durable commit.
func (l *Ledger) MarkForwarded(destination string, marks map[string]ForwardMark) error {
	if len(marks) == 0 {
		return nil
	}
	return putMarks(l.db, forwardedBucket, destination, marks, nil)
}

// Forwarded returns every mark of destination.
func (l *Ledger) Forwarded(destination string) (map[string]ForwardMark, error) {
	return readMarks[ForwardMark](l, forwardedBucket, destination)
}

// ForwardMarkOf returns destination's mark for key, if any.
func (l *Ledger) ForwardMarkOf(destination, key string) (ForwardMark, bool) {
	var m ForwardMark
	found := false
	l.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(forwardedBucket).Bucket([]byte(destination))
		if b == nil {
			return nil
		}
		if v := b.Get([]byte(key)); v != nil && json.Unmarshal(v, &m) == nil {
			found = true
		}
		return nil
	})
	return m, found
}

// RemoveForwardMark deletes destination's mark for key when it is a
// refusal of content sha not yet dropped; it reports whether it did.
func (l *Ledger) RemoveForwardMark(destination, key, sha string) (bool, error) {
	return l.editRefusal(destination, key, sha, func(b *bolt.Bucket, _ ForwardMark) error {
		return b.Delete([]byte(key))
	})
}

// DropForwardMark marks destination's refusal of key (content sha) as
// Dropped; it reports whether there was such a refusal to drop.
func (l *Ledger) DropForwardMark(destination, key, sha string) (bool, error) {
	return l.editRefusal(destination, key, sha, func(b *bolt.Bucket, m ForwardMark) error {
		m.Dropped = true
		v, err := json.Marshal(m)
		if err != nil {
			return err
		}
		return b.Put([]byte(key), v)
	})
}

// editRefusal runs edit, in one durable commit, on destination's mark for
// key when it is a refusal of content sha that waits (Dead, not Dropped);
// it reports whether there was one.
func (l *Ledger) editRefusal(destination, key, sha string, edit func(b *bolt.Bucket, m ForwardMark) error) (bool, error) {
	found := false
	err := l.db.Update(func(tx *bolt.Tx) error {
		found = false // Update may run fn twice (the reserve)
		b := tx.Bucket(forwardedBucket).Bucket([]byte(destination))
		if b == nil {
			return nil
		}
		var m ForwardMark
		if v := b.Get([]byte(key)); v == nil || json.Unmarshal(v, &m) != nil || !m.Dead || m.Dropped || m.SHA256 != sha {
			return nil
		}
		found = true
		return edit(b, m)
	})
	return found && err == nil, err
}

// ForgetForwarded drops every destination's mark for keys (instances that
// left the spool). Charted marks stay: they describe the study.
func (l *Ledger) ForgetForwarded(keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	return l.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(forwardedBucket).ForEachBucket(func(dest []byte) error {
			b := tx.Bucket(forwardedBucket).Bucket(dest)
			for _, k := range keys {
				if err := b.Delete([]byte(k)); err != nil {
					return err
				}
			}
			return nil
		})
	})
}

// putMarks writes marks (key → mark) into the named bucket under top, in
// one durable commit; keep, when given, leaves a stored mark in place.
func putMarks[M any](db *buffer.Store, top []byte, name string, marks map[string]M, keep func(old, m M) bool) error {
	return db.Update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(top).CreateBucketIfNotExists([]byte(name))
		if err != nil {
			return err
		}
		for k, m := range marks {
			if keep != nil {
				var old M
				if v := b.Get([]byte(k)); v != nil && json.Unmarshal(v, &old) == nil && keep(old, m) {
					continue
				}
			}
			v, err := json.Marshal(m)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// readMarks returns every mark in the named bucket under top.
//
// A mark that cannot be decoded is skipped and counted (Unreadable): losing
// a mark only makes its work happen again (a resend, a hand-over), while
// failing would stop the node, and with it the gateway, at every start.
func readMarks[M any](l *Ledger, top []byte, name string) (map[string]M, error) {
	out := map[string]M{}
	err := l.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(top).Bucket([]byte(name))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var m M
			if json.Unmarshal(v, &m) != nil {
				l.unreadable.Add(1)
				return nil
			}
			out[string(k)] = m
			return nil
		})
	})
	return out, err
}

// ForgetStudies drops the marks of studies handed over last before cutoff
// whose instances have all left the spool (spooled tells). The marks keep
// the headers of every instance handed over (Patient ID among them), so
// that a late instance re-describes the whole study; after the horizon a
// study is taken as closed, and what it said of its patient is not kept
// for ever. It returns how many studies were forgotten.
func (l *Ledger) ForgetStudies(cutoff time.Time, spooled func(study string) bool) (int, error) {
	var old []string
	err := l.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(chartedBucket).ForEachBucket(func(study []byte) error {
			var latest time.Time
			b := tx.Bucket(chartedBucket).Bucket(study)
			b.ForEach(func(_, v []byte) error {
				var m ChartedMark
				if json.Unmarshal(v, &m) == nil && m.HandedAt.After(latest) {
					latest = m.HandedAt
				}
				return nil
			})
			if latest.Before(cutoff) {
				old = append(old, string(study))
			}
			return nil
		})
	})
	if err != nil {
		return 0, err
	}
	var forget []string
	for _, st := range old {
		if !spooled(st) {
			forget = append(forget, st)
		}
	}
	if len(forget) == 0 {
		return 0, nil
	}
	err = l.db.Update(func(tx *bolt.Tx) error {
		for _, st := range forget {
			if err := tx.Bucket(chartedBucket).DeleteBucket([]byte(st)); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
				return err
			}
		}
		return nil
	})
	return len(forget), err
}

// Backup writes a consistent copy of the ledger as the file name.
func (l *Ledger) Backup(name string, w buffer.BackupWriter) error { return l.db.Backup(name, w) }
