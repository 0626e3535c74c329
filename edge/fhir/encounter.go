package fhir

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// BedPatient is who lies in a bed, by the record: the subject of the one
// in-progress Encounter located at the bed, and since when.
type BedPatient struct {
	Patient   string    // Patient/123; "" when the bed is empty
	Encounter string    // Encounter/456
	Since     time.Time // the Encounter's period.start; zero when not given
}

// ErrAmbiguousBed means several in-progress Encounters with different
// patients are located at one bed: wardgate never guesses between them.
var ErrAmbiguousBed = fmt.Errorf("more than one patient's in-progress Encounter is at this bed")

// FindBedPatient searches the in-progress Encounters whose location is the
// Location identified by system|bed (a chained search on
// Encounter.location.identifier).
func (c *Client) FindBedPatient(ctx context.Context, system, bed string) (BedPatient, error) {
	q := url.Values{}
	q.Set("status", "in-progress")
	q.Set("location.identifier", system+"|"+bed)
	q.Set("_count", "10")
	u := strings.TrimRight(c.BaseURL, "/") + "/Encounter?" + q.Encode()
	body, status, err := c.get(ctx, u)
	if err == nil && status == http.StatusUnauthorized && c.Auth != nil {
		c.Auth.Invalidate()
		body, status, err = c.get(ctx, u)
	}
	if err != nil {
		return BedPatient{}, err
	}
	if status != http.StatusOK {
		return BedPatient{}, fmt.Errorf("Encounter search: HTTP %d", status)
	}
	var b struct {
		ResourceType string `json:"resourceType"`
		Entry        []struct {
			Resource struct {
				ResourceType string `json:"resourceType"`
				ID           string `json:"id"`
				Status       string `json:"status"`
				Subject      *struct {
					Reference string `json:"reference"`
				} `json:"subject"`
				Period *struct {
					Start string `json:"start"`
				} `json:"period"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(body, &b); err != nil || b.ResourceType != "Bundle" {
		return BedPatient{}, fmt.Errorf("Encounter search: the answer is not a Bundle")
	}
	var found BedPatient
	for _, e := range b.Entry {
		r := e.Resource
		// Servers may add included resources; only in-progress Encounters
		// with a subject count.
		if r.ResourceType != "Encounter" || r.Status != "in-progress" || r.Subject == nil || r.Subject.Reference == "" {
			continue
		}
		if found.Patient != "" && found.Patient != r.Subject.Reference {
			return BedPatient{}, ErrAmbiguousBed
		}
		found.Patient, found.Encounter = r.Subject.Reference, "Encounter/"+r.ID
		if r.Period != nil && r.Period.Start != "" {
			if t, err := parseFHIRTime(r.Period.Start); err == nil && (found.Since.IsZero() || t.Before(found.Since)) {
				found.Since = t
			}
		}
	}
	return found, nil
}

func parseFHIRTime(s string) (time.Time, error) {
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
