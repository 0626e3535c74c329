package buffer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
	info, statErr := os.Stat(path)
	switch {
	case statErr == nil && info.IsDir():
		return nil, false, fmt.Errorf("%s is a directory, not a wardgate store", path)
	case statErr == nil && info.Size() > 0:
		if err := inspect(path, format); err != nil {
			return nil, false, err
		}
	case statErr == nil, errors.Is(statErr, os.ErrNotExist):
		created = true
	default:
		return nil, false, statErr
	}

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
	if created {
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

// inspect opens path read-only and checks that it is a readable bbolt file
// carrying our format marker. bbolt can panic on damaged pages; the panic is
// turned into an error naming the file.
func inspect(path, format string) (err error) {
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
		if b == nil {
			return fmt.Errorf("%s is a bbolt database but not a wardgate store; it was left untouched", path)
		}
		got := b.Get(formatKey)
		if string(got) != format {
			return fmt.Errorf("%s holds format %q, this wardgate reads %q; it was left untouched", path, got, format)
		}
		return nil
	})
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
