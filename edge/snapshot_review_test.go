package edge

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"
)

// Review of the one snapshot behind the page, /api/status, /readyz and
// /metrics.

// The error kinds /metrics counted before the snapshot (c9d61a9's
// edge/metrics.go, with a DICOM node).
var reviewOldErrorKinds = []string{
	"readings_unmappable", "resources_invalid", "readings_expired_unassigned", "frames_undecodable",
	"studies_not_charted", "outbox_refused_full", "delivery_retried", "delivery_refused", "delivery_restarts",
	"bed_lookup_failures", "bad_frames", "readings_lost", "readings_retained_untimed_skipped",
	"dicom_associations_rejected", "dicom_associations_aborted", "dicom_refused_full",
	"dicom_replaced_with_another_patient", "dicom_refused_unparseable", "dicom_store_failed",
	"dicom_study_handover_failed", "dicom_forward_refused",
}

// /readyz is {"status":"ready"} plus /api/status under the same names;
// its errors, those of /api/status and wardgate_errors_total have the same
// kinds and counts, every kind /metrics had before among them, each listed
// at 0 before it first happens.
func TestReviewErrorsAreTheSameEverywhere(t *testing.T) {
	g, _, _ := running(t)
	base := "http://" + g.httpLn.Addr().String()
	waitFor(t, "the DICOM node on view", func() bool { return g.dicomNode() != nil })

	var status, ready map[string]json.RawMessage
	_, sb := get(t, base+"/api/status")
	code, rb := get(t, base+"/readyz")
	if err := json.Unmarshal([]byte(sb), &status); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(rb), &ready); code != 200 || err != nil {
		t.Fatalf("/readyz: %d %v", code, err)
	}
	if string(ready["status"]) != `"ready"` {
		t.Fatalf("/readyz status %s", ready["status"])
	}
	keys := func(m map[string]json.RawMessage) []string {
		var out []string
		for k := range m {
			if k != "status" {
				out = append(out, k)
			}
		}
		sort.Strings(out)
		return out
	}
	if a, b := strings.Join(keys(status), ","), strings.Join(keys(ready), ","); a != b {
		t.Fatalf("/api/status has %s, /readyz %s", a, b)
	}
	var se, re map[string]float64
	json.Unmarshal(status["errors"], &se)
	json.Unmarshal(ready["errors"], &re)
	metrics := scrape(t, base)
	for _, k := range reviewOldErrorKinds {
		if _, ok := se[k]; !ok {
			t.Errorf("/api/status errors lacks %s", k)
		}
	}
	for k, v := range se {
		if re[k] != v {
			t.Errorf("errors.%s: /api/status %g, /readyz %g", k, v, re[k])
		}
		if m, ok := metrics["wardgate_errors_total|kind="+k]; !ok || m != v {
			t.Errorf("errors.%s: /api/status %g, /metrics %g (present %v)", k, v, m, ok)
		}
	}
	for name := range metrics {
		if k, ok := strings.CutPrefix(name, "wardgate_errors_total|kind="); ok {
			if _, ok := se[k]; !ok {
				t.Errorf("/metrics counts %s, /api/status does not", k)
			}
		}
	}
}
