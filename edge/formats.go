package edge

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/wardgate/wardgate/buffer"
	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/dicom/gateway"
	"github.com/wardgate/wardgate/edge/build"
)

// The formats of the data folder's files. Each file carries a marker
// "name/version"; a file without one is of the oldest version (what the
// releases before markers wrote) and is marked at its next write. A newer
// wardgate opens an older data folder, migrating where the layout changed;
// an older one refuses a newer folder at start, before anything in it
// changes (checkDataFormats). The README's "The data folder" lists the same
// table for the people who upgrade.
var (
	bedsFormat   = buffer.Format{Name: "wardgate-beds", Version: 1}   // beds.json: the manual associations
	staysFormat  = buffer.Format{Name: "wardgate-stays", Version: 1}  // stays.json: stays without a start, first seen
	clocksFormat = buffer.Format{Name: "wardgate-clocks", Version: 2} // clocks.json: /1 was the bare map of device → clock
	adtFormatV   = buffer.Format{Name: "wardgate-adt", Version: 1}    // adt-stays.json: the ADT feed's stays
)

// dataFiles is every file of data_dir that has a format, where it is, and
// how its marker is read.
var dataFiles = []struct {
	name   string
	format buffer.Format
	marker func(path string) (string, error)
}{
	{"outbox.db", buffer.OutboxFormat, buffer.StoreMarker},
	{"outbox.db.journal", buffer.OutboxJournalFormat, buffer.JournalMarker},
	{"held.db", buffer.OutboxFormat, buffer.StoreMarker},
	{"held.db.journal", buffer.OutboxJournalFormat, buffer.JournalMarker},
	{"charting.db", buffer.OutboxFormat, buffer.StoreMarker},
	{"charting.db.journal", buffer.OutboxJournalFormat, buffer.JournalMarker},
	{"seen.db", buffer.SeenFormat, buffer.StoreMarker},
	{"spool/index.db", buffer.SpoolFormat, buffer.StoreMarker}, // spool/index.journal is read as index.db's version says
	{"spool/ledger.db", gateway.LedgerFormat, buffer.StoreMarker},
	{associationsFile, bedsFormat, jsonFileMarker},
	{staysFile, staysFormat, jsonFileMarker},
	{clocksFile, clocksFormat, jsonFileMarker},
	{adtStaysFile, adtFormatV, jsonFileMarker},
}

// checkDataFormats refuses a data folder that a newer wardgate wrote: the
// first file whose marker is newer than this build reads is the error
// (naming the file, its format and this build's version), and nothing in
// dir has been changed, the lock file included. Files that are missing,
// unreadable or foreign are left to the opens that follow, which say what
// is wrong with them.
func checkDataFormats(dir string) error {
	for _, f := range dataFiles {
		path := filepath.Join(dir, filepath.FromSlash(f.name))
		if info, err := os.Stat(path); err != nil || info.Size() == 0 {
			continue
		}
		m, err := f.marker(path)
		if err != nil {
			continue
		}
		if err := withBuild(f.format.Check(path, m)); errors.Is(err, buffer.ErrNewerFormat) {
			return err
		}
	}
	return nil
}

// withBuild names this wardgate's version in a NewerFormatError.
func withBuild(err error) error {
	var newer *buffer.NewerFormatError
	if errors.As(err, &newer) {
		newer.Build = build.Version()
	}
	return err
}

// jsonMarker is the "format" of a JSON object ("" when it has none: a
// file written before markers).
func jsonMarker(b []byte) string {
	var head map[string]json.RawMessage
	if json.Unmarshal(b, &head) != nil {
		return ""
	}
	var m string
	if json.Unmarshal(head["format"], &m) != nil {
		return ""
	}
	return m
}

func jsonFileMarker(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return jsonMarker(b), nil
}

// checkJSONFormat checks the marker of the JSON file at path, read as b,
// against f.
func checkJSONFormat(path string, b []byte, f buffer.Format) error {
	return withBuild(f.Check(path, jsonMarker(b)))
}

// decodeStaysFile reads stays.json: {"format": …, "first_seen": {…}}
// (wardgate-stays/1; before markers the same without "format").
func decodeStaysFile(path string, b []byte) (map[string]time.Time, error) {
	if err := checkJSONFormat(path, b, staysFormat); err != nil {
		return nil, err
	}
	var f struct {
		FirstSeen map[string]time.Time `json:"first_seen"`
	}
	err := json.Unmarshal(b, &f)
	return f.FirstSeen, err
}

// encodeStaysFile is what decodeStaysFile reads.
func encodeStaysFile(seen map[string]time.Time) ([]byte, error) {
	return json.Marshal(struct {
		Format    string               `json:"format"`
		FirstSeen map[string]time.Time `json:"first_seen"`
	}{staysFormat.String(), seen})
}

// decodeClocksFile reads clocks.json: {"format": "wardgate-clocks/2",
// "clocks": {device: state}}; /1, before markers, was the bare map of
// device → state (a device may be called "format": its value is an
// object, never the marker's string).
func decodeClocksFile(path string, b []byte) (map[string]devices.ClockState, error) {
	if err := checkJSONFormat(path, b, clocksFormat); err != nil {
		return nil, err
	}
	var states map[string]devices.ClockState
	if jsonMarker(b) == "" {
		err := json.Unmarshal(b, &states)
		return states, err
	}
	var f struct {
		Clocks map[string]devices.ClockState `json:"clocks"`
	}
	err := json.Unmarshal(b, &f)
	return f.Clocks, err
}

// encodeClocksFile is what decodeClocksFile reads.
func encodeClocksFile(states map[string]devices.ClockState) ([]byte, error) {
	return json.MarshalIndent(struct {
		Format string                        `json:"format"`
		Clocks map[string]devices.ClockState `json:"clocks"`
	}{clocksFormat.String(), states}, "", "  ")
}
