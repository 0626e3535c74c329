package fhir

import (
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/edge/fhir/r4"
)

// ErrNoPatient means a reading came to the mapper without its patient: it
// does not go to any chart.
var ErrNoPatient = errors.New("no patient is given for this reading")

// Mapper turns readings and studies into Bundle entries. It remembers which
// Devices are in the outbox (ConfirmDevices) so that a Device entry goes out
// with the first Observations that refer to it and not with every one (and
// again after a restart, which the conditional update makes harmless).
type Mapper struct {
	// Site names the gateway; it is in every identifier system it mints.
	Site string
	// PatientIdentifierSystem is the MRN system for DICOM Patient IDs.
	PatientIdentifierSystem string
	// WADORSBase is the PACS's DICOMweb base, the ImagingStudy's Endpoint.
	WADORSBase string
	// Local is the time zone of DICOM dates that carry no offset.
	Local *time.Location
	// ObservationStatus is every Observation's status: final when empty,
	// or preliminary (a site that validates device data in the record).
	ObservationStatus string

	mu      sync.Mutex
	devices map[string]string // device id → stamp of the Device in the outbox
	shapes  map[string]bool   // Observation shapes found valid (shapes.go)
}

// Rejected is a reading (or study) that could not be mapped, and why.
type Rejected struct {
	What   string // device/code, or the study's UID: no patient data
	Reason error
	// Reading is the rejected reading.
	Reading devices.Reading
}

func (m *Mapper) system(kind string) string { return "urn:wardgate:" + m.Site + ":" + kind }

// conditional is a search URL on one identifier: "Type?identifier=system|value".
func conditional(resourceType, system, value string) string {
	return resourceType + "?" + ifNoneExist(system, value)
}

// ConditionalPatient is the conditional reference to the Patient with the
// identifier system|value, which the record resolves inside a transaction.
func ConditionalPatient(system, value string) string {
	return conditional("Patient", system, value)
}

// ParseConditionalPatient reads a reference that ConditionalPatient wrote
// back into its system and value.
func ParseConditionalPatient(ref string) (system, value string, ok bool) {
	q, ok := strings.CutPrefix(ref, "Patient?identifier=")
	if !ok {
		return "", "", false
	}
	token, err := url.QueryUnescape(q)
	if err != nil {
		return "", "", false
	}
	var parts [2]strings.Builder
	part := 0
	for i := 0; i < len(token); i++ {
		switch c := token[i]; {
		case c == '\\' && i+1 < len(token):
			i++
			parts[part].WriteByte(token[i])
		case c == '|' && part == 0:
			part = 1
		default:
			parts[part].WriteByte(c)
		}
	}
	if part == 0 {
		return "", "", false
	}
	return parts[0].String(), parts[1].String(), true
}

func ifNoneExist(system, value string) string {
	return "identifier=" + url.QueryEscape(searchEscape(system)+"|"+searchEscape(value))
}

// searchEscape escapes FHIR search's special characters (\ , $ |) in a
// token, so that a serial number with a comma cannot turn one search into
// two.
func searchEscape(s string) string { return searchEscaper.Replace(s) }

var searchEscaper = strings.NewReplacer(`\`, `\\`, `,`, `\,`, `$`, `\$`, `|`, `\|`)

// validate checks every resource before it leaves the mapper. Tests
// (independent_test.go) hold it against google/fhir's validator as well.
var validate = r4.Validate

// entry validates a resource and wraps it.
func entry(resource any, req Request) (Entry, error) {
	b, err := json.Marshal(resource)
	if err != nil {
		return Entry{}, err
	}
	if err := validate(b); err != nil {
		return Entry{}, err
	}
	return Entry{Resource: b, Request: req}, nil
}

// fhirTime formats a time as a FHIR dateTime/instant in UTC.
func fhirTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.999999999Z07:00")
}
