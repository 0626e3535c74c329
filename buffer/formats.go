package buffer

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Every file of the data folder says which format it is in, as a marker
// "name/version" (the bbolt stores in their wardgate bucket, the journal in
// its first line, the JSON files in a "format" field). A build reads its
// own version of each format and every older one (migrating where the
// layout changed); it refuses a newer one before it changes a byte, with a
// NewerFormatError: a downgrade must not misread, or half-rewrite, what a
// newer wardgate wrote. edge/formats.go lists every file with its format.

// Format is one kind of file and the version of it that this build
// writes.
type Format struct {
	Name    string // "wardgate-outbox"
	Version int    // 1, 2, …
}

// The formats of this package's files.
var (
	OutboxFormat        = Format{"wardgate-outbox", 1}         // outbox.db and held.db
	OutboxJournalFormat = Format{"wardgate-outbox-journal", 1} // outbox.db.journal and held.db.journal
	SeenFormat          = Format{"wardgate-seen", 1}           // seen.db
	// SpoolFormat is the spool's index (spool/index.db). /2 added the
	// index journal (spool/index.journal, which has no marker of its own:
	// it exists from /2 on and is read as /2 says); /1 is read and
	// re-marked.
	SpoolFormat = Format{"wardgate-spool", 2}
)

// String is the marker: "wardgate-outbox/1".
func (f Format) String() string { return f.Name + "/" + strconv.Itoa(f.Version) }

// ParseFormat splits a marker "name/version"; ok is false when m is not
// one.
func ParseFormat(m string) (f Format, ok bool) {
	name, v, found := strings.Cut(m, "/")
	n, err := strconv.Atoi(v)
	if !found || name == "" || err != nil || n < 1 || strconv.Itoa(n) != v {
		return Format{}, false
	}
	return Format{name, n}, true
}

// Check says whether this build reads the file at path marked found: nil
// for f's version or an older one of the same name (the caller migrates),
// a *NewerFormatError for a newer one, another error for a marker of
// another kind of file. An empty found is the oldest version (the files
// written before they carried a marker) and reads.
func (f Format) Check(path, found string) error {
	if found == "" {
		return nil
	}
	got, ok := ParseFormat(found)
	switch {
	case !ok || got.Name != f.Name:
		return fmt.Errorf("%s holds format %.60q, not %s: it is not this kind of wardgate file; it was left untouched", path, found, f.Name)
	case got.Version > f.Version:
		return &NewerFormatError{Path: path, Found: got, Reads: f}
	}
	return nil
}

// NewerFormatError is a file written by a newer wardgate than this one:
// the gateway does not start and leaves the file as it is.
type NewerFormatError struct {
	Path  string
	Found Format // the file's marker
	Reads Format // the newest version this build reads
	// Build names this wardgate's version in the message, when the caller
	// knows it ("v1.2.0").
	Build string
}

func (e *NewerFormatError) Error() string {
	this := "this wardgate reads"
	if e.Build != "" {
		this = "this is wardgate " + e.Build + ", which reads"
	}
	return fmt.Sprintf("%s was written by a newer wardgate (%s); %s up to /%d: run the newer wardgate or restore a backup (the file was left untouched)",
		e.Path, e.Found, this, e.Reads.Version)
}

// ErrNewerFormat matches every NewerFormatError with errors.Is.
var ErrNewerFormat = errors.New("written by a newer wardgate")

// Is makes errors.Is(err, ErrNewerFormat) hold.
func (e *NewerFormatError) Is(target error) bool { return target == ErrNewerFormat }

// StoreMarker reads the format marker of the bbolt store at path without
// changing it: "" for a store written before markers (or a foreign bbolt
// file: opening it says which). A store that another process holds open is
// an error after a short wait.
func StoreMarker(path string) (string, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 100 * time.Millisecond})
	if err != nil {
		return "", describeOpenError(path, err)
	}
	defer db.Close()
	var m string
	err = func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("%s is damaged (%v)", path, r)
			}
		}()
		return db.View(func(tx *bolt.Tx) error {
			if b := tx.Bucket(metaBucket); b != nil {
				m = string(b.Get(formatKey))
			}
			return nil
		})
	}()
	return m, err
}

// JournalMarker reads the marker on the first line of an outbox journal
// ("" when the file does not start with one).
func JournalMarker(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, 64)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return "", err
	}
	line, _, found := strings.Cut(string(head[:n]), "\n")
	if !found || !strings.HasPrefix(line, "wardgate-") {
		return "", nil
	}
	return line, nil
}
