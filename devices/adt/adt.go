// Package adt decodes the HL7 v2 ADT (admit, discharge, transfer) messages
// that a hospital's ADT feed sends, as far as they say who lies in which
// bed and since when: one Event per message, with the control id for
// acknowledging and de-duplicating, the sender, the trigger, the time the
// event happened, the patient's identifiers (PID-3 with their assigning
// authorities) and the beds (PV1-3, PV1-6) as the sender names them. What
// the gateway does with an event (time-bounded stays) is edge's.
//
// What each trigger carries (HL7 v2.5, chapter 3):
//
//	A01 admit, A04 register   PV1-3 the bed the patient is admitted to
//	A02 transfer              PV1-3 the new bed, PV1-6 the bed left
//	A03 discharge             PV1-3 the bed left (optional here)
//	A08 update                PV1-3 the bed the sender believes the patient in (optional)
//	A11 cancel admit          PV1-3 the bed of the cancelled admission (optional here)
//	A12 cancel transfer       PV1-3 the bed the patient returns to (the one
//	                          before the transfer), PV1-6 the bed of the
//	                          cancelled transfer
//	A13 cancel discharge      PV1-3 the bed the patient is back in
//	A17 swap                  two PID/PV1 pairs, each PV1-3 that patient's NEW bed
//	A40 merge                 {PID MRG}: PID-3 the surviving identifiers,
//	                          MRG-1 those merged away
//
// The event time is EVN-6 (event occurred), else MSH-7; a time that cannot
// be read without a guess (no offset and no zone, a zone that MSH-7
// contradicts, a local time daylight saving skips or repeats) is an error
// naming the field, never guessed. Errors are *Error values that carry the
// acknowledgement's Reply; they never quote the message.
package adt

import (
	"fmt"
	"strings"
	"time"

	"github.com/wardgate/wardgate/devices/hl7"
)

// Triggers taken, with what each means.
var triggers = map[string]string{
	"A01": "admit",
	"A02": "transfer",
	"A03": "discharge",
	"A04": "register",
	"A08": "update",
	"A11": "cancel admit",
	"A12": "cancel transfer",
	"A13": "cancel discharge",
	"A17": "swap",
	"A40": "merge",
}

// needsBed are the triggers that cannot be placed without PV1-3.
var needsBed = map[string]bool{"A01": true, "A02": true, "A12": true, "A13": true, "A17": true}

// Supported reports whether the trigger is one Decode takes.
func Supported(trigger string) bool { _, ok := triggers[trigger]; return ok }

// Event is what one ADT message says of beds and patients.
type Event struct {
	ControlID          string // MSH-10
	SendingApplication hl7.HD // MSH-3
	SendingFacility    hl7.HD // MSH-4
	// Trigger is the event type: MSH-9.2, else EVN-1 ("A01").
	Trigger string
	// At is when the event happened: EVN-6, else MSH-7.
	At time.Time
	// Recorded is when the sender recorded it: EVN-2, else MSH-7; zero
	// when neither can be read.
	Recorded time.Time

	// Patient is PID-3; Bed PV1-3 and PriorBed PV1-6 (zero when absent).
	// For A40, Patient is the first pair's surviving identifiers.
	Patient  []hl7.CX
	Bed      hl7.PL
	PriorBed hl7.PL
	// PatientAt, BedAt and PriorBedAt are where those fields are, for
	// errors about their content.
	PatientAt, BedAt, PriorBedAt hl7.Location

	// Other is, for A17, the second patient and the bed they move to.
	Other *Party
	// Merges are, for A40, every PID/MRG pair: the surviving identifiers
	// and those merged into them.
	Merges []Merge
}

// Party is one patient of a message with several (A17's second PID/PV1).
type Party struct {
	Patient          []hl7.CX
	Bed              hl7.PL
	PatientAt, BedAt hl7.Location
}

// Merge is one PID/MRG pair of an A40.
type Merge struct {
	Patient    []hl7.CX // PID-3: the identifiers that survive
	MergedAway []hl7.CX // MRG-1: the identifiers merged into them
	PatientAt  hl7.Location
	MergedAt   hl7.Location
}

// Error is a message that is not an ADT event this decoder takes. Reason
// never holds message content.
type Error struct {
	Outcome hl7.Outcome // Rejected or Failed
	Code    int         // HL7 table 0357
	Where   hl7.Location
	Reason  string
}

func (e *Error) Error() string { return fmt.Sprintf("adt: %s: %s", e.Where, e.Reason) }

// Reply is the acknowledgement the error calls for.
func (e *Error) Reply() hl7.Reply {
	return hl7.Reply{Outcome: e.Outcome, Code: e.Code, Where: e.Where, Text: e.Reason}
}

// missing is a required field's error.
func missing(where hl7.Location, reason string) *Error {
	return &Error{Outcome: hl7.Failed, Code: hl7.ErrRequiredFieldMissing, Where: where, Reason: reason}
}

// absent is where field f of the n-th segment id would be when the message
// has no such segment: named by id and occurrence, placed after the last
// segment.
func absent(m *hl7.Message, id string, n, f int) hl7.Location {
	if s, ok := m.Find(id, n); ok {
		return s.Location(f)
	}
	return hl7.Location{Segment: id, Seq: n, Index: m.Len(), Field: f}
}

// Decode reads one ADT message. zone is the sender's zone for times
// without a UTC offset (nil: such a time is an error).
func Decode(m *hl7.Message, zone *time.Location) (*Event, error) {
	msh := m.Segment(0)
	typ := msh.Field(9)
	if typ.Comp(1).Text() != "ADT" {
		return nil, &Error{Outcome: hl7.Rejected, Code: hl7.ErrUnsupportedMessageType, Where: msh.Location(9), Reason: "not an ADT message"}
	}
	if v := msh.Field(12).Comp(1).Text(); !strings.HasPrefix(v, "2.") {
		return nil, &Error{Outcome: hl7.Rejected, Code: hl7.ErrUnsupportedVersion, Where: msh.Location(12), Reason: "not HL7 version 2.x"}
	}
	evn, hasEVN := m.Find("EVN", 1)
	e := &Event{
		ControlID:          strings.TrimSpace(msh.Field(10).Text()),
		SendingApplication: msh.Field(3).HD(),
		SendingFacility:    msh.Field(4).HD(),
		Trigger:            strings.ToUpper(strings.TrimSpace(typ.Comp(2).Text())),
	}
	if e.ControlID == "" {
		return nil, missing(msh.Location(10), "no message control id")
	}
	if e.Trigger == "" {
		e.Trigger = strings.ToUpper(strings.TrimSpace(evn.Field(1).Text()))
	}
	switch {
	case e.Trigger == "":
		return nil, missing(msh.Location(9), "no trigger event: MSH-9.2 and EVN-1 are empty")
	case !Supported(e.Trigger):
		return nil, &Error{Outcome: hl7.Rejected, Code: hl7.ErrUnsupportedEvent, Where: msh.Location(9), Reason: "an ADT event this receiver does not take (it takes A01, A02, A03, A04, A08, A11, A12, A13, A17, A40)"}
	}

	distrust := hl7.ZoneContradiction(msh.Field(7), zone)
	readTime := func(f hl7.Field, where hl7.Location, name string) (time.Time, *Error) {
		t, reason := f.TimeIn(zone, distrust)
		if reason != "" {
			return time.Time{}, &Error{Outcome: hl7.Failed, Code: hl7.ErrDataType, Where: where, Reason: name + " " + reason}
		}
		return t, nil
	}
	given := func(f hl7.Field) bool { return !f.IsEmpty() && !f.IsNull() }
	var err *Error
	switch {
	case hasEVN && given(evn.Field(6)):
		e.At, err = readTime(evn.Field(6), evn.Location(6), "EVN-6")
	case given(msh.Field(7)):
		e.At, err = readTime(msh.Field(7), msh.Location(7), "MSH-7")
	default:
		err = missing(msh.Location(7), "no event time: EVN-6 and MSH-7 are empty")
	}
	if err != nil {
		return nil, err
	}
	if hasEVN && given(evn.Field(2)) {
		e.Recorded, _ = evn.Field(2).TimeIn(zone, distrust)
	}
	if e.Recorded.IsZero() && given(msh.Field(7)) {
		e.Recorded, _ = msh.Field(7).TimeIn(zone, distrust)
	}

	if e.Trigger == "A40" {
		return e, decodeMerges(m, e)
	}
	pid, ok := m.Find("PID", 1)
	e.PatientAt = absent(m, "PID", 1, 3)
	if ok {
		e.Patient = pid.Field(3).CXs()
	}
	if len(e.Patient) == 0 {
		return nil, missing(e.PatientAt, "no patient identifier (PID-3)")
	}
	pv1, ok := m.Find("PV1", 1)
	e.BedAt, e.PriorBedAt = absent(m, "PV1", 1, 3), absent(m, "PV1", 1, 6)
	if ok {
		e.Bed, e.PriorBed = pv1.Field(3).PL(), pv1.Field(6).PL()
	}
	if needsBed[e.Trigger] && e.Bed.IsZero() {
		return nil, missing(e.BedAt, "no assigned patient location (PV1-3): "+triggers[e.Trigger]+" needs the bed")
	}
	if e.Trigger == "A17" {
		o := &Party{PatientAt: absent(m, "PID", 2, 3), BedAt: absent(m, "PV1", 2, 3)}
		if pid2, ok := m.Find("PID", 2); ok {
			o.Patient = pid2.Field(3).CXs()
		}
		if len(o.Patient) == 0 {
			return nil, missing(o.PatientAt, "no second patient identifier (PID-3 of the second PID): a swap names two patients")
		}
		if pv12, ok := m.Find("PV1", 2); ok {
			o.Bed = pv12.Field(3).PL()
		}
		if o.Bed.IsZero() {
			return nil, missing(o.BedAt, "no second assigned patient location (PV1-3 of the second PV1): a swap names two beds")
		}
		e.Other = o
	}
	return e, nil
}

// decodeMerges reads the PID/MRG pairs of an A40.
func decodeMerges(m *hl7.Message, e *Event) error {
	pids, mrgs := 0, 0
	for i := 1; i < m.Len(); i++ {
		switch m.Segment(i).ID() {
		case "PID":
			pids++
		case "MRG":
			mrgs++
		}
	}
	if pids == 0 {
		return missing(absent(m, "PID", 1, 3), "no patient identifier (PID-3)")
	}
	if mrgs != pids {
		return missing(absent(m, "MRG", min(mrgs, pids)+1, 1), "a merge pairs each PID with one MRG")
	}
	for n := 1; n <= pids; n++ {
		pid, _ := m.Find("PID", n)
		mrg, _ := m.Find("MRG", n)
		if mrg.Index() < pid.Index() {
			return &Error{Outcome: hl7.Failed, Code: hl7.ErrSegmentSequence, Where: mrg.Location(0), Reason: "an MRG before its PID"}
		}
		mg := Merge{Patient: pid.Field(3).CXs(), MergedAway: mrg.Field(1).CXs(), PatientAt: pid.Location(3), MergedAt: mrg.Location(1)}
		if len(mg.Patient) == 0 {
			return missing(mg.PatientAt, "no surviving patient identifier (PID-3)")
		}
		if len(mg.MergedAway) == 0 {
			return missing(mg.MergedAt, "no prior patient identifier (MRG-1)")
		}
		e.Merges = append(e.Merges, mg)
	}
	e.Patient, e.PatientAt = e.Merges[0].Patient, e.Merges[0].PatientAt
	return nil
}
