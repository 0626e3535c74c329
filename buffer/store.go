package buffer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// metaBucket holds the format marker that tells a wardgate store from any
// other bbolt file.
var (
	metaBucket = []byte("wardgate")
	formatKey  = []byte("format")
)

// openBolt opens the bbolt file at path as a store of the given format
// ("wardgate-outbox/1"), creating it when it does not exist or is empty.
// An existing file is first inspected read-only, so a foreign or damaged file
// is reported without a byte of it being changed. created tells whether the
// store was made new.
func openBolt(path, format string) (db *bolt.DB, created bool, err error) {
	return openBoltAdopting(path, format, nil)
}

// openBoltAdopting is openBolt that also takes a file written before its
// kind of store carried a format marker: one whose top-level buckets are all
// named in adopt gets the marker (created reports false).
func openBoltAdopting(path, format string, adopt []string) (db *bolt.DB, created bool, err error) {
	return openBoltUpgrading(path, format, adopt, nil)
}

// openBoltUpgrading is openBoltAdopting that also takes a store of one of
// the earlier formats named in older, whose marker it rewrites: the caller
// has made sure this release reads them (and an older release then
// refuses the store instead of misreading it).
func openBoltUpgrading(path, format string, adopt, older []string) (db *bolt.DB, created bool, err error) {
	info, statErr := os.Stat(path)
	mark := false
	switch {
	case statErr == nil && info.IsDir():
		return nil, false, fmt.Errorf("%s is a directory, not a wardgate store", path)
	case statErr == nil && info.Size() > 0:
		switch err := inspect(path, format, adopt, older); {
		case errors.Is(err, errUnmarked):
			mark = true
		case err != nil:
			return nil, false, err
		}
	case statErr == nil, errors.Is(statErr, os.ErrNotExist):
		created = true
	default:
		return nil, false, statErr
	}

	os.Remove(path + backupSuffix) // a backup's copy a stop cut short

	db, err = bolt.Open(path, 0o600, &bolt.Options{
		Timeout: 500 * time.Millisecond,
		// The freelist is rebuilt by scanning at open instead of being
		// written at every commit: smaller commits, faster group commit.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		return nil, false, describeOpenError(path, err)
	}
	if created || mark {
		err = db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(metaBucket)
			if err != nil {
				return err
			}
			return b.Put(formatKey, []byte(format))
		})
		if err != nil {
			db.Close()
			return nil, false, fmt.Errorf("initialise %s: %w", path, diskFull(err))
		}
	}
	return db, created, nil
}

// errUnmarked is inspect's answer for a store of the right kind written
// before it carried a format marker, or with an earlier format's: its
// marker is (re)written.
var errUnmarked = errors.New("a wardgate store without a format marker")

// inspect opens path read-only and checks that it is a readable bbolt file
// carrying our format marker (or, with adopt, an older one holding only the
// buckets named there: errUnmarked). bbolt can panic on damaged pages; the
// panic is turned into an error naming the file.
func inspect(path, format string, adopt, older []string) (err error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 500 * time.Millisecond})
	if err != nil {
		return describeOpenError(path, err)
	}
	defer db.Close()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s is damaged (%v); it was left untouched: move it aside to start an empty store", path, r)
		}
	}()
	return db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(metaBucket)
		if b == nil && len(adopt) > 0 && onlyBuckets(tx, adopt) {
			return errUnmarked
		}
		if b == nil {
			return fmt.Errorf("%s is a bbolt database but not a wardgate store; it was left untouched", path)
		}
		got := b.Get(formatKey)
		if want, ok := ParseFormat(format); ok {
			if g, ok := ParseFormat(string(got)); ok && g.Name == want.Name && g.Version > want.Version {
				return &NewerFormatError{Path: path, Found: g, Reads: want}
			}
		}
		if slices.Contains(older, string(got)) {
			return errUnmarked
		}
		if string(got) != format {
			return fmt.Errorf("%s holds format %q, this wardgate reads %q; it was left untouched", path, got, format)
		}
		return nil
	})
}

// onlyBuckets reports whether tx holds at least one top-level bucket and
// none but those named.
func onlyBuckets(tx *bolt.Tx, names []string) bool {
	n := 0
	err := tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
		n++
		if !slices.Contains(names, string(name)) {
			return errors.New("foreign bucket")
		}
		return nil
	})
	return err == nil && n > 0
}

func describeOpenError(path string, err error) error {
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("%s is in use by another process (is another wardgate running on this data_dir?)", path)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrChecksum):
		return fmt.Errorf("%s is not a wardgate store or is damaged (%v); it was left untouched: move it aside to start an empty store", path, err)
	}
	return fmt.Errorf("open %s: %w", path, err)
}

func dirOf(path string) string { return filepath.Dir(path) }

// Store is a bbolt file kept by another package (the DICOM ledger) with the
// guarantees every wardgate store has: a format marker, a foreign or damaged
// file reported and left untouched, one process at a time, and a reserve
// file beside it. Read with View; write with Update.
type Store struct {
	*bolt.DB
	reserve     string
	reserveUsed atomic.Bool
}

// StoreOptions are OpenStore's settings.
type StoreOptions struct {
	// Adopt names the top-level buckets of this kind of store as written
	// before it carried a format marker: such a file is marked and opened
	// instead of refused as foreign.
	Adopt []string
	// ReserveBytes is the size of the reserve file; 0 means 8 MiB.
	ReserveBytes int64
}

// OpenStore opens or creates the store of the given format ("name/1") at
// path, with its reserve file (path + ".reserve").
func OpenStore(path, format string, opts StoreOptions) (*Store, error) {
	db, _, err := openBoltAdopting(path, format, opts.Adopt)
	if err != nil {
		return nil, err
	}
	makeReserve(path+".reserve", reserveSizeFor(0, opts.ReserveBytes))
	return &Store{DB: db, reserve: path + ".reserve"}, nil
}

// Update runs fn in a read-write transaction, durable when Update returns
// nil. A Store's writes record work done (what was delivered or forwarded),
// which lets delivery and pruning go on and so frees room: on a full disk
// the reserve is given up and the commit tried once more. fn may run twice.
func (s *Store) Update(fn func(tx *bolt.Tx) error) error {
	err := s.DB.Update(fn)
	if errors.Is(diskFull(err), ErrFull) && s.reserve != "" {
		if rmErr := os.Remove(s.reserve); rmErr == nil {
			s.reserveUsed.Store(true)
			err = s.DB.Update(fn)
		}
	}
	return diskFull(err)
}

// ReserveUsed reports whether the reserve was given up to a full disk since
// the store was opened.
func (s *Store) ReserveUsed() bool { return s.reserveUsed.Load() }
