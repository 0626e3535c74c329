package edge

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync/atomic"
	"time"

	"github.com/wardgate/wardgate/buffer"
	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/edge/fhir"
	"github.com/wardgate/wardgate/edge/fhir/r4"
)

// ingestCounters count what the sources handed over and what became of it.
type ingestCounters struct {
	readings       atomic.Uint64 // readings received
	entries        atomic.Uint64 // entries stored in the outbox
	unmappable     atomic.Uint64 // unknown codes, wrong units: a profile to fix
	invalid        atomic.Uint64 // resources that failed validation: dead-lettered
	studies        atomic.Uint64
	studyRefused   atomic.Uint64
	held           atomic.Uint64 // frames put to wait (for a patient, or their device's clock)
	heldCharted    atomic.Uint64 // of those, frames charted later
	heldExpired    atomic.Uint64 // readings moved to the dead letters after patients.hold_unassociated
	rejectedFrames atomic.Uint64 // frames that did not decode, kept raw
}

// IngestReadings stores one frame's readings; see Ingest.
func (g *Gateway) IngestReadings(ctx context.Context, readings []devices.Reading) error {
	return g.Ingest(ctx, readings)
}

// Ingest takes frames of readings from the sources (devices.Sink). It
// returns once they are durable: a source acknowledges its device (MQTT
// PUBACK) only then. Each reading whose time is settled and whose bed had
// one certain patient at that time is mapped to FHIR entries in the
// outbox; the others wait in the held store (held.go). A reading that
// cannot be charted is counted and logged without patient data; a resource
// that fails validation is a bug and goes to the dead letters with the
// reason, never to the record. An error (ErrFull: the outbox is full) means
// the frames must be given again; what was stored of them maps to the same
// entries then.
func (g *Gateway) Ingest(ctx context.Context, frames ...[]devices.Reading) error {
	_, err := g.ingestFrames(ctx, frames)
	return err
}

// ingestFrames is Ingest, saying how many frames (or parts of frames) were
// held to wait.
func (g *Gateway) ingestFrames(ctx context.Context, frames [][]devices.Reading) (held int, err error) {
	var ready [][]fhir.PatientReading
	var waiting [][]devices.Reading
	for _, f := range frames {
		if len(f) == 0 {
			continue
		}
		g.ingest.readings.Add(uint64(len(f)))
		r, w, _ := g.associate(ctx, f, askInBackground)
		if len(r) > 0 {
			ready = append(ready, r)
		}
		if len(w) > 0 {
			waiting = append(waiting, w)
		}
	}
	// The outbox first: if it refuses, the source gives everything again
	// and nothing was held twice.
	if err := g.store(ctx, ready); err != nil {
		return 0, err
	}
	if len(waiting) > 0 {
		return len(waiting), g.hold(ctx, waiting)
	}
	return 0, nil
}

// associate gives each reading of a frame its patient, per reading (a
// frame's readings may carry their own times, and a stay may begin or end
// between them). It returns the readings that have one, those that wait,
// and why they wait: a reason that does not expire (the record not
// answering, not yet asked) before one that does, so that a frame never
// expires while one of its readings waits for the record. ask says whether
// it may ask the record and wait for it, or only start a lookup.
func (g *Gateway) associate(ctx context.Context, frame []devices.Reading, ask asking) (ready []fhir.PatientReading, wait []devices.Reading, why answer) {
	for _, r := range frame {
		var a answer
		switch {
		case r.TimeUnknown:
			a = answer{verdict: uncertain, reason: "the time of a reading of device " + r.Device + " is not known (its clock was set while it waited, or it came without a time from where messages waited): it is not charted at a guess"}
		case r.ClockPending:
			a = answer{verdict: uncertain, reason: "the clock of device " + r.Device + " is being checked: the reading's time disagreed with its estimate"}
		case r.NamedPatient != "":
			a = g.namedPatient(ctx, r, ask)
		default:
			a = g.beds.resolve(ctx, r.Location, r.Effective(), ask)
		}
		if a.verdict == occupied {
			ready = append(ready, fhir.PatientReading{Reading: r, Patient: a.patient})
			continue
		}
		if len(wait) == 0 || (why.expires() && !a.expires()) {
			why = a
		}
		wait = append(wait, r)
	}
	return ready, wait, why
}

// namedPatient is the verdict for a reading whose sender named its
// patient (an HL7 result's PID-3): that patient, when the bed's stay at the
// reading's time is theirs, or when nothing says who lay in the bed (no
// bed, or no source that knows it). When the bed's sources name another
// patient, or say the bed was empty then, the reading waits: a central
// station still showing the last patient's demographics on a monitor now
// at another patient's bedside is how readings reach the wrong chart.
func (g *Gateway) namedPatient(ctx context.Context, r devices.Reading, ask asking) answer {
	named := answer{verdict: occupied, patient: r.NamedPatient}
	if r.Location == "" || !g.bedKnown(r.Location, r.Effective()) {
		// Nothing says who lay in this bed; but the ADT feed may say the
		// named patient lay in another then (a station still showing the
		// patient who moved away).
		if beds := g.adt.bedsOf(r.NamedPatient, r.Effective()); r.Location != "" && len(beds) > 0 && !slices.Contains(beds, r.Location) {
			return answer{verdict: uncertain, reason: "the result names a patient (PID-3) whom the ADT feed has in bed " + beds[0] + ", not in bed " + r.Location + ", at the reading's time"}
		}
		return named
	}
	a := g.beds.resolve(ctx, r.Location, r.Effective(), ask)
	switch a.verdict {
	case occupied:
		same, why, asOf := g.oneCharted(ctx, a.patient, r.NamedPatient)
		switch {
		case same:
			return a
		case why != "" && !asOf.IsZero():
			// The record answered: no Patient carries the number, or
			// several do. An answer: the hold runs.
			return answer{verdict: uncertain, reason: "bed " + r.Location + ": " + why, asOf: asOf}
		case why != "":
			return answer{verdict: notYet, reason: "bed " + r.Location + ": " + why}
		}
		return answer{verdict: uncertain, reason: "the result names another patient (PID-3) than the stay in bed " + r.Location + " at the reading's time"}
	case vacant:
		return answer{verdict: uncertain, reason: "the result names a patient (PID-3), but bed " + r.Location + " was empty at the reading's time: " + a.reason, asOf: a.asOf}
	}
	return a
}

// oneCharted tells whether two references name one Patient: equal, or
// one a record number that the record says is the other. why says what it
// waits for when that cannot be known yet; asOf, when not zero, that the
// record answered it cannot be known (no Patient carries the number, or
// several), and when it was asked.
func (g *Gateway) oneCharted(ctx context.Context, a, b string) (same bool, why string, asOf time.Time) {
	if a == b {
		return true, "", time.Time{}
	}
	la, wa, ta := g.patientRefs.literal(ctx, a)
	lb, wb, tb := g.patientRefs.literal(ctx, b)
	switch {
	case la != "" && lb != "":
		return la == lb, "", time.Time{}
	case wa != "":
		return false, wa, ta
	}
	return false, wb, tb
}

// bedKnown tells whether some source of stays can say who lay in bed at
// at: a manual association of the bed, patients.static, the Encounter
// lookup, or the ADT feed.
func (g *Gateway) bedKnown(bed string, at time.Time) bool {
	b := g.beds
	if _, ok := b.staticPatientAt(bed, at); ok || (b.system != "" && b.client != nil) || slices.Contains(b.manual.beds(), bed) {
		return true
	}
	if g.adt != nil {
		_, known := g.adt.resolve(bed, at)
		return known
	}
	return false
}

// store maps frames and appends their entries to the outbox in one commit;
// readings charted by interval go to the charting window (charting.go).
func (g *Gateway) store(ctx context.Context, frames [][]fhir.PatientReading) error {
	var wait []chartFrame
	var off []string
	if g.chart != nil {
		frames, wait, off = g.chart.route(frames)
	}
	if err := g.storeNow(ctx, frames); err != nil {
		return err
	}
	if len(wait) > 0 {
		if err := g.chart.add(ctx, wait); err != nil {
			return err
		}
	}
	if g.chart != nil {
		g.chart.countOff(off) // once stored: a frame given again after a refusal counts once
	}
	return nil
}

// storeNow maps frames and appends their entries to the outbox in one
// commit.
func (g *Gateway) storeNow(ctx context.Context, frames [][]fhir.PatientReading) error {
	var items []buffer.Item
	var mapped []fhir.Entry
	for _, readings := range frames {
		entries, rejected := g.mapper.MapReadings(readings)
		mapped = append(mapped, entries...)
		g.countRejected(ctx, rejected)
		for _, e := range entries {
			b, err := json.Marshal(e)
			if err != nil {
				return err
			}
			items = append(items, buffer.Item{Key: readings[0].Device, Kind: buffer.KindFHIR, Payload: b})
		}
	}
	if len(items) == 0 {
		return nil
	}
	if _, err := g.outbox.Append(ctx, items...); err != nil {
		return err
	}
	g.mapper.ConfirmDevices(mapped)
	g.ingest.entries.Add(uint64(len(items)))
	return nil
}

func (g *Gateway) countRejected(ctx context.Context, rejected []fhir.Rejected) {
	for _, r := range rejected {
		var invalid *r4.InvalidError
		switch {
		case errors.As(r.Reason, &invalid):
			g.ingest.invalid.Add(1)
			g.log.Error("a mapped resource failed validation; it is in the dead letters", "reading", r.What, "resource", invalid.ResourceType)
			g.outbox.AddDeadLetter(ctx, buffer.Item{Key: r.What, Kind: KindInvalid, Payload: invalid.Resource}, r.Reason.Error())
		default:
			g.ingest.unmappable.Add(1)
			g.log.Warn("reading not mapped", "reading", r.What, "reason", r.Reason.Error())
		}
	}
}

// KindInvalid marks a dead letter that holds a resource wardgate made and
// the R4 validator refused: a bug to report, never to retry as it is.
const KindInvalid = "invalid"

// KindUndecodable marks a dead letter that holds a device's raw frame.
const KindUndecodable = "undecodable"

// Reject keeps a frame that could not be decoded, raw, among the dead
// letters (devices.Sink): the engineer sees it with `wardgate queue list`,
// the log never does.
func (g *Gateway) Reject(ctx context.Context, device string, raw []byte, reason string) error {
	g.ingest.rejectedFrames.Add(1)
	_, err := g.outbox.AddDeadLetter(ctx, buffer.Item{Key: device, Kind: KindUndecodable, Payload: raw}, reason)
	return err
}
