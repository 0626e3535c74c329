package edge

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/edge/fhir"
	"github.com/wardgate/wardgate/edge/fhir/fhirserver"
)

// lookupGateway runs a gateway that finds patients through the record's
// Encounters at the beds' Locations, holding readings for hold.
func lookupGateway(t *testing.T, record *fhirserver.Server, hold string) *Gateway {
	t.Helper()
	g, _ := runGateway(t, record, `patients:
  encounter_lookup: {location_system: "urn:example:beds", refresh: 1s}
  hold_unassociated: `+hold+"\n")
	return g
}

func putBed(record *fhirserver.Server, bed, locID string) {
	record.PutLocation("urn:example:beds", bed, locID)
}

// locEntry is one location entry of an Encounter.
type locEntry = fhirserver.LocationEntry

// putStay stores an Encounter of patient with its location entries.
func putStay(record *fhirserver.Server, id, patient, status string, start, end time.Time, locs ...locEntry) {
	record.PutEncounter(id, patient, status, start, end, locs...)
}

// putEncounter stores an in-progress Encounter whose one location entry,
// at locID, is active from start.
func putEncounter(record *fhirserver.Server, id, patient, locID, status string, start time.Time) {
	putStay(record, id, patient, status, start, time.Time{}, locEntry{Location: locID, Status: "active", Start: start})
}

func frameAt(bed string, at time.Time) []devices.Reading {
	return []devices.Reading{{
		Device: bed + "-monitor", Location: bed, Profile: "nonin/avant",
		Code: devices.MDC{Code: 150456, RefID: "MDC_PULS_OXIM_SAT_O2"}, Value: 97, Unit: "%",
		Received: at,
	}}
}

// timedAt is a reading measured at `at` by the device's clock, received now.
func timedAt(bed string, at time.Time, value float64) []devices.Reading {
	return []devices.Reading{{
		Device: bed + "-monitor", Location: bed, Profile: "generic/json",
		Code: devices.MDC{Code: 150456, RefID: "MDC_PULS_OXIM_SAT_O2"}, Value: value, Unit: "%",
		DeviceTime: at, Received: time.Now(),
	}}
}

func subjects(record *fhirserver.Server) map[string]int {
	out := map[string]int{}
	for _, raw := range record.Resources("Observation") {
		var o fhir.Observation
		json.Unmarshal(raw, &o)
		out[o.Subject.Reference]++
	}
	return out
}

// chartedAs maps each charted SpO2 value to its patient.
func chartedAs(record *fhirserver.Server) map[float64]string {
	out := map[float64]string{}
	for _, raw := range record.Resources("Observation") {
		var o fhir.Observation
		json.Unmarshal(raw, &o)
		out[float64(o.ValueQuantity.Value)] = o.Subject.Reference
	}
	return out
}

// A bed's patient is the subject of the Encounter whose location entry for
// that bed covers the reading's time. Readings from an empty bed wait;
// once a patient is admitted to it they are charted, but only those taken
// after the stay began. Two patients at one bed: nobody is guessed.
func TestBedPatientFromEncounterAndHeldReadings(t *testing.T) {
	record := fhirserver.New()
	putBed(record, "bed-7", "loc7")
	putBed(record, "bed-8", "loc8")
	admitted := time.Now().Add(-time.Minute).Truncate(time.Second)
	putEncounter(record, "enc-8a", "Patient/A", "loc8", "in-progress", admitted.Add(-time.Hour))
	putEncounter(record, "enc-8b", "Patient/B", "loc8", "in-progress", admitted.Add(-time.Hour))
	putStay(record, "enc-7-old", "Patient/OLD", "finished", admitted.Add(-48*time.Hour), admitted.Add(-47*time.Hour),
		locEntry{Location: "loc7", Status: "completed", Start: admitted.Add(-48 * time.Hour), End: admitted.Add(-47 * time.Hour)})
	g := lookupGateway(t, record, "1h")
	ctx := context.Background()

	before := admitted.Add(-30 * time.Second) // from the bed's previous, empty spell
	after := admitted.Add(30 * time.Second)
	for _, f := range [][]devices.Reading{frameAt("bed-7", before), frameAt("bed-7", after), frameAt("bed-8", after)} {
		if err := g.Ingest(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	if n := g.held.Stats().Waiting; n != 3 {
		t.Fatalf("%d frames held, want 3 (an empty bed, and a bed with two patients)", n)
	}
	if record.Count("Observation") != 0 {
		t.Fatal("a reading was charted without a patient")
	}

	// Patient/C is admitted to bed 7.
	putEncounter(record, "enc-7", "Patient/C", "loc7", "in-progress", admitted)
	waitFor(t, "the held reading charted", func() bool { return record.Count("Observation") == 1 })
	if got := subjects(record); got["Patient/C"] != 1 || len(got) != 1 {
		t.Fatalf("charted for %v; want one Observation for Patient/C", got)
	}
	// The reading from before the stay and bed 8's still wait.
	if n := g.held.Stats().Waiting; n != 2 {
		t.Fatalf("%d frames still held, want 2", n)
	}
	waitFor(t, "the reasons on the page", func() bool {
		page := fmt.Sprint(g.heldNotes.summary())
		return strings.Contains(page, "two patients in bed bed-8") && strings.Contains(page, "nobody in bed bed-7")
	})
}

// Finding 2: a patient moved from bed 7 to bed 9 has one Encounter with an
// entry per bed. Bed 7's readings after the move are not that patient's
// (today's lookup matched every entry of an in-progress Encounter and took
// the stay to start at the Encounter's start).
func TestTheLocationEntryForTheBedDecides(t *testing.T) {
	record := fhirserver.New()
	putBed(record, "bed-7", "loc7")
	putBed(record, "bed-9", "loc9")
	now := time.Now().Truncate(time.Second)
	moved := now.Add(-time.Hour)
	putStay(record, "enc-a", "Patient/A", "in-progress", now.Add(-5*time.Hour), time.Time{},
		locEntry{Location: "loc7", Status: "completed", Start: now.Add(-3 * time.Hour), End: moved},
		locEntry{Location: "loc9", Status: "active", Start: moved})
	g := lookupGateway(t, record, "1h")
	ctx := context.Background()
	for _, f := range [][]devices.Reading{
		timedAt("bed-7", now.Add(-4*time.Hour), 91),    // before A came to bed 7 (the Encounter had begun)
		timedAt("bed-7", now.Add(-2*time.Hour), 92),    // A in bed 7
		timedAt("bed-7", now.Add(-30*time.Minute), 93), // after A left bed 7
		timedAt("bed-9", now.Add(-30*time.Minute), 94), // A in bed 9
	} {
		if err := g.Ingest(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "two Observations", func() bool { return record.Count("Observation") == 2 })
	time.Sleep(1500 * time.Millisecond) // the resolver has had its passes
	got := chartedAs(record)
	if len(got) != 2 || got[92] != "Patient/A" || got[94] != "Patient/A" {
		t.Fatalf("charted %v; want only 92 (bed 7 while A lay there) and 94 (bed 9) for Patient/A", got)
	}
	if n := g.held.Stats().Waiting; n != 2 {
		t.Fatalf("%d frames wait, want 2 (bed 7 before and after A's stay)", n)
	}
}

// Finding 3: an answer fetched at F serves readings measured up to F only.
// A transfer recorded after it is seen by the next reading, not a minute
// later (today's cache served readings for patients.ttl).
func TestALookupServesOnlyReadingsMeasuredBeforeIt(t *testing.T) {
	record := fhirserver.New()
	putBed(record, "bed-5", "loc5")
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	putEncounter(record, "enc-a", "Patient/A", "loc5", "in-progress", start)
	g, _ := runGateway(t, record, `patients:
  encounter_lookup: {location_system: "urn:example:beds", refresh: 2s}
`)
	ctx := context.Background()
	if err := g.Ingest(ctx, timedAt("bed-5", time.Now(), 90)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "A's reading", func() bool { return record.Count("Observation") == 1 })
	// A leaves; B is put in the bed. The record knows at once.
	transfer := time.Now().Truncate(time.Second).Add(time.Second)
	putStay(record, "enc-a", "Patient/A", "in-progress", start, time.Time{}, locEntry{Location: "loc5", Status: "completed", Start: start, End: transfer})
	putEncounter(record, "enc-b", "Patient/B", "loc5", "in-progress", transfer)
	time.Sleep(time.Until(transfer) + 100*time.Millisecond)
	if err := g.Ingest(ctx, timedAt("bed-5", time.Now(), 91)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "B's reading", func() bool { return record.Count("Observation") == 2 })
	if got := chartedAs(record); got[90] != "Patient/A" || got[91] != "Patient/B" {
		t.Fatalf("charted %v; the reading after the transfer must go to Patient/B", got)
	}
}

// Finding 5: a record that does not answer is not an empty bed. Readings
// wait past patients.hold_unassociated and are charted once it answers.
func TestARecordThatIsDownNeverExpiresReadings(t *testing.T) {
	record := fhirserver.New()
	putBed(record, "bed-3", "loc3")
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	putEncounter(record, "enc-3", "Patient/C", "loc3", "in-progress", start)
	record.SetFaults(fhirserver.Faults{Status: 503, StatusOnly: "Encounter"})
	g := lookupGateway(t, record, "1s")
	ctx := context.Background()
	for i := range 5 {
		if err := g.Ingest(ctx, timedAt("bed-3", time.Now().Add(-time.Duration(i)*time.Second), float64(90+i))); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(4 * time.Second) // four times the hold, the resolver looking all along
	if n, dead := g.held.Stats().Waiting, g.outbox.Stats().Dead; n != 5 || dead != 0 || g.ingest.heldExpired.Load() != 0 {
		t.Fatalf("with the record down: %d frames wait, %d dead letters, %d expired; want 5, 0, 0", n, dead, g.ingest.heldExpired.Load())
	}
	if !strings.Contains(fmt.Sprint(g.heldNotes.summary()), "unreachable") {
		t.Fatalf("the page does not say why: %v", g.heldNotes.summary())
	}
	record.SetFaults(fhirserver.Faults{})
	waitFor(t, "every reading charted", func() bool { return record.Count("Observation") == 5 })
	if got := subjects(record); got["Patient/C"] != 5 {
		t.Fatalf("charted for %v", got)
	}
}

// Readings the record says nobody was there for go to the dead letters
// after patients.hold_unassociated, counted; retried once the bed has a
// patient for their time, they are charted.
func TestExpiredReadingsAreDeadLettersThatCanBeRetried(t *testing.T) {
	record := fhirserver.New()
	putBed(record, "bed-9", "loc9")
	g := lookupGateway(t, record, "1s")
	ctx := context.Background()
	at := time.Now().Add(-10 * time.Second).Truncate(time.Second)
	if err := g.Ingest(ctx, timedAt("bed-9", at, 95)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the frame in the dead letters", func() bool { return g.outbox.Stats().Dead == 1 && g.held.Stats().Waiting == 0 })
	dls, _ := g.outbox.DeadLetters(0)
	if dls[0].Kind != KindHeld || !strings.Contains(dls[0].Reason, "nobody in bed bed-9") || g.ingest.heldExpired.Load() != 1 {
		t.Fatalf("dead letter %+v, expired %d", dls[0], g.ingest.heldExpired.Load())
	}
	if record.Count("Observation") != 0 {
		t.Fatal("charted without a patient")
	}
	// The admission is recorded late, from before the reading.
	putEncounter(record, "enc-9", "Patient/D", "loc9", "in-progress", at.Add(-time.Minute))
	if err := g.rehold(ctx, dls[0].Payload); err != nil {
		t.Fatal(err)
	}
	if _, err := g.outbox.DropDead(ctx, dls[0].ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the retried reading charted", func() bool { return record.Count("Observation") == 1 })
	if got := subjects(record); got["Patient/D"] != 1 {
		t.Fatalf("charted for %v", got)
	}
}

// A manual association and the record that name different patients for
// one time: nothing is charted, and the reason says so.
func TestSourcesThatDisagreeChartNothing(t *testing.T) {
	record := fhirserver.New()
	putBed(record, "bed-4", "loc4")
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	putEncounter(record, "enc-4", "Patient/E", "loc4", "in-progress", start)
	g := lookupGateway(t, record, "1h")
	if _, err := g.beds.manual.set("bed-4", "Patient/F", start, "test"); err != nil {
		t.Fatal(err)
	}
	if err := g.Ingest(context.Background(), timedAt("bed-4", time.Now(), 96)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reason", func() bool {
		return strings.Contains(fmt.Sprint(g.heldNotes.summary()), "a manual association and the record name different patients")
	})
	if record.Count("Observation") != 0 {
		t.Fatal("charted while two sources disagree")
	}
}

// patientAt is the patient the association model gives for bed at time at.
func (b *beds) patientAt(bed string, at time.Time) (string, bool) {
	a := b.resolve(context.Background(), bed, at, askAndWait)
	return a.patient, a.verdict == occupied
}
