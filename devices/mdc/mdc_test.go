package mdc

import (
	"regexp"
	"testing"
)

var loincRe = regexp.MustCompile(`^\d{1,7}-\d$`)

// The table's rows are shaped as IEEE 11073-10101 codes are: measurements in
// partition 2 (SCADA), units in partition 4 (DIM), LOINC codes with their
// check digit, units UCUM.
func TestTableShape(t *testing.T) {
	if len(terms) < 20 {
		t.Fatalf("only %d terms; the bedside table needs at least 20", len(terms))
	}
	for _, term := range terms {
		if term.Code>>16 != 2 {
			t.Errorf("%s: %d is not in partition 2", term.RefID, term.Code)
		}
		if term.LOINC != "" && !loincRe.MatchString(term.LOINC) || term.LOINC != "" && !loincCheck(term.LOINC) {
			t.Errorf("%s: %q is not a LOINC code (check digit)", term.RefID, term.LOINC)
		}
		if !KnownUCUM(term.UCUM) {
			t.Errorf("%s: unit %q unknown", term.RefID, term.UCUM)
		}
		for _, u := range term.Units {
			if _, _, ok := term.Accepts(u); !ok {
				t.Errorf("%s: no conversion from %s to %s", term.RefID, u, term.UCUM)
			}
		}
	}
	for _, u := range unitTable {
		if u.Code>>16 != 4 {
			t.Errorf("%s: %d is not in partition 4", u.RefID, u.Code)
		}
	}
}

// loincCheck verifies a LOINC code's mod-10 check digit.
func loincCheck(code string) bool {
	digits, check := code[:len(code)-2], int(code[len(code)-1]-'0')
	sum := 0
	double := true
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d = d/10 + d%10
			}
		}
		sum += d
		double = !double
	}
	return (10-sum%10)%10 == check
}

func TestLookup(t *testing.T) {
	for _, tc := range []struct {
		in   string
		code uint32
	}{
		{"MDC_PULS_OXIM_SAT_O2", 150456}, {"150456", 150456}, {"puls_oxim_sat_o2", 150456},
		{"MDC_PRESS_BLD_NONINV_SYS", 150021}, {"MDC_CONC_AWAY_CO2_ET", 151708}, {"MDC_AWAY_CO2_ET", 151728},
	} {
		got, ok := Lookup(tc.in)
		if !ok || got.Code != tc.code {
			t.Errorf("Lookup(%q) = %d %v, want %d", tc.in, got.Code, ok, tc.code)
		}
	}
	for _, bad := range []string{"", "MDC_LEN_BODY_ACTUAL", "188740", "42"} {
		if _, ok := Lookup(bad); ok {
			t.Errorf("Lookup(%q) found something", bad)
		}
	}
	for in, want := range map[string]string{"MDC_DIM_BEAT_PER_MIN": "/min", "264864": "/min", "mm[Hg]": "mm[Hg]", "mdc_dim_percent": "%", "[degF]": "[degF]"} {
		if got, ok := UnitUCUM(in); !ok || got != want {
			t.Errorf("UnitUCUM(%q) = %q %v, want %q", in, got, ok, want)
		}
	}
	temp, _ := Lookup("MDC_TEMP_BODY")
	f, o, ok := temp.Accepts("[degF]")
	if !ok || 98.6*f+o < 36.99 || 98.6*f+o > 37.01 {
		t.Errorf("98.6 [degF] converts to %v", 98.6*f+o)
	}
}
