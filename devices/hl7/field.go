package hl7

import "strings"

const (
	levelField = iota
	levelRep
	levelComp
	levelSub
	levelLiteral // MSH-1 and MSH-2: never split, never unescaped
)

// Field is a value in a message at any depth: a field, one of its
// repetitions, a component or a sub-component. Narrowing a Field (Rep,
// Comp, Sub) allocates nothing. The zero Field is empty.
//
// Comp on a field takes its first repetition; Sub on a field or a
// repetition takes its first component: f.Comp(2) is the second component
// of the first repetition, as the standard's "PID-3.4" means.
type Field struct {
	s     string
	d     Delimiters
	level uint8
}

// Raw is the value as written in the message: escape sequences and the
// delimiters of lower levels included.
func (f Field) Raw() string { return f.s }

// IsEmpty reports whether the value is absent or empty.
func (f Field) IsEmpty() bool { return f.s == "" }

// IsNull reports whether the value is the HL7 null `""`: the sender asks
// for a stored value to be deleted.
func (f Field) IsNull() bool { return f.s == `""` }

// Reps is the number of repetitions; 0 for an empty field.
func (f Field) Reps() int {
	if f.s == "" {
		return 0
	}
	if f.level != levelField || f.d.Repetition == 0 {
		return 1
	}
	return strings.Count(f.s, string(f.d.Repetition)) + 1
}

// Rep is repetition i, from 1.
func (f Field) Rep(i int) Field {
	switch {
	case f.level == levelField && f.d.Repetition != 0:
		return Field{s: nth(f.s, f.d.Repetition, i), d: f.d, level: levelRep}
	case f.level == levelField && i == 1:
		// No repetition separator: the field is its one repetition, whose
		// components are still to be read.
		return Field{s: f.s, d: f.d, level: levelRep}
	case f.level == levelField:
		return Field{d: f.d, level: levelRep}
	case i == 1:
		return f
	}
	return Field{d: f.d, level: f.level}
}

// Comps is the number of components (of the first repetition of a field).
func (f Field) Comps() int {
	if f.level == levelField {
		f = f.Rep(1)
	}
	if f.s == "" {
		return 0
	}
	if f.level != levelRep || f.d.Component == 0 {
		return 1
	}
	return strings.Count(f.s, string(f.d.Component)) + 1
}

// Comp is component i, from 1.
func (f Field) Comp(i int) Field {
	if f.level == levelField {
		f = f.Rep(1)
	}
	switch {
	case f.level == levelRep && f.d.Component != 0:
		return Field{s: nth(f.s, f.d.Component, i), d: f.d, level: levelComp}
	case f.level == levelRep:
		f.level = levelComp
		fallthrough
	case i == 1:
		return f
	}
	return Field{d: f.d, level: f.level}
}

// Sub is sub-component i, from 1.
func (f Field) Sub(i int) Field {
	if f.level < levelComp {
		f = f.Comp(1)
	}
	switch {
	case f.level == levelComp && f.d.Subcomponent != 0:
		return Field{s: nth(f.s, f.d.Subcomponent, i), d: f.d, level: levelSub}
	case f.level == levelComp:
		f.level = levelSub
		fallthrough
	case i == 1:
		return f
	}
	return Field{d: f.d, level: f.level}
}

// Truncated reports whether the sender marked the value as cut short (the
// truncation character of v2.7 at its end).
func (f Field) Truncated() bool {
	return f.d.Truncation != 0 && f.level != levelLiteral && strings.HasSuffix(f.s, string(f.d.Truncation))
}

// Text is the value with its escape sequences resolved (see Unescape) and
// a truncation mark removed. Delimiters of lower levels stay as they are:
// take Comp or Sub first for a structured value. Text allocates only when
// the value holds an escape sequence.
func (f Field) Text() string {
	if f.level == levelLiteral {
		return f.s
	}
	s := f.s
	if f.Truncated() {
		s = s[:len(s)-1]
	}
	return Unescape(s, f.d)
}

// String is Text, for fmt.
func (f Field) String() string { return f.Text() }

// nth is the i-th (from 1) piece of s split at sep.
func nth(s string, sep byte, i int) string {
	if i < 1 {
		return ""
	}
	for ; i > 1; i-- {
		j := strings.IndexByte(s, sep)
		if j < 0 {
			return ""
		}
		s = s[j+1:]
	}
	if j := strings.IndexByte(s, sep); j >= 0 {
		return s[:j]
	}
	return s
}
