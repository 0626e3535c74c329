package fhir

import (
	"encoding/json"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Validating an Observation against the R4 definitions costs about 20 µs
// (package r4; it was 280 µs with google/fhir), a good part of what mapping
// a reading costs. But the
// Observations of one device's parameter for one patient differ only in
// their identifier's value, their times and their numbers, and those are
// made by wardgate in forms that are always valid (checked cheaply below).
// So each distinct shape — the resource with those parts blanked — is
// validated once; later Observations of a shape already found valid are
// checked for their variable parts only.

// maxShapes bounds the cache; when full it starts again (a ward has a few
// hundred shapes: beds × parameters × patients).
const maxShapes = 10000

func (m *Mapper) observationEntry(o *Observation) (Entry, error) {
	b, err := json.Marshal(o)
	if err != nil {
		return Entry{}, err
	}
	req := request(o)
	key, ok := observationShape(o)
	if ok {
		m.mu.Lock()
		known := m.shapes[key]
		m.mu.Unlock()
		if known {
			return Entry{Resource: b, Request: req}, nil
		}
	}
	if err := validate(b); err != nil {
		return Entry{}, err
	}
	if ok {
		m.mu.Lock()
		if m.shapes == nil || len(m.shapes) >= maxShapes {
			m.shapes = map[string]bool{}
		}
		m.shapes[key] = true
		m.mu.Unlock()
	}
	return Entry{Resource: b, Request: req}, nil
}

// observationShape is o with its variable parts blanked, and whether those
// parts are in forms that are always valid; when not, the Observation is
// validated in full.
func observationShape(o *Observation) (string, bool) {
	if len(o.Identifier) != 1 || !validString(o.Identifier[0].Value) ||
		!validInstant(o.EffectiveDateTime) || (o.Issued != "" && !validInstant(o.Issued)) {
		return "", false
	}
	s := *o
	s.Identifier = []Identifier{{System: o.Identifier[0].System, Value: "v"}}
	s.EffectiveDateTime = "t"
	if s.Issued != "" {
		s.Issued = "t"
	}
	if o.ValueQuantity != nil {
		q := *o.ValueQuantity
		q.Value = 0
		s.ValueQuantity = &q
	}
	if len(o.Component) > 0 {
		s.Component = make([]ObservationComponent, len(o.Component))
		for i, c := range o.Component {
			s.Component[i] = c
			if c.ValueQuantity != nil {
				q := *c.ValueQuantity
				q.Value = 0
				s.Component[i].ValueQuantity = &q
			}
		}
	}
	b, err := json.Marshal(&s)
	if err != nil {
		return "", false
	}
	return string(b), true
}

// validString is what FHIR asks of a string: Unicode, not only white
// space, no control characters but white space.
func validString(s string) bool {
	if !utf8.ValidString(s) || strings.TrimSpace(s) == "" || len(s) > 1<<20 {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) && r != '\t' && r != '\n' && r != '\r' {
			return false
		}
	}
	return true
}

// validInstant accepts what fhirTime makes of a time in years 1–9999.
func validInstant(s string) bool {
	t, err := time.Parse(time.RFC3339Nano, s)
	return err == nil && t.Year() >= 1 && t.Year() <= 9999 && s == fhirTime(t)
}
