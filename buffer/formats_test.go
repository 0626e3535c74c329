package buffer

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func TestParseFormat(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Format
		ok   bool
	}{
		{"wardgate-outbox/1", Format{"wardgate-outbox", 1}, true},
		{"wardgate-spool/12", Format{"wardgate-spool", 12}, true},
		{"wardgate-outbox", Format{}, false},
		{"wardgate-outbox/0", Format{}, false},
		{"wardgate-outbox/01", Format{}, false},
		{"wardgate-outbox/-1", Format{}, false},
		{"/1", Format{}, false},
		{"", Format{}, false},
	} {
		got, ok := ParseFormat(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("ParseFormat(%q) = %v, %v; want %v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestFormatCheck(t *testing.T) {
	f := Format{"wardgate-outbox", 2}
	for _, c := range []struct {
		found string
		newer bool
		fails bool
	}{
		{"", false, false}, // before markers: the oldest version
		{"wardgate-outbox/1", false, false},
		{"wardgate-outbox/2", false, false},
		{"wardgate-outbox/3", true, true},
		{"wardgate-seen/1", false, true},
		{"rubbish", false, true},
	} {
		err := f.Check("x.db", c.found)
		if (err != nil) != c.fails || errors.Is(err, ErrNewerFormat) != c.newer {
			t.Errorf("Check(%q) = %v", c.found, err)
		}
	}
	err := f.Check("/data/outbox.db", "wardgate-outbox/3")
	var newer *NewerFormatError
	if !errors.As(err, &newer) {
		t.Fatal(err)
	}
	newer.Build = "v1.4.0"
	const want = "/data/outbox.db was written by a newer wardgate (wardgate-outbox/3); this is wardgate v1.4.0, which reads up to /2: run the newer wardgate or restore a backup"
	if !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("%s\nwant it to start with\n%s", err, want)
	}
}

// setMarker writes marker into the store at path as a newer wardgate would.
func setMarker(t *testing.T, path, marker string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(metaBucket)
		if err != nil {
			return err
		}
		return b.Put(formatKey, []byte(marker))
	}); err != nil {
		t.Fatal(err)
	}
}

// Each bbolt store of a newer version is refused at open with a
// NewerFormatError, its bytes unchanged; StoreMarker reads the marker
// without a change either.
func TestNewerStoreIsRefusedUntouched(t *testing.T) {
	for _, c := range []struct {
		name string
		f    Format
		open func(path string) error
	}{
		{"outbox", OutboxFormat, func(p string) error {
			o, err := OpenOutbox(p, OutboxOptions{})
			if err == nil {
				o.Close()
			}
			return err
		}},
		{"seen", SeenFormat, func(p string) error {
			s, err := OpenSeen(p, SeenOptions{})
			if err == nil {
				s.Close()
			}
			return err
		}},
		{"store", Format{"wardgate-dicom-ledger", 1}, func(p string) error {
			s, err := OpenStore(p, "wardgate-dicom-ledger/1", StoreOptions{})
			if err == nil {
				s.Close()
			}
			return err
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.db")
			newer := Format{c.f.Name, c.f.Version + 1}.String()
			setMarker(t, path, newer)
			before, _ := os.ReadFile(path)
			if m, err := StoreMarker(path); err != nil || m != newer {
				t.Fatalf("StoreMarker: %q, %v", m, err)
			}
			err := c.open(path)
			if !errors.Is(err, ErrNewerFormat) || !strings.Contains(err.Error(), "("+newer+")") {
				t.Fatalf("open: %v", err)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
				t.Fatal("the refused store was changed")
			}
		})
	}
}

// The spool's index of a newer version is refused; /1 is still read.
func TestNewerSpoolIndexIsRefused(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(dir, SpoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	setMarker(t, filepath.Join(dir, "index.db"), "wardgate-spool/3")
	if _, err := OpenSpool(dir, SpoolOptions{}); !errors.Is(err, ErrNewerFormat) {
		t.Fatalf("a /3 index: %v", err)
	}
}

// A journal whose first line is a newer journal format is refused with a
// NewerFormatError (not "not a journal"), and left as it is.
func TestNewerJournalIsRefusedUntouched(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o, err := OpenOutbox(path, OutboxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	o.Close()
	jpath := path + ".journal"
	if m, err := JournalMarker(jpath); err != nil || m != OutboxJournalFormat.String() {
		t.Fatalf("JournalMarker: %q, %v", m, err)
	}
	f, _ := os.OpenFile(jpath, os.O_WRONLY, 0)
	f.WriteAt([]byte("wardgate-outbox-journal/2\n"), 0)
	f.Close()
	before, _ := os.ReadFile(jpath)
	_, err = OpenOutbox(path, OutboxOptions{})
	if !errors.Is(err, ErrNewerFormat) || !strings.Contains(err.Error(), "wardgate-outbox-journal/2") {
		t.Fatalf("open: %v", err)
	}
	if after, _ := os.ReadFile(jpath); !bytes.Equal(before, after) {
		t.Fatal("the refused journal was changed")
	}
}
