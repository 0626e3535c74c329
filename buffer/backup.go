package buffer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// Backups. Each store can copy itself, consistently, while it is in use:
// the copy is the store as it was at one moment, holding everything
// acknowledged before that moment, and opens as the store would after a
// clean stop (no journal to replay). A copy is handed to a BackupWriter file
// by file, so that the caller can write them into a folder or stream them.

// BackupWriter receives the files of a copy.
type BackupWriter interface {
	// File adds the file name (slash-separated, relative to the data
	// folder) of exactly size bytes, which write writes.
	File(name string, size int64, write func(io.Writer) error) error
}

// boltBackup copies db (at path) as the file name: a read transaction,
// which is a consistent view without stopping the writers, is written to
// path+".backup" at the local disk's speed and then handed to w from
// there. Handing it to w from the transaction would keep the transaction
// open as long as the reader of a stream takes, and a bbolt file that must
// grow waits for its open transactions: a slow backup would stall intake.
func boltBackup(db *bolt.DB, name string, w BackupWriter) error {
	tmp := db.Path() + backupSuffix
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return diskFull(err)
	}
	defer os.Remove(tmp)
	defer f.Close()
	var size int64
	err = db.View(func(tx *bolt.Tx) error {
		size = tx.Size()
		_, err := tx.WriteTo(f)
		return err
	})
	if err != nil {
		return diskFull(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	return w.File(name, size, func(out io.Writer) error {
		n, err := io.Copy(out, io.LimitReader(f, size))
		if err == nil && n != size {
			err = errors.New("cut short")
		}
		return err
	})
}

// backupSuffix names a store's copy while a backup hands it on; one left
// by a stop is removed at the next open.
const backupSuffix = ".backup"

// Backup writes a copy of the outbox as the file name: every item
// acknowledged before the call (its journal is checkpointed into bbolt
// first), leases included (a restored outbox counts them as deliveries cut
// short, and delivers again).
func (o *Outbox) Backup(name string, w BackupWriter) error {
	o.mu.Lock()
	closed := o.closed
	o.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if err := o.checkpoint(); err != nil {
		return fmt.Errorf("outbox backup: %w", err)
	}
	return boltBackup(o.db, name, w)
}

// Backup writes a copy of the store as the file name.
func (s *Seen) Backup(name string, w BackupWriter) error { return boltBackup(s.db, name, w) }

// Backup writes a copy of the store as the file name.
func (s *Store) Backup(name string, w BackupWriter) error { return boltBackup(s.DB, name, w) }

// Backup writes a copy of the spool under the folder prefix: its index
// (with every journalled entry applied first) as prefix/index.db and the
// file of every instance the index names, at its place. The files are
// hard-linked under tmp/ while the index is read, so that an instance
// removed meanwhile (forwarded, pruned, replaced) is still copied whole;
// removals wait only for the links. Instances being received are not in
// the copy: they were not acknowledged yet.
func (s *Spool) Backup(ctx context.Context, prefix string, w BackupWriter) error {
	if s.closed.Load() {
		return ErrClosed
	}
	var b [8]byte
	rand.Read(b[:])
	work := filepath.Join(s.dir, "tmp", "backup-"+hex.EncodeToString(b[:]))
	if err := os.MkdirAll(work, 0o700); err != nil {
		return fmt.Errorf("spool backup: %w", diskFull(err))
	}
	defer os.RemoveAll(work)

	type file struct {
		rel  string
		size int64
	}
	var files []file
	var indexSize int64
	err := func() error {
		s.backupMu.Lock()
		defer s.backupMu.Unlock()
		if err := s.flushOverlay(ctx, false); err != nil {
			return err
		}
		return s.db.View(func(tx *bolt.Tx) error {
			f, err := os.OpenFile(filepath.Join(work, "index.db"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return diskFull(err)
			}
			_, err = tx.WriteTo(f)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return diskFull(err)
			}
			indexSize = tx.Size()
			c := tx.Bucket(instancesBucket).Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				var in Instance
				if err := json.Unmarshal(v, &in); err != nil {
					return fmt.Errorf("index entry %q: %w", k, err)
				}
				link := filepath.Join(work, fmt.Sprintf("%d", len(files)))
				if err := os.Link(filepath.Join(s.dir, in.File), link); err != nil {
					return fmt.Errorf("instance file %s: %w", in.File, err)
				}
				files = append(files, file{in.File, in.Size})
			}
			return nil
		})
	}()
	if err != nil {
		return fmt.Errorf("spool backup: %w", err)
	}
	if err := copyFile(w, path.Join(prefix, "index.db"), filepath.Join(work, "index.db"), indexSize); err != nil {
		return err
	}
	for i, f := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := copyFile(w, path.Join(prefix, filepath.ToSlash(f.rel)), filepath.Join(work, fmt.Sprintf("%d", i)), f.size); err != nil {
			return err
		}
	}
	return nil
}

// copyFile hands the file at p, of size bytes, to w as name.
func copyFile(w BackupWriter, name, p string, size int64) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if info, err := f.Stat(); err != nil {
		return err
	} else if info.Size() != size {
		return fmt.Errorf("%s: %d bytes, the index says %d", name, info.Size(), size)
	}
	return w.File(name, size, func(out io.Writer) error {
		n, err := io.Copy(out, io.LimitReader(f, size))
		if err == nil && n != size {
			err = errors.New("cut short")
		}
		return err
	})
}
