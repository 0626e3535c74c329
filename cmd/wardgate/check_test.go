package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// check says, per monitor, what reaches the chart and who set it: the
// engineer sees a bed group's policy apply before the gateway runs.
func TestCheckListsEachMonitorsChartingPolicies(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "wardgate.yaml")
	os.WriteFile(cfg, []byte(`site: ward-4b
data_dir: data
fhir: {base_url: https://fhir.example.org/R4}
charting:
  groups: [{name: ICU, beds: [icu-*], chart: {continuous: every 5m median, MDC_PULS_OXIM_SAT_O2: every 1m min}}]
monitors:
  - {id: icu-1-mon, location: icu-1, profile: masimo/radical-7, serial: {port: /dev/ttyUSB0}}
  - {id: bed-3-mon, location: bed-3, profile: nonin/avant, serial: {port: /dev/ttyUSB1}}
`), 0o600)
	var out, errOut strings.Builder
	if code := cmdCheck([]string{"-config", cfg}, &out, &errOut); code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{
		"  icu-1-mon charts: MDC_PULS_OXIM_SAT_O2 every 1m min (bed group ICU); MDC_PULS_OXIM_PULS_RATE, MDC_PULS_OXIM_PERF_REL every 5m median (bed group ICU)\n",
		"  bed-3-mon charts: MDC_PULS_OXIM_SAT_O2, MDC_PULS_OXIM_PULS_RATE every 1m median (built-in)\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("check's output lacks %q:\n%s", want, out.String())
		}
	}
}
