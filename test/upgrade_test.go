package test

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The data folders of test/testdata/datadir-gen1 were written by the
// release before the data folder's files all carried a format version
// (made by TestMakeDatadirFixture, make_datadir_fixture_test.go). What they
// hold, and what the tests below expect of them:
const (
	fixtureToken  = "fx0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"
	fixtureDeadHR = "FX-14/147842/2026-11-25T08:00:00Z" // the Observation the record refused: a dead letter
	fixtureStudy  = "1.2.826.0.1.3680043.10.1234.77"    // three instances in the spool, handed over
	fixtureGen1   = "testdata/datadir-gen1"
)

// fixtureConfig is the config the fixture was made with (and is opened
// with): four MQTT monitors (bed-14 associated by hand with Patient/fx-14,
// bed-15 with nobody, ICU-1 placed by the ADT feed, bed-16 by an Encounter
// without a start), the ADT feed, and a DICOM node.
func fixtureConfig(fhirURL, token string, mqttPort, adtPort, dicomPort int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `site: ward-4b
data_dir: data
http: {listen: 127.0.0.1:0, admin_token_file: %s}
fhir:
  base_url: %s
  patient_identifier_system: urn:oid:1.2.3.4
monitors:
`, token, fhirURL)
	for _, m := range []struct{ id, bed, topic string }{
		{"bed-14-monitor", "bed-14", "fx/bed-14"}, {"bed-15-monitor", "bed-15", "fx/bed-15"},
		{"icu-1-monitor", "ICU-1", "fx/icu-1"}, {"bed-16-monitor", "bed-16", "fx/bed-16"},
	} {
		fmt.Fprintf(&b, "  - {id: %s, location: %s, profile: generic/json, mqtt: {broker: \"tcp://127.0.0.1:%d\", topic: %s, client_id: wg-%s}}\n",
			m.id, m.bed, mqttPort, m.topic, m.id)
	}
	fmt.Fprintf(&b, `patients:
  encounter_lookup: {location_system: "urn:example:beds", refresh: 1s}
  adt: {listen: "127.0.0.1:%d", allow_any: true, time_zone: UTC, assigning_authority: HOSP, bed: "{point_of_care}-{bed}"}
dicom:
  listen: 127.0.0.1:%d
  ae_title: WARDGATE
  allow_any: true
  study_stable_after: 1s
`, adtPort, dicomPort)
	return b.String()
}

// unpackFixture unpacks a fixture's tar.gz into a new folder and returns
// it (the data folder is its "data").
func unpackFixture(t *testing.T, archive string) string {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatalf("the fixture %s: %v", archive, err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return dir
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(p, dir+string(filepath.Separator)) {
			t.Fatalf("%s: %s is outside the folder", archive, h.Name)
		}
		if h.Typeflag == tar.TypeDir {
			os.MkdirAll(p, 0o700)
			continue
		}
		os.MkdirAll(filepath.Dir(p), 0o700)
		w, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(w, tr); err != nil {
			t.Fatal(err)
		}
		w.Close()
	}
}

// findNumber is the first number under key anywhere in v (0 if none).
func findNumber(v any, key string) float64 {
	switch x := v.(type) {
	case map[string]any:
		if n, ok := x[key].(float64); ok {
			return n
		}
		for _, e := range x {
			if n := findNumber(e, key); n != 0 {
				return n
			}
		}
	case []any:
		for _, e := range x {
			if n := findNumber(e, key); n != 0 {
				return n
			}
		}
	}
	return 0
}
