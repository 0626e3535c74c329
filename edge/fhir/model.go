package fhir

import (
	"encoding/json"
	"strconv"
)

// The types below are the parts of FHIR R4 that wardgate writes, as JSON.

// Coding is a code from a code system.
type Coding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code,omitempty"`
	Display string `json:"display,omitempty"`
}

// CodeableConcept is a set of codings for one concept.
type CodeableConcept struct {
	Coding []Coding `json:"coding,omitempty"`
	Text   string   `json:"text,omitempty"`
}

// Identifier is a business identifier.
type Identifier struct {
	Use    string           `json:"use,omitempty"`
	Type   *CodeableConcept `json:"type,omitempty"`
	System string           `json:"system,omitempty"`
	Value  string           `json:"value,omitempty"`
}

// Reference points at another resource.
type Reference struct {
	Reference string `json:"reference,omitempty"`
	Display   string `json:"display,omitempty"`
}

// Decimal is a FHIR decimal written as the shortest exact form of the value.
type Decimal float64

// MarshalJSON writes the decimal as a JSON number.
func (d Decimal) MarshalJSON() ([]byte, error) {
	return []byte(strconv.FormatFloat(float64(d), 'f', -1, 64)), nil
}

// Quantity is a measured amount with a UCUM unit.
type Quantity struct {
	Value  Decimal `json:"value"`
	Unit   string  `json:"unit,omitempty"`
	System string  `json:"system,omitempty"`
	Code   string  `json:"code,omitempty"`
}

// Meta carries the profiles a resource claims.
type Meta struct {
	Profile []string `json:"profile,omitempty"`
}

// Observation is an R4 Observation as wardgate writes it.
type Observation struct {
	ResourceType      string                 `json:"resourceType"`
	Meta              *Meta                  `json:"meta,omitempty"`
	Identifier        []Identifier           `json:"identifier,omitempty"`
	Status            string                 `json:"status"`
	Category          []CodeableConcept      `json:"category,omitempty"`
	Code              CodeableConcept        `json:"code"`
	Subject           *Reference             `json:"subject,omitempty"`
	EffectiveDateTime string                 `json:"effectiveDateTime,omitempty"`
	EffectivePeriod   *Period                `json:"effectivePeriod,omitempty"`
	Issued            string                 `json:"issued,omitempty"`
	ValueQuantity     *Quantity              `json:"valueQuantity,omitempty"`
	ValueSampledData  *SampledData           `json:"valueSampledData,omitempty"`
	Interpretation    []CodeableConcept      `json:"interpretation,omitempty"`
	Note              []Annotation           `json:"note,omitempty"`
	Method            *CodeableConcept       `json:"method,omitempty"`
	Device            *Reference             `json:"device,omitempty"`
	Component         []ObservationComponent `json:"component,omitempty"`
}

// Period is a span of time; an open end is left out.
type Period struct {
	Start string `json:"start,omitempty"`
	End   string `json:"end,omitempty"`
}

// SampledData is a series of samples at a fixed period from an origin:
// data holds each sample as (value - origin) / factor, "E" for an error and
// "U"/"L" above or below the device's limits, separated by spaces.
type SampledData struct {
	Origin     Quantity `json:"origin"`
	Period     Decimal  `json:"period"` // milliseconds between samples
	Factor     *Decimal `json:"factor,omitempty"`
	LowerLimit *Decimal `json:"lowerLimit,omitempty"`
	UpperLimit *Decimal `json:"upperLimit,omitempty"`
	Dimensions int      `json:"dimensions"`
	Data       string   `json:"data,omitempty"`
}

// ObservationComponent is one part of a panel (systolic, diastolic, mean).
type ObservationComponent struct {
	Code             CodeableConcept `json:"code"`
	ValueQuantity    *Quantity       `json:"valueQuantity,omitempty"`
	ValueSampledData *SampledData    `json:"valueSampledData,omitempty"`
}

// Entry is one entry of a transaction Bundle: a resource and the request
// that writes it. It is what wardgate keeps in the outbox.
type Entry struct {
	FullURL  string          `json:"fullUrl,omitempty"`
	Resource json.RawMessage `json:"resource"`
	Request  Request         `json:"request"`

	// A Device entry's device and stamp, for ConfirmDevices.
	device, stamp string
}

// Request is how an entry is written.
type Request struct {
	Method      string `json:"method"`
	URL         string `json:"url"`
	IfNoneExist string `json:"ifNoneExist,omitempty"`
}
