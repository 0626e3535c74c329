package fhirserver

import (
	"encoding/json"
	"strings"
	"time"
)

// Helpers that put a hospital's beds and stays into the server the way a
// registration system would, for tests and the demo.

// LocationEntry is one location entry of an Encounter: a Location id, its
// status and its period. Empty fields and zero times are left out.
type LocationEntry struct {
	Location, Status string
	Start, End       time.Time
}

// PutLocation stores Location id identified by system|value (a bed).
func (s *Server) PutLocation(system, value, id string) {
	s.Put("Location", id, json.RawMessage(`{"resourceType":"Location","id":`+quote(id)+
		`,"identifier":[{"system":`+quote(system)+`,"value":`+quote(value)+`}]}`))
}

// PutEncounter stores Encounter id of patient (a reference such as
// "Patient/A") with its status, period and location entries.
func (s *Server) PutEncounter(id, patient, status string, start, end time.Time, locs ...LocationEntry) {
	var entries []string
	for _, l := range locs {
		e := `{"location":{"reference":` + quote("Location/"+l.Location) + `}`
		if l.Status != "" {
			e += `,"status":` + quote(l.Status)
		}
		if !l.Start.IsZero() || !l.End.IsZero() {
			e += `,"period":` + period(l.Start, l.End)
		}
		entries = append(entries, e+"}")
	}
	s.Put("Encounter", id, json.RawMessage(`{"resourceType":"Encounter","id":`+quote(id)+`,"status":`+quote(status)+
		`,"class":{"code":"IMP"},"subject":{"reference":`+quote(patient)+`},"period":`+period(start, end)+
		`,"location":[`+strings.Join(entries, ",")+`]}`))
}

// period is a FHIR Period; zero times are left out.
func period(start, end time.Time) string {
	var parts []string
	if !start.IsZero() {
		parts = append(parts, `"start":`+quote(start.UTC().Format(time.RFC3339)))
	}
	if !end.IsZero() {
		parts = append(parts, `"end":`+quote(end.UTC().Format(time.RFC3339)))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
