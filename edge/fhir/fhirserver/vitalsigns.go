package fhirserver

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// The FHIR R4 vital-signs profile (observation-vitalsigns), checked on
// every Observation that claims it or one of the profiles derived from it:
// the project's independent check of the profiles wardgate claims, written
// from the profile's text rather than from the mapper, so that a change to
// the mapper that breaks the profile is refused here as a strict record
// would refuse it.

// vitalSignsProfiles are the R4 vital-signs profiles: the base and those
// derived from it, whose constraints include the base's.
var vitalSignsProfiles = []string{
	"http://hl7.org/fhir/StructureDefinition/vitalsigns",
	"http://hl7.org/fhir/StructureDefinition/vitalspanel",
	"http://hl7.org/fhir/StructureDefinition/resprate",
	"http://hl7.org/fhir/StructureDefinition/heartrate",
	"http://hl7.org/fhir/StructureDefinition/oxygensat",
	"http://hl7.org/fhir/StructureDefinition/bodytemp",
	"http://hl7.org/fhir/StructureDefinition/bodyheight",
	"http://hl7.org/fhir/StructureDefinition/headcircum",
	"http://hl7.org/fhir/StructureDefinition/bodyweight",
	"http://hl7.org/fhir/StructureDefinition/bmi",
	"http://hl7.org/fhir/StructureDefinition/bp",
}

const observationCategory = "http://terminology.hl7.org/CodeSystem/observation-category"

// toTheDay is vs-1: a dateTime "precise to the day" (FHIRPath's
// toString().length() >= 8 of R4's expression: a year and month are 7).
var toTheDay = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}`)

// profileError is an Observation that does not meet a profile it claims.
type profileError struct {
	Profile  string
	Failures []string
}

func (e *profileError) Error() string {
	return fmt.Sprintf("the Observation does not meet the profile %s it claims: %s", e.Profile, strings.Join(e.Failures, "; "))
}

// vitalSigns checks the vital-signs profile on an Observation that claims
// it, given as JSON as it was sent (its meta.profile intact), and returns
// nil or a *profileError. Other resources, and Observations that claim no
// vital-signs profile, pass.
func vitalSigns(resource []byte) error {
	var o map[string]json.RawMessage
	if json.Unmarshal(resource, &o) != nil || string(o["resourceType"]) != `"Observation"` {
		return nil
	}
	var meta struct{ Profile []string }
	json.Unmarshal(o["meta"], &meta)
	claimed := ""
	for _, p := range meta.Profile {
		if slices.Contains(vitalSignsProfiles, p) {
			claimed = p
			break
		}
	}
	if claimed == "" {
		return nil
	}
	var failures []string
	fails := func(format string, args ...any) { failures = append(failures, fmt.Sprintf(format, args...)) }

	// category: a slice VSCat, 1..1, of observation-category#vital-signs.
	var category []struct {
		Coding []struct{ System, Code string }
	}
	json.Unmarshal(o["category"], &category)
	vsCat := false
	for _, c := range category {
		for _, coding := range c.Coding {
			vsCat = vsCat || coding.System == observationCategory && coding.Code == "vital-signs"
		}
	}
	if !vsCat {
		fails("category: no coding %s#vital-signs (VSCat, 1..1)", observationCategory)
	}

	// subject: 1..1, Reference(Patient).
	var subject struct{ Reference string }
	json.Unmarshal(o["subject"], &subject)
	switch {
	case o["subject"] == nil:
		fails("subject: missing (1..1, Reference(Patient))")
	case !refersToPatient(subject.Reference):
		fails("subject: %q is not a reference to a Patient", subject.Reference)
	}

	// effective[x]: 1..1, dateTime or Period; vs-1.
	switch {
	case o["effectiveDateTime"] != nil:
		var at string
		json.Unmarshal(o["effectiveDateTime"], &at)
		if !toTheDay.MatchString(at) {
			fails("vs-1: effectiveDateTime %q is not precise to the day", at)
		}
	case o["effectivePeriod"] != nil:
	default:
		fails("effective[x]: missing (1..1, dateTime or Period)")
		for name := range o {
			if strings.HasPrefix(name, "effective") {
				fails("effective[x]: %s is neither a dateTime nor a Period", name)
			}
		}
	}

	// vs-2: "If there is no component or hasMember element then either a
	// value[x] or a data absent reason must be present".
	if o["component"] == nil && o["hasMember"] == nil && !hasValue(o) && o["dataAbsentReason"] == nil {
		fails("vs-2: no value[x] nor dataAbsentReason, and no component nor hasMember")
	}

	// vs-3: "If there is no a value a data absent reason must be present",
	// on each component.
	var components []map[string]json.RawMessage
	json.Unmarshal(o["component"], &components)
	for i, c := range components {
		if !hasValue(c) && c["dataAbsentReason"] == nil {
			fails("vs-3: component[%d] has no value[x] nor dataAbsentReason", i)
		}
	}

	if failures != nil {
		return &profileError{Profile: claimed, Failures: failures}
	}
	return nil
}

// hasValue says whether an Observation or component has a value[x].
func hasValue(o map[string]json.RawMessage) bool {
	for name := range o {
		if rest, ok := strings.CutPrefix(name, "value"); ok && rest != "" && rest[0] >= 'A' && rest[0] <= 'Z' {
			return true
		}
	}
	return false
}

// refersToPatient says whether a reference points at a Patient: literally
// ("Patient/1", "https://ehr/fhir/Patient/1", with or without _history) or
// conditionally ("Patient?identifier=…", which the server resolves to one).
func refersToPatient(ref string) bool {
	if strings.HasPrefix(ref, "Patient?") {
		return true
	}
	parts := strings.Split(ref, "/")
	if n := len(parts); n >= 4 && parts[n-2] == "_history" {
		parts = parts[:n-2]
	}
	return len(parts) >= 2 && parts[len(parts)-2] == "Patient" && parts[len(parts)-1] != ""
}
