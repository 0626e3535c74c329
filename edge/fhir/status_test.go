package fhir

import (
	"encoding/json"
	"testing"
)

// fhir.observation_status: final by default; preliminary where the site
// validates device data in the record. Every Observation of a reading,
// panels included, carries it, and the resource stays valid R4.
func TestObservationStatusIsTheSites(t *testing.T) {
	for _, c := range []struct{ set, want string }{{"", "final"}, {"final", "final"}, {"preliminary", "preliminary"}} {
		m := testMapper()
		m.ObservationStatus = c.set
		rs := charted(reading(150456, "MDC_PULS_OXIM_SAT_O2", 98, "%"))
		rs = append(rs, charted(reading(150021, "MDC_PRESS_BLD_NONINV_SYS", 120, "mm[Hg]"), reading(150022, "MDC_PRESS_BLD_NONINV_DIA", 80, "mm[Hg]"))...)
		entries, rejected := m.MapReadings(rs)
		if len(rejected) != 0 {
			t.Fatalf("%q: rejected %v", c.set, rejected)
		}
		n := 0
		for _, e := range entries {
			var o struct{ ResourceType, Status string }
			json.Unmarshal(e.Resource, &o)
			if o.ResourceType != "Observation" {
				continue
			}
			n++
			if o.Status != c.want {
				t.Errorf("%q: an Observation with status %q, want %q", c.set, o.Status, c.want)
			}
		}
		if n < 2 {
			t.Fatalf("%q: %d Observations", c.set, n)
		}
	}
}
