package edge

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardgate/wardgate/dicom/dataset"

	"net/http/httptest"

	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/edge/config"
	"github.com/wardgate/wardgate/edge/fhir/fhirserver"
)

// Tests of "right patient, right time, nothing dropped" written by a second
// reader of the association model, each a finding that failed before its
// fix. Each says what must hold and how it broke.

// A device clock set an hour back (by hand at the end of daylight saving
// time, or by a technician) repeats the device times of the hour before.
// The estimator steps, so the readings get the right Effective time, but
// an Observation's identity was device + code + *device* time: the reading
// measured now carried the identity of the one measured an hour ago, and
// the record's ifNoneExist kept the old one. For an hour, every reading
// was dropped without a trace. The clock now marks the second showing of a
// device time (ClockRepeat, as devices.Clock stamps it after the step).
func TestAClockSetBackDoesNotReuseIdentities(t *testing.T) {
	record := fhirserver.New()
	g, _ := runGateway(t, record, `patients:
  static: {bed-1: Patient/one}
`)
	now := time.Now().Truncate(time.Second)
	devTime := now.Add(-time.Hour)
	hourAgo := []devices.Reading{{ // measured an hour ago, the clock right then
		Device: "bed-1-monitor", Location: "bed-1", Profile: "generic/json",
		Code: devices.MDC{Code: 150456, RefID: "MDC_PULS_OXIM_SAT_O2"}, Value: 91, Unit: "%",
		DeviceTime: devTime, ClockOffset: 0, Received: devTime.Add(50 * time.Millisecond),
	}}
	afterSet := []devices.Reading{{ // measured now, the clock set an hour back, the step decided
		Device: "bed-1-monitor", Location: "bed-1", Profile: "generic/json",
		Code: devices.MDC{Code: 150456, RefID: "MDC_PULS_OXIM_SAT_O2"}, Value: 92, Unit: "%",
		DeviceTime: devTime, ClockOffset: -time.Hour, ClockRepeat: 1, Received: now.Add(50 * time.Millisecond),
	}}
	if !hourAgo[0].Effective().Equal(devTime) || !afterSet[0].Effective().Equal(now) {
		t.Fatalf("precondition: two measurements an hour apart (%v, %v)", hourAgo[0].Effective(), afterSet[0].Effective())
	}
	ctx := context.Background()
	if err := g.Ingest(ctx, hourAgo); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first reading charted", func() bool { return record.Count("Observation") == 1 })
	if err := g.Ingest(ctx, afterSet); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the outbox empty", func() bool { st := g.outbox.Stats(); return st.Waiting == 0 })
	time.Sleep(500 * time.Millisecond)
	if n := record.Count("Observation"); n != 2 {
		t.Fatalf("%d Observation(s) for two measurements an hour apart (values %v): the second was taken for the first; dead letters %d",
			n, chartedAs(record), g.outbox.Stats().Dead)
	}
}

// A location entry with status "planned" says the patient is to be moved
// to the bed, not that they are in it (R4: "The patient is planned to be
// moved to this location at some point in the future"). Patient B is still
// in bed 6 (active); a move to bed 5 is planned from ten minutes ago but has
// not happened. Readings from bed 5 must not be charted to B.
func TestAPlannedMoveIsNotAStay(t *testing.T) {
	record := fhirserver.New()
	putBed(record, "bed-5", "loc5")
	putBed(record, "bed-6", "loc6")
	now := time.Now().Truncate(time.Second)
	putStay(record, "enc-a", "Patient/A", "finished", now.Add(-5*time.Hour), now.Add(-20*time.Minute),
		locEntry{Location: "loc5", Status: "completed", Start: now.Add(-5 * time.Hour), End: now.Add(-20 * time.Minute)})
	putStay(record, "enc-b", "Patient/B", "in-progress", now.Add(-2*time.Hour), time.Time{},
		locEntry{Location: "loc6", Status: "active", Start: now.Add(-2 * time.Hour)},
		locEntry{Location: "loc5", Status: "planned", Start: now.Add(-10 * time.Minute)})
	g := lookupGateway(t, record, "1h")
	if err := g.Ingest(context.Background(), timedAt("bed-5", now.Add(-2*time.Second), 77)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	waitFor(t, "the outbox empty", func() bool { st := g.outbox.Stats(); return st.Waiting == 0 })
	if got := chartedAs(record); got[77] != "" {
		t.Fatalf("a reading from bed 5 was charted to %s, whose move there is only planned (B lies in bed 6)", got[77])
	}
}

// A finished stay whose entry gives an end but no start (the record
// knows when A left) must not make a later time uncertain: B's stay from
// that end is fully given. Before the fix a stay without a start counts only from
// the gateway's first lookup, and the check comes before the end is
// looked at, so any reading measured before that lookup (a backlog, or
// the first seconds after a start) is "uncertain" and expires.
func TestAnEndedStayWithoutAStartDoesNotBlockTheNextPatient(t *testing.T) {
	record := fhirserver.New()
	putBed(record, "bed-5", "loc5")
	now := time.Now().Truncate(time.Second)
	left := now.Add(-30 * time.Minute)
	putStay(record, "enc-a", "Patient/A", "finished", now.Add(-5*time.Hour), left,
		locEntry{Location: "loc5", Status: "completed", End: left})
	putStay(record, "enc-b", "Patient/B", "in-progress", left, time.Time{},
		locEntry{Location: "loc5", Status: "active", Start: left})
	g := lookupGateway(t, record, "2s")
	if err := g.Ingest(context.Background(), timedAt("bed-5", now.Add(-10*time.Minute), 81)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(6 * time.Second)
	for time.Now().Before(deadline) && record.Count("Observation") == 0 {
		time.Sleep(50 * time.Millisecond)
	}
	if got := chartedAs(record); got[81] != "Patient/B" {
		dls, _ := g.outbox.DeadLetters(0)
		var why []string
		for _, dl := range dls {
			why = append(why, dl.Reason)
		}
		t.Fatalf("a reading 20 minutes into B's stay (A left before, per the record) charted as %q; dead letters %q; held %v",
			got[81], why, g.heldNotes.summary())
	}
}

// A frame whose readings carry their own times (a bridge batching
// observations): r1 is from before the record's last answer (nobody then),
// r2 from after it, and the record is down since. r2's patient has never
// been asked about, so it must wait for the record however long it is down.
// Before the fix the frame takes the first waiting reading's reason (vacant) and
// expires as a whole after patients.hold_unassociated, r2 with it.
func TestAReadingTheRecordWasNeverAskedAboutDoesNotExpireWithItsFrame(t *testing.T) {
	record := fhirserver.New()
	putBed(record, "bed-6", "loc6")
	g := lookupGateway(t, record, "2s")
	ctx := context.Background()
	if err := g.Ingest(ctx, timedAt("bed-6", time.Now(), 50)); err != nil {
		t.Fatal(err)
	}
	var asked time.Time
	waitFor(t, "the record's first answer", func() bool {
		g.beds.mu.Lock()
		defer g.beds.mu.Unlock()
		r := g.beds.records["bed-6"]
		if r != nil && r.answered {
			asked = r.asked
			return true
		}
		return false
	})
	record.SetFaults(fhirserver.Faults{Status: 503, StatusOnly: "Encounter"}) // the record goes down
	time.Sleep(time.Until(asked.Add(1500 * time.Millisecond)))
	r1 := timedAt("bed-6", asked.Add(-5*time.Second), 61)[0]
	r2 := timedAt("bed-6", asked.Add(500*time.Millisecond), 62)[0] // after the last answer
	if err := g.Ingest(ctx, []devices.Reading{r1, r2}); err != nil {
		t.Fatal(err)
	}
	// Live readings from the bed go on (and keep the lookups going).
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for v := 70.0; ; v++ {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			g.Ingest(ctx, timedAt("bed-6", time.Now(), v))
		}
	}()
	time.Sleep(10 * time.Second) // five times the hold, the record down all along
	close(stop)
	wg.Wait()
	dls, _ := g.outbox.DeadLetters(0)
	for _, dl := range dls {
		var frame []devices.Reading
		json.Unmarshal(dl.Payload, &frame)
		for _, r := range frame {
			if r.Value == 62 {
				t.Fatalf("a reading the record was never asked about (measured after its last answer, the record down since) expired: %q", dl.Reason)
			}
		}
	}
}

// runGatewayIn runs a gateway whose config and data live in dir, until
// stop is called (or the test ends).
func runGatewayIn(t *testing.T, dir, baseURL, extra string) (g *Gateway, stop func()) {
	t.Helper()
	path := filepath.Join(dir, "wardgate.yaml")
	os.WriteFile(path, []byte(`site: ward-4b
data_dir: data
charting: {chart: {continuous: each}}
http: {listen: "127.0.0.1:0"}
fhir:
  base_url: `+baseURL+`
  patient_identifier_system: urn:oid:1.2.3.4
`+extra), 0o600)
	cfg, _, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	g = New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), "test")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(stop)
	waitFor(t, "the gateway ready", g.isReady)
	return g, stop
}

// A record whose location entries carry no period (common: many EHRs fill
// Encounter.location without one). Patient A's entry for bed 2 is active
// and has been seen by the gateway for a while. The gateway restarts; a
// reading measured between its last lookup before the stop and the first
// after the start (the backlog of any outage) is A's: the same entry was
// active at both lookups and never ended. Before the fix "first seen" lives in
// memory only, so after a restart that reading is "uncertain" and expires.
func TestARestartDoesNotForgetSinceWhenAStayWithoutAStartWasSeen(t *testing.T) {
	record := fhirserver.New()
	hs := httptest.NewServer(record)
	t.Cleanup(hs.Close)
	putBed(record, "bed-2", "loc2")
	putStay(record, "enc-a", "Patient/A", "in-progress", time.Now().Add(-48*time.Hour), time.Time{},
		locEntry{Location: "loc2", Status: "active"})
	dir := t.TempDir()
	extra := `patients:
  encounter_lookup: {location_system: "urn:example:beds", refresh: 1s}
  hold_unassociated: 2s
`
	g, stop := runGatewayIn(t, dir, hs.URL, extra)
	ctx := context.Background()
	g.Ingest(ctx, timedAt("bed-2", time.Now(), 60)) // starts the first lookup
	time.Sleep(1500 * time.Millisecond)
	if err := g.Ingest(ctx, timedAt("bed-2", time.Now(), 61)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a reading after the first lookup charted", func() bool { return chartedAs(record)[61] == "Patient/A" })
	lastLive := time.Now()
	stop()

	time.Sleep(time.Second) // the outage
	g, _ = runGatewayIn(t, dir, hs.URL, extra)
	during := lastLive.Add(500 * time.Millisecond)
	if err := g.Ingest(ctx, timedAt("bed-2", during, 62)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(6 * time.Second)
	for time.Now().Before(deadline) && chartedAs(record)[62] == "" {
		time.Sleep(50 * time.Millisecond)
	}
	if got := chartedAs(record)[62]; got != "Patient/A" {
		dls, _ := g.outbox.DeadLetters(0)
		var why []string
		for _, dl := range dls {
			why = append(why, dl.Reason)
		}
		t.Fatalf("a reading from the outage, while A's entry stayed active, charted as %q; dead letters %q; held %v",
			got, why, g.heldNotes.summary())
	}
}

// Many readings from many beds at once, the resolver, the page and the
// API all asking the association model: run with -race.
func TestConcurrentResolvesAreRaceFree(t *testing.T) {
	record := fhirserver.New()
	now := time.Now().Truncate(time.Second)
	for i := range 20 {
		bed := fmt.Sprintf("bed-%d", i)
		putBed(record, bed, "loc"+bed)
		putEncounter(record, "enc-"+bed, "Patient/p"+bed, "loc"+bed, "in-progress", now.Add(-time.Hour))
	}
	g := lookupGateway(t, record, "1h")
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 200 {
				bed := fmt.Sprintf("bed-%d", (w+k)%20)
				g.Ingest(ctx, timedAt(bed, time.Now().Add(-time.Duration(k)*time.Millisecond), float64(w*1000+k)))
				if k%10 == 0 {
					g.beds.current(bed)
					g.heldNotes.summary()
				}
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for record.Count("Observation") != 1600 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := record.Count("Observation"); n != 1600 {
		dls, _ := g.outbox.DeadLetters(0)
		var why []string
		for _, d := range dls {
			why = append(why, d.Reason)
		}
		t.Fatalf("%d of 1600 charted; held %d: %v; dead %q", n, g.held.Stats().Waiting, g.heldNotes.summary(), why)
	}
	got := subjects(record)
	for p, n := range got {
		if !strings.HasPrefix(p, "Patient/pbed-") {
			t.Fatalf("charted for %s (%d)", p, n)
		}
	}
}

// One reading whose time is garbage in the past (a monitor whose clock
// battery died boots at 2000-01-01: with no estimate yet its time is used
// as it is; or a frame the clock decided "late"). Its lookup asks the
// record for the bed's Encounters from 2000 on, and the bed's history is
// longer than a lookup reads (ErrTooManyEncounters): "unreachable", which
// never expires. Its earliest time sticks in needFrom, renewed every ten
// minutes while it waits, so every later lookup of the bed asks from 2000
// too and fails the same way: the bed's live readings wait for good, and
// the held frame cannot even be dropped by the operator (it is not a dead
// letter).
func TestOneAncientReadingDoesNotBlockItsBed(t *testing.T) {
	record := fhirserver.New()
	putBed(record, "bed-3", "loc3")
	day := time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 520 { // three years of short stays
		s := day.Add(time.Duration(2*i) * 24 * time.Hour)
		putStay(record, fmt.Sprintf("old-%d", i), fmt.Sprintf("Patient/old%d", i), "finished", s, s.Add(24*time.Hour),
			locEntry{Location: "loc3", Status: "completed", Start: s, End: s.Add(24 * time.Hour)})
	}
	now := time.Now().Truncate(time.Second)
	putEncounter(record, "enc-c", "Patient/C", "loc3", "in-progress", now.Add(-2*time.Hour))
	g := lookupGateway(t, record, "1h")
	ctx := context.Background()
	if err := g.Ingest(ctx, timedAt("bed-3", now.Add(-time.Minute), 90)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a live reading charted", func() bool { return chartedAs(record)[90] == "Patient/C" })

	if err := g.Ingest(ctx, timedAt("bed-3", time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), 40)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	for i := range 6 {
		time.Sleep(500 * time.Millisecond)
		if err := g.Ingest(ctx, timedAt("bed-3", time.Now(), float64(91+i))); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(8 * time.Second)
	for time.Now().Before(deadline) && chartedAs(record)[96] == "" {
		time.Sleep(50 * time.Millisecond)
	}
	if got := chartedAs(record); got[96] != "Patient/C" {
		t.Fatalf("after one reading dated 2000, bed 3's live readings are not charted (%v); waiting: %v", got, g.heldNotes.summary())
	}
}

// A site on a server that stores conditional references unresolved
// (Medplum) charts a study in the default mode, finds its ImagingStudy
// points at nothing, and switches to patient_reference: resolve, as the
// README says to. A late instance of that study (or an operator's retry)
// should write the study with the literal reference. Before the fix the record's
// subject "Patient?identifier=…" is compared with the literal one as two
// different patients: the study is refused for good ("names another
// patient"), and the broken reference can never be repaired.
func TestAfterSwitchingToResolveAStudyChartedBeforeIsRepaired(t *testing.T) {
	record := fhirserver.New()
	record.SetFaults(fhirserver.Faults{KeepConditionalReferences: true})
	dicomSection := `dicom: {ae_title: WARDGATE, allow_any: true, listen: "127.0.0.1:0", study_stable_after: 1s}
`
	g, base := runGateway(t, record, dicomSection)
	ref := createPatient(t, base, "MRN-1")
	ctx := context.Background()
	if err := g.IngestStudy(ctx, []dataset.InstanceHeader{ctHeader("1.2.3.9.1.1", 1, "MRN-1")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ImagingStudy", func() bool { return record.Count("ImagingStudy") == 1 })

	g2, _ := runGatewayFHIR(t, record, "  patient_reference: resolve\n", dicomSection)
	err := g2.IngestStudy(ctx, []dataset.InstanceHeader{ctHeader("1.2.3.9.1.1", 1, "MRN-1"), ctHeader("1.2.3.9.1.2", 2, "MRN-1")})
	if err != nil {
		dls, _ := g2.outbox.DeadLetters(0)
		var why []string
		for _, d := range dls {
			why = append(why, d.Reason)
		}
		t.Fatalf("the late instance of a study charted for the same MRN: %v (dead letters %q)", err, why)
	}
	waitFor(t, "the ImagingStudy updated", func() bool {
		s := imagingStudy(t, record)
		return s["subject"].(map[string]any)["reference"] == ref
	})
}
