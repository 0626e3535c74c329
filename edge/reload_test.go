package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/wardgate/wardgate/edge/config"
	"github.com/wardgate/wardgate/edge/fhir/fhirserver"
)

// Reload (SIGHUP) against a running gateway: what changes live, what is
// refused whole, and monitors added, removed and changed while another
// keeps publishing. The binary's SIGHUP is test/reload_test.go.

// reloadWith rewrites the config of a gateway started by operatorGateway
// in dir with body in place of its own, and loads it.
func reloadWith(t *testing.T, dir, body string) *config.Config {
	t.Helper()
	path := filepath.Join(dir, "wardgate.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfterN(string(b), "\n", 6) // site, data_dir, charting, http, fhir, the body
	os.WriteFile(path, []byte(strings.Join(lines[:5], "")+body), 0o600)
	cfg, _, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestReloadRefusesKeysThatNeedARestartAndChangesNothing(t *testing.T) {
	dir := t.TempDir()
	record := fhirserver.New()
	base := "patients:\n  static: {bed-1: Patient/one}\n"
	g, _, _ := operatorGateway(t, dir, record, "", base)
	for _, c := range []struct {
		name, body string
		keys       []string
	}{
		{"buffer quota", "buffer: {outbox_quota: 2GiB}\n", []string{"buffer.outbox_quota"}},
		{"a DICOM node", "dicom: {ae_title: WARDGATE, allow_any: true, listen: '127.0.0.1:0'}\n", []string{"dicom"}},
		{"an HL7 listener and the log format", "hl7: {listen: '127.0.0.1:0', allow_any: true}\nlog: {format: json}\n", []string{"hl7", "log.format"}},
		{"a forward destination", "dicom: {ae_title: WARDGATE, allow_any: true, listen: '127.0.0.1:0', forward: [{ae_title: PACS, host: 127.0.0.1, port: 104}]}\n", []string{"dicom"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			// The live change beside it (bed-1's patient) is not made either.
			cfg := reloadWith(t, dir, strings.Replace(base, "Patient/one", "Patient/two", 1)+c.body)
			changes, err := g.Reload(cfg)
			var restart *RestartNeeded
			if !errors.As(err, &restart) {
				t.Fatalf("Reload: %v, changes %v; want a refusal naming %v", err, changes, c.keys)
			}
			if !slices.Equal(restart.Keys, c.keys) || len(changes) > 0 {
				t.Fatalf("refused for %v with changes %v; want %v and none", restart.Keys, changes, c.keys)
			}
			for _, k := range c.keys {
				if !strings.Contains(err.Error(), k) {
					t.Fatalf("the message does not name %s: %v", k, err)
				}
			}
			if ref, _ := g.beds.staticPatient("bed-1"); ref != "Patient/one" {
				t.Fatalf("bed-1 is %s after a refused reload, want Patient/one", ref)
			}
		})
	}
	// A hold longer than the manual associations are kept (24 h, as
	// started with 1 h).
	_, err := g.Reload(reloadWith(t, dir, base+"  hold_unassociated: 30h\n"))
	var restart *RestartNeeded
	if !errors.As(err, &restart) || !slices.Equal(restart.Keys, []string{"patients.hold_unassociated"}) {
		t.Fatalf("hold_unassociated 30h: %v", err)
	}
	// site and data_dir are in the part reloadWith keeps: change them here.
	cfg := reloadWith(t, dir, base)
	cfg.Site, cfg.DataDir = "ward-5", filepath.Join(dir, "elsewhere")
	_, err = g.Reload(cfg)
	if !errors.As(err, &restart) || !slices.Equal(restart.Keys, []string{"site", "data_dir"}) {
		t.Fatalf("site and data_dir changed: %v", err)
	}
}

// Forward destinations change live: one added is started (and on the
// page), one whose entry changed is started again, one removed is stopped.
// (An entry whose files cannot be read is refused by config.Load, as by
// check: the reload changes nothing.)
func TestReloadChangesForwardDestinations(t *testing.T) {
	dir := t.TempDir()
	dicom := "dicom: {ae_title: WARDGATE, allow_any: true, listen: '127.0.0.1:0'}\n"
	g, _, _ := operatorGateway(t, dir, fhirserver.New(), "", dicom)
	forwarders := func() []string {
		g.mu.Lock()
		node := g.dicom
		g.mu.Unlock()
		var out []string
		for _, f := range node.Forwarders() {
			out = append(out, f.Dest.LedgerName())
		}
		return out
	}
	with := func(forward string) *config.Config {
		return reloadWith(t, dir, strings.Replace(dicom, "}", ", forward: ["+forward+"]}", 1))
	}
	changes, err := g.Reload(with("{ae_title: PACS, host: 127.0.0.1, port: 104}"))
	if err != nil || !slices.Equal(changes, []string{"dicom.forward: PACS@127.0.0.1:104 added"}) {
		t.Fatalf("a destination added: %q, %v", changes, err)
	}
	if got := forwarders(); !slices.Equal(got, []string{"PACS@127.0.0.1:104"}) {
		t.Fatalf("forwarders %q", got)
	}
	if st := g.snapshot(); st.DICOM == nil || len(st.DICOM.Destinations) != 1 {
		t.Fatalf("the page does not show the new destination: %+v", st.DICOM)
	}

	// The same destination with other settings: started again.
	changes, err = g.Reload(with("{ae_title: PACS, host: 127.0.0.1, port: 104, tls: {}}"))
	if err != nil || !slices.Equal(changes, []string{"dicom.forward: PACS@127.0.0.1:104 changed: restarted"}) {
		t.Fatalf("a destination changed: %q, %v", changes, err)
	}
	changes, err = g.Reload(reloadWith(t, dir, dicom))
	if err != nil || !slices.Equal(changes, []string{"dicom.forward: PACS@127.0.0.1:104 removed"}) {
		t.Fatalf("a destination removed: %q, %v", changes, err)
	}
	if got := forwarders(); len(got) != 0 {
		t.Fatalf("forwarders after the removal %q", got)
	}
}

func TestReloadSwapsStaticPatientsHoldAndLogLevelWhileResolving(t *testing.T) {
	dir := t.TempDir()
	record := fhirserver.New()
	g, _, _ := operatorGateway(t, dir, record, "", "patients: {static: {bed-1: Patient/one, bed-2: Patient/two}}\n")
	// Without a level to set, log.level needs a restart.
	_, err := g.Reload(reloadWith(t, dir, "log: {level: debug}\n"))
	var restart *RestartNeeded
	if !errors.As(err, &restart) || !slices.Equal(restart.Keys, []string{"log.level"}) {
		t.Fatalf("log.level without a LevelVar: %v", err)
	}
	level := new(slog.LevelVar)
	g.LogLevel = level

	// Readings are placed while the map is swapped (go test -race).
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				a := g.beds.resolve(ctx, "bed-1", time.Now(), cachedOnly)
				if a.verdict == occupied && a.patient != "Patient/one" && a.patient != "Patient/three" {
					t.Errorf("bed-1 resolved to %s", a.patient)
				}
				g.beds.staticBeds()
			}
		}()
	}
	changes, err := g.Reload(reloadWith(t, dir, `patients:
  static: {bed-1: Patient/three, bed-3: Patient/four}
  hold_unassociated: 10m
log: {level: debug}
`))
	cancel()
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"patients.static: bed(s) bed-3 added",
		"patients.static: bed(s) bed-2 removed",
		"patients.static: bed(s) bed-1 given another patient",
		"patients.hold_unassociated: 10m0s (was 1h0m0s)",
		"log.level: debug (was info)",
	}
	if !slices.Equal(changes, want) {
		t.Fatalf("changes:\n%s\nwant:\n%s", strings.Join(changes, "\n"), strings.Join(want, "\n"))
	}
	for bed, want := range map[string]string{"bed-1": "Patient/three", "bed-2": "", "bed-3": "Patient/four"} {
		if ref, _ := g.beds.staticPatient(bed); ref != want {
			t.Errorf("%s is %q, want %q", bed, ref, want)
		}
	}
	if strings.Contains(strings.Join(changes, " "), "Patient/") {
		t.Error("a change names a patient")
	}
	if g.holdUnassociated() != 10*time.Minute || level.Level() != slog.LevelDebug {
		t.Fatalf("hold %v, level %v", g.holdUnassociated(), level.Level())
	}
	// The same file again: nothing to do.
	if changes, err := g.Reload(reloadWith(t, dir, `patients:
  static: {bed-1: Patient/three, bed-3: Patient/four}
  hold_unassociated: 10m
log: {level: debug}
`)); err != nil || len(changes) != 0 {
		t.Fatalf("the same config again: %v %v", changes, err)
	}
}

// embeddedBroker is an in-process MQTT broker (mochi, as `demo` uses)
// with a client of its own to publish.
type embeddedBroker struct {
	*mochi.Server
	addr string
}

func startEmbeddedBroker(t *testing.T) *embeddedBroker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := mochi.New(&mochi.Options{InlineClient: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	s.AddHook(new(auth.AllowHook), nil)
	if err := s.AddListener(listeners.NewTCP(listeners.Config{ID: "t", Address: addr})); err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() { s.Close() })
	return &embeddedBroker{Server: s, addr: addr}
}

// subscribed tells whether a client (or its persistent session) is
// subscribed to topic: a message published then is queued for it.
func (b *embeddedBroker) subscribed(topic string) bool {
	return len(b.Topics.Subscribers(topic).Subscriptions) > 0
}

// vitalsAt is a generic/json message of device with a heart rate at
// second i (its Observation is named device/code/time: one per i).
func vitalsAt(device string, i int) []byte {
	return fmt.Appendf(nil, `{"device":{"id":%q},"time":%q,"observations":[{"code":"MDC_ECG_HEART_RATE","value":%d,"unit":"MDC_DIM_BEAT_PER_MIN"}]}`,
		device, vitalsTime(i), 60+i%50)
}

var vitalsBase = time.Now().Add(-time.Hour).Truncate(time.Hour).UTC()

func vitalsTime(i int) string {
	return vitalsBase.Add(time.Duration(i) * time.Second).Format(time.RFC3339Nano)
}

// observationsOf counts the record's Observations of each device.
func observationsOf(record *fhirserver.Server) map[string]int {
	n := map[string]int{}
	for _, raw := range record.Resources("Observation") {
		var o struct{ Identifier []struct{ Value string } }
		json.Unmarshal(raw, &o)
		if len(o.Identifier) > 0 {
			dev, _, _ := strings.Cut(o.Identifier[0].Value, "/")
			n[dev]++
		}
	}
	return n
}

func mqttMonitor(id, bed, broker, topic string) string {
	return fmt.Sprintf("  - {id: %s, location: %s, profile: generic/json, mqtt: {broker: \"tcp://%s\", topic: %s}}\n", id, bed, broker, topic)
}

func TestReloadAddsRemovesAndRestartsMonitorsWithoutDroppingTheOthers(t *testing.T) {
	dir := t.TempDir()
	record := fhirserver.New()
	broker := startEmbeddedBroker(t)
	patients := "patients: {static: {bed-1: Patient/one, bed-2: Patient/two, bed-3: Patient/three}}\n"
	one := mqttMonitor("mon-a", "bed-1", broker.addr, "ward/bed-1")
	g, _, _ := operatorGateway(t, dir, record, "", "monitors:\n"+one+patients)
	waitFor(t, "mon-a subscribed", func() bool { return broker.subscribed("ward/bed-1") })

	// mon-a publishes throughout, at a steady rate.
	ctx, cancel := context.WithCancel(context.Background())
	sent := make(chan int, 1)
	go func() {
		i := 0
		defer func() { sent <- i }()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for ; ctx.Err() == nil; i++ {
			broker.Publish("ward/bed-1", vitalsAt("MON-A", i), false, 1)
			<-tick.C
		}
	}()
	time.Sleep(200 * time.Millisecond)

	// Added: started, on the page, its readings charted.
	two := mqttMonitor("mon-b", "bed-2", broker.addr, "ward/bed-2")
	changes, err := g.Reload(reloadWith(t, dir, "monitors:\n"+one+two+patients))
	if err != nil || !slices.Equal(changes, []string{"monitor mon-b added"}) {
		t.Fatalf("adding mon-b: %v %v", changes, err)
	}
	if st := g.MonitorStatus(); len(st) != 2 || st[1].ID != "mon-b" {
		t.Fatalf("the page shows %+v", st)
	}
	waitFor(t, "mon-b subscribed", func() bool { return broker.subscribed("ward/bed-2") })
	broker.Publish("ward/bed-2", vitalsAt("MON-B", 1), false, 1)
	waitFor(t, "mon-b's reading in the record", func() bool { return observationsOf(record)["MON-B"] == 1 })

	// Changed (another bed): restarted with it. (Its topic stays: the
	// broker's persistent session of the client id would keep the old
	// subscription too, as across a restart.)
	moved := mqttMonitor("mon-b", "bed-3", broker.addr, "ward/bed-2")
	changes, err = g.Reload(reloadWith(t, dir, "monitors:\n"+one+moved+patients))
	if err != nil || !slices.Equal(changes, []string{"monitor mon-b changed: restarted"}) {
		t.Fatalf("changing mon-b: %v %v", changes, err)
	}
	if st := g.MonitorStatus(); len(st) != 2 || st[1].Location != "bed-3" {
		t.Fatalf("the page shows %+v", st)
	}
	broker.Publish("ward/bed-2", vitalsAt("MON-B", 2), false, 1)
	waitFor(t, "mon-b's reading from its new bed", func() bool { return observationsOf(record)["MON-B"] == 2 })
	for _, raw := range record.Resources("Observation") {
		if strings.Contains(string(raw), "MON-B/") && strings.Contains(string(raw), vitalsTime(2)) && !strings.Contains(string(raw), `"Patient/three"`) {
			t.Fatalf("mon-b's reading after the change is not charted for bed-3's patient: %s", raw)
		}
	}

	// Removed: off the page, no longer reading.
	changes, err = g.Reload(reloadWith(t, dir, "monitors:\n"+one+patients))
	if err != nil || !slices.Equal(changes, []string{"monitor mon-b removed"}) {
		t.Fatalf("removing mon-b: %v %v", changes, err)
	}
	if st := g.MonitorStatus(); len(st) != 1 || st[0].ID != "mon-a" {
		t.Fatalf("the page shows %+v", st)
	}
	broker.Publish("ward/bed-2", vitalsAt("MON-B", 4), false, 1)

	cancel()
	n := <-sent
	waitFor(t, fmt.Sprintf("all %d of mon-a's readings", n), func() bool { return observationsOf(record)["MON-A"] >= n })
	time.Sleep(300 * time.Millisecond)
	if got := observationsOf(record); got["MON-A"] != n || got["MON-B"] != 2 {
		t.Fatalf("the record holds %v; want MON-A %d (every one sent) and MON-B 2", got, n)
	}
}

// A reload changes a bed's static patient from the moment it is applied:
// a reading measured before it (held for its clock, or a backlog) keeps
// the patient the config named then.
func TestReloadedStaticPatientCountsFromTheReloadOn(t *testing.T) {
	dir := t.TempDir()
	g, _, _ := operatorGateway(t, dir, fhirserver.New(), "", "patients: {static: {bed-1: Patient/one}}\n")
	before := time.Now().Add(-time.Minute)
	if _, err := g.Reload(reloadWith(t, dir, "patients: {static: {bed-1: Patient/two}}\n")); err != nil {
		t.Fatal(err)
	}
	after := time.Now().Add(time.Millisecond)
	if a := g.beds.resolve(context.Background(), "bed-1", before, cachedOnly); a.patient != "Patient/one" {
		t.Fatalf("a reading from before the reload resolved to %q, want Patient/one", a.patient)
	}
	if a := g.beds.resolve(context.Background(), "bed-1", after, cachedOnly); a.patient != "Patient/two" {
		t.Fatalf("a reading from after the reload resolved to %q, want Patient/two", a.patient)
	}
	if ref, _ := g.beds.staticPatient("bed-1"); ref != "Patient/two" {
		t.Fatalf("the page's bed-1 is %q", ref)
	}
}
