package hl7

import "strings"

// Builder writes a message segment by segment in given delimiters. Values
// are written as given: escape text with Text, join components with
// Comps.
type Builder struct {
	d Delimiters
	b []byte
}

// NewBuilder writes with the delimiters d (DefaultDelimiters when d has
// no field separator).
func NewBuilder(d Delimiters) *Builder {
	if d.Field == 0 {
		d = DefaultDelimiters
	}
	return &Builder{d: d, b: make([]byte, 0, 256)}
}

// Delimiters are the builder's delimiters.
func (b *Builder) Delimiters() Delimiters { return b.d }

// MSH writes the header: MSH-1 and MSH-2 from the delimiters, then the
// fields from MSH-3 on.
func (b *Builder) MSH(fields ...string) {
	b.b = append(b.b, "MSH"...)
	b.b = append(b.b, b.d.Field)
	b.b = append(b.b, b.d.encoding()...)
	b.fields(fields)
}

// Segment writes a segment with fields from 1 on; trailing empty fields
// are left out.
func (b *Builder) Segment(id string, fields ...string) {
	b.b = append(b.b, id...)
	b.fields(fields)
}

func (b *Builder) fields(fields []string) {
	n := len(fields)
	for n > 0 && fields[n-1] == "" {
		n--
	}
	for _, f := range fields[:n] {
		b.b = append(b.b, b.d.Field)
		b.b = append(b.b, f...)
	}
	b.b = append(b.b, '\r')
}

// Text escapes s for a value (see Escape).
func (b *Builder) Text(s string) string { return Escape(s, b.d) }

// Comps joins components, leaving out trailing empty ones. Comps, Subs
// and Reps write only the first part when the delimiters have no such
// separator.
func (b *Builder) Comps(c ...string) string { return join(c, b.d.Component) }

// Subs joins sub-components, leaving out trailing empty ones.
func (b *Builder) Subs(c ...string) string { return join(c, b.d.Subcomponent) }

// Reps joins repetitions.
func (b *Builder) Reps(r ...string) string { return join(r, b.d.Repetition) }

func join(parts []string, sep byte) string {
	n := len(parts)
	for n > 0 && parts[n-1] == "" {
		n--
	}
	if sep == 0 {
		// The message declared no such separator: only the first part can
		// be written (a 0 byte is no separator in HL7).
		n = min(n, 1)
	}
	return strings.Join(parts[:n], string(sep))
}

// Bytes is the message written so far, each segment ended by CR.
func (b *Builder) Bytes() []byte { return b.b }
