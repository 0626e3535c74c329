package fhir

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// BedStay is one patient's stay in one bed as the record tells it: a
// location entry of an Encounter that names the bed, with that entry's own
// period (not the Encounter's: a patient moved between beds has one
// Encounter with an entry per bed).
type BedStay struct {
	Patient   string // Patient/123
	Encounter string // Encounter/456
	// Start and End bound the stay, [Start, End). End is zero while the
	// patient is in the bed as far as the record knows.
	Start, End time.Time
	// StartUnknown: the entry does not say when the patient came to the
	// bed (an active entry without a period); Start is then zero.
	StartUnknown bool
	// EndUnknown: the entry says the stay is over but not when it ended.
	EndUnknown bool
	// Planned: the entry is planned, not yet active; it counts only for
	// the period it gives.
	Planned bool
}

// openEncounterStatuses are the Encounter statuses of a patient who may
// still be in the bed: they are asked for on their own, because an
// Encounter without a period matches no date search.
const openEncounterStatuses = "arrived,triaged,in-progress,onleave"

// maxSearchPages bounds the pages followed for one search.
const maxSearchPages = 10

// ErrTooManyEncounters means the record holds more Encounters at one bed
// for the times asked than the lookup reads: it cannot be sure of the
// answer, so it gives none.
var ErrTooManyEncounters = errors.New("the record holds more Encounters at this bed than a lookup reads")

// FindBedStays returns the stays at the bed identified by system|bed that
// may cover any time from `from` on: Encounters (other than cancelled or
// entered in error) whose period ends at or after from or is open, and
// Encounters still open whatever their period says, each with its location
// entries for this bed.
func (c *Client) FindBedStays(ctx context.Context, system, bed string, from time.Time) ([]BedStay, error) {
	token := searchEscape(system) + "|" + searchEscape(bed)
	byDate := url.Values{"location.identifier": {token}, "date": {"ge" + from.UTC().Format(time.RFC3339)},
		"_include": {"Encounter:location"}, "_count": {"50"}}
	open := url.Values{"location.identifier": {token}, "status": {openEncounterStatuses},
		"_include": {"Encounter:location"}, "_count": {"50"}}
	encounters := map[string]encounterResource{}
	var order []string
	bedLocations := map[string]bool{} // Location/id of the bed
	sawLocations := false
	for _, q := range []url.Values{byDate, open} {
		entries, err := c.search(ctx, "Encounter", q)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			var head struct {
				ResourceType string `json:"resourceType"`
				ID           string `json:"id"`
			}
			if json.Unmarshal(e, &head) != nil {
				continue
			}
			switch head.ResourceType {
			case "Location":
				sawLocations = true
				var l struct {
					Identifier []Identifier `json:"identifier"`
				}
				json.Unmarshal(e, &l)
				for _, id := range l.Identifier {
					if id.System == system && id.Value == bed {
						bedLocations["Location/"+head.ID] = true
					}
				}
			case "Encounter":
				if _, dup := encounters[head.ID]; dup {
					continue
				}
				var enc encounterResource
				if err := json.Unmarshal(e, &enc); err != nil {
					return nil, fmt.Errorf("Encounter search: an Encounter does not read: %v", err)
				}
				encounters[head.ID] = enc
				order = append(order, head.ID)
			}
		}
	}
	if len(encounters) > 0 && !sawLocations {
		// A server that does not do _include: the bed's Locations by
		// their identifier.
		entries, err := c.search(ctx, "Location", url.Values{"identifier": {token}})
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			var l struct {
				ResourceType string `json:"resourceType"`
				ID           string `json:"id"`
			}
			if json.Unmarshal(e, &l) == nil && l.ResourceType == "Location" {
				bedLocations["Location/"+l.ID] = true
			}
		}
	}
	var stays []BedStay
	for _, id := range order {
		stays = append(stays, encounters[id].staysAt(id, system, bed, bedLocations)...)
	}
	return stays, nil
}

type fhirPeriod struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

type encounterResource struct {
	Status   string      `json:"status"`
	Subject  *Reference  `json:"subject"`
	Period   *fhirPeriod `json:"period"`
	Location []struct {
		Location struct {
			Reference  string      `json:"reference"`
			Identifier *Identifier `json:"identifier"`
		} `json:"location"`
		Status string      `json:"status"`
		Period *fhirPeriod `json:"period"`
	} `json:"location"`
}

// staysAt turns the Encounter's location entries for the bed into stays.
func (e encounterResource) staysAt(id, system, bed string, bedLocations map[string]bool) []BedStay {
	switch e.Status {
	case "cancelled", "entered-in-error":
		return nil
	}
	if e.Subject == nil || !strings.HasPrefix(e.Subject.Reference, "Patient/") {
		return nil // a stay of nobody the gateway could chart to
	}
	var encEnd time.Time
	if e.Period != nil {
		encEnd, _ = parseFHIRTime(e.Period.End)
	}
	var out []BedStay
	for _, l := range e.Location {
		ref, ident := locationRef(l.Location.Reference), l.Location.Identifier
		if !bedLocations[ref] && (ident == nil || ident.System != system || ident.Value != bed) {
			continue
		}
		s := BedStay{Patient: e.Subject.Reference, Encounter: "Encounter/" + id}
		var start, end time.Time
		if l.Period != nil {
			start, _ = parseFHIRTime(l.Period.Start)
			end, _ = parseFHIRTime(l.Period.End)
		}
		s.Start, s.End, s.StartUnknown = start, end, start.IsZero()
		switch l.Status {
		case "reserved":
			continue // the bed is kept for the patient, who is not in it
		case "planned":
			if start.IsZero() {
				continue // planned for no particular time
			}
			s.Planned = true
		case "completed":
			if end.IsZero() {
				// Over, but when? The Encounter's own end bounds it.
				s.End, s.EndUnknown = encEnd, encEnd.IsZero()
			}
		default: // active, or no status: the patient is (or was) there
			if end.IsZero() && !encEnd.IsZero() {
				s.End = encEnd // the Encounter is over, so is the stay
			}
			if end.IsZero() && encEnd.IsZero() && e.Status == "finished" {
				s.EndUnknown = true
			}
		}
		out = append(out, s)
	}
	return out
}

// locationRef is a reference to a Location as "Location/<id>": an absolute
// URL or a versioned reference ("…/Location/7/_history/2") names the same
// Location.
func locationRef(ref string) string {
	ref, _, _ = strings.Cut(ref, "/_history/")
	if i := strings.LastIndex(ref, "Location/"); i > 0 && ref[i-1] == '/' {
		ref = ref[i:]
	}
	return ref
}

// search runs a search and returns every entry's resource, following the
// Bundle's next links (at most maxSearchPages pages).
func (c *Client) search(ctx context.Context, resourceType string, q url.Values) ([]json.RawMessage, error) {
	base := strings.TrimRight(c.BaseURL, "/") + "/"
	u := base + resourceType + "?" + q.Encode()
	var out []json.RawMessage
	for page := 0; ; page++ {
		if page == maxSearchPages {
			return nil, ErrTooManyEncounters
		}
		body, status, err := c.get(ctx, u)
		if err == nil && status == http.StatusUnauthorized && c.Auth != nil {
			c.Auth.Invalidate()
			body, status, err = c.get(ctx, u)
		}
		if err != nil {
			return nil, err
		}
		if status != http.StatusOK {
			return nil, fmt.Errorf("%s search: HTTP %d", resourceType, status)
		}
		var b struct {
			ResourceType string `json:"resourceType"`
			Link         []struct {
				Relation string `json:"relation"`
				URL      string `json:"url"`
			} `json:"link"`
			Entry []struct {
				Resource json.RawMessage `json:"resource"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(body, &b); err != nil || b.ResourceType != "Bundle" {
			return nil, fmt.Errorf("%s search: the answer is not a Bundle", resourceType)
		}
		for _, e := range b.Entry {
			if len(e.Resource) > 0 {
				out = append(out, e.Resource)
			}
		}
		next := ""
		for _, l := range b.Link {
			if l.Relation == "next" {
				next = l.URL
			}
		}
		if next == "" {
			return out, nil
		}
		nu, err := url.Parse(base)
		if err != nil {
			return nil, err
		}
		ref, err := url.Parse(next)
		if err != nil {
			return nil, fmt.Errorf("%s search: a next link that is not a URL", resourceType)
		}
		u = nu.ResolveReference(ref).String()
	}
}

func parseFHIRTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("no time")
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("not a FHIR dateTime")
}

func (c *Client) get(ctx context.Context, u string) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, err
	}
	res, err := c.do(ctx, req)
	if err != nil {
		return nil, 0, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 4<<20))
	return body, res.StatusCode, err
}
