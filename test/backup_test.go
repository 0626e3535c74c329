package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices/sim/hl7sim"
	"github.com/wardgate/wardgate/edge"
	"github.com/wardgate/wardgate/edge/fhir/fhirserver"
)

// Issue 15: `wardgate backup -config FILE DIR` makes a consistent copy of
// the data folder while the gateway runs. Proven by restoring it: a gateway
// whose record and PACS were down takes in PCD-01 results and a CT study,
// the backup is taken while results keep arriving and a second study is
// being received, the gateway is SIGKILLed; a gateway started on the copy,
// with the record and the PACS up, charts every reading of every message
// acknowledged before the backup began, exactly once, and forwards every
// instance acknowledged before it, byte for byte, with its ImagingStudy.
// Then the same for a backup of the killed gateway's folder, taken with
// no gateway running: it holds everything acknowledged before the kill.
func TestBackupOfARunningGatewayRestores(t *testing.T) {
	RequirePeers(t, "storescu", "storescp")
	dir := t.TempDir()
	hl7Port, dicomPort, pacsPort := freePort(t), freePort(t), freePort(t)
	token := filepath.Join(dir, "admin-token")
	os.WriteFile(token, []byte(strings.Repeat("7f", 32)+"\n"), 0o600)
	// The first record is down for the whole first life of the gateway:
	// everything waits in its outbox and spool.
	down := fhirserver.New()
	down.SetFaults(fhirserver.Faults{Status: 503})
	hsDown := httptest.NewServer(down)
	t.Cleanup(hsDown.Close)
	config := func(dataDir, fhirURL, httpListen string) string {
		p := filepath.Join(dir, fmt.Sprintf("wardgate-%d.yaml", time.Now().UnixNano()))
		body := fmt.Sprintf(`site: ward-4b
data_dir: %s
charting: {chart: {continuous: each}}
http: {listen: %q, admin_token_file: %s}
fhir:
  base_url: %s
  patient_identifier_system: urn:oid:1.2.3.4
%s
dicom:
  listen: 127.0.0.1:%d
  ae_title: WARDGATE
  allow_any: true
  forward: [{ae_title: PACS, host: 127.0.0.1, port: %d}]
  study_stable_after: 1s
`, dataDir, httpListen, token, fhirURL, hl7Config(hl7Port), dicomPort, pacsPort)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	dataDir := filepath.Join(dir, "data")
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := config(dataDir, hsDown.URL, httpAddr)
	gw := Start(t, "run", "-config", cfg)
	gw.WaitLog(t, `hl7 listening`, 30*time.Second)
	gw.WaitLog(t, `dicom listening`, 30*time.Second)

	// A central station streams results, one per bed per second (not
	// before their time, as a station sends what it measured), each
	// waiting for its AA.
	st, err := hl7sim.New(hl7sim.Config{Beds: 100, Ward: "WARDB", Application: "CENTRALB", Authority: "HOSP", Seed: 1501, RunID: "BKP"})
	if err != nil {
		t.Fatal(err)
	}
	st.Occupy()
	var (
		mu       sync.Mutex
		messages []*hl7Message
		acked    atomic.Int64
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := &hl7sim.Client{Addr: fmt.Sprintf("127.0.0.1:%d", hl7Port), Connections: 1,
		AckTimeout: 20 * time.Second, MinBackoff: 20 * time.Millisecond, MaxBackoff: 300 * time.Millisecond}
	defer client.Close()
	streamDone := make(chan struct{})
	go func() {
		defer close(streamDone)
		start := time.Now().Truncate(time.Second)
		for c := 0; ctx.Err() == nil; c++ {
			at := start.Add(time.Duration(c) * time.Second)
			select {
			case <-time.After(time.Until(at)):
			case <-ctx.Done():
				return
			}
			for _, m := range st.Results(at) {
				msg := &hl7Message{id: m.ControlID, bytes: m.Bytes, keys: hl7ReadingKeys(t, m.Bytes), sendStart: time.Now()}
				if err := client.Send(ctx, m.Bytes); err != nil {
					return
				}
				msg.acked = time.Now()
				mu.Lock()
				messages = append(messages, msg)
				mu.Unlock()
				acked.Add(1)
			}
		}
	}()

	// Study A is stored whole before the backup; study B is being received
	// while it is taken.
	storescu := func(files []string) *syncBuffer {
		args := append([]string{"-v", "-xi", "-aet", "MODALITY", "-aec", "WARDGATE", "127.0.0.1", strconv.Itoa(dicomPort)}, files...)
		cmd := dcmtkCmd("storescu", args...)
		var out syncBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Errorf("storescu: %v\n%s", err, out.String())
		}
		return &out
	}
	studyA := studyFiles(t, "1.2.826.0.1.3680043.2.1125.151", 60, 128, 128)
	if got := acknowledged(storescu(studyA).String()); len(got) != len(studyA) {
		t.Fatalf("storescu saw %d of %d of study A acknowledged", len(got), len(studyA))
	}
	studyB := studyFiles(t, "1.2.826.0.1.3680043.2.1125.152", 400, 128, 128)
	var outB *syncBuffer
	bDone := make(chan struct{})
	go func() { defer close(bDone); outB = storescu(studyB) }()
	Eventually(t, 60*time.Second, func() bool { return acked.Load() >= 400 },
		func() string { return fmt.Sprintf("%d results acknowledged\n%s", acked.Load(), gw.Log()) })

	backupStart := time.Now()
	backupDir := filepath.Join(dir, "backup-running")
	res := Run(t, "backup", "-config", cfg, backupDir)
	if res.Code != 0 || !strings.Contains(res.Stdout, "running gateway") {
		t.Fatalf("backup: exit %d\n%s%s\nwardgate log:\n%s", res.Code, res.Stdout, res.Stderr, gw.Log())
	}
	t.Logf("%s", strings.TrimSpace(res.Stdout))
	<-bDone
	time.Sleep(300 * time.Millisecond) // some more results after the backup
	cancel()
	<-streamDone
	gw.Cmd.Process.Signal(syscall.SIGKILL)
	gw.Wait(t, 30*time.Second)
	killedAt := time.Now()
	if !strings.Contains(gw.Log(), "backup made") {
		t.Fatalf("the gateway did not log the backup\n%s", gw.Log())
	}
	if strings.Contains(res.Stdout+res.Stderr+gw.Log(), "MRN") {
		t.Fatal("a record number in the backup's output or log")
	}

	// What each copy must hold: the readings of every result, and every
	// instance, acknowledged before its moment.
	before := func(moment time.Time) (map[string]bool, int) {
		want := map[string]bool{}
		n := 0
		mu.Lock()
		defer mu.Unlock()
		for _, m := range messages {
			if m.acked.Before(moment) {
				n++
				for _, k := range m.keys {
					want[k] = true
				}
			}
		}
		return want, n
	}
	ackedB := acknowledged(outB.String())

	restore := func(name, from string, moment time.Time, instances []string) {
		t.Helper()
		record := fhirserver.New()
		hs := httptest.NewServer(record)
		defer hs.Close()
		for b := 1; b <= st.Beds(); b++ {
			putHL7Patient(record, st.Patient(b))
		}
		record.Put("Patient", "p-e2e", json.RawMessage(`{"resourceType":"Patient","id":"p-e2e","identifier":[{"system":"urn:oid:1.2.3.4","value":"PID-E2E"}]}`))
		pacsDir := t.TempDir()
		pacsPort2 := freePort(t)
		startStorescp(t, pacsPort2, pacsDir)
		c := config(from, hs.URL, "127.0.0.1:0")
		b, _ := os.ReadFile(c)
		os.WriteFile(c, []byte(strings.Replace(string(b), fmt.Sprintf("port: %d}", pacsPort), fmt.Sprintf("port: %d}", pacsPort2), 1)), 0o600)
		p := Start(t, "run", "-config", c)
		addr := p.WaitLog(t, statusRe, 30*time.Second)
		want, n := before(moment)
		st := waitHL7Drained(t, p, addr, record, 90*time.Second)
		if st.Outbox.DeadLetters != 0 {
			t.Fatalf("%s: %d dead letters: %+v", name, st.Outbox.DeadLetters, st.Outbox.RecentDeadLetters)
		}
		// Every reading acknowledged before the moment, each once; results
		// acknowledged after it may be there too, also once.
		byKey := map[string]map[string]bool{}
		for _, r := range hl7Charted(t, record) {
			if byKey[r.key] == nil {
				byKey[r.key] = map[string]bool{}
			}
			byKey[r.key][r.identifier] = true
		}
		var missing []string
		for k := range want {
			if len(byKey[k]) == 0 {
				missing = append(missing, k)
			}
		}
		for k, ids := range byKey {
			if len(ids) > 1 {
				t.Fatalf("%s: %s charted as %d Observations", name, k, len(ids))
			}
		}
		if len(missing) > 0 {
			t.Fatalf("%s: %d of %d readings acknowledged before the copy are not in the record; the first: %v\n%s",
				name, len(missing), len(want), missing[:min(5, len(missing))], p.Log())
		}
		if got := record.Count("Observation"); got != len(byKey) {
			t.Fatalf("%s: %d Observations for %d readings", name, got, len(byKey))
		}
		present := func() int {
			k := 0
			for _, f := range instances {
				if _, err := os.Stat(filepath.Join(pacsDir, "CT."+sopOf(t, f))); err == nil {
					k++
				}
			}
			return k
		}
		Eventually(t, 60*time.Second, func() bool { return present() == len(instances) },
			func() string {
				return fmt.Sprintf("%s: %d of %d instances acknowledged before the copy at the PACS\n%s", name, present(), len(instances), p.Log())
			})
		for _, f := range instances {
			if string(dataSet(t, filepath.Join(pacsDir, "CT."+sopOf(t, f)))) != string(dataSet(t, f)) {
				t.Fatalf("%s: %s reached the PACS with other bytes", name, f)
			}
		}
		Eventually(t, 30*time.Second, func() bool {
			for _, s := range imagingStudies(record) {
				if s["numberOfInstances"] == float64(len(studyA)) {
					return true
				}
			}
			return false
		}, func() string {
			return fmt.Sprintf("%s: study A is not in the record whole: %d ImagingStudies", name, len(imagingStudies(record)))
		})
		t.Logf("%s: %d results (%d readings) acknowledged before the copy, %d Observations charted; %d instances at the PACS",
			name, n, len(want), record.Count("Observation"), present())
		p.Cmd.Process.Signal(syscall.SIGTERM)
		if code := p.Wait(t, 30*time.Second); code != 0 {
			t.Fatalf("%s: exit %d\n%s", name, code, p.Log())
		}
	}

	// The manifest lists what arrived.
	var m edge.BackupManifest
	b, err := os.ReadFile(filepath.Join(backupDir, edge.BackupManifestName))
	if err != nil || json.Unmarshal(b, &m) != nil || !m.Running || m.Site != "ward-4b" || len(m.Files) < 5 {
		t.Fatalf("the manifest: %v %+v", err, m)
	}

	// The backup of the stopped (killed) gateway's folder, before the
	// running copy's restore starts another gateway anywhere.
	stoppedDir := filepath.Join(dir, "backup-stopped")
	res = Run(t, "backup", "-config", cfg, stoppedDir)
	if res.Code != 0 || !strings.Contains(res.Stdout, "stopped gateway") {
		t.Fatalf("backup of the stopped gateway: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	// Into a folder that is not empty: refused, nothing written.
	if res := Run(t, "backup", "-config", cfg, stoppedDir); res.Code != 2 || !strings.Contains(res.Stderr, "not empty") {
		t.Fatalf("backup into a folder that is not empty: exit %d\n%s", res.Code, res.Stderr)
	}

	restore("the running gateway's copy", backupDir, backupStart, studyA)
	restore("the stopped gateway's copy", stoppedDir, killedAt, append(append([]string{}, studyA...), ackedB...))
}

// A backup of a running gateway needs the admin token: without
// http.admin_token_file the command says so, and with a wrong token the
// gateway refuses; no partial copy is called a backup.
func TestBackupOfARunningGatewayNeedsTheToken(t *testing.T) {
	_, cfg, _ := recordWith(t, "")
	gw := Start(t, "run", "-config", cfg)
	gw.WaitLog(t, statusRe, 30*time.Second)
	res := Run(t, "backup", "-config", cfg, filepath.Join(t.TempDir(), "b"))
	if res.Code != 1 || !strings.Contains(res.Stderr, "needs http.admin_token_file") {
		t.Fatalf("backup without a token configured: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
}
