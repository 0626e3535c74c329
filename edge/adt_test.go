package edge

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices/hl7"
	"github.com/wardgate/wardgate/edge/config"
	"github.com/wardgate/wardgate/edge/fhir"
	"github.com/wardgate/wardgate/edge/fhir/fhirserver"
)

// adtConfig is a patients section with an ADT feed whose record numbers
// are those of assigning authority HOSP; more holds further keys of the
// patients section (each line indented by two spaces).
func adtConfig(more string) string {
	return "patients:\n  adt: {listen: \"127.0.0.1:0\", allow_any: true, time_zone: UTC, assigning_authority: HOSP}\n" + more
}

func adtGateway(t *testing.T) *Gateway {
	t.Helper()
	g, _ := runGateway(t, fhirserver.New(), adtConfig(""))
	return g
}

// mrn is the patient reference the ADT feed gives a record number.
func mrn(n string) string { return fhir.ConditionalPatient("urn:oid:1.2.3.4", n) }

// party is one PID/PV1 pair of a built message: a record number and beds
// (wardgate bed ids "ICU-<n>" are written as PV1-3 ICU^^<n>).
type party struct{ mrn, bed, prior string }

func pl(b *hl7.Builder, bed string) string {
	if bed == "" {
		return ""
	}
	poc, n, _ := strings.Cut(bed, "-")
	return b.Comps(poc, "", n)
}

// adtMessage builds an ADT message of trigger at (EVN-6) with one PID/PV1
// pair per party.
func adtMessage(t *testing.T, id, trigger string, at time.Time, parties ...party) *hl7.Message {
	t.Helper()
	b := hl7.NewBuilder(hl7.DefaultDelimiters)
	b.MSH("EPICADT", "GENHOSP", "WARDGATE", "WARD4B", time.Now().UTC().Format("20060102150405-0700"), "", b.Comps("ADT", trigger), id, "P", "2.5")
	b.Segment("EVN", trigger, "", "", "", "", at.UTC().Format("20060102150405-0700"))
	for i, p := range parties {
		b.Segment("PID", "1", "", b.Comps(p.mrn, "", "", "HOSP", "MR"))
		b.Segment("PV1", string(rune('1'+i)), "I", pl(b, p.bed), "", "", pl(b, p.prior))
	}
	m, err := hl7.Parse(b.Bytes(), hl7.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func send(t *testing.T, g *Gateway, m *hl7.Message) hl7.Reply {
	t.Helper()
	return g.handleADT(context.Background(), m, hl7.Peer{})
}

func mustAccept(t *testing.T, g *Gateway, m *hl7.Message) {
	t.Helper()
	if r := send(t, g, m); r.Outcome != hl7.Accepted {
		t.Fatalf("refused: %+v", r)
	}
}

// who is the ADT feed's answer for bed at: the patient, "vacant",
// "uncertain", or "unknown" when the feed does not know the bed then.
func adtWho(g *Gateway, bed string, at time.Time) string {
	a, ok := g.adt.resolve(bed, at)
	switch {
	case !ok:
		return "unknown"
	case a.verdict == occupied:
		return a.patient
	}
	return a.verdict.String()
}

func expectWho(t *testing.T, g *Gateway, cases ...any) {
	t.Helper()
	for i := 0; i+2 < len(cases); i += 3 {
		bed, at, want := cases[i].(string), cases[i+1].(time.Time), cases[i+2].(string)
		if got := adtWho(g, bed, at); got != want {
			t.Errorf("bed %s at %s: %s, want %s", bed, at.Format(time.TimeOnly), got, want)
		}
	}
}

var t0 = time.Now().Add(-6 * time.Hour).Truncate(time.Minute)

func at(minutes int) time.Time { return t0.Add(time.Duration(minutes) * time.Minute) }

// Admit to ICU-1, transfer to ICU-2, discharge: each reading belongs to
// whoever lay in its bed at its time, and the association model says so.
func TestADTAdmitTransferDischargePlacesByTime(t *testing.T) {
	g := adtGateway(t)
	mustAccept(t, g, adtMessage(t, "1", "A01", at(0), party{"4711", "ICU-1", ""}))
	mustAccept(t, g, adtMessage(t, "2", "A02", at(60), party{"4711", "ICU-2", "ICU-1"}))
	mustAccept(t, g, adtMessage(t, "3", "A03", at(120), party{"4711", "ICU-2", ""}))
	p := mrn("4711")
	expectWho(t, g,
		"ICU-1", at(-1), "unknown", // before the feed's first word on the bed
		"ICU-1", at(0), p,
		"ICU-1", at(59), p,
		"ICU-1", at(60), "vacant",
		"ICU-2", at(30), "unknown",
		"ICU-2", at(61), p,
		"ICU-2", at(120), "vacant",
		"ICU-1", at(130), "vacant",
		"ICU-9", at(30), "unknown")
	for _, c := range []struct {
		bed  string
		at   time.Time
		want string
	}{{"ICU-1", at(10), p}, {"ICU-2", at(90), p}, {"ICU-2", at(121), ""}} {
		if got, _ := g.beds.patientAt(c.bed, c.at); got != c.want {
			t.Errorf("association model, %s at %v: %q, want %q", c.bed, c.at, got, c.want)
		}
	}
	if a := g.beds.resolve(context.Background(), "ICU-2", at(121), cachedOnly); a.verdict != vacant || !strings.Contains(a.reason, "ADT feed") {
		t.Errorf("after the discharge: %v %q", a.verdict, a.reason)
	}
	st := g.adt.stats()
	if st.EventsApplied != 3 || st.Beds != 2 || st.OpenStays != 0 || len(st.Corrections) != 0 {
		t.Errorf("stats %+v", st)
	}
	if cur := g.beds.current("ICU-2"); cur.Source != "none" || cur.Patient != "" {
		t.Errorf("current %+v", cur)
	}
}

// A11 removes the admission's stay, A12 returns the patient to the bed
// before the transfer, A13 re-opens the discharged stay: the readings
// follow the corrected history, and each change of the past is recorded
// as a correction without patient data.
func TestADTCancellationsCorrectTheHistory(t *testing.T) {
	g := adtGateway(t)
	p := mrn("4711")

	// Admit to ICU-1, then to ICU-3 by mistake (ending ICU-1), cancelled.
	mustAccept(t, g, adtMessage(t, "1", "A01", at(0), party{"4711", "ICU-1", ""}))
	mustAccept(t, g, adtMessage(t, "2", "A01", at(10), party{"4711", "ICU-3", ""}))
	expectWho(t, g, "ICU-1", at(15), "vacant", "ICU-3", at(15), p)
	mustAccept(t, g, adtMessage(t, "3", "A11", at(20), party{"4711", "ICU-3", ""}))
	expectWho(t, g, "ICU-1", at(15), p, "ICU-3", at(15), "vacant", "ICU-1", at(25), p)

	// Transfer to ICU-2, cancelled: PV1-3 where the patient returns to,
	// PV1-6 the cancelled transfer's bed.
	mustAccept(t, g, adtMessage(t, "4", "A02", at(60), party{"4711", "ICU-2", "ICU-1"}))
	expectWho(t, g, "ICU-1", at(70), "vacant", "ICU-2", at(70), p)
	mustAccept(t, g, adtMessage(t, "5", "A12", at(80), party{"4711", "ICU-1", "ICU-2"}))
	expectWho(t, g, "ICU-1", at(70), p, "ICU-2", at(70), "vacant", "ICU-1", at(90), p)

	// Discharge, cancelled.
	mustAccept(t, g, adtMessage(t, "6", "A03", at(120), party{"4711", "ICU-1", ""}))
	expectWho(t, g, "ICU-1", at(130), "vacant")
	mustAccept(t, g, adtMessage(t, "7", "A13", at(140), party{"4711", "ICU-1", ""}))
	expectWho(t, g, "ICU-1", at(130), p, "ICU-1", at(200), p)

	byTrigger := map[string][]adtCorrection{}
	for _, c := range g.adt.stats().Corrections {
		byTrigger[c.Trigger] = append(byTrigger[c.Trigger], c)
	}
	has := func(trigger, bed string, from time.Time) bool {
		for _, c := range byTrigger[trigger] {
			if c.Bed == bed && c.From.Equal(from) && c.To.After(from) && !c.Received.IsZero() {
				return true
			}
		}
		return false
	}
	if !has("A11", "ICU-3", at(10)) || !has("A11", "ICU-1", at(10)) || !has("A12", "ICU-2", at(60)) || !has("A12", "ICU-1", at(60)) || !has("A13", "ICU-1", at(120)) {
		t.Errorf("corrections %+v", byTrigger)
	}
	b, _ := json.Marshal(g.adt.stats())
	if strings.Contains(string(b), "4711") {
		t.Errorf("stats hold patient data: %s", b)
	}
}

// A17: each patient moves to the other's bed at the event's time.
func TestADTSwapMovesBothPatients(t *testing.T) {
	g := adtGateway(t)
	mustAccept(t, g, adtMessage(t, "1", "A01", at(0), party{"4711", "ICU-1", ""}))
	mustAccept(t, g, adtMessage(t, "2", "A01", at(0), party{"4712", "ICU-2", ""}))
	mustAccept(t, g, adtMessage(t, "3", "A17", at(30), party{"4711", "ICU-2", "ICU-1"}, party{"4712", "ICU-1", "ICU-2"}))
	expectWho(t, g,
		"ICU-1", at(10), mrn("4711"), "ICU-2", at(10), mrn("4712"),
		"ICU-1", at(40), mrn("4712"), "ICU-2", at(40), mrn("4711"))
	if c := g.adt.stats().Corrections; len(c) != 2 || c[0].Trigger != "A17" || !c[0].From.Equal(at(30)) {
		t.Errorf("corrections %+v", c)
	}
}

// A40: the merged-away record number's stays become the survivor's.
func TestADTMergeMovesStaysToTheSurvivor(t *testing.T) {
	g := adtGateway(t)
	mustAccept(t, g, adtMessage(t, "1", "A01", at(0), party{"5555", "ICU-1", ""}))
	b := hl7.NewBuilder(hl7.DefaultDelimiters)
	b.MSH("EPICADT", "GENHOSP", "", "", time.Now().UTC().Format("20060102150405-0700"), "", "ADT^A40^ADT_A39", "2", "P", "2.5")
	b.Segment("EVN", "A40", "", "", "", "", at(30).UTC().Format("20060102150405-0700"))
	b.Segment("PID", "1", "", "4711^^^HOSP^MR")
	b.Segment("MRG", "5555^^^HOSP^MR")
	m, err := hl7.Parse(b.Bytes(), hl7.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	mustAccept(t, g, m)
	expectWho(t, g, "ICU-1", at(10), mrn("4711"), "ICU-1", at(40), mrn("4711"))
	if c := g.adt.stats().Corrections; len(c) != 1 || c[0].Trigger != "A40" || c[0].Bed != "ICU-1" || !c[0].From.Equal(at(0)) {
		t.Errorf("corrections %+v", c)
	}
}

// The same event again (sender, control id and what it says): AA, and
// nothing changes. A control id reused for another event (the sender's
// counter restarted) is a new event: ignoring it would lose an admission
// or a discharge.
func TestADTDuplicateControlIDIsAcknowledgedAndIgnored(t *testing.T) {
	g := adtGateway(t)
	mustAccept(t, g, adtMessage(t, "1", "A01", at(0), party{"4711", "ICU-1", ""}))
	mustAccept(t, g, adtMessage(t, "2", "A03", at(30), party{"4711", "ICU-1", ""}))
	before, _ := os.ReadFile(g.adt.path)
	mustAccept(t, g, adtMessage(t, "1", "A01", at(0), party{"4711", "ICU-1", ""}))
	after, _ := os.ReadFile(g.adt.path)
	expectWho(t, g, "ICU-1", at(45), "vacant")
	if string(before) != string(after) {
		t.Error("a duplicate rewrote the stays")
	}
	if st := g.adt.stats(); st.Duplicates != 1 || st.EventsApplied != 2 {
		t.Errorf("stats %+v", st)
	}
	// The counter restarted: control id 1 now admits another patient.
	mustAccept(t, g, adtMessage(t, "1", "A01", at(40), party{"4712", "ICU-1", ""}))
	expectWho(t, g, "ICU-1", at(45), mrn("4712"))
	if st := g.adt.stats(); st.Duplicates != 1 || st.EventsApplied != 3 {
		t.Errorf("a reused control id: stats %+v", st)
	}
}

// A discharge that arrives after a later admission of another patient to
// the bed: placed by its time, it ends the first stay before the second
// began, and the bed is certain again.
func TestADTOutOfOrderDischarge(t *testing.T) {
	g := adtGateway(t)
	mustAccept(t, g, adtMessage(t, "1", "A01", at(0), party{"4711", "ICU-1", ""}))
	mustAccept(t, g, adtMessage(t, "2", "A01", at(90), party{"4712", "ICU-1", ""}))
	expectWho(t, g, "ICU-1", at(100), "uncertain", "ICU-1", at(30), mrn("4711"))
	mustAccept(t, g, adtMessage(t, "3", "A03", at(60), party{"4711", "ICU-1", ""}))
	expectWho(t, g, "ICU-1", at(30), mrn("4711"), "ICU-1", at(70), "vacant", "ICU-1", at(100), mrn("4712"))

	// A transfer that arrives before the admission it follows.
	mustAccept(t, g, adtMessage(t, "4", "A02", at(200), party{"4713", "ICU-3", "ICU-2"}))
	mustAccept(t, g, adtMessage(t, "5", "A01", at(150), party{"4713", "ICU-2", ""}))
	expectWho(t, g, "ICU-2", at(160), mrn("4713"), "ICU-2", at(210), "vacant", "ICU-3", at(210), mrn("4713"))
}

// An A08 that shows the patient elsewhere moves nobody: both beds are
// uncertain until a transfer corrects it.
func TestADTUpdateThatDisagreesMakesBedsUncertain(t *testing.T) {
	g := adtGateway(t)
	mustAccept(t, g, adtMessage(t, "1", "A01", at(0), party{"4711", "ICU-1", ""}))
	mustAccept(t, g, adtMessage(t, "2", "A08", at(30), party{"4711", "ICU-1", ""}))
	expectWho(t, g, "ICU-1", at(40), mrn("4711"))
	mustAccept(t, g, adtMessage(t, "3", "A08", at(60), party{"4711", "ICU-2", ""}))
	expectWho(t, g, "ICU-1", at(50), mrn("4711"), "ICU-1", at(70), "uncertain", "ICU-2", at(70), "uncertain")
	a := g.beds.resolve(context.Background(), "ICU-1", at(70), cachedOnly)
	if a.verdict != uncertain || !strings.Contains(a.reason, "A08") || strings.Contains(a.reason, "4711") {
		t.Errorf("association model: %v %q", a.verdict, a.reason)
	}
	mustAccept(t, g, adtMessage(t, "4", "A02", at(90), party{"4711", "ICU-2", "ICU-1"}))
	expectWho(t, g, "ICU-1", at(70), "uncertain", "ICU-2", at(100), mrn("4711"), "ICU-1", at(100), "vacant")
}

// Two patients admitted to one bed: uncertain, never a pick, until the
// feed moves one of them.
func TestADTTwoPatientsInOneBedAreUncertain(t *testing.T) {
	g := adtGateway(t)
	mustAccept(t, g, adtMessage(t, "1", "A01", at(0), party{"4711", "ICU-1", ""}))
	mustAccept(t, g, adtMessage(t, "2", "A01", at(30), party{"4712", "ICU-1", ""}))
	expectWho(t, g, "ICU-1", at(10), mrn("4711"), "ICU-1", at(40), "uncertain")
	if cur := g.beds.current("ICU-1"); cur.Source != "uncertain" || cur.Patient != "" {
		t.Errorf("current %+v", cur)
	}
	mustAccept(t, g, adtMessage(t, "3", "A02", at(50), party{"4711", "ICU-2", "ICU-1"}))
	expectWho(t, g, "ICU-1", at(40), "uncertain", "ICU-1", at(60), mrn("4712"))
	if cur := g.beds.current("ICU-1"); cur.Source != "adt" || cur.Patient != mrn("4712") || !cur.Since.Equal(at(30)) {
		t.Errorf("current %+v", cur)
	}
}

// What cannot be placed is refused with AE naming the field, counted, and
// changes nothing.
func TestADTRefusals(t *testing.T) {
	g := adtGateway(t)
	b := hl7.NewBuilder(hl7.DefaultDelimiters)
	b.MSH("EPICADT", "GENHOSP", "", "", "20240305091500+0100", "", "ADT^A01", "1", "P", "2.5")
	b.Segment("PID", "1", "", "4711^^^OTHER^MR")
	b.Segment("PV1", "1", "I", "ICU^^1")
	other, _ := hl7.Parse(b.Bytes(), hl7.Limits{})
	for _, c := range []struct {
		name  string
		m     *hl7.Message
		out   hl7.Outcome
		where string
	}{
		{"no record number of the system", other, hl7.Failed, "PID-3"},
		{"a bed the template cannot make", adtMessage(t, "2", "A01", at(0), party{"4711", "ICU-", ""}), hl7.Failed, "PV1-3"},
		{"a pre-admission", adtMessage(t, "3", "A05", at(0), party{"4711", "ICU-1", ""}), hl7.Rejected, "MSH-9"},
	} {
		r := send(t, g, c.m)
		if r.Outcome != c.out || !strings.HasPrefix(r.Where.String(), c.where+" ") || strings.Contains(r.Text, "4711") {
			t.Errorf("%s: %+v", c.name, r)
		}
	}
	st := g.adt.stats()
	if st.EventsRefused != 3 || st.EventsApplied != 0 || st.Beds != 0 || st.LastRefusal == nil || st.LastRefusal.Reason == "" {
		t.Errorf("stats %+v", st)
	}
}

// Everything survives a restart; a file of another format stops the
// gateway from starting rather than being read at a guess.
func TestADTStaysSurviveARestartAndAForeignFileIsRefused(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	g := &Gateway{cfg: adtTestConfig(t), log: log}
	var err error
	if g.adt, err = openADTStays(dir, time.Hour, log); err != nil {
		t.Fatal(err)
	}
	g.resolveKick = make(chan struct{}, 1)
	mustAccept(t, g, adtMessage(t, "1", "A01", at(0), party{"4711", "ICU-1", ""}))
	mustAccept(t, g, adtMessage(t, "2", "A02", at(60), party{"4711", "ICU-2", "ICU-1"}))
	mustAccept(t, g, adtMessage(t, "3", "A12", at(70), party{"4711", "ICU-1", "ICU-2"}))
	if err := g.adt.close(); err != nil {
		t.Fatal(err)
	}
	if r := send(t, g, adtMessage(t, "9", "A03", at(80), party{"4711", "ICU-1", ""})); r.Outcome != hl7.Busy {
		t.Fatalf("after close: %+v", r)
	}
	if g.adt, err = openADTStays(dir, time.Hour, log); err != nil {
		t.Fatal(err)
	}
	expectWho(t, g, "ICU-1", at(65), mrn("4711"), "ICU-2", at(65), "vacant", "ICU-1", at(-1), "unknown")
	if c := g.adt.stats().Corrections; len(c) != 2 {
		t.Errorf("corrections after the restart: %+v", c)
	}
	mustAccept(t, g, adtMessage(t, "2", "A02", at(60), party{"4711", "ICU-2", "ICU-1"}))
	if st := g.adt.stats(); st.Duplicates != 1 {
		t.Errorf("a control id applied before the restart was applied again: %+v", st)
	}

	raw, _ := os.ReadFile(filepath.Join(dir, adtStaysFile))
	if !strings.Contains(string(raw), `"format":"wardgate-adt/1"`) {
		t.Fatalf("file %s", raw)
	}
	os.WriteFile(filepath.Join(dir, adtStaysFile), []byte(`{"format":"wardgate-adt/9","stays":[]}`), 0o600)
	if _, err := openADTStays(dir, time.Hour, log); err == nil || !strings.Contains(err.Error(), "wardgate-adt/9") {
		t.Fatalf("a file of another format: %v", err)
	}
	os.WriteFile(filepath.Join(dir, adtStaysFile), []byte(`{"format":`), 0o600)
	if _, err := openADTStays(dir, time.Hour, log); err == nil {
		t.Fatal("an unreadable file was taken")
	}
}

// adtTestConfig is the config a gateway with an ADT feed loads.
func adtTestConfig(t *testing.T) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "wardgate.yaml")
	os.WriteFile(path, []byte("site: ward-4b\ndata_dir: data\ncharting: {chart: {continuous: each}}\nhttp: {listen: \"127.0.0.1:0\"}\nfhir:\n  base_url: http://127.0.0.1:1/\n  patient_identifier_system: urn:oid:1.2.3.4\n"+adtConfig("")), 0o600)
	c, _, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Where the ADT feed knows the bed at the reading's time, its answer
// comes before the Encounter lookup, which is not asked.
func TestADTAnswersAheadOfTheEncounterLookup(t *testing.T) {
	record := fhirserver.New()
	putBed(record, "ICU-1", "loc1")
	putEncounter(record, "enc-1", "Patient/E", "loc1", "in-progress", at(-60))
	g, _ := runGateway(t, record, adtConfig("  encounter_lookup: {location_system: \"urn:example:beds\", refresh: 1s}\n"))
	mustAccept(t, g, adtMessage(t, "1", "A01", at(0), party{"4711", "ICU-1", ""}))
	if got, ok := g.beds.patientAt("ICU-1", at(10)); !ok || got != mrn("4711") {
		t.Fatalf("ICU-1 at the ADT stay: %q %v", got, ok)
	}
	if n := g.beds.lookups.Load(); n != 0 {
		t.Fatalf("%d lookups for a bed the ADT feed knows", n)
	}
	// Before the feed's first word on the bed, the record is asked.
	if got, ok := g.beds.patientAt("ICU-1", at(-30)); !ok || got != "Patient/E" {
		t.Fatalf("ICU-1 before the feed knew it: %q %v", got, ok)
	}
	if g.beds.lookups.Load() == 0 {
		t.Fatal("the record was not asked for a time the feed does not know")
	}
	if cur := g.beds.current("ICU-1"); cur.Source != "adt" || cur.Patient != mrn("4711") {
		t.Fatalf("current %+v", cur)
	}
}
