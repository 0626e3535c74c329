package edge

import (
	"fmt"
	"strings"

	"github.com/wardgate/wardgate/devices/hl7"
	"github.com/wardgate/wardgate/edge/config"
	"github.com/wardgate/wardgate/edge/fhir"
)

// What an HL7 message says of bed and patient, read the same way for
// PCD-01 results and ADT events.

// bedTemplate makes a wardgate bed id from PV1-3 (hl7.bed,
// patients.adt.bed): "{point_of_care}-{bed}" makes "ICU-7" of ICU^^7.
type bedTemplate string

// bedOfPL is the bed id the template makes of pl. Every part the template
// names must be given, and hold only what a bed id may (letters, digits,
// '.', '_', '-') but none of the characters the template writes between
// parts: a part is never rewritten, and ICU-1^^2 and ICU^^1-2 would both
// make ICU-1-2 under "{point_of_care}-{bed}", so that two of the sender's
// beds never become one of ours. The error names the component, never its
// content.
func (t bedTemplate) bedOfPL(pl hl7.PL) (string, error) {
	seps := t.separators()
	parts := map[string]struct {
		v    string
		comp int
	}{
		"point_of_care": {pl.PointOfCare, 1}, "room": {pl.Room, 2}, "bed": {pl.Bed, 3},
		"facility": {pl.Facility.Namespace, 4}, "building": {pl.Building, 7}, "floor": {pl.Floor, 8},
	}
	var b strings.Builder
	s := string(t)
	for s != "" {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			b.WriteString(s[i:])
			break
		}
		name := s[i+1 : i+j]
		s = s[i+j+1:]
		p, ok := parts[name]
		if !ok {
			return "", fmt.Errorf("the bed template names {%s}, which is not a part of PV1-3", name)
		}
		v := strings.TrimSpace(p.v)
		if v == "" {
			return "", fmt.Errorf("PV1-3.%d (%s) is empty, and the bed template needs it", p.comp, name)
		}
		if !bedName.MatchString(v) {
			return "", fmt.Errorf("PV1-3.%d (%s) holds characters a bed id does not take (letters, digits, '.', '_', '-')", p.comp, name)
		}
		if i := strings.IndexAny(v, seps); i >= 0 {
			return "", fmt.Errorf("PV1-3.%d (%s) holds %q, which the bed template writes between parts: two beds could make one id; write the template with another separator (such as {point_of_care}_{bed})", p.comp, name, v[i])
		}
		b.WriteString(v)
	}
	bed := b.String()
	if !bedName.MatchString(bed) {
		return "", fmt.Errorf("the bed the template makes of PV1-3 is longer than 64 characters")
	}
	return bed, nil
}

// separators are the characters the template writes outside its parts.
func (t bedTemplate) separators() string {
	var b strings.Builder
	depth := 0
	for _, c := range string(t) {
		switch {
		case c == '{':
			depth++
		case c == '}':
			depth = max(depth-1, 0)
		case depth == 0:
			b.WriteRune(c)
		}
	}
	return b.String()
}

// recordNumbers says which PID-3 identifiers are record numbers of
// fhir.patient_identifier_system: those whose assigning authority is the
// configured one (hl7.assigning_authority: a namespace id or a universal
// id), or is written as the system itself (its OID or URI).
type recordNumbers struct {
	system    string // fhir.patient_identifier_system; "" takes none
	authority string
}

func newRecordNumbers(c *config.Config, h *config.HL7) recordNumbers {
	return recordNumbers{system: c.FHIR.PatientIdentifierSystem, authority: h.AssigningAuthority}
}

func (r recordNumbers) is(id hl7.CX) bool {
	if r.system == "" {
		return false
	}
	a := id.Authority
	if uri := a.URI(); uri != "" {
		// An authority that names itself by its OID or URI is that one,
		// whatever its namespace says: HOSP&9.9.9&ISO is not the HOSP
		// whose numbers are the system's, unless 9.9.9 is the system.
		return uri == r.system || (r.authority != "" && a.UniversalID == r.authority)
	}
	return r.authority != "" && a.Namespace == r.authority
}

// patient is the patient that ids name, as the conditional reference the
// record resolves (Patient?identifier=system|value): "" when none of them is
// a record number of the system. Two different record numbers are an
// error: a message names one patient, and two numbers for one person are
// for the record's master patient index to sort out, not for a guess here.
func (r recordNumbers) patient(ids []hl7.CX) (string, error) {
	// The authority's medical record numbers (CX-5 MR) first: the same
	// authority may also issue account or visit numbers (AN, VN), which
	// are not record numbers. Without an MR, every identifier of the
	// authority counts.
	var mine, mr []hl7.CX
	for _, id := range ids {
		if r.is(id) {
			mine = append(mine, id)
			if strings.EqualFold(strings.TrimSpace(id.Type), "MR") {
				mr = append(mr, id)
			}
		}
	}
	if len(mr) > 0 {
		mine = mr
	}
	value := ""
	for _, id := range mine {
		v := strings.TrimSpace(id.Value)
		if value != "" && v != value {
			return "", fmt.Errorf("PID-3 holds two different record numbers of %s", r.system)
		}
		value = v
	}
	if value == "" {
		return "", nil
	}
	return fhir.ConditionalPatient(r.system, value), nil
}
