package fhir

import (
	"testing"
	"time"

	"github.com/wardgate/wardgate/edge/fhir/fhirserver"
)

// Found by a second reader: PermanentAfter counted an entry's deliveries
// of any kind, so after an outage (503s) every waiting entry has been
// "tried five times": the first 403, 409 or 412 after it, however brief (a
// role being granted again after the record restarts, a conditional create
// racing a second gateway's), sends every entry of the outage straight to
// the dead letters instead of being retried as it was before the outage.
func TestABrief403AfterAnOutageIsRetried(t *testing.T) {
	r := newRig(t, 5*time.Second, 10)
	r.server.SetFaults(fhirserver.Faults{Status: 503})
	r.readings(20)
	for r.d.Stats().Retried < 20*7 { // every entry tried about seven times
		time.Sleep(5 * time.Millisecond)
	}
	r.server.SetFaults(fhirserver.Faults{Status: 403}) // the record is back, the gateway's role not yet
	deadline := time.Now().Add(10 * time.Second)
	for r.d.Stats().LastStatus != 403 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	r.server.SetFaults(fhirserver.Faults{})
	r.waitDrained(30 * time.Second)
	if s := r.d.Stats(); s.DeadLettered != 0 {
		t.Fatalf("%d entries went to the dead letters on a 403 that lasted 100 ms (after an outage); %d Observations in the record",
			s.DeadLettered, r.server.Count("Observation"))
	}
}

// The same blip, then the device's later readings: the Device entry went
// to the dead letters with the rest, and the mapper writes a Device once a
// run, so every later Observation's conditional device reference points at
// nothing and is refused (404) into the dead letters too, until a restart
// or an operator's retry.
func TestReadingsAfterADeadLetteredDeviceAreCharted(t *testing.T) {
	r := newRig(t, 5*time.Second, 10)
	r.server.SetFaults(fhirserver.Faults{Status: 503})
	r.readings(20)
	for r.d.Stats().Retried < 20*7 {
		time.Sleep(5 * time.Millisecond)
	}
	r.server.SetFaults(fhirserver.Faults{Status: 403})
	deadline := time.Now().Add(10 * time.Second)
	for r.d.Stats().LastStatus != 403 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	r.server.SetFaults(fhirserver.Faults{})
	r.waitDrained(30 * time.Second)
	dead := r.d.Stats().DeadLettered
	r.readings(10) // the device goes on
	r.waitDrained(30 * time.Second)
	if n := r.server.Count("Observation"); n < 10 {
		dl, _ := r.outbox.DeadLetters(0)
		t.Fatalf("%d of the 10 readings after the blip charted; dead letters %d (were %d), e.g. %q", n, len(dl), dead, dl[len(dl)-1].Reason)
	}
}
