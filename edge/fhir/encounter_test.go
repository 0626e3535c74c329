package fhir

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/wardgate/wardgate/edge/fhir/fhirserver"
)

// Each location entry that names the bed is a stay with that entry's own
// period; the Encounter's status and end bound it, and entries that do not
// put the patient in the bed (reserved, planned for no time, cancelled)
// are no stay.
func TestBedStaysComeFromTheLocationEntries(t *testing.T) {
	s := fhirserver.New()
	hs := httptest.NewServer(s)
	defer hs.Close()
	s.Put("Location", "L7", json.RawMessage(`{"resourceType":"Location","id":"L7","identifier":[{"system":"urn:beds","value":"bed-7"}]}`))
	s.Put("Location", "L9", json.RawMessage(`{"resourceType":"Location","id":"L9","identifier":[{"system":"urn:beds","value":"bed-9"}]}`))
	put := func(id, status, period, locations string) {
		s.Put("Encounter", id, json.RawMessage(`{"resourceType":"Encounter","id":"`+id+`","status":"`+status+`","class":{"code":"IMP"},`+
			`"subject":{"reference":"Patient/`+id+`"},"period":`+period+`,"location":`+locations+`}`))
	}
	now := time.Now().UTC().Truncate(time.Second)
	ts := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	put("moved", "in-progress", `{"start":"`+ts(-5*time.Hour)+`"}`, `[
		{"location":{"reference":"Location/L7"},"status":"completed","period":{"start":"`+ts(-3*time.Hour)+`","end":"`+ts(-time.Hour)+`"}},
		{"location":{"reference":"Location/L9"},"status":"active","period":{"start":"`+ts(-time.Hour)+`"}}]`)
	put("nostart", "in-progress", `{"start":"`+ts(-2*time.Hour)+`"}`, `[{"location":{"identifier":{"system":"urn:beds","value":"bed-7"}},"status":"active"}]`)
	put("sloppy", "finished", `{"start":"`+ts(-4*time.Hour)+`","end":"`+ts(-90*time.Minute)+`"}`, `[{"location":{"reference":"Location/L7"},"status":"completed","period":{"start":"`+ts(-4*time.Hour)+`"}}]`)
	put("reserved", "planned", `{"start":"`+ts(time.Hour)+`"}`, `[{"location":{"reference":"Location/L7"},"status":"reserved"}]`)
	put("planned", "planned", `{"start":"`+ts(time.Hour)+`"}`, `[{"location":{"reference":"Location/L7"},"status":"planned","period":{"start":"`+ts(time.Hour)+`"}}]`)
	put("cancelled", "cancelled", `{"start":"`+ts(-time.Hour)+`"}`, `[{"location":{"reference":"Location/L7"},"status":"active","period":{"start":"`+ts(-time.Hour)+`"}}]`)

	c := &Client{BaseURL: hs.URL, HTTP: http.DefaultClient}
	stays, err := c.FindBedStays(context.Background(), "urn:beds", "bed-7", now.Add(-6*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]BedStay{}
	for _, st := range stays {
		got[st.Patient] = st
	}
	if len(got) != 4 {
		t.Fatalf("stays %+v; want moved, nostart, sloppy and planned", stays)
	}
	if m := got["Patient/moved"]; !m.Start.Equal(now.Add(-3*time.Hour)) || !m.End.Equal(now.Add(-time.Hour)) {
		t.Fatalf("moved: %+v (bed 7's own period, not the Encounter's)", m)
	}
	if n := got["Patient/nostart"]; !n.StartUnknown || !n.End.IsZero() {
		t.Fatalf("nostart: %+v", n)
	}
	if sl := got["Patient/sloppy"]; !sl.End.Equal(now.Add(-90*time.Minute)) || sl.EndUnknown {
		t.Fatalf("sloppy: %+v (a completed entry without an end ends with its Encounter)", sl)
	}
	if p := got["Patient/planned"]; !p.Planned || !p.Start.Equal(now.Add(time.Hour)) {
		t.Fatalf("planned: %+v", p)
	}
}

func TestLocationReferencesInOtherShapes(t *testing.T) {
	for in, want := range map[string]string{
		"Location/L7": "Location/L7",
		"https://fhir.example.org/R4/Location/L7":            "Location/L7",
		"Location/L7/_history/3":                             "Location/L7",
		"https://fhir.example.org/R4/Location/L7/_history/3": "Location/L7",
		"#contained": "#contained",
	} {
		if got := locationRef(in); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
}
