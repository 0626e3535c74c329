package edge

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/edge/fhir"
	"github.com/wardgate/wardgate/edge/fhir/fhirserver"
)

// A result's PID-3 names a record number that no Patient in the record
// carries (or several do), while the bed's stay names a Patient: the
// record answered, so the reading is uncertain and its hold runs out like
// any answer's (DESIGN 7: only a record that cannot be reached makes a
// reading wait without end). Before, it waited as "not yet asked" for
// ever, filling the held store until every message of the station was
// answered RETRY.
func TestReview12UnknownRecordNumberIsAnAnswerThatExpires(t *testing.T) {
	record := fhirserver.New()
	putPatient(record, "p1", "MRN1")
	putPatient(record, "d1", "DUP")
	putPatient(record, "d2", "DUP")
	g, _ := runGateway(t, record, "patients:\n  static: {WARD4-B1: Patient/p1}\n")
	for _, number := range []string{"NOBODY", "DUP"} {
		r := devices.Reading{Device: "hl7/x", Location: "WARD4-B1", DeviceTime: time.Now().Add(-time.Minute),
			NamedPatient: fhir.ConditionalPatient("urn:oid:1.2.3.4", number)}
		var why answer
		waitFor(t, "the record's answer on "+number, func() bool {
			_, _, why = g.associate(context.Background(), []devices.Reading{r}, askInBackground)
			return strings.Contains(why.reason, " carr")
		})
		if why.verdict != uncertain || !why.expires() || why.asOf.IsZero() {
			t.Errorf("%s: %v %q (as of %v): want uncertain, expiring, with the lookup's time", number, why.verdict, why.reason, why.asOf)
		}
	}
}

// A station that names its monitors in OBX-18 by model only (no EUI-64:
// "^B40_GE"), the same at every bed: an Observation is named by device,
// code and time, so two beds' values of one second were one measurement
// and the second bed's was lost. A name without an EUI-64 is scoped by the
// bed, as MSH-3 is.
func TestReview12EquipmentNamedByModelOnlyKeepsBedsApart(t *testing.T) {
	record := fhirserver.New()
	g, addr := hl7Gateway(t, record, "patients:\n  static: {WARD4-B1: Patient/p1, WARD4-B2: Patient/p2}\n")
	_ = g
	c := dialMLLP(t, addr)
	at := time.Now().Add(-time.Minute).Truncate(time.Second)
	for i, bed := range []string{"B1", "B2"} {
		raw := string(pcdResult{control: "M" + bed, bed: bed, at: at, spo2: float64(90 + i)}.bytes())
		segs := strings.Split(raw, "\r")
		for j, s := range segs {
			if strings.HasPrefix(s, "OBX|") {
				segs[j] = s + "||||^B40_GE"
			}
		}
		if a := ackCode(c.send([]byte(strings.Join(segs, "\r")))); a != "AA" {
			t.Fatalf("bed %s: %s", bed, a)
		}
	}
	waitFor(t, "both beds' values in the record", func() bool { return record.Count("Observation") >= 4 })
	got := chartedAs(record)
	if got[90] != "Patient/p1" || got[91] != "Patient/p2" {
		t.Fatalf("charted %v", fmt.Sprint(got))
	}
}

// A message of demo values only is taken (AA) and never charted: it is
// counted as demo values, not as refused (the page's "refused" means AE or
// AR, and an engineer looks for a sender to fix there).
func TestReview12DemoOnlyMessageIsNotCountedRefused(t *testing.T) {
	record := fhirserver.New()
	g, addr := hl7Gateway(t, record, "")
	c := dialMLLP(t, addr)
	at := time.Now().Add(-time.Minute).Truncate(time.Second)
	if a := ackCode(c.send(pcdResult{control: "X1", bed: "B1", at: at, spo2: 50, demo: true}.bytes())); a != "AA" {
		t.Fatal(a)
	}
	if rep := g.hl7Report(); rep.Refused != 0 || rep.Demo != 2 {
		t.Fatalf("refused %d demo %d, want 0 and 2", rep.Refused, rep.Demo)
	}
}

// A result from a bed that no source knows names a patient whom the ADT
// feed has in another bed at the reading's time: the central station
// still shows the patient who moved away, and the values are another
// patient's. They wait, never charted to the named patient.
func TestReview12NamedPatientInAnotherBedByTheFeedWaits(t *testing.T) {
	g, _ := hl7Gateway(t, fhirserver.New(), "patients:\n  adt: {listen: \"127.0.0.1:0\", allow_any: true, time_zone: UTC, assigning_authority: HOSP}\n")
	mustAccept(t, g, adtMessage(t, "1", "A01", at(0), party{"4711", "ICU-5", ""}))
	r := devices.Reading{Device: "hl7/x", Location: "WARD4-B1", DeviceTime: at(10), NamedPatient: mrn("4711")}
	ready, _, why := g.associate(context.Background(), []devices.Reading{r}, askInBackground)
	if len(ready) != 0 || why.verdict != uncertain || strings.Contains(why.reason, "4711") {
		t.Fatalf("charted %d, %v %q: want it to wait, uncertain", len(ready), why.verdict, why.reason)
	}
	// In the bed the feed has them in, or where the feed has no stay of
	// theirs, the named patient is charted.
	for _, r := range []devices.Reading{
		{Device: "hl7/x", Location: "ICU-5", DeviceTime: at(10), NamedPatient: mrn("4711")},
		{Device: "hl7/x", Location: "WARD4-B1", DeviceTime: at(-10), NamedPatient: mrn("4711")},
		{Device: "hl7/x", Location: "WARD4-B1", DeviceTime: at(10), NamedPatient: mrn("4712")},
	} {
		if ready, _, why := g.associate(context.Background(), []devices.Reading{r}, askInBackground); len(ready) != 1 {
			t.Errorf("%s at %s: %v %q", r.Location, r.DeviceTime, why.verdict, why.reason)
		}
	}
}

// Once hl7DedupeSize messages had been stored (an hour of a busy ward),
// each new one shifted the whole list of remembered keys under the
// intake's lock: about 150 µs a message, a third of a core at the
// issue's 2,000 messages/s. Remembering is constant time now.
func TestReview12RememberingStaysCheapWhenFull(t *testing.T) {
	p := &pcd01Intake{stored: map[string][32]byte{}}
	for i := range hl7DedupeSize {
		p.remember("S|F|"+strconv.Itoa(i), [32]byte{1})
	}
	start := time.Now()
	for i := range 20_000 {
		p.remember("S|F|x"+strconv.Itoa(i), [32]byte{2})
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("20,000 messages remembered in %s", d)
	}
	// The oldest are forgotten, the newest kept, and the bound holds.
	if p.isStored("S|F|0", [32]byte{1}) || p.isStored("S|F|19999", [32]byte{1}) || !p.isStored("S|F|20000", [32]byte{1}) || !p.isStored("S|F|x19999", [32]byte{2}) {
		t.Error("the wrong messages are remembered")
	}
	if len(p.stored) != hl7DedupeSize {
		t.Errorf("%d remembered", len(p.stored))
	}
}

// Two channels of one monitor (OBX-4 1.3.1.1 and 1.3.2.1) giving the same
// code at the same time, two temperature probes: an Observation is named
// by device, code and time, so the second value was taken for the first
// and lost without a word. It is still not charted (naming channels apart
// is a design question), but it is a problem on the page now.
func TestReview12SecondChannelOfOneCodeIsNotLostSilently(t *testing.T) {
	record := fhirserver.New()
	g, addr := hl7Gateway(t, record, "patients:\n  static: {WARD4-B1: Patient/p1}\n")
	c := dialMLLP(t, addr)
	at := time.Now().Add(-time.Minute).Truncate(time.Second)
	raw := string(pcdResult{control: "T1", bed: "B1", at: at, spo2: 97}.bytes())
	ts := at.UTC().Format("20060102150405-0700")
	raw = strings.TrimRight(raw, "\r") + "\rOBX|3|NM|150344^MDC_TEMP^MDC|1.3.1.1|37.1|268192^MDC_DIM_DEGC^MDC|||||R|||" + ts +
		"\rOBX|4|NM|150344^MDC_TEMP^MDC|1.3.2.1|35.2|268192^MDC_DIM_DEGC^MDC|||||R|||" + ts + "\r"
	if a := ackCode(c.send([]byte(raw))); a != "AA" {
		t.Fatal(a)
	}
	rep := g.hl7Report()
	found := false
	for _, p := range rep.Problems {
		found = found || strings.Contains(p.Reason, "OBX") && strings.Contains(p.Reason, "MDC_TEMP") && strings.Contains(p.Reason, "not charted")
	}
	if !found || rep.Readings != 3 {
		t.Fatalf("readings %d, problems %+v: want 3 and the second temperature named", rep.Readings, rep.Problems)
	}
	waitFor(t, "three Observations", func() bool { return record.Count("Observation") == 3 })
}
