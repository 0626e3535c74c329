package fhir

import (
	"context"
	"encoding/json"
	"net/url"
)

// FindPatients returns the literal references ("Patient/123") of the
// Patients that carry the identifier system|value: exactly one is the
// patient; none or several is no patient (never a guess).
func (c *Client) FindPatients(ctx context.Context, system, value string) ([]string, error) {
	entries, err := c.search(ctx, "Patient", url.Values{"identifier": {searchEscape(system) + "|" + searchEscape(value)}, "_count": {"2"}})
	if err != nil {
		return nil, err
	}
	var refs []string
	for _, e := range entries {
		var p struct {
			ResourceType string `json:"resourceType"`
			ID           string `json:"id"`
		}
		if json.Unmarshal(e, &p) == nil && p.ResourceType == "Patient" && p.ID != "" {
			refs = append(refs, "Patient/"+p.ID)
		}
	}
	return refs, nil
}

// FindImagingStudy returns the record's ImagingStudy of a Study Instance
// UID, if it holds one (several: the first, with a count for the caller to
// refuse).
func (c *Client) FindImagingStudy(ctx context.Context, studyUID string) (json.RawMessage, int, error) {
	id := StudyIdentifier(studyUID)
	entries, err := c.search(ctx, "ImagingStudy", url.Values{"identifier": {searchEscape(id.System) + "|" + searchEscape(id.Value)}})
	if err != nil {
		return nil, 0, err
	}
	var found []json.RawMessage
	for _, e := range entries {
		var s struct {
			ResourceType string `json:"resourceType"`
		}
		if json.Unmarshal(e, &s) == nil && s.ResourceType == "ImagingStudy" {
			found = append(found, e)
		}
	}
	if len(found) == 0 {
		return nil, 0, nil
	}
	return found[0], len(found), nil
}
