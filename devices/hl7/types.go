package hl7

import (
	"errors"
	"strings"
	"time"
)

// The HL7 data types that more than one message type reads: HD (a
// hierarchic designator: who assigned an id), CX (an identifier with its
// assigning authority, as PID-3 repeats it), PL (a person location: point
// of care, room, bed) and TS/DTM times read under a sender's zone.

// HD is an HL7 hierarchic designator: a namespace id, or a universal id of
// a given type ("ISO" for an OID, "EUI-64").
type HD struct {
	Namespace, UniversalID, UniversalIDType string
}

// URI is the designator's universal id as a URI, the form a FHIR
// identifier system takes: "urn:oid:1.2.3" for type ISO, the id itself for
// type URI, "urn:uuid:..." for a UUID; "" for a namespace id only or a
// type it does not know.
func (h HD) URI() string {
	switch strings.ToUpper(h.UniversalIDType) {
	case "ISO":
		if h.UniversalID != "" {
			return "urn:oid:" + h.UniversalID
		}
	case "URI":
		return h.UniversalID
	case "UUID":
		if h.UniversalID != "" {
			return "urn:uuid:" + strings.ToLower(h.UniversalID)
		}
	}
	return ""
}

// IsZero reports whether no part of the designator is given.
func (h HD) IsZero() bool { return h == HD{} }

// HD reads the field (or repetition) as a hierarchic designator from its
// components (MSH-3, MSH-4).
func (f Field) HD() HD {
	return HD{f.Comp(1).Text(), f.Comp(2).Text(), f.Comp(3).Text()}
}

// SubHD reads a component as a hierarchic designator from its
// sub-components (CX-4, PL-4).
func (f Field) SubHD() HD {
	return HD{f.Sub(1).Text(), f.Sub(2).Text(), f.Sub(3).Text()}
}

// CX is one identifier with its assigning authority (PID-3, MRG-1).
type CX struct {
	Value     string
	Authority HD     // CX-4, the assigning authority
	Type      string // CX-5: MR, PI, ...
}

// CXs reads every repetition of the field as an identifier; repetitions
// without a value are left out.
func (f Field) CXs() []CX {
	ids := make([]CX, 0, f.Reps())
	for i := 1; i <= f.Reps(); i++ {
		rep := f.Rep(i)
		id := CX{Value: rep.Comp(1).Text(), Authority: rep.Comp(4).SubHD(), Type: rep.Comp(5).Text()}
		if id.Value != "" {
			ids = append(ids, id)
		}
	}
	return ids
}

// PL is a person location (PV1-3, PV1-6): the sender's point of care, room
// and bed, each component as written (unescaped).
type PL struct {
	PointOfCare, Room, Bed string
	Facility               HD
	Status                 string // PL-5
	Type                   string // PL-6
	Building, Floor        string
	Description            string
}

// IsZero reports whether the location names nothing.
func (p PL) IsZero() bool { return p == PL{} }

// PL reads the field as a person location.
func (f Field) PL() PL {
	return PL{
		PointOfCare: f.Comp(1).Text(),
		Room:        f.Comp(2).Text(),
		Bed:         f.Comp(3).Text(),
		Facility:    f.Comp(4).SubHD(),
		Status:      f.Comp(5).Text(),
		Type:        f.Comp(6).Text(),
		Building:    f.Comp(7).Text(),
		Floor:       f.Comp(8).Text(),
		Description: f.Comp(9).Text(),
	}
}

// TimeIn reads a TS/DTM field as an instant, never at a guess: a time
// without a UTC offset is read in zone, and is refused when there is no
// zone, when distrust says why the zone cannot be trusted for this message
// (see ZoneContradiction), or when it falls in an hour the zone skips or
// repeats. A time less precise than the minute is refused too. The reason
// (empty when the time is good) names no content.
func (f Field) TimeIn(zone *time.Location, distrust string) (time.Time, string) {
	t, err := ParseTime(strings.TrimSpace(f.Comp(1).Text()), zone)
	switch {
	case errors.Is(err, ErrSkippedLocalTime):
		return time.Time{}, "is a local time that the zone skipped (daylight saving begins)"
	case err != nil:
		return time.Time{}, "is not a time"
	case t.Precision < Minute:
		return time.Time{}, "is not precise to the minute"
	case !t.Zoned && zone == nil:
		return time.Time{}, "has no UTC offset and no zone is configured for the sender"
	case !t.Zoned && distrust != "":
		return time.Time{}, "has no UTC offset, and " + distrust
	case t.Ambiguous:
		return time.Time{}, "has no UTC offset and falls in the hour that the zone repeats (daylight saving ends)"
	}
	return t.Time, ""
}

// ZoneContradiction is why zone cannot date this message's times without
// offsets: its MSH-7 carries an offset that the zone does not have at that
// instant. "" when nothing contradicts it (or zone is nil).
func ZoneContradiction(msh7 Field, zone *time.Location) string {
	if zone == nil {
		return ""
	}
	t, err := ParseTime(strings.TrimSpace(msh7.Comp(1).Text()), nil)
	if err != nil || !t.Zoned {
		return ""
	}
	_, sent := t.Zone()
	if _, z := t.In(zone).Zone(); z != sent {
		return "the zone configured for the sender disagrees with the offset of MSH-7"
	}
	return ""
}
