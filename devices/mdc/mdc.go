// Package mdc is wardgate's table of IEEE 11073-10101 nomenclature codes for
// the bedside parameters it handles: each measurement's reference id, its
// numeric code (partition × 65536 + term code), the UCUM unit it is charted
// in and, where one exists, the LOINC vital-signs code; and the MDC unit
// codes with their UCUM equivalents.
//
// Profiles name codes by reference id ("MDC_PULS_OXIM_SAT_O2") or number
// ("150456"); both resolve here, so a typo is caught by `wardgate check`, not
// by a FHIR server at 3 a.m. Each entry was checked against the sources named
// in table.go; several code lists in circulation are wrong, so an entry is
// added only with its source.
package mdc

import (
	"strconv"
	"strings"
)

// Term is one measured parameter.
type Term struct {
	Code    uint32 // numeric code, e.g. 150456
	RefID   string // reference id, e.g. MDC_PULS_OXIM_SAT_O2
	Display string // short human name
	UCUM    string // the unit it is charted in
	LOINC   string // vital-signs LOINC code, "" when none applies
	// Units are the other UCUM units a device may send it in, which the
	// gateway converts to UCUM (see Convert).
	Units []string
}

// Unit is one IEEE 11073 unit code.
type Unit struct {
	Code  uint32 // partition 4, e.g. 264864
	RefID string // e.g. MDC_DIM_BEAT_PER_MIN
	UCUM  string // e.g. /min
}

var (
	byCode  = map[uint32]*Term{}
	byRef   = map[string]*Term{}
	units   = map[string]*Unit{} // by ref id, number and UCUM
	ucumSet = map[string]bool{}
)

func init() {
	for i := range terms {
		t := &terms[i]
		if byCode[t.Code] != nil || byRef[t.RefID] != nil {
			panic("mdc: duplicate term " + t.RefID)
		}
		byCode[t.Code] = t
		byRef[t.RefID] = t
	}
	for i := range unitTable {
		u := &unitTable[i]
		units[u.RefID] = u
		units[strconv.FormatUint(uint64(u.Code), 10)] = u
		if units[u.UCUM] == nil {
			units[u.UCUM] = u
		}
		ucumSet[u.UCUM] = true
	}
	for _, s := range otherUCUM {
		if units[s] == nil {
			units[s] = &Unit{UCUM: s}
		}
		ucumSet[s] = true
	}
}

// Lookup finds a term by reference id (case-insensitive, with or without the
// MDC_ prefix) or by numeric code.
func Lookup(s string) (Term, bool) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		if t := byCode[uint32(n)]; t != nil {
			return *t, true
		}
		return Term{}, false
	}
	ref := strings.ToUpper(s)
	if !strings.HasPrefix(ref, "MDC_") {
		ref = "MDC_" + ref
	}
	if t := byRef[ref]; t != nil {
		return *t, true
	}
	return Term{}, false
}

// ByCode finds a term by its numeric code.
func ByCode(code uint32) (Term, bool) {
	if t := byCode[code]; t != nil {
		return *t, true
	}
	return Term{}, false
}

// Terms lists every term in the table, in table order.
func Terms() []Term { return append([]Term(nil), terms...) }

// UnitUCUM turns a unit as a device or profile names it (MDC reference id,
// MDC number, or a UCUM code) into UCUM.
func UnitUCUM(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if u := units[s]; u != nil {
		return u.UCUM, true
	}
	if u := units[strings.ToUpper(s)]; u != nil && strings.HasPrefix(strings.ToUpper(s), "MDC_") {
		return u.UCUM, true
	}
	return "", false
}

// KnownUCUM reports whether u is a UCUM unit this table knows.
func KnownUCUM(u string) bool { return ucumSet[u] }

// Accepts reports whether a value of t may come in unit u (UCUM), and the
// factor and offset that convert it to t.UCUM: charted = value*factor + offset.
func (t Term) Accepts(u string) (factor, offset float64, ok bool) {
	if u == t.UCUM {
		return 1, 0, true
	}
	for _, alt := range t.Units {
		if alt == u {
			c, ok := conversions[[2]string{u, t.UCUM}]
			return c[0], c[1], ok
		}
	}
	return 0, 0, false
}

// conversions from one UCUM unit to another: factor, offset.
var conversions = map[[2]string][2]float64{
	{"[degF]", "Cel"}:        {5.0 / 9, -32 * 5.0 / 9},
	{"kPa", "mm[Hg]"}:        {7.500615758, 0},
	{"{beat}/min", "/min"}:   {1, 0},
	{"{breath}/min", "/min"}: {1, 0},
	{"{beats}/min", "/min"}:  {1, 0},
}
