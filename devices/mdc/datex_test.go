package mdc_test

import (
	"testing"

	"github.com/wardgate/wardgate/devices/datex"
	"github.com/wardgate/wardgate/devices/mdc"
)

// Every row names a term of the table, for a field devices/datex hands
// over, in a unit the term is charted in or converted from.
func TestDatexRows(t *testing.T) {
	units := map[string]string{}
	for _, f := range datex.Fields() {
		units[f.Name] = f.Unit
	}
	for _, r := range mdc.DatexRows() {
		term, ok := mdc.ByCode(r.Code)
		if !ok {
			t.Errorf("%s (label %d): %d is not in the table", r.Field, r.Label, r.Code)
			continue
		}
		u, ok := units[r.Field]
		if !ok {
			t.Errorf("%s: no such datex field", r.Field)
			continue
		}
		if _, _, ok := term.Accepts(u); !ok {
			t.Errorf("%s: %s is charted in %s, the field comes in %s", r.Field, term.RefID, term.UCUM, u)
		}
	}
}

func TestDatexLookup(t *testing.T) {
	for _, c := range []struct {
		field string
		label uint16
		want  string // "" for none
	}{
		{"ecg.hr", 0, "MDC_ECG_HEART_RATE"},
		{"nibp.sys", 3, "MDC_PRESS_BLD_NONINV_SYS"},
		{"p1.sys", 1, "MDC_PRESS_BLD_ART_SYS"},
		{"p2.mean", 2, "MDC_PRESS_BLD_VEN_CENT_MEAN"},
		{"p2.sys", 2, "MDC_PRESS_BLD_SYS"}, // a CVP's sys: the general term
		{"p3.dia", 3, "MDC_PRESS_BLD_ART_PULM_DIA"},
		{"p6.mean", 12, "MDC_PRESS_BLD_MEAN"},
		{"p4.sys", 7, ""}, // ICP
		{"p4.hr", 7, "MDC_BLD_PULS_RATE_INV"},
		{"t1.temp", 1, "MDC_TEMP_ESOPH"},
		{"t2.temp", 6, "MDC_TEMP"},
		{"t3.temp", 9, ""}, // room
		{"spo2.spo2", 0, "MDC_PULS_OXIM_SAT_O2"},
		{"spo2.pr", 0, "MDC_PULS_OXIM_PULS_RATE"},
		{"co2.et", 1, "MDC_CONC_AWAY_CO2_ET"},
		{"co2.rr", 1, "MDC_CO2_RESP_RATE"},
		{"co2.amb_press", 0, ""},
		{"ecg.st1", 0, ""},
	} {
		term, ok := mdc.Datex(c.field, c.label)
		if got := term.RefID; ok != (c.want != "") || got != c.want {
			t.Errorf("Datex(%s, %d) = %q, %v; want %q", c.field, c.label, got, ok, c.want)
		}
	}
}
