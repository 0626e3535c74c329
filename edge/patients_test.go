package edge

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/edge/fhir"
	"github.com/wardgate/wardgate/edge/fhir/fhirserver"
)

// lookupGateway runs a gateway that finds patients through Encounters at
// the beds' Locations in record, holding readings for hold.
func lookupGateway(t *testing.T, record *fhirserver.Server, hold string) *Gateway {
	t.Helper()
	g, _ := runGateway(t, record, `patients:
  encounter_lookup: {location_system: "urn:example:beds", ttl: 1s}
  hold_unassociated: `+hold+"\n")
	return g
}

func putBed(record *fhirserver.Server, bed, locID string) {
	record.Put("Location", locID, json.RawMessage(`{"resourceType":"Location","id":"`+locID+`","identifier":[{"system":"urn:example:beds","value":"`+bed+`"}]}`))
}

func putEncounter(record *fhirserver.Server, id, patient, locID, status string, start time.Time) {
	record.Put("Encounter", id, json.RawMessage(`{"resourceType":"Encounter","id":"`+id+`","status":"`+status+`","class":{"code":"IMP"},"subject":{"reference":"`+patient+`"},"period":{"start":"`+start.Format(time.RFC3339)+`"},"location":[{"location":{"reference":"Location/`+locID+`"}}]}`))
}

func frameAt(bed string, at time.Time) []devices.Reading {
	return []devices.Reading{{
		Device: bed + "-monitor", Location: bed, Profile: "nonin/avant",
		Code: devices.MDC{Code: 150456, RefID: "MDC_PULS_OXIM_SAT_O2"}, Value: 97, Unit: "%",
		Received: at,
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

// A bed's patient is the subject of the in-progress Encounter at its
// Location. Readings from an empty bed wait; once a patient is admitted to
// it they are charted, but only those taken after the stay began. Two
// patients at one bed: nobody is guessed.
func TestBedPatientFromEncounterAndHeldReadings(t *testing.T) {
	record := fhirserver.New()
	putBed(record, "bed-7", "loc7")
	putBed(record, "bed-8", "loc8")
	admitted := time.Now().Add(-time.Minute).Truncate(time.Second)
	putEncounter(record, "enc-8a", "Patient/A", "loc8", "in-progress", admitted.Add(-time.Hour))
	putEncounter(record, "enc-8b", "Patient/B", "loc8", "in-progress", admitted.Add(-time.Hour))
	putEncounter(record, "enc-7-old", "Patient/OLD", "loc7", "finished", admitted.Add(-48*time.Hour))
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
	time.Sleep(1100 * time.Millisecond) // the cached "empty" answer expires
	if err := g.resolveOnce(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the held reading charted", func() bool { return record.Count("Observation") == 1 })
	if got := subjects(record); got["Patient/C"] != 1 || len(got) != 1 {
		t.Fatalf("charted for %v; want one Observation for Patient/C", got)
	}
	// The reading from before the stay and bed 8's still wait.
	if n := g.held.Stats().Waiting; n != 2 {
		t.Fatalf("%d frames still held, want 2", n)
	}
	if g.beds.ambiguous.Load() == 0 {
		t.Fatal("two patients at bed 8 were not noticed")
	}
}

// After patients.hold_unassociated a held frame is dropped and counted.
func TestHeldReadingsAreDroppedAfterTheHold(t *testing.T) {
	record := fhirserver.New()
	putBed(record, "bed-9", "loc9")
	g := lookupGateway(t, record, "1s")
	ctx := context.Background()
	if err := g.Ingest(ctx, frameAt("bed-9", time.Now())); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1200 * time.Millisecond)
	// The first look may find the frame not yet due (its backoff); keep
	// looking as the resolver would.
	waitFor(t, "the frame dropped", func() bool {
		g.resolveOnce(ctx)
		return g.held.Stats().Waiting == 0
	})
	if g.ingest.heldDropped.Load() != 1 || record.Count("Observation") != 0 {
		t.Fatalf("dropped %d readings, charted %d", g.ingest.heldDropped.Load(), record.Count("Observation"))
	}
}
