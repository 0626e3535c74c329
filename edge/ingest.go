package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/wardgate/wardgate/buffer"
	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/dicom"
	"github.com/wardgate/wardgate/edge/fhir"
	"github.com/wardgate/wardgate/edge/fhir/r4"
)

// ingestCounters count what the sources handed over and what became of it.
type ingestCounters struct {
	readings       atomic.Uint64 // readings received
	entries        atomic.Uint64 // entries stored in the outbox
	noPatient      atomic.Uint64 // readings from a bed with no patient: not charted
	unmappable     atomic.Uint64 // unknown codes, wrong units: a profile to fix
	invalid        atomic.Uint64 // resources that failed validation: dead-lettered
	studies        atomic.Uint64
	studyRefused   atomic.Uint64
	held           atomic.Uint64 // frames put to wait for a patient
	heldCharted    atomic.Uint64 // of those, frames charted once one was known
	heldDropped    atomic.Uint64 // readings dropped after patients.hold_unassociated
	rejectedFrames atomic.Uint64 // frames that did not decode, kept raw
}

// IngestReadings stores one frame's readings; see Ingest.
func (g *Gateway) IngestReadings(ctx context.Context, readings []devices.Reading) error {
	return g.Ingest(ctx, readings)
}

// Ingest takes frames of readings from the sources (devices.Sink). It
// returns once they are durable: a source acknowledges its device (MQTT
// PUBACK) only then. Each reading whose bed has a known patient at its time
// is mapped to FHIR entries in the outbox; the others wait in the held
// store for one. A reading that cannot be charted is counted and logged
// without patient data; a resource that fails validation is a bug and goes
// to the dead letters with the reason, never to the record. An error
// (ErrFull: the outbox is full) means the frames must be given again; what
// was stored of them maps to the same entries then.
func (g *Gateway) Ingest(ctx context.Context, frames ...[]devices.Reading) error {
	var ready, waiting [][]devices.Reading
	for _, f := range frames {
		if len(f) == 0 {
			continue
		}
		g.ingest.readings.Add(uint64(len(f)))
		if g.held == nil {
			ready = append(ready, f)
			continue
		}
		// Per reading: a frame's readings may carry their own times, and a
		// stay may begin or end between them.
		var r, w []devices.Reading
		for _, rd := range f {
			if _, ok := g.beds.patient(rd.Location, rd.Effective()); ok {
				r = append(r, rd)
			} else {
				w = append(w, rd)
			}
		}
		if len(r) > 0 {
			ready = append(ready, r)
		}
		if len(w) > 0 {
			waiting = append(waiting, w)
		}
	}
	// The outbox first: if it refuses, the source gives everything again
	// and nothing was held twice.
	noPatient, err := g.store(ctx, ready)
	if err != nil {
		return err
	}
	// A bed's patient can change between the look above and the mapper's
	// own (an association set or ended, a lookup expiring): those readings
	// wait too, never dropped.
	if len(noPatient) > 0 && g.held != nil {
		waiting = append(waiting, noPatient)
	}
	if len(waiting) > 0 {
		if err := g.hold(ctx, waiting); err != nil {
			return err
		}
	}
	return nil
}

// store maps frames and appends their entries to the outbox in one commit.
// It returns the readings the mapper found no patient for.
func (g *Gateway) store(ctx context.Context, frames [][]devices.Reading) ([]devices.Reading, error) {
	var items []buffer.Item
	var devs []string
	var noPatient []devices.Reading
	for _, readings := range frames {
		entries, rejected := g.mapper.MapReadings(readings)
		noPatient = append(noPatient, g.countRejected(ctx, rejected)...)
		for _, e := range entries {
			b, err := json.Marshal(e)
			if err != nil {
				return nil, err
			}
			items = append(items, buffer.Item{Key: readings[0].Device, Kind: "fhir", Payload: b})
		}
		devs = append(devs, readings[0].Device)
	}
	if len(items) == 0 {
		return noPatient, nil
	}
	if _, err := g.outbox.Append(ctx, items...); err != nil {
		for _, d := range devs {
			g.mapper.Forget(d) // its Device entry did not get in either
		}
		return nil, err
	}
	g.ingest.entries.Add(uint64(len(items)))
	return noPatient, nil
}

func (g *Gateway) countRejected(ctx context.Context, rejected []fhir.Rejected) (noPatient []devices.Reading) {
	for _, r := range rejected {
		var invalid *r4.InvalidError
		switch {
		case errors.Is(r.Reason, fhir.ErrNoPatient):
			if g.held != nil {
				noPatient = append(noPatient, r.Reading)
				continue
			}
			g.ingest.noPatient.Add(1)
			g.log.Debug("reading not charted: no patient in its bed at its time", "reading", r.What)
		case errors.As(r.Reason, &invalid):
			g.ingest.invalid.Add(1)
			g.log.Error("a mapped resource failed validation; it is in the dead letters", "reading", r.What, "resource", invalid.ResourceType)
			g.outbox.AddDeadLetter(ctx, buffer.Item{Key: r.What, Kind: KindInvalid, Payload: invalid.Resource}, r.Reason.Error())
		default:
			g.ingest.unmappable.Add(1)
			g.log.Warn("reading not mapped", "reading", r.What, "reason", r.Reason.Error())
		}
	}
	return noPatient
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

// IngestStudy maps every instance header received for one study to its
// ImagingStudy (with the Endpoint first, when one is configured) and stores
// them in the outbox, durably.
func (g *Gateway) IngestStudy(ctx context.Context, instances []dicom.InstanceHeader) error {
	g.ingest.studies.Add(1)
	study, err := g.mapper.MapStudy(instances)
	if err != nil {
		g.ingest.studyRefused.Add(1)
		var invalid *r4.InvalidError
		if errors.As(err, &invalid) {
			g.outbox.AddDeadLetter(ctx, buffer.Item{Key: "study", Kind: KindInvalid, Payload: invalid.Resource}, err.Error())
			// The validator's words may quote the data set: not in the log.
			g.log.Error("an ImagingStudy failed validation; it is in the dead letters")
		} else {
			g.log.Warn("study not charted", "reason", err.Error())
		}
		return fmt.Errorf("%w: %v", dicom.ErrStudyRefused, err)
	}
	var items []buffer.Item
	ep, err := g.mapper.EndpointEntry()
	if err != nil {
		g.log.Error("the Endpoint of dicom.wado_rs_base failed validation; studies cannot be charted", "wado_rs_base", g.cfg.DICOM.WADORSBase)
		return fmt.Errorf("%w: %v", dicom.ErrStudyRefused, err)
	}
	if ep != nil {
		b, _ := json.Marshal(ep)
		items = append(items, buffer.Item{Key: "study:" + instances[0].StudyInstanceUID, Kind: "fhir", Payload: b})
	}
	b, err := json.Marshal(study)
	if err != nil {
		return err
	}
	items = append(items, buffer.Item{Key: "study:" + instances[0].StudyInstanceUID, Kind: "fhir", Payload: b})
	if _, err := g.outbox.Append(ctx, items...); err != nil {
		return err
	}
	g.ingest.entries.Add(uint64(len(items)))
	return nil
}
