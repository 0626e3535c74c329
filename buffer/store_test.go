package buffer

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// oldStore writes a bbolt file with the given top-level buckets and no
// format marker, as stores were written before they carried one.
func oldStore(t *testing.T, path string, buckets ...string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range buckets {
			bk, err := tx.CreateBucket([]byte(b))
			if err != nil {
				return err
			}
			if err := bk.Put([]byte("k"), []byte("v")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
}

// A store of another package opens with the checks every store has: new
// files get the marker and a reserve, files of the same kind written before
// the marker existed are adopted with their data, and anything else is
// refused and left as it was.
func TestOpenStore(t *testing.T) {
	const format = "wardgate-test/1"
	opts := StoreOptions{Adopt: []string{"charted", "forwarded"}}

	t.Run("new", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "ledger.db")
		s, err := OpenStore(p, format, opts)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		if info, err := os.Stat(p + ".reserve"); err != nil || info.Size() != reserveSize {
			t.Fatalf("reserve: %v", err)
		}
		if err := inspect(p, format, nil, nil); err != nil {
			t.Fatalf("reopened: %v", err)
		}
	})

	t.Run("written before the marker", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "ledger.db")
		oldStore(t, p, "charted", "forwarded")
		s, err := OpenStore(p, format, opts)
		if err != nil {
			t.Fatal(err)
		}
		var v []byte
		s.View(func(tx *bolt.Tx) error {
			v = append(v, tx.Bucket([]byte("charted")).Get([]byte("k"))...)
			return nil
		})
		s.Close()
		if string(v) != "v" {
			t.Fatalf("data lost in the adoption: %q", v)
		}
		if err := inspect(p, format, nil, nil); err != nil {
			t.Fatalf("not marked: %v", err)
		}
	})

	for _, tc := range []struct {
		name string
		make func(p string)
		want string
	}{
		{"foreign bbolt", func(p string) { oldStore(t, p, "charted", "users") }, "not a wardgate store"},
		{"another store", func(p string) {
			s, err := OpenStore(p, "wardgate-other/1", StoreOptions{})
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
		}, `holds format "wardgate-other/1"`},
		{"text", func(p string) { os.WriteFile(p, []byte("site: ward-4b\n"), 0o600) }, "not a wardgate store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "ledger.db")
			tc.make(p)
			before, _ := os.ReadFile(p)
			_, err := OpenStore(p, format, opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("open: %v, want an error saying %q", err, tc.want)
			}
			if after, _ := os.ReadFile(p); !bytes.Equal(before, after) {
				t.Fatal("the file was changed")
			}
		})
	}
}
