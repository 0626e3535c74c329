package hl7

import (
	"strconv"
	"strings"
)

// Location is a place in a message, as an ERR segment names it: the
// segment (its id and its occurrence among segments of that id) and the
// field, repetition, component and sub-component, each from 1 (0 when not
// known or not narrowed to).
type Location struct {
	Segment string // segment id; "" when the segment's id could not be read
	Seq     int    // occurrence of Segment in the message, from 1: the 3rd OBX is 3
	Index   int    // position of the segment in the message, from 0 (MSH)
	Field   int
	Rep     int
	Comp    int
	Sub     int
}

// String is the location in the standard's notation with the segment's
// position: "OBX(3)-5.1 (segment 7)". It never holds message content.
func (l Location) String() string {
	var b strings.Builder
	if l.Segment == "" {
		b.WriteString("segment ")
		b.WriteString(strconv.Itoa(l.Index + 1))
		return b.String()
	}
	b.WriteString(l.Segment)
	if l.Seq > 1 {
		b.WriteByte('(')
		b.WriteString(strconv.Itoa(l.Seq))
		b.WriteByte(')')
	}
	if l.Field > 0 {
		b.WriteByte('-')
		b.WriteString(strconv.Itoa(l.Field))
		if l.Rep > 1 {
			b.WriteByte('(')
			b.WriteString(strconv.Itoa(l.Rep))
			b.WriteByte(')')
		}
		if l.Comp > 0 {
			b.WriteByte('.')
			b.WriteString(strconv.Itoa(l.Comp))
			if l.Sub > 0 {
				b.WriteByte('.')
				b.WriteString(strconv.Itoa(l.Sub))
			}
		}
	}
	b.WriteString(" (segment ")
	b.WriteString(strconv.Itoa(l.Index + 1))
	b.WriteByte(')')
	return b.String()
}

// ParseError is a message that could not be parsed: where, and why. It
// never quotes the message.
type ParseError struct {
	Loc    Location
	Reason string
}

func (e *ParseError) Error() string {
	if e.Loc == (Location{}) {
		return "hl7: " + e.Reason
	}
	return "hl7: " + e.Loc.String() + ": " + e.Reason
}

// Reply is the acknowledgement for a message that did not parse (with the
// header from ParseHeader): AE with ERR naming where parsing stopped.
func (e *ParseError) Reply() Reply {
	code := ErrDataType
	if e.Loc.Index > 0 && e.Loc.Field == 0 {
		code = ErrSegmentSequence // a segment that is not one
	}
	return Reply{Outcome: Failed, Code: code, Where: e.Loc, Text: e.Reason}
}
