package hl7

import (
	"errors"
	"fmt"
)

// Path is a parsed path to a value (see ParsePath).
type Path struct {
	Segment string
	Seq     int // occurrence of the segment, from 1
	Field   int
	Rep     int // 0: the whole field (Comp then takes the first repetition)
	Comp    int // 0: the whole repetition
	Sub     int // 0: the whole component
}

var errPath = errors.New("want SEG[(n)]-field[(rep)][.comp[.sub]], e.g. PID-3(2).4.1")

// ParsePath parses a path in the standard's notation: "PV1-3.1" is the
// first component of PV1-3; "PID-3(2).4.1" the first sub-component of the
// fourth component of the second repetition of PID-3; "OBX(3)-5" field 5
// of the third OBX. "PV1.3.1" is taken too.
func ParsePath(p string) (Path, error) {
	var r Path
	if len(p) < 5 {
		return r, fmt.Errorf("hl7: path %q: %w", p, errPath)
	}
	for i := 0; i < 3; i++ {
		if !segmentIDByte(p[i]) {
			return r, fmt.Errorf("hl7: path %q: %w", p, errPath)
		}
	}
	r.Segment, r.Seq = p[:3], 1
	rest := p[3:]
	var ok bool
	if r.Seq, rest, ok = paren(rest, 1); !ok {
		return r, fmt.Errorf("hl7: path %q: %w", p, errPath)
	}
	if rest == "" || rest[0] != '-' && rest[0] != '.' {
		return r, fmt.Errorf("hl7: path %q: %w", p, errPath)
	}
	if r.Field, rest, ok = number(rest[1:]); !ok {
		return r, fmt.Errorf("hl7: path %q: %w", p, errPath)
	}
	if r.Rep, rest, ok = paren(rest, 0); !ok {
		return r, fmt.Errorf("hl7: path %q: %w", p, errPath)
	}
	for _, dst := range []*int{&r.Comp, &r.Sub} {
		if rest == "" {
			break
		}
		if rest[0] != '.' {
			return r, fmt.Errorf("hl7: path %q: %w", p, errPath)
		}
		if *dst, rest, ok = number(rest[1:]); !ok {
			return r, fmt.Errorf("hl7: path %q: %w", p, errPath)
		}
	}
	if rest != "" {
		return r, fmt.Errorf("hl7: path %q: %w", p, errPath)
	}
	return r, nil
}

// paren reads an optional "(n)".
func paren(s string, def int) (int, string, bool) {
	if s == "" || s[0] != '(' {
		return def, s, true
	}
	n, rest, ok := number(s[1:])
	if !ok || rest == "" || rest[0] != ')' {
		return 0, s, false
	}
	return n, rest[1:], true
}

// number reads a decimal number from 1 to 99999.
func number(s string) (int, string, bool) {
	n, i := 0, 0
	for i < len(s) && i < 5 && s[i] >= '0' && s[i] <= '9' {
		n = n*10 + int(s[i]-'0')
		i++
	}
	return n, s[i:], i > 0 && n > 0
}

// At is the value the path names; empty when the message has none.
func (m *Message) At(p Path) Field {
	f := m.Field(p.Segment, p.Seq, p.Field)
	if p.Rep > 0 {
		f = f.Rep(p.Rep)
	}
	if p.Comp > 0 {
		f = f.Comp(p.Comp)
		if p.Sub > 0 {
			f = f.Sub(p.Sub)
		}
	}
	return f
}

// Get is the value at the path p (see ParsePath), or an error for a path
// that is not well formed. m.Get("PV1-3.3").Text() is the bed.
func (m *Message) Get(p string) (Field, error) {
	path, err := ParsePath(p)
	if err != nil {
		return Field{}, err
	}
	return m.At(path), nil
}
