package hl7

import (
	"fmt"
	"strings"
)

// Delimiters are a message's encoding characters: MSH-1 and MSH-2. A
// character the sender did not declare is 0 (a message without an escape
// character has no escape sequences; one before v2.7 has no truncation
// character).
type Delimiters struct {
	Field        byte // MSH-1, usually '|'
	Component    byte // usually '^'
	Repetition   byte // usually '~'
	Escape       byte // usually '\\'
	Subcomponent byte // usually '&'
	Truncation   byte // v2.7 and later, usually '#'
}

// DefaultDelimiters are "|^~\&", what a message without other wishes is
// written with.
var DefaultDelimiters = Delimiters{'|', '^', '~', '\\', '&', 0}

// encoding is MSH-2 as it is written for these delimiters.
func (d Delimiters) encoding() string {
	b := make([]byte, 0, 5)
	for _, c := range [...]byte{d.Component, d.Repetition, d.Escape, d.Subcomponent, d.Truncation} {
		if c == 0 {
			break
		}
		b = append(b, c)
	}
	return string(b)
}

// Limits bound what Parse takes. A zero field takes its default.
type Limits struct {
	// MaxBytes is the largest message; default 1 MiB.
	MaxBytes int
	// MaxSegments is the most segments in a message; default 10,000.
	MaxSegments int
}

// Defaults for Limits.
const (
	DefaultMaxBytes    = 1 << 20
	DefaultMaxSegments = 10000
)

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxSegments <= 0 {
		l.MaxSegments = DefaultMaxSegments
	}
	return l
}

// span is a value's place in Message.raw.
type span struct{ start, end uint32 }

// segSpan is a segment: where its text is, and where its fields start in
// Message.fields. fields[first] is the segment id; fields[first+n] is field
// n (for MSH, field 1 is the field separator itself).
type segSpan struct {
	span
	first, count uint32
	seq          uint32 // occurrence of the segment's id, from 1
}

// Message is a parsed HL7 v2 message. It owns an immutable copy of the text
// it was parsed from; its values are substrings of that copy.
type Message struct {
	raw    string
	delims Delimiters
	segs   []segSpan
	fields []span
}

// Delimiters are the message's encoding characters.
func (m *Message) Delimiters() Delimiters { return m.delims }

// Len is the number of segments, MSH included.
func (m *Message) Len() int { return len(m.segs) }

// Segment is the i-th segment, from 0 (MSH).
func (m *Message) Segment(i int) Segment {
	if i < 0 || i >= len(m.segs) {
		return Segment{}
	}
	return Segment{m: m, i: i}
}

// Find is the n-th (from 1) segment with the given id.
func (m *Message) Find(id string, n int) (Segment, bool) {
	for i := range m.segs {
		s := Segment{m: m, i: i}
		if s.ID() == id {
			n--
			if n == 0 {
				return s, true
			}
		}
	}
	return Segment{}, false
}

// Field is field f of the n-th (from 1) segment with the given id; empty
// when there is none. m.Field("MSH", 1, 10) is MSH-10.
func (m *Message) Field(id string, n, f int) Field {
	s, _ := m.Find(id, n)
	return s.Field(f)
}

// String is the message with each segment ended by CR, as it is sent.
func (m *Message) String() string {
	var b strings.Builder
	n := 0
	for _, s := range m.segs {
		n += int(s.end-s.start) + 1
	}
	b.Grow(n)
	for _, s := range m.segs {
		b.WriteString(m.raw[s.start:s.end])
		b.WriteByte('\r')
	}
	return b.String()
}

// Segment is one segment of a Message. The zero Segment is empty: its id
// is "" and its fields are empty.
type Segment struct {
	m *Message
	i int
}

// Index is the segment's position in its message, from 0 (MSH).
func (s Segment) Index() int { return s.i }

// ID is the segment id ("MSH", "OBX").
func (s Segment) ID() string {
	if s.m == nil {
		return ""
	}
	f := s.m.fields[s.m.segs[s.i].first]
	return s.m.raw[f.start:f.end]
}

// Len is the number of the segment's last field that is present (trailing
// empty fields are often left out).
func (s Segment) Len() int {
	if s.m == nil {
		return 0
	}
	return int(s.m.segs[s.i].count) - 1
}

// Field is field n of the segment, from 1; empty when absent. For MSH,
// field 1 is the field separator and field 2 the encoding characters, and
// both are taken literally.
func (s Segment) Field(n int) Field {
	if s.m == nil || n < 1 || n > s.Len() {
		return Field{}
	}
	seg := s.m.segs[s.i]
	f := s.m.fields[seg.first+uint32(n)]
	lvl := uint8(levelField)
	if s.i == 0 && n <= 2 {
		lvl = levelLiteral
	}
	return Field{s: s.m.raw[f.start:f.end], d: s.m.delims, level: lvl}
}

// Raw is the segment's text as received, without its terminator.
func (s Segment) Raw() string {
	if s.m == nil {
		return ""
	}
	seg := s.m.segs[s.i]
	return s.m.raw[seg.start:seg.end]
}

// Location is where in the message field n of the segment is, for errors
// and ERR segments.
func (s Segment) Location(n int) Location {
	if s.m == nil {
		return Location{}
	}
	id := s.ID()
	return Location{Segment: id, Seq: int(s.m.segs[s.i].seq), Index: s.i, Field: n}
}

// seqCounter numbers the segments of each id as Parse meets them, in
// constant time per segment: a small table for the few ids a message
// usually has, a map beyond them.
type seqCounter struct {
	ids, n [32]uint32
	used   int
	more   map[uint32]uint32
}

func (c *seqCounter) next(s string) uint32 {
	id := uint32(s[0])<<16 | uint32(s[1])<<8 | uint32(s[2])
	for i := 0; i < c.used; i++ {
		if c.ids[i] == id {
			c.n[i]++
			return c.n[i]
		}
	}
	if c.used < len(c.ids) {
		c.ids[c.used], c.n[c.used] = id, 1
		c.used++
		return 1
	}
	if c.more == nil {
		c.more = map[uint32]uint32{}
	}
	c.more[id]++
	return c.more[id]
}

// seq is the occurrence, from 1, of a segment with this id at index i
// among the segments up to it (for a segment not indexed yet).
func (m *Message) seq(id string, i int) int {
	n := 1
	for _, s := range m.segs[:min(i, len(m.segs))] {
		if f := m.fields[s.first]; m.raw[f.start:f.end] == id {
			n++
		}
	}
	return n
}

// Parse parses one HL7 v2 message. data is copied; the caller may reuse it.
func Parse(data []byte, lim Limits) (*Message, error) {
	lim = lim.withDefaults()
	if len(data) > lim.MaxBytes {
		return nil, &ParseError{Reason: fmt.Sprintf("message of %d bytes is larger than the limit of %d", len(data), lim.MaxBytes)}
	}
	raw := string(data)
	start := skipBlank(raw, 0)
	d, err := headerDelimiters(raw[start:])
	if err != nil {
		return nil, err
	}
	fs := raw[start+3 : start+4]
	nseg := strings.Count(raw, "\r") + strings.Count(raw, "\n") + 1
	m := &Message{
		raw:    raw,
		delims: d,
		segs:   make([]segSpan, 0, min(nseg, lim.MaxSegments)),
		fields: make([]span, 0, strings.Count(raw, fs)+2*min(nseg, lim.MaxSegments)+1),
	}
	var seqs seqCounter
	for i := start; i < len(raw); {
		end := i
		for end < len(raw) && raw[end] != '\r' && raw[end] != '\n' {
			end++
		}
		if end > i {
			if len(m.segs) == lim.MaxSegments {
				return nil, &ParseError{Loc: Location{Index: len(m.segs)}, Reason: fmt.Sprintf("more than %d segments", lim.MaxSegments)}
			}
			if err := m.addSegment(i, end, &seqs); err != nil {
				return nil, err
			}
		}
		i = skipBlank(raw, end)
	}
	return m, nil
}

// ParseHeader parses only the MSH segment of data: enough to acknowledge a
// message that Parse refused.
func ParseHeader(data []byte) (*Message, error) {
	start := 0
	for start < len(data) && (data[start] == '\r' || data[start] == '\n') {
		start++
	}
	end := start
	for end < len(data) && data[end] != '\r' && data[end] != '\n' {
		end++
	}
	return Parse(data[start:end], Limits{MaxBytes: max(end-start, 1), MaxSegments: 1})
}

func skipBlank(raw string, i int) int {
	for i < len(raw) && (raw[i] == '\r' || raw[i] == '\n') {
		i++
	}
	return i
}

// headerDelimiters reads MSH-1 and MSH-2 at the start of raw.
func headerDelimiters(raw string) (Delimiters, error) {
	loc := Location{Segment: "MSH", Seq: 1, Field: 1}
	if !strings.HasPrefix(raw, "MSH") {
		return Delimiters{}, &ParseError{Loc: Location{}, Reason: "message does not start with an MSH segment"}
	}
	if len(raw) < 5 || raw[3] == '\r' || raw[3] == '\n' {
		return Delimiters{}, &ParseError{Loc: loc, Reason: "no field separator"}
	}
	d := Delimiters{Field: raw[3]}
	if !delimiterByte(d.Field) {
		return Delimiters{}, &ParseError{Loc: loc, Reason: "field separator is a letter, digit, space or line end"}
	}
	loc.Field = 2
	enc := raw[4:]
	n := 0
	for n < len(enc) && enc[n] != d.Field && enc[n] != '\r' && enc[n] != '\n' {
		n++
	}
	enc = enc[:n]
	switch {
	case len(enc) == 0:
		return Delimiters{}, &ParseError{Loc: loc, Reason: "no encoding characters"}
	case len(enc) > 5:
		return Delimiters{}, &ParseError{Loc: loc, Reason: fmt.Sprintf("%d encoding characters, at most 5", len(enc))}
	}
	ptrs := [...]*byte{&d.Component, &d.Repetition, &d.Escape, &d.Subcomponent, &d.Truncation}
	var seen [256]bool
	seen[d.Field] = true
	for i := 0; i < len(enc); i++ {
		c := enc[i]
		if !delimiterByte(c) {
			return Delimiters{}, &ParseError{Loc: loc, Reason: fmt.Sprintf("encoding character %d is a letter, digit or space", i+1)}
		}
		if seen[c] {
			return Delimiters{}, &ParseError{Loc: loc, Reason: fmt.Sprintf("encoding character %d repeats another delimiter", i+1)}
		}
		seen[c] = true
		*ptrs[i] = c
	}
	return d, nil
}

// delimiterByte reports whether c may be a delimiter: printable ASCII, not
// a letter, a digit or a space.
func delimiterByte(c byte) bool {
	switch {
	case c <= ' ' || c >= 0x7f:
		return false
	case c >= '0' && c <= '9', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		return false
	}
	return true
}

// addSegment indexes the segment raw[start:end].
func (m *Message) addSegment(start, end int, seqs *seqCounter) error {
	raw := m.raw
	loc := Location{Index: len(m.segs)}
	if end-start < 3 || !segmentIDByte(raw[start]) || !segmentIDByte(raw[start+1]) || !segmentIDByte(raw[start+2]) {
		return &ParseError{Loc: loc, Reason: "segment id is not three capital letters or digits"}
	}
	id := raw[start : start+3]
	loc.Segment = id
	if end-start > 3 && raw[start+3] != m.delims.Field {
		loc.Seq = m.seq(id, len(m.segs))
		return &ParseError{Loc: loc, Reason: "segment id is not followed by the field separator"}
	}
	isMSH := id == "MSH"
	if isMSH != (len(m.segs) == 0) {
		loc.Seq = m.seq(id, len(m.segs))
		if isMSH {
			return &ParseError{Loc: loc, Reason: "a second MSH: one message per frame"}
		}
		return &ParseError{Loc: loc, Reason: "the first segment is not MSH"}
	}
	seg := segSpan{span: span{uint32(start), uint32(end)}, first: uint32(len(m.fields)), seq: seqs.next(id)}
	m.fields = append(m.fields, span{uint32(start), uint32(start + 3)})
	if end-start > 3 {
		i := start + 4
		if isMSH {
			m.fields = append(m.fields, span{uint32(start + 3), uint32(start + 4)})
		}
		for {
			j := strings.IndexByte(raw[i:end], m.delims.Field)
			if j < 0 {
				m.fields = append(m.fields, span{uint32(i), uint32(end)})
				break
			}
			m.fields = append(m.fields, span{uint32(i), uint32(i + j)})
			i += j + 1
		}
	}
	seg.count = uint32(len(m.fields)) - seg.first
	m.segs = append(m.segs, seg)
	return nil
}

func segmentIDByte(c byte) bool { return c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' }
