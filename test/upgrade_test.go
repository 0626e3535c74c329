package test

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/wardgate/wardgate/edge/fhir/fhirserver"
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
charting: {chart: {continuous: each}}
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

// upgradeGateway writes the fixture's config for the data folder unpacked
// in dir, recording to a new FHIR server (which has the fixture's
// patients and bed-16's Encounter), and returns the config's path.
func upgradeGateway(t *testing.T, dir string) (cfg string, record *fhirserver.Server) {
	t.Helper()
	record = fhirserver.New()
	hs := httptest.NewServer(record)
	t.Cleanup(hs.Close)
	record.PutLocation("urn:example:beds", "bed-16", "L16")
	record.PutEncounter("enc-16", "Patient/fx-16", "in-progress", time.Time{}, time.Time{},
		fhirserver.LocationEntry{Location: "L16", Status: "active"})
	record.Put("Patient", "p-e2e", json.RawMessage(`{"resourceType":"Patient","id":"p-e2e","identifier":[{"system":"urn:oid:1.2.3.4","value":"PID-E2E"}]}`))
	putHL7Patient(record, "4711")
	// The record the fixture's gateway wrote to before it went away has
	// FX-14's Device (the Observations waiting refer to it, and the
	// gateway does not write it again).
	record.Put("Device", "fx-14", json.RawMessage(`{"resourceType":"Device","id":"fx-14","identifier":[{"system":"urn:wardgate:ward-4b:device","value":"FX-14"}]}`))
	token := filepath.Join(dir, "admin-token")
	os.WriteFile(token, []byte(fixtureToken+"\n"), 0o600)
	cfg = filepath.Join(dir, "wardgate.yaml")
	// No broker listens on the MQTT port: the monitors' readings are all
	// in the folder already.
	os.WriteFile(cfg, []byte(fixtureConfig(hs.URL, token, freePort(t), freePort(t), freePort(t))), 0o600)
	return cfg, record
}

// The data folders of the first format generation, stopped cleanly and
// killed, open with this build: what waited is delivered to the record,
// the dead letter is still one, the held frames and the study are still
// there, the manual association and the ADT feed's stay answer as before,
// and the files written again carry their markers.
func TestUpgradeOpensTheFirstFormat(t *testing.T) {
	for _, archive := range []string{"clean.tar.gz", "killed.tar.gz"} {
		t.Run(strings.TrimSuffix(archive, ".tar.gz"), func(t *testing.T) {
			dir := unpackFixture(t, filepath.Join(fixtureGen1, archive))
			cfg, record := upgradeGateway(t, dir)
			gw := Start(t, "run", "-config", cfg)
			addr := gw.WaitLog(t, statusRe, 30*time.Second)

			_, st := getJSON(t, "http://"+addr+"/api/status")
			disk := st["disk"].(map[string]any)
			if disk["spool_instances"] != float64(3) {
				t.Errorf("the spool holds %v instances, want the fixture's 3", disk["spool_instances"])
			}
			// What waited in the outbox is read (delivery may have taken
			// it already: the record is up): the open says how much.
			if !regexpMatch(`msg="outbox open" store=outbox path=\S*outbox\.db waiting=14 dead=1 `, gw.Log()) {
				t.Errorf("the outbox did not open with the fixture's 14 waiting and 1 dead letter:\n%s", gw.Log())
			}
			held := st["outbox"].(map[string]any)["held"].(map[string]any)
			if held["waiting"].(float64) < 1 {
				t.Errorf("the held frames are gone: %v", held)
			}
			beds := bedsNow(t, addr)
			if b := beds["bed-14"]; b["source"] != "manual" || b["patient"] != "Patient/fx-14" {
				t.Errorf("bed-14: %v, want the manual association with Patient/fx-14", b)
			}
			if b := beds["ICU-1"]; b["source"] != "adt" || !strings.Contains(fmt.Sprint(b["patient"]), "4711") {
				t.Errorf("ICU-1: %v, want the ADT feed's stay of 4711", b)
			}

			// What waited reaches the record: the five readings of bed-14
			// after the refused one, and the study.
			Eventually(t, 60*time.Second, func() bool {
				_, r := getJSON(t, "http://"+addr+"/readyz")
				return r["outbox"].(map[string]any)["waiting"].(float64) == 0 && record.Count("ImagingStudy") == 1
			}, func() string {
				_, r := getJSON(t, "http://"+addr+"/readyz")
				return fmt.Sprintf("outbox %v, %d ImagingStudy\n%s", r["outbox"], record.Count("ImagingStudy"), gw.Log())
			})
			ids := observationsByIdentifier(record)
			for i := 1; i <= 5; i++ {
				at := time.Date(2026, 11, 25, 8, 0, i, 0, time.UTC).Format(time.RFC3339)
				if ids["FX-14/147842/"+at] != 1 {
					t.Errorf("the heart rate of FX-14 at %s is in the record %d times, want once", at, ids["FX-14/147842/"+at])
				}
			}
			if ids[fixtureDeadHR] != 0 {
				t.Errorf("the refused Observation reached the record without a retry")
			}
			if s := imagingStudies(record); !strings.Contains(fmt.Sprint(s[0]["identifier"]), fixtureStudy) {
				t.Errorf("the ImagingStudy is not the fixture's study: %v", s[0]["identifier"])
			}
			_, dl := getJSON(t, "http://"+addr+"/api/dead-letters")
			if dl["count"] != float64(1) {
				t.Errorf("%v dead letters, want the fixture's 1", dl["count"])
			}

			gw.Cmd.Process.Signal(syscall.SIGTERM)
			if code := gw.Wait(t, 30*time.Second); code != 0 {
				t.Fatalf("exit %d after SIGTERM", code)
			}
			// Written at the stop: clocks.json, migrated to /2.
			b, _ := os.ReadFile(filepath.Join(dir, "data", "clocks.json"))
			if !strings.Contains(string(b), `"format": "wardgate-clocks/2"`) || !strings.Contains(string(b), `"FX-14"`) {
				t.Errorf("clocks.json after the stop:\n%.300s", b)
			}
		})
	}
}

// bedsNow is GET /api/beds by bed.
func bedsNow(t *testing.T, addr string) map[string]map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/api/beds", nil)
	req.Header.Set("Authorization", "Bearer "+fixtureToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct{ Beds []map[string]any }
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	for _, b := range v.Beds {
		out[fmt.Sprint(b["bed"])] = b
	}
	return out
}

// A data folder of the first generation with one file marked as a newer
// wardgate would mark it: `wardgate run` exits non-zero, says which file,
// its format and this build's, and every file of the folder (the lock file
// too) is byte for byte what it was.
func TestUpgradeRefusesANewerDataFolder(t *testing.T) {
	for _, c := range []struct {
		file, newer string
		bump        func(t *testing.T, path, newer string)
	}{
		{"outbox.db", "wardgate-outbox/2", bumpStore},
		{"held.db", "wardgate-outbox/2", bumpStore},
		{"outbox.db.journal", "wardgate-outbox-journal/2", bumpJournal},
		{"seen.db", "wardgate-seen/2", bumpStore},
		{"spool/index.db", "wardgate-spool/3", bumpStore},
		{"spool/ledger.db", "wardgate-dicom-ledger/2", bumpStore},
		{"beds.json", "wardgate-beds/2", bumpJSON},
		{"stays.json", "wardgate-stays/2", bumpJSON},
		{"clocks.json", "wardgate-clocks/3", bumpJSON},
		{"adt-stays.json", "wardgate-adt/2", bumpJSON},
	} {
		t.Run(c.file, func(t *testing.T) {
			dir := unpackFixture(t, filepath.Join(fixtureGen1, "clean.tar.gz"))
			cfg, _ := upgradeGateway(t, dir)
			path := filepath.Join(dir, "data", filepath.FromSlash(c.file))
			c.bump(t, path, c.newer)
			before := treeSums(t, filepath.Join(dir, "data"))
			res := Run(t, "run", "-config", cfg)
			if res.Code == 0 {
				t.Fatalf("wardgate run exited 0 on a folder with a newer %s:\n%s", c.file, res.Stderr)
			}
			for _, want := range []string{path + " was written by a newer wardgate (" + c.newer + "); this is wardgate ",
				"which reads up to /", "run the newer wardgate or restore a backup"} {
				if !strings.Contains(res.Stderr, want) {
					t.Errorf("the refusal does not say %q:\n%s", want, res.Stderr)
				}
			}
			after := treeSums(t, filepath.Join(dir, "data"))
			if !reflect.DeepEqual(before, after) {
				for p, s := range after {
					if before[p] != s {
						t.Errorf("%s changed", p)
					}
				}
				if len(before) != len(after) {
					t.Errorf("%d files before, %d after", len(before), len(after))
				}
			}
		})
	}
}

func bumpStore(t *testing.T, path, newer string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("wardgate"))
		if err != nil {
			return err
		}
		return b.Put([]byte("format"), []byte(newer))
	}); err != nil {
		t.Fatal(err)
	}
}

func bumpJournal(t *testing.T, path, newer string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte(newer+"\n"), 0); err != nil {
		t.Fatal(err)
	}
}

func bumpJSON(t *testing.T, path, newer string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	v["format"] = newer // clocks.json of /1 is a map of devices: still a newer marker
	b, _ = json.Marshal(v)
	os.WriteFile(path, b, 0o600)
}

// treeSums is every file under dir with the SHA-256 of its bytes.
func treeSums(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	sums := map[string][32]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		sums[p] = sha256.Sum256(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return sums
}
