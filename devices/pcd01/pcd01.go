// Package pcd01 decodes IHE PCD-01 "Communicate PCD Data" messages
// (HL7 v2 ORU^R01, as central stations and device gateways of Philips, GE,
// Mindray, Nihon Kohden and Dräger send them) into devices.Reading values,
// with what the gateway needs around them: the control id (MSH-10) for
// acknowledging and de-duplicating, the sender (MSH-3, MSH-4), the bed as
// the sender names it (PV1-3), the patient identifiers with their
// assigning authorities (PID-3), and the device identity (OBX-18, else the
// EUI-64 of MSH-3).
//
// Rules it keeps, each with its test:
//   - the profile is matched by its OID in MSH-21 (ProfileOID), never by a
//     name: Mindray writes IHE_PCD_001, GE PCD_DEC_001;
//   - OBX-3 is an MDC code written as number^REFID^MDC, as MDIL hex
//     ("0002-4bb8"), or as a term code without its partition (the metric
//     partition 2 is added; units get partition 4); every code is resolved
//     through devices/mdc, and a number and a reference id that disagree
//     are a problem, not a choice;
//   - OBX-4 (containment, "1.3.1.150456" or "1.22.1.2") is kept as an
//     opaque key;
//   - rows with OBX-11 X are the MDS/VMD/channel hierarchy: counted, no
//     reading;
//   - units (OBX-6) are MDC_DIM codes or UCUM, converted to the unit each
//     term is charted in;
//   - the time is OBX-14, else OBR-7 of the row's OBR, else MSH-7, in the
//     offset the value carries, else in Decoder.Zone;
//   - demo and test data (OBX-8 DEMO, demo-data, TEST, test-data, or a
//     message whose MSH-11 processing id is not P) are decoded but marked
//     (Observation.Demo, Observation.Test) so that they are never charted;
//   - a row that cannot be decoded is a Problem with its segment and
//     field, never dropped without a word, and never stops the other rows.
//
// A message that is not a PCD-01 result (another type, another profile, no
// control id, two patients) is an *Error, which carries the Reply for its
// acknowledgement.
package pcd01

import (
	"fmt"
	"strings"
	"time"

	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/devices/hl7"
)

// ProfileOID identifies IHE PCD-01 in MSH-21.
const ProfileOID = "1.3.6.1.4.1.19376.1.6.1.1.1"

// ProfileName is what readings from this decoder carry in
// devices.Reading.Profile.
const ProfileName = "ihe/pcd-01"

// HD, Identifier and Bed are the HL7 data types HD, CX and PL
// (devices/hl7).
type (
	HD         = hl7.HD
	Identifier = hl7.CX
	Bed        = hl7.PL
)

// Identity names a device: its EUI-64 (16 upper-case hex digits) when the
// sender gives one, and a name (GE's "B40_GE", an application name).
type Identity struct {
	EUI64 string
	Name  string
}

// Key is the EUI-64, else the name.
func (i Identity) Key() string {
	if i.EUI64 != "" {
		return i.EUI64
	}
	return i.Name
}

// Report is what one PCD-01 message says.
type Report struct {
	ControlID  string // MSH-10
	Version    string // MSH-12
	Processing string // MSH-11: P, T (training), D (debugging)

	SendingApplication HD // MSH-3
	SendingFacility    HD // MSH-4
	// Device is the sender's EUI-64 from MSH-3 (its universal id when of
	// type EUI-64), for rows without OBX-18.
	Device Identity
	Sent   time.Time // MSH-7; zero when absent or unreadable
	// ProfileMatched: MSH-21 names PCD-01 by its OID (false only with
	// Decoder.AllowMissingProfile and an empty MSH-21).
	ProfileMatched bool

	// HasPatient: a PID segment was sent; Patient its PID-3 identifiers.
	HasPatient bool
	Patient    []Identifier
	// HasBed: a PV1 segment with a PV1-3 was sent.
	HasBed bool
	Bed    Bed

	Observations []Observation
	// Hierarchy counts the OBX-11 X rows (MDS, VMD, channel): structure,
	// no value.
	Hierarchy int
	// Problems are the rows (and message-level fields) that could not be
	// decoded; each row in trouble is left out of Observations.
	Problems []Problem
}

// Observation is one decoded OBX row.
type Observation struct {
	devices.Reading
	// Where is the OBX segment.
	Where       hl7.Location
	SetID       string // OBX-1
	Containment string // OBX-4, an opaque key
	Status      string // OBX-11
	Method      string // OBX-17.1, e.g. AMEAS, APERIODIC
	Equipment   Identity
	// Demo and Test: the device or the sender marked the value as demo or
	// test data (or the message's processing id is not P). Never chart it.
	Demo, Test bool
}

// Chartable reports whether the value may go to a patient's chart as far
// as the message is concerned (it is neither demo nor test data).
func (o Observation) Chartable() bool { return !o.Demo && !o.Test }

// Problem is a row or a field that could not be decoded. Reason never
// holds message content.
type Problem struct {
	Where  hl7.Location
	Reason string
}

func (p Problem) String() string { return p.Where.String() + ": " + p.Reason }

// Error is a message that is not a PCD-01 result this decoder takes.
type Error struct {
	Outcome hl7.Outcome // Rejected or Failed
	Code    int         // HL7 table 0357
	Where   hl7.Location
	Reason  string
}

func (e *Error) Error() string {
	return fmt.Sprintf("pcd01: %s: %s", e.Where, e.Reason)
}

// Reply is the acknowledgement the error calls for.
func (e *Error) Reply() hl7.Reply {
	return hl7.Reply{Outcome: e.Outcome, Code: e.Code, Where: e.Where, Text: e.Reason}
}

// Decoder decodes PCD-01 messages. The zero Decoder is usable but knows no
// zone; set Zone. A Decoder is safe for concurrent use.
type Decoder struct {
	// Zone is the sender's time zone, for timestamps without a UTC offset
	// (GE and Mindray senders often leave it out). Nil: such a timestamp
	// is a problem and its row is not decoded; the time is never guessed.
	// A local time that the zone skips or repeats (daylight saving) is a
	// problem too, and so is every timestamp without an offset in a
	// message whose MSH-7 carries an offset the zone does not have then.
	Zone *time.Location
	// AllowMissingProfile takes a message whose MSH-21 is empty (some
	// older senders). A MSH-21 naming other profiles only is still refused.
	AllowMissingProfile bool
}

// Decode reads one PCD-01 message; received is when the gateway read it.
func (d *Decoder) Decode(m *hl7.Message, received time.Time) (*Report, error) {
	msh := m.Segment(0)
	if typ := msh.Field(9); typ.Comp(1).Text() != "ORU" || typ.Comp(2).Text() != "R01" {
		return nil, &Error{Outcome: hl7.Rejected, Code: hl7.ErrUnsupportedMessageType, Where: msh.Location(9), Reason: "not an ORU^R01 message"}
	}
	if v := msh.Field(12).Comp(1).Text(); !strings.HasPrefix(v, "2.") {
		return nil, &Error{Outcome: hl7.Rejected, Code: hl7.ErrUnsupportedVersion, Where: msh.Location(12), Reason: "not HL7 version 2.x"}
	}
	r := &Report{
		ControlID:          msh.Field(10).Text(),
		Version:            msh.Field(12).Comp(1).Text(),
		Processing:         msh.Field(11).Comp(1).Text(),
		SendingApplication: msh.Field(3).HD(),
		SendingFacility:    msh.Field(4).HD(),
	}
	if r.ControlID == "" {
		return nil, &Error{Outcome: hl7.Failed, Code: hl7.ErrRequiredFieldMissing, Where: msh.Location(10), Reason: "no message control id"}
	}
	profiles := msh.Field(21)
	for i := 1; i <= profiles.Reps(); i++ {
		if strings.TrimSpace(profiles.Rep(i).Comp(3).Text()) == ProfileOID {
			r.ProfileMatched = true
		}
	}
	if !r.ProfileMatched && !(d.AllowMissingProfile && profiles.IsEmpty()) {
		return nil, &Error{Outcome: hl7.Rejected, Code: hl7.ErrUnsupportedMessageType, Where: msh.Location(21),
			Reason: "MSH-21 does not name IHE PCD-01 (" + ProfileOID + ")"}
	}
	if a := r.SendingApplication; strings.EqualFold(a.UniversalIDType, "EUI-64") {
		r.Device = Identity{EUI64: eui64(a.UniversalID), Name: a.Namespace}
	} else {
		r.Device = Identity{Name: a.Namespace}
	}

	obx := 0
	for i := 1; i < m.Len(); i++ {
		if m.Segment(i).ID() == "OBX" {
			obx++
		}
	}
	r.Observations = make([]Observation, 0, obx)
	st := decodeState{d: d, r: r, received: received, test: r.Processing != "" && r.Processing != "P", zoneReason: hl7.ZoneContradiction(msh.Field(7), d.Zone)}
	if ts := msh.Field(7); !ts.IsEmpty() {
		t, reason := ts.TimeIn(d.Zone, st.zoneReason)
		if reason == "" {
			r.Sent = t
			st.mshTime = t
		} else {
			st.mshReason = "MSH-7 " + reason
			r.Problems = append(r.Problems, Problem{msh.Location(7), st.mshReason})
		}
	} else {
		st.mshReason = "no time: OBX-14, OBR-7 and MSH-7 are empty"
	}
	st.obrTime, st.obrReason = st.mshTime, st.mshReason

	seenPV1 := false
	for i := 1; i < m.Len(); i++ {
		s := m.Segment(i)
		switch s.ID() {
		case "PID":
			if r.HasPatient {
				return nil, &Error{Outcome: hl7.Failed, Code: hl7.ErrSegmentSequence, Where: s.Location(0), Reason: "a second PID: one patient per message"}
			}
			r.HasPatient = true
			r.Patient = s.Field(3).CXs()
		case "PV1":
			if seenPV1 {
				return nil, &Error{Outcome: hl7.Failed, Code: hl7.ErrSegmentSequence, Where: s.Location(0), Reason: "a second PV1: one bed per message"}
			}
			seenPV1 = true
			if f := s.Field(3); !f.IsEmpty() {
				r.HasBed = true
				r.Bed = f.PL()
			}
		case "OBR":
			st.obr(s)
		case "OBX":
			st.obx(s)
		}
	}
	return r, nil
}

// eui64 normalises a 16-hex-digit EUI-64 ("0019a1fffe000001",
// "00-19-A1-FF-FE-00-00-01") to upper case without separators; "" when s
// is not one. One already in that form is returned as it is.
func eui64(s string) string {
	if len(s) == 16 && upperHex(s) {
		return s
	}
	var b [16]byte
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '-' || c == ':':
			continue
		case c >= '0' && c <= '9', c >= 'A' && c <= 'F':
		case c >= 'a' && c <= 'f':
			c -= 'a' - 'A'
		default:
			return ""
		}
		if n == 16 {
			return ""
		}
		b[n] = c
		n++
	}
	if n != 16 {
		return ""
	}
	return string(b[:])
}

func upperHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}
