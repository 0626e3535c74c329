package edge

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/buffer"
	"github.com/wardgate/wardgate/devices"
)

// folderSums is every file under dir with the SHA-256 of its bytes.
func folderSums(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	sums := map[string][32]byte{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			sums[p] = sha256.Sum256(b)
		}
		return err
	})
	return sums
}

// writeMarked writes the file name of dataFiles into dir marked as format
// m, as the wardgate that writes m would.
func writeMarked(t *testing.T, dir, name, m string, marker func(string) (string, error)) {
	t.Helper()
	path := filepath.Join(dir, filepath.FromSlash(name))
	os.MkdirAll(filepath.Dir(path), 0o700)
	var err error
	switch reflect.ValueOf(marker).Pointer() {
	case reflect.ValueOf(buffer.StoreMarker).Pointer():
		var st *buffer.Store
		if st, err = buffer.OpenStore(path, m, buffer.StoreOptions{}); err == nil {
			st.Close()
			os.Remove(path + ".reserve")
		}
	case reflect.ValueOf(buffer.JournalMarker).Pointer():
		err = os.WriteFile(path, append([]byte(m+"\n"), make([]byte, 4096)...), 0o600)
	default:
		err = os.WriteFile(path, []byte(`{"format":"`+m+`"}`), 0o600)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// Each file of the data folder marked with a version newer than this build
// reads makes checkDataFormats refuse the folder, naming the file, its
// format and the version this build reads up to, and nothing in the folder
// changes; the same file at this build's version, or an older one, passes.
func TestCheckDataFormatsRefusesANewerFile(t *testing.T) {
	for _, f := range dataFiles {
		t.Run(f.name, func(t *testing.T) {
			dir := t.TempDir()
			writeMarked(t, dir, f.name, f.format.String(), f.marker)
			if err := checkDataFormats(dir); err != nil {
				t.Fatalf("this build's own version: %v", err)
			}
			newer := buffer.Format{Name: f.format.Name, Version: f.format.Version + 1}
			os.RemoveAll(dir)
			writeMarked(t, dir, f.name, newer.String(), f.marker)
			before := folderSums(t, dir)
			err := checkDataFormats(dir)
			if !errors.Is(err, buffer.ErrNewerFormat) {
				t.Fatalf("a newer %s: %v", f.name, err)
			}
			for _, want := range []string{filepath.Join(dir, filepath.FromSlash(f.name)), "written by a newer wardgate (" + newer.String() + ")",
				"this is wardgate ", fmt.Sprintf("reads up to /%d", f.format.Version), "run the newer wardgate or restore a backup"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the refusal does not say %q: %v", want, err)
				}
			}
			if after := folderSums(t, dir); !reflect.DeepEqual(before, after) {
				t.Error("the refused folder changed")
			}
		})
	}
}

// An empty folder, and one whose files are unreadable or foreign, pass the
// check: the opens that follow say what is wrong with them.
func TestCheckDataFormatsLeavesOtherProblemsToTheOpens(t *testing.T) {
	dir := t.TempDir()
	if err := checkDataFormats(dir); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "outbox.db"), []byte("not bbolt"), 0o600)
	os.WriteFile(filepath.Join(dir, associationsFile), []byte("{"), 0o600)
	os.WriteFile(filepath.Join(dir, clocksFile), []byte(`{"format":"wardgate-beds/9"}`), 0o600)
	if err := checkDataFormats(dir); err != nil {
		t.Fatal(err)
	}
}

// clocks.json /1 (before markers) was the bare map of device → state; it
// is read, and written back as /2. A device called "format" is a device.
func TestClocksFileOfTheFirstFormatIsMigrated(t *testing.T) {
	v1 := []byte(`{"format":{"valid":true,"offset_ns":5},"MX450":{"valid":true,"offset_ns":-7000000000}}`)
	states, err := decodeClocksFile("clocks.json", v1)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]devices.ClockState{"format": {Valid: true, Offset: 5}, "MX450": {Valid: true, Offset: -7 * time.Second}}
	if !reflect.DeepEqual(states, want) {
		t.Fatalf("read %+v, want %+v", states, want)
	}
	v2, err := encodeClocksFile(states)
	if err != nil {
		t.Fatal(err)
	}
	if m := jsonMarker(v2); m != "wardgate-clocks/2" {
		t.Fatalf("written as %q", m)
	}
	again, err := decodeClocksFile("clocks.json", v2)
	if err != nil || !reflect.DeepEqual(again, want) {
		t.Fatalf("read back %+v, %v", again, err)
	}
	if _, err := decodeClocksFile("clocks.json", []byte(`{"format":"wardgate-clocks/3","clocks":{}}`)); !errors.Is(err, buffer.ErrNewerFormat) {
		t.Fatalf("a /3 file: %v", err)
	}
}

// stays.json without a marker is /1 and is read; it is written marked.
func TestStaysFileWithoutMarkerIsRead(t *testing.T) {
	seen, err := decodeStaysFile("stays.json", []byte(`{"first_seen":{"Encounter/e|bed-1":"2026-12-01T10:00:00Z"}}`))
	if err != nil || !seen["Encounter/e|bed-1"].Equal(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)) {
		t.Fatalf("%v, %v", seen, err)
	}
	b, _ := encodeStaysFile(seen)
	if m := jsonMarker(b); m != "wardgate-stays/1" {
		t.Fatalf("written as %q", m)
	}
	if _, err := decodeStaysFile("stays.json", []byte(`{"format":"wardgate-stays/2","first_seen":{}}`)); !errors.Is(err, buffer.ErrNewerFormat) {
		t.Fatalf("a /2 file: %v", err)
	}
}

// beds.json without a marker is /1: its associations hold, and the next
// change writes the marker. A newer one is refused.
func TestBedsFileWithoutMarkerIsReadAndMarkedOnWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, associationsFile)
	os.WriteFile(path, []byte(`{"stays":[{"bed":"bed-14","patient":"Patient/fx-14","start":"2026-11-25T07:00:00Z"}]}`), 0o600)
	a, err := openAssociations(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := a.patient("bed-14", time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)); !ok || p != "Patient/fx-14" {
		t.Fatalf("bed-14: %q, %v", p, ok)
	}
	if _, err := a.set("bed-15", "Patient/fx-15", time.Time{}, "test"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if m := jsonMarker(b); m != "wardgate-beds/1" {
		t.Fatalf("written as %q", m)
	}
	os.WriteFile(path, []byte(`{"format":"wardgate-beds/2","stays":[]}`), 0o600)
	if _, err := openAssociations(dir, 0); !errors.Is(err, buffer.ErrNewerFormat) {
		t.Fatalf("a /2 file: %v", err)
	}
}

// adt-stays.json of a newer version is refused with the clear message,
// not the old "of format … not …".
func TestADTStaysOfANewerFormatIsRefused(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, adtStaysFile), []byte(`{"format":"wardgate-adt/2","stays":[],"beds":{}}`), 0o600)
	_, err := openADTStays(dir, 0, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if !errors.Is(err, buffer.ErrNewerFormat) || !strings.Contains(err.Error(), "(wardgate-adt/2)") {
		t.Fatalf("%v", err)
	}
}
