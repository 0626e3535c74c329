package config

import (
	"strings"
	"testing"

	"github.com/wardgate/wardgate/devices/mdc"
)

func code(t *testing.T, ref string) uint32 {
	t.Helper()
	term, ok := mdc.Lookup(ref)
	if !ok {
		t.Fatalf("%s is not in the MDC table", ref)
	}
	return term.Code
}

// A parameter's policy is its monitor's, else its bed group's, else its
// profile's, else the built-in one; a parameter named beats its kind.
func TestChartForTakesTheMostSpecific(t *testing.T) {
	cfg := `site: ward-4b
data_dir: data
fhir: {base_url: https://fhir.example.org/R4}
charting:
  close_after: 20s
  chart: {MDC_PULS_OXIM_PERF_REL: off}
  groups:
    - name: ICU
      beds: [icu-*]
      chart: {continuous: every 5m median, MDC_PULS_OXIM_SAT_O2: every 1m min}
    - name: general
      beds: [ward-*, icu-9]
      chart: {episodic: off}
monitors:
  - {id: icu-1-mon, location: icu-1, profile: masimo/radical-7, serial: {port: /dev/ttyUSB0}}
  - {id: icu-2-mon, location: icu-2, profile: masimo/radical-7, serial: {port: /dev/ttyUSB1}, chart: {MDC_PULS_OXIM_SAT_O2: each}}
  - {id: ward-3-mon, location: ward-3, profile: ge/datex-s5, serial: {port: /dev/ttyUSB2}}
`
	c, _, err := Load(write(t, cfg, nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Charting.CloseAfterOrDefault().String() != "20s" {
		t.Errorf("close_after %s", c.Charting.CloseAfterOrDefault())
	}
	for _, tc := range []struct {
		device, bed, profile, ref string
		want, from                string
	}{
		{"icu-1-mon", "icu-1", "masimo/radical-7", "MDC_PULS_OXIM_SAT_O2", "every 1m min", "bed group ICU"},
		{"icu-1-mon", "icu-1", "masimo/radical-7", "MDC_PULS_OXIM_PULS_RATE", "every 5m median", "bed group ICU"},
		{"icu-2-mon", "icu-2", "masimo/radical-7", "MDC_PULS_OXIM_SAT_O2", "each", "monitor icu-2-mon"},
		{"icu-2-mon", "icu-2", "masimo/radical-7", "MDC_PULS_OXIM_PULS_RATE", "every 5m median", "bed group ICU"},
		// The general ward turns episodic parameters off; the Datex's
		// temperature probe is continuous by its profile, so it stays.
		{"ward-3-mon", "ward-3", "ge/datex-s5", "MDC_PRESS_BLD_NONINV_SYS", "off", "bed group general"},
		{"ward-3-mon", "ward-3", "ge/datex-s5", "MDC_TEMP_ESOPH", "every 1m median", "profile ge/datex-s5"},
		{"ward-3-mon", "ward-3", "ge/datex-s5", "MDC_ECG_HEART_RATE", "every 1m median", "built-in"},
		// A bed in no group, and a central station's HL7 results.
		{"x", "bed-7", "masimo/radical-7", "MDC_PULS_OXIM_SAT_O2", "every 1m median", "built-in"},
		{"station", "bed-7", "", "MDC_ECG_HEART_RATE", "each", "HL7 results: each"},
		{"station", "icu-4", "", "MDC_ECG_HEART_RATE", "every 5m median", "bed group ICU"},
		{"station", "icu-4", "", "MDC_TEMP_BODY", "each", "HL7 results: each"},
		// The site's policy, below the groups'.
		{"x", "bed-7", "masimo/radical-7", "MDC_PULS_OXIM_PERF_REL", "off", "charting.chart"},
		{"icu-1-mon", "icu-1", "masimo/radical-7", "MDC_PULS_OXIM_PERF_REL", "every 5m median", "bed group ICU"},
	} {
		got, from := c.ChartFor(tc.device, tc.bed, tc.profile, code(t, tc.ref))
		if got.String() != tc.want || string(from) != tc.from {
			t.Errorf("%s at %s, %s: %s from %s; want %s from %s", tc.device, tc.bed, tc.ref, got, from, tc.want, tc.from)
		}
	}
}

// Every mistake in charting is named with its key and line.
func TestChartingMistakes(t *testing.T) {
	cfg := `site: ward-4b
data_dir: data
fhir: {base_url: https://fhir.example.org/R4}
charting:
  close_after: 2h
  groups:
    - name: ICU
      beds: ["icu-[", ""]
      chart: {continous: every 1m, MDC_PULS_OXIM_SAT_O2: every 7m}
    - name: ICU
      beds: []
      chart: {}
monitors:
  - {id: m1, location: bed-1, profile: masimo/radical-7, serial: {port: /dev/ttyUSB0}, chart: {MDC_NOT_A_CODE: each, episodic: sometimes}}
`
	_, _, err := Load(write(t, cfg, nil))
	if err == nil {
		t.Fatal("a config with charting mistakes was accepted")
	}
	for _, want := range []string{
		"charting.close_after: 2h0m0s is not between 0",
		`charting.groups[0].beds[0]: "icu-[" is not a bed name or pattern`,
		`charting.groups[0].beds[1]: "" is not a bed name or pattern`,
		"charting.groups[0].chart.continous: is neither continuous, episodic nor an MDC reference id",
		"charting.groups[0].chart.MDC_PULS_OXIM_SAT_O2: \"every 7m\" is not a charting policy: an interval is at least 1s and divides a day evenly",
		`charting.groups[1].name: "ICU" is already the name of charting.groups[0]`,
		"charting.groups[1].beds: is required",
		"charting.groups[1].chart: is required",
		"monitors[0].chart.MDC_NOT_A_CODE: is neither continuous, episodic nor an MDC reference id",
		`monitors[0].chart.episodic: "sometimes" is not a charting policy`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}
