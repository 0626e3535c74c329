package fhir

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wardgate/wardgate/dicom/dataset"
)

// ImagingStudy is an R4 ImagingStudy as wardgate writes it.
type ImagingStudy struct {
	ResourceType      string          `json:"resourceType"`
	Identifier        []Identifier    `json:"identifier"`
	Status            string          `json:"status"`
	Modality          []Coding        `json:"modality,omitempty"`
	Subject           Reference       `json:"subject"`
	Started           string          `json:"started,omitempty"`
	Referrer          *Reference      `json:"referrer,omitempty"`
	Endpoint          []Reference     `json:"endpoint,omitempty"`
	NumberOfSeries    int             `json:"numberOfSeries"`
	NumberOfInstances int             `json:"numberOfInstances"`
	Description       string          `json:"description,omitempty"`
	Series            []ImagingSeries `json:"series,omitempty"`
}

// ImagingSeries is one series of an ImagingStudy.
type ImagingSeries struct {
	UID               string            `json:"uid"`
	Number            *int              `json:"number,omitempty"`
	Modality          Coding            `json:"modality"`
	Description       string            `json:"description,omitempty"`
	NumberOfInstances int               `json:"numberOfInstances"`
	Endpoint          []Reference       `json:"endpoint,omitempty"`
	BodySite          *Coding           `json:"bodySite,omitempty"`
	Laterality        *Coding           `json:"laterality,omitempty"`
	Started           string            `json:"started,omitempty"`
	Instance          []ImagingInstance `json:"instance,omitempty"`
}

// ImagingInstance is one instance of a series.
type ImagingInstance struct {
	UID      string `json:"uid"`
	SopClass Coding `json:"sopClass"`
	Number   *int   `json:"number,omitempty"`
}

// EndpointResource is the PACS's DICOMweb base as an R4 Endpoint.
type EndpointResource struct {
	ResourceType   string            `json:"resourceType"`
	Identifier     []Identifier      `json:"identifier"`
	Status         string            `json:"status"`
	ConnectionType Coding            `json:"connectionType"`
	Name           string            `json:"name,omitempty"`
	PayloadType    []CodeableConcept `json:"payloadType"`
	Address        string            `json:"address"`
}

// StudyIdentifier is the ImagingStudy identifier of a Study Instance UID.
func StudyIdentifier(studyUID string) Identifier {
	return Identifier{System: DICOMUIDSystem, Value: "urn:oid:" + studyUID}
}

// EndpointEntry returns the Endpoint entry for the configured DICOMweb base,
// or nil when there is none.
func (m *Mapper) EndpointEntry() (*Entry, error) {
	if m.WADORSBase == "" {
		return nil, nil
	}
	base := strings.TrimRight(m.WADORSBase, "/")
	base = strings.TrimSuffix(base, "/studies")
	ep := EndpointResource{
		ResourceType:   "Endpoint",
		Identifier:     []Identifier{{System: m.system("endpoint"), Value: base}},
		Status:         "active",
		ConnectionType: Coding{System: "http://terminology.hl7.org/CodeSystem/endpoint-connection-type", Code: "dicom-wado-rs"},
		Name:           "PACS DICOMweb",
		PayloadType:    []CodeableConcept{{Text: "DICOM"}},
		Address:        base,
	}
	e, err := entry(ep, Request{Method: "POST", URL: "Endpoint", IfNoneExist: ifNoneExist(m.system("endpoint"), base)})
	if err != nil {
		return nil, err
	}
	return &e, nil
}

// MapStudy maps the headers of every instance received for one study to its
// ImagingStudy, for the patient subject (a reference the caller resolved:
// "Patient/123", or a conditional "Patient?identifier=…"). StudyEntry
// wraps it, after any merge with what the record holds.
func (m *Mapper) MapStudy(instances []dataset.InstanceHeader, subject string) (*ImagingStudy, error) {
	if len(instances) == 0 {
		return nil, errors.New("a study with no instances")
	}
	if subject == "" {
		return nil, errors.New("a study with no patient")
	}
	first := instances[0]
	for _, in := range instances {
		if in.StudyInstanceUID != first.StudyInstanceUID {
			return nil, fmt.Errorf("instances of studies %s and %s mixed", first.StudyInstanceUID, in.StudyInstanceUID)
		}
	}
	loc := m.Local
	if loc == nil {
		loc = time.Local
	}

	s := &ImagingStudy{
		ResourceType: "ImagingStudy",
		Identifier:   []Identifier{StudyIdentifier(first.StudyInstanceUID)},
		Status:       "available",
		Subject:      Reference{Reference: subject},
		Started:      dicomDateTime(first.StudyDate, first.StudyTime, first.TimezoneOffset, loc),
		Description:  first.StudyDescription,
	}
	if a := strings.TrimSpace(first.AccessionNumber); a != "" {
		s.Identifier = append(s.Identifier, Identifier{
			Type:  &CodeableConcept{Coding: []Coding{{System: V20203, Code: "ACSN"}}},
			Value: a,
		})
	}
	if m.WADORSBase != "" {
		base := strings.TrimSuffix(strings.TrimRight(m.WADORSBase, "/"), "/studies")
		s.Endpoint = []Reference{{Reference: conditional("Endpoint", m.system("endpoint"), base)}}
	}

	// Series in series-number order, instances in instance-number order; a
	// copy of an instance received twice counts once.
	bySeries := map[string][]dataset.InstanceHeader{}
	var seriesUIDs []string
	seen := map[string]bool{}
	for _, in := range instances {
		if seen[in.SOPInstanceUID] {
			continue
		}
		seen[in.SOPInstanceUID] = true
		if _, ok := bySeries[in.SeriesInstanceUID]; !ok {
			seriesUIDs = append(seriesUIDs, in.SeriesInstanceUID)
		}
		bySeries[in.SeriesInstanceUID] = append(bySeries[in.SeriesInstanceUID], in)
	}
	slices.SortFunc(seriesUIDs, func(a, b string) int {
		return cmp.Or(cmp.Compare(bySeries[a][0].SeriesNumber, bySeries[b][0].SeriesNumber), cmp.Compare(a, b))
	})
	modalities := first.ModalitiesInStudy
	for _, uid := range seriesUIDs {
		ins := bySeries[uid]
		slices.SortFunc(ins, func(a, b dataset.InstanceHeader) int {
			return cmp.Or(cmp.Compare(a.InstanceNumber, b.InstanceNumber), cmp.Compare(a.SOPInstanceUID, b.SOPInstanceUID))
		})
		h := ins[0]
		se := ImagingSeries{
			UID:         uid,
			Number:      optInt(h.SeriesNumber),
			Modality:    Coding{System: DICOMDCM, Code: h.Modality},
			Description: h.SeriesDescription,
			Endpoint:    s.Endpoint,
			Started:     dicomDateTime(h.SeriesDate, h.SeriesTime, h.TimezoneOffset, loc),
		}
		if b := strings.TrimSpace(h.BodyPartExamined); b != "" {
			se.BodySite = &Coding{Display: b}
		}
		switch strings.TrimSpace(h.Laterality) {
		case "R":
			se.Laterality = &Coding{System: "http://snomed.info/sct", Code: "24028007", Display: "Right"}
		case "L":
			se.Laterality = &Coding{System: "http://snomed.info/sct", Code: "7771000", Display: "Left"}
		}
		for _, in := range ins {
			se.Instance = append(se.Instance, ImagingInstance{
				UID:      in.SOPInstanceUID,
				SopClass: Coding{System: RFC3986, Code: "urn:oid:" + in.SOPClassUID},
				Number:   optInt(in.InstanceNumber),
			})
		}
		s.Series = append(s.Series, se)
		if len(first.ModalitiesInStudy) == 0 && h.Modality != "" && !slices.Contains(modalities, h.Modality) {
			modalities = append(modalities, h.Modality)
		}
	}
	for _, mod := range modalities {
		s.Modality = append(s.Modality, Coding{System: DICOMDCM, Code: mod})
	}
	s.count()
	return s, nil
}

// count sets the series and instance counts from the series.
func (s *ImagingStudy) count() {
	s.NumberOfSeries, s.NumberOfInstances = len(s.Series), 0
	for i := range s.Series {
		s.Series[i].NumberOfInstances = len(s.Series[i].Instance)
		s.NumberOfInstances += len(s.Series[i].Instance)
	}
}

// Merge adds to s the series and instances of the record's ImagingStudy of
// the same study that s lacks, so that an ImagingStudy written from the
// instances at hand (a late instance, after the gateway lost what it had
// charted) never replaces a fuller one with a subset. What s holds wins for
// an instance both have. The record's subject is returned for the caller
// to compare with its own.
func (s *ImagingStudy) Merge(record json.RawMessage) (recordSubject string, err error) {
	var r ImagingStudy
	if err := json.Unmarshal(record, &r); err != nil {
		return "", fmt.Errorf("the record's ImagingStudy does not read: %v", err)
	}
	have := map[string]int{} // series UID → index in s.Series
	for i, se := range s.Series {
		have[se.UID] = i
	}
	for _, rse := range r.Series {
		i, ok := have[rse.UID]
		if !ok {
			s.Series = append(s.Series, rse)
			have[rse.UID] = len(s.Series) - 1
			continue
		}
		known := map[string]bool{}
		for _, in := range s.Series[i].Instance {
			known[in.UID] = true
		}
		for _, in := range rse.Instance {
			if !known[in.UID] {
				s.Series[i].Instance = append(s.Series[i].Instance, in)
			}
		}
	}
	for _, mod := range r.Modality {
		if !slices.ContainsFunc(s.Modality, func(c Coding) bool { return c.Code == mod.Code }) {
			s.Modality = append(s.Modality, mod)
		}
	}
	slices.SortStableFunc(s.Series, func(a, b ImagingSeries) int {
		return cmp.Or(cmp.Compare(deref(a.Number), deref(b.Number)), cmp.Compare(a.UID, b.UID))
	})
	for i := range s.Series {
		slices.SortStableFunc(s.Series[i].Instance, func(a, b ImagingInstance) int {
			return cmp.Or(cmp.Compare(deref(a.Number), deref(b.Number)), cmp.Compare(a.UID, b.UID))
		})
	}
	s.count()
	return r.Subject.Reference, nil
}

func deref(n *int) int {
	if n == nil {
		return 0
	}
	return *n
}

// StudyEntry validates an ImagingStudy and wraps it in the conditional
// update on its identifier (so that instances arriving later update it).
func (m *Mapper) StudyEntry(s *ImagingStudy) (Entry, error) {
	id := s.Identifier[0]
	return entry(s, Request{Method: "PUT", URL: conditional("ImagingStudy", id.System, id.Value)})
}

func optInt(n int) *int {
	if n == 0 {
		return nil
	}
	return &n
}

// dicomDateTime turns DICOM DA, TM and a timezone offset (+HHMM) into a FHIR
// dateTime; a date alone stays a date, and a time without an offset is taken
// in loc.
func dicomDateTime(da, tm, tz string, loc *time.Location) string {
	da, tm, tz = strings.TrimSpace(da), strings.TrimSpace(tm), strings.TrimSpace(tz)
	d, err := time.Parse("20060102", da)
	if err != nil {
		return ""
	}
	if tm == "" {
		return d.Format("2006-01-02")
	}
	if len(tm) >= 2 {
		tm = tm + strings.Repeat("0", max(0, 6-len(strings.SplitN(tm, ".", 2)[0])))
	}
	t, err := time.Parse("150405.999999", tm)
	if err != nil {
		if t, err = time.Parse("150405", tm); err != nil {
			return d.Format("2006-01-02")
		}
	}
	if z, err := time.Parse("-0700", tz); err == nil {
		loc = z.Location()
	}
	at := time.Date(d.Year(), d.Month(), d.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), loc)
	return at.Format("2006-01-02T15:04:05.999999-07:00")
}
