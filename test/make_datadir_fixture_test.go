//go:build fixture

package test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices/hl7"
	"github.com/wardgate/wardgate/edge/fhir/fhirserver"
)

// TestMakeDatadirFixture writes the data folders that TestUpgrade* open:
// the real gateway, run as its own process, fills a data folder with a bit
// of everything it keeps (see test/testdata/datadir-gen1/README.md) and
// is stopped with SIGTERM (clean.tar.gz); a copy is then run again, given
// more readings and killed with SIGKILL (killed.tar.gz), so that its
// journals hold records not yet applied. The fixture is the format of the
// release it was made with: make it again only to add a generation (in a
// folder of its own), never to refresh one.
//
//	go test -tags fixture -count=1 -run TestMakeDatadirFixture ./test/ -args -fixture-out testdata/datadir-gen2
func TestMakeDatadirFixture(t *testing.T) {
	out := fixtureOut
	if out == "" {
		t.Fatal("-fixture-out FOLDER is required (for example testdata/datadir-gen2): a generation's fixture is never overwritten")
	}
	if _, err := os.Stat(filepath.Join(out, "clean.tar.gz")); err == nil {
		t.Fatalf("%s already holds a fixture: a generation is kept as it was made", out)
	}
	RequirePeers(t, "mosquitto", "mosquitto_pub", "storescu")
	dir := t.TempDir()
	mport, adtPort, dport := freePort(t), freePort(t), freePort(t)
	broker := startMosquitto(t, dir, mport)
	token := filepath.Join(dir, "admin-token")
	os.WriteFile(token, []byte(fixtureToken+"\n"), 0o600)

	record := fhirserver.New()
	// down makes the record unreachable: every connection is closed unanswered.
	var down atomic.Bool
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
				c.Close()
			}
			return
		}
		record.ServeHTTP(w, r)
	}))
	// bed-16's Encounter has no start: the gateway keeps when it first saw
	// it (stays.json).
	record.PutLocation("urn:example:beds", "bed-16", "L16")
	record.PutEncounter("enc-16", "Patient/fx-16", "in-progress", time.Time{}, time.Time{},
		fhirserver.LocationEntry{Location: "L16", Status: "active"})
	record.Put("Patient", "p-e2e", json.RawMessage(`{"resourceType":"Patient","id":"p-e2e","identifier":[{"system":"urn:oid:1.2.3.4","value":"PID-E2E"}]}`))
	record.SetFaults(fhirserver.Faults{Reject: fixtureDeadHR})

	cfg := filepath.Join(dir, "wardgate.yaml")
	os.WriteFile(cfg, []byte(fixtureConfig(hs.URL, token, mport, adtPort, dport)), 0o600)
	data := filepath.Join(dir, "data")

	gw := Start(t, "run", "-config", cfg)
	addr := gw.WaitLog(t, statusRe, 30*time.Second)
	gw.WaitLogCount(t, `subscribed; waiting for messages`, 4, 30*time.Second)

	// The manual association of bed-14, from before its readings.
	putBed(t, addr, "bed-14", `{"patient":"Patient/fx-14","since":"2026-11-25T07:00:00Z","by":"fixture"}`)
	// One Observation the record refuses: a dead letter.
	broker.publish("fx/bed-14", []string{vitals("FX-14", 0)})
	Eventually(t, 30*time.Second, func() bool {
		_, v := getJSON(t, "http://"+addr+"/api/dead-letters")
		return v["count"] == float64(1)
	}, func() string { _, v := getJSON(t, "http://"+addr+"/api/dead-letters"); return fmt.Sprint(v) + gw.Log() })
	// bed-16's first sighting is kept.
	broker.publish("fx/bed-16", []string{vitalsAt("FX-16", time.Now(), 70, 95)})
	Eventually(t, 30*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(data, "stays.json"))
		return err == nil
	}, func() string { return "no stays.json\n" + gw.Log() })

	// A study: its patient is found, it is handed over (the ledger marks
	// it), and the record never answers its ImagingStudy.
	record.SetFaults(fhirserver.Faults{Reject: fixtureDeadHR, Hang: time.Hour, HangOnly: "ImagingStudy"})
	files := studyFiles(t, fixtureStudy, 3, 4, 4)
	send := exec.Command(Binary(t), append([]string{"send", "-aec", "WARDGATE", fmt.Sprintf("127.0.0.1:%d", dport)}, files...)...)
	if b, err := send.CombinedOutput(); err != nil {
		t.Fatalf("wardgate send: %v\n%s", err, b)
	}
	Eventually(t, 30*time.Second, func() bool {
		_, v := getJSON(t, "http://"+addr+"/api/status")
		return findNumber(v, "studies_handed_over") >= 1
	}, func() string { return "the study was not handed over\n" + gw.Log() })

	// The record goes away: what comes now waits.
	down.Store(true)
	var msgs []string
	for i := 1; i <= 5; i++ {
		msgs = append(msgs, vitals("FX-14", i))
	}
	broker.publish("fx/bed-14", msgs)
	broker.publish("fx/bed-15", []string{vitalsAt("FX-15", time.Now(), 80, 96)}) // nobody in bed-15: held
	sendADT(t, adtPort, "FX1", "A01", time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC), "4711", "ICU-1")
	broker.publish("fx/icu-1", []string{vitalsAt("FX-ICU1", time.Now(), 75, 97)})
	time.Sleep(3 * time.Second) // held frames looked at, clocks saved
	gw.Cmd.Process.Signal(syscall.SIGTERM)
	if code := gw.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	t.Logf("clean stop:\n%s", gw.Log())
	os.MkdirAll(out, 0o755)
	writeTarGz(t, data, filepath.Join(out, "clean.tar.gz"))

	// Again, killed: readings acknowledged just before the SIGKILL wait in
	// the outbox's journal, not yet in outbox.db.
	again := Start(t, "run", "-config", cfg)
	again.WaitLogCount(t, `subscribed; waiting for messages`, 4, 30*time.Second)
	msgs = msgs[:0]
	for i := 6; i <= 9; i++ {
		msgs = append(msgs, vitals("FX-14", i))
	}
	broker.publish("fx/bed-14", msgs)
	time.Sleep(150 * time.Millisecond) // arrived and journalled, perhaps not yet checkpointed
	again.Cmd.Process.Signal(syscall.SIGKILL)
	again.Wait(t, 30*time.Second)
	writeTarGz(t, data, filepath.Join(out, "killed.tar.gz"))
}

var fixtureOut string

func init() {
	flag.StringVar(&fixtureOut, "fixture-out", "", "TestMakeDatadirFixture: the folder to write the fixture into")
}

func putBed(t *testing.T, addr, bed, body string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, "http://"+addr+"/api/beds/"+bed, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+fixtureToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT /api/beds/%s: %d %s", bed, resp.StatusCode, b)
	}
}

// sendADT sends one ADT event (trigger, at) placing mrn in bed over MLLP
// and waits for its AA.
func sendADT(t *testing.T, port int, id, trigger string, at time.Time, mrn, bed string) {
	t.Helper()
	b := hl7.NewBuilder(hl7.DefaultDelimiters)
	b.MSH("FXADT", "GENHOSP", "WARDGATE", "WARD4B", time.Now().UTC().Format("20060102150405-0700"), "", b.Comps("ADT", trigger), id, "P", "2.5")
	b.Segment("EVN", trigger, "", "", "", "", at.UTC().Format("20060102150405-0700"))
	poc, n, _ := strings.Cut(bed, "-")
	b.Segment("PID", "1", "", b.Comps(mrn, "", "", "HOSP", "MR"))
	b.Segment("PV1", "1", "I", b.Comps(poc, "", n))
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if code, _ := mllpSend(t, c, hl7.NewReader(c, hl7.DefaultMaxBytes), b.Bytes()); code != "AA" {
		t.Fatalf("ADT %s answered %s", trigger, code)
	}
}

// writeTarGz packs dir (its files under "data/") into path.
func writeTarGz(t *testing.T, dir, path string) {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	tw := tar.NewWriter(zw)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		h, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(filepath.Join("data", rel))
		if d.IsDir() {
			h.Name += "/"
		}
		h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(h); err != nil || d.IsDir() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = zw.Close()
	}
	if err == nil {
		err = os.WriteFile(path, buf.Bytes(), 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
}
