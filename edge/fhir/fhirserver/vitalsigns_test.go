package fhirserver

import (
	"strings"
	"testing"
)

// heartRate is a vital sign as wardgate writes an aggregated one: the
// median of a minute, with its period, method and note.
const heartRate = `{"resourceType":"Observation","meta":{"profile":["http://hl7.org/fhir/StructureDefinition/vitalsigns","http://hl7.org/fhir/StructureDefinition/heartrate"]},` +
	`"identifier":[{"system":"urn:x","value":"hr"}],"status":"final",` +
	`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],` +
	`"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/1"},` +
	`"effectivePeriod":{"start":"2026-11-25T10:15:00Z","end":"2026-11-25T10:16:00Z"},` +
	`"valueQuantity":{"value":72,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"},` +
	`"method":{"text":"median"},"note":[{"text":"median of 58 readings"}]}`

func TestVitalSignsProfileIsChecked(t *testing.T) {
	const period = `"effectivePeriod":{"start":"2026-11-25T10:15:00Z","end":"2026-11-25T10:16:00Z"}`
	const category = `"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],`
	const value = `"valueQuantity":{"value":72,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"},`
	for _, tc := range []struct {
		name, resource string
		refused        string // "" when accepted, else a part of the diagnostics
	}{
		{"effectivePeriod", heartRate, ""},
		{"effectiveDateTime", strings.Replace(heartRate, period, `"effectiveDateTime":"2026-11-25T10:15:00Z"`, 1), ""},
		{"effectiveDateTime of a day", strings.Replace(heartRate, period, `"effectiveDateTime":"2026-11-25"`, 1), ""},
		{"conditional subject", strings.Replace(heartRate, `"Patient/1"`, `"Patient?identifier=urn%3Aoid%3A1.2.3.4%7CMRN-1"`, 1), ""},
		{"no profile claimed", strings.Replace(strings.Replace(strings.Replace(heartRate, period+",", "", 1), category, "", 1),
			`"meta":{"profile":["http://hl7.org/fhir/StructureDefinition/vitalsigns","http://hl7.org/fhir/StructureDefinition/heartrate"]},`, "", 1), ""},
		{"a panel without its own value", strings.Replace(heartRate, value,
			`"component":[{"code":{"text":"sys"},"valueQuantity":{"value":120}},{"code":{"text":"dia"},"valueQuantity":{"value":80}}],`, 1), ""},
		{"no effective[x]", strings.Replace(heartRate, period+",", "", 1), "effective[x]: missing"},
		{"no category", strings.Replace(heartRate, category, "", 1), "category"},
		{"another category", strings.Replace(heartRate, `"code":"vital-signs"`, `"code":"laboratory"`, 1), "category"},
		{"effectiveDateTime of a month", strings.Replace(heartRate, period, `"effectiveDateTime":"2026-11"`, 1), "vs-1"},
		{"no subject", strings.Replace(heartRate, `"subject":{"reference":"Patient/1"},`, "", 1), "subject: missing"},
		{"a Device as subject", strings.Replace(heartRate, `"Patient/1"`, `"Device/1"`, 1), "subject"},
		{"no value", strings.Replace(heartRate, value, "", 1), "vs-2"},
		{"a component without value", strings.Replace(heartRate, value, `"component":[{"code":{"text":"sys"}}],`, 1), "vs-3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, via := range []string{"create", "transaction"} {
				s := New()
				do(t, s, "POST", "/Patient", patient)
				var code int
				var oo map[string]any
				if via == "create" {
					code, oo = do(t, s, "POST", "/Observation", tc.resource)
				} else {
					code, oo = do(t, s, "POST", "/", `{"resourceType":"Bundle","type":"transaction","entry":[`+entry("POST", "Observation", "", tc.resource)+`]}`)
				}
				if tc.refused == "" {
					if code != 201 && code != 200 {
						t.Errorf("%s: refused, %d %v", via, code, oo)
					}
					continue
				}
				if code != 422 || oo["resourceType"] != "OperationOutcome" {
					t.Fatalf("%s: %d %v, want 422 and an OperationOutcome", via, code, oo)
				}
				diagnostics := oo["issue"].([]any)[0].(map[string]any)["diagnostics"].(string)
				if !strings.Contains(diagnostics, tc.refused) || !strings.Contains(diagnostics, "/heartrate") && !strings.Contains(diagnostics, "/vitalsigns") {
					t.Errorf("%s: %q does not name the profile and %q", via, diagnostics, tc.refused)
				}
				if s.Count("Observation") != 0 {
					t.Errorf("%s: the refused Observation was stored", via)
				}
			}
		})
	}
}
