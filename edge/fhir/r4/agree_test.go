package r4

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardgate/wardgate/edge/fhir/r4/r4google"
)

// The resources in edge/fhir/testdata are what the mapper writes.
func testdata(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob("../testdata/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test data: %v", err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

func TestWhatWardgateWritesIsValidToBoth(t *testing.T) {
	for name, b := range testdata(t) {
		if err := Validate(b); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if err := r4google.Validate(b); err != nil {
			t.Errorf("%s: google/fhir: %v", name, err)
		}
	}
}

const spo2 = `{"resourceType":"Observation","meta":{"profile":["http://hl7.org/fhir/StructureDefinition/vitalsigns"]},` +
	`"identifier":[{"system":"urn:wardgate:w:observation","value":"m/150456/2026-11-25T10:15:02Z"}],"status":"final",` +
	`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],` +
	`"code":{"coding":[{"system":"http://loinc.org","code":"59408-5","display":"SpO2"}],"text":"SpO2"},` +
	`"subject":{"reference":"Patient/123"},"effectiveDateTime":"2026-11-25T10:15:02Z","issued":"2026-11-25T10:15:02.5Z",` +
	`"valueQuantity":{"value":97,"unit":"%","system":"http://unitsofmeasure.org","code":"%"},` +
	`"device":{"reference":"Device?identifier=urn%3Awardgate%3Aw%3Adevice%7Cm"}}`

// median is an aggregated Observation: one value for a charting interval
// (the median of a minute's heart rates), with its period, method and note.
const median = `{"resourceType":"Observation","meta":{"profile":["http://hl7.org/fhir/StructureDefinition/vitalsigns","http://hl7.org/fhir/StructureDefinition/heartrate"]},` +
	`"identifier":[{"system":"urn:wardgate:w:observation","value":"m/147842/2026-11-25T10:15:00Z/PT1M"}],"status":"final",` +
	`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],` +
	`"code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}]},` +
	`"subject":{"reference":"Patient/123"},"effectivePeriod":{"start":"2026-11-25T10:15:00Z","end":"2026-11-25T10:16:00Z"},` +
	`"issued":"2026-11-25T10:16:00.5Z","valueQuantity":{"value":72,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"},` +
	`"note":[{"text":"median of 58 readings"}],"method":{"text":"median"},` +
	`"device":{"reference":"Device?identifier=urn%3Awardgate%3Aw%3Adevice%7Cm"}}`

// wave is a full-resolution Observation: the samples of one interval.
const wave = `{"resourceType":"Observation","identifier":[{"system":"urn:wardgate:w:observation","value":"m/150456/2026-11-25T10:15:00Z/wave"}],` +
	`"status":"final","code":{"coding":[{"system":"urn:iso:std:iso:11073:10101","code":"150456"}]},"subject":{"reference":"Patient/123"},` +
	`"effectivePeriod":{"start":"2026-11-25T10:15:00Z","end":"2026-11-25T10:15:01Z"},` +
	`"valueSampledData":{"origin":{"value":0,"unit":"%","system":"http://unitsofmeasure.org","code":"%"},"period":250,"factor":0.5,` +
	`"lowerLimit":0,"upperLimit":100,"dimensions":1,"data":"194 195 E 196"}}`

// valid are resources both validators must accept.
var valid = []struct{ name, json string }{
	{"median of a minute", median},
	{"period with start only", strings.Replace(median, `,"end":"2026-11-25T10:16:00Z"`, ``, 1)},
	{"period with end only", strings.Replace(median, `"start":"2026-11-25T10:15:00Z",`, ``, 1)},
	{"period of an instant", strings.Replace(median, `"end":"2026-11-25T10:16:00Z"`, `"end":"2026-11-25T10:15:00Z"`, 1)},
	{"period ending the day before, in some zone", strings.Replace(median, `"end":"2026-11-25T10:16:00Z"`, `"end":"2026-11-24"`, 1)},
	{"period ending within the day it names", strings.Replace(median, `"end":"2026-11-25T10:16:00Z"`, `"end":"2026-11-25"`, 1)},
	{"period in two zones", strings.Replace(median, `"end":"2026-11-25T10:16:00Z"`, `"end":"2026-11-25T11:15:00+01:00"`, 1)},
	{"period of a fraction of a second", strings.Replace(median, `"2026-11-25T10:15:00Z","end":"2026-11-25T10:16:00Z"`, `"2026-11-25T10:15:00.25Z","end":"2026-11-25T10:15:00.2Z"`, 1)},
	{"period of days", strings.Replace(median, `"2026-11-25T10:15:00Z","end":"2026-11-25T10:16:00Z"`, `"2026-11-25","end":"2026-11-26"`, 1)},
	{"method coded", strings.Replace(median, `"method":{"text":"median"}`, `"method":{"coding":[{"system":"urn:wardgate","code":"median"}],"text":"median"}`, 1)},
	{"two notes", strings.Replace(median, `"note":[{"text":"median of 58 readings"}]`, `"note":[{"text":"a"},{"text":"**b**"}]`, 1)},
	{"samples", wave},
	{"samples E U L", strings.Replace(wave, `"194 195 E 196"`, `"E U L 1"`, 1)},
	{"samples negative", strings.Replace(wave, `"194 195 E 196"`, `"-1 -0.5 +2 0"`, 1)},
	{"samples with exponents", strings.Replace(wave, `"194 195 E 196"`, `"1e3 1.5E-2 -2e+1"`, 1)},
	{"samples without data", strings.Replace(wave, `,"data":"194 195 E 196"`, ``, 1)},
	{"samples of two dimensions", strings.Replace(wave, `"dimensions":1,"data":"194 195 E 196"`, `"dimensions":2,"data":"1 2 3 4"`, 1)},
	{"samples in a component", `{"resourceType":"Observation","status":"final","code":{"text":"bp"},"effectiveDateTime":"2026-11-25T10:15:00Z",` +
		`"component":[{"code":{"text":"sys"},"valueSampledData":{"origin":{"value":0},"period":8,"dimensions":1,"data":"120 121"}}]}`},
}

// invalid are resources both validators must refuse (want "" ) or that only
// this package refuses, for the reason given.
var invalid = []struct {
	name, json string
	only       kind // broken: both refuse
}{
	{"empty string", strings.Replace(spo2, `"text":"SpO2"`, `"text":""`, 1), r4Only},
	{"white space only", strings.Replace(spo2, `"text":"SpO2"`, `"text":"  "`, 1), r4Only},
	{"empty array", strings.Replace(spo2, `"category":[`, `"note":[],"category":[`, 1), r4Only},
	{"empty identifier list", strings.Replace(spo2, `"identifier":[{"system":"urn:wardgate:w:observation","value":"m/150456/2026-11-25T10:15:02Z"}]`, `"identifier":[]`, 1), r4Only},
	{"empty object", strings.Replace(spo2, `"valueQuantity":{`, `"meta":{},"x":{`, 1), broken},
	{"empty Quantity", strings.Replace(spo2, `"value":97,"unit":"%","system":"http://unitsofmeasure.org","code":"%"`, ``, 1), r4Only},
	{"null string", strings.Replace(spo2, `"text":"SpO2"`, `"text":null`, 1), broken},
	{"null array", strings.Replace(spo2, `"status":"final"`, `"status":"final","interpretation":null`, 1), broken},
	{"null instant", strings.Replace(spo2, `"issued":"2026-11-25T10:15:02.5Z"`, `"issued":null`, 1), broken},
	{"bad dateTime", strings.Replace(spo2, `"effectiveDateTime":"2026-11-25T10:15:02Z"`, `"effectiveDateTime":"2026-11-25 10:15:02"`, 1), broken},
	{"dateTime without zone", strings.Replace(spo2, `"effectiveDateTime":"2026-11-25T10:15:02Z"`, `"effectiveDateTime":"2026-11-25T10:15:02"`, 1), broken},
	{"30 February", strings.Replace(spo2, `"effectiveDateTime":"2026-11-25T10:15:02Z"`, `"effectiveDateTime":"2026-02-30"`, 1), broken},
	{"instant without seconds", strings.Replace(spo2, `"issued":"2026-11-25T10:15:02.5Z"`, `"issued":"2026-11-25T10:15Z"`, 1), broken},
	{"unknown element", strings.Replace(spo2, `"status":"final"`, `"status":"final","colour":"red"`, 1), broken},
	{"unknown element in a datatype", strings.Replace(spo2, `"unit":"%"`, `"unit":"%","scale":2`, 1), broken},
	{"element in other case", strings.Replace(spo2, `"status":"final"`, `"Status":"final"`, 1), r4Only},
	{"missing status", strings.Replace(spo2, `"status":"final",`, ``, 1), broken},
	{"missing code", strings.Replace(spo2, `"code":{"coding":[{"system":"http://loinc.org","code":"59408-5","display":"SpO2"}],"text":"SpO2"},`, ``, 1), broken},
	{"status not in its value set", strings.Replace(spo2, `"status":"final"`, `"status":"done"`, 1), broken},
	{"status in capitals", strings.Replace(spo2, `"status":"final"`, `"status":"FINAL"`, 1), r4Only},
	{"status not a string", strings.Replace(spo2, `"status":"final"`, `"status":1`, 1), broken},
	{"wrong reference type", strings.Replace(spo2, `"reference":"Patient/123"`, `"reference":"Encounter/123"`, 1), broken},
	{"wrong conditional reference type", strings.Replace(spo2, `"reference":"Patient/123"`, `"reference":"Encounter?identifier=x"`, 1), r4Only},
	{"NaN", strings.Replace(spo2, `"value":97`, `"value":"NaN"`, 1), broken},
	{"decimal as a string", strings.Replace(spo2, `"value":97`, `"value":"97"`, 1), broken},
	{"decimal with a plus", strings.Replace(spo2, `"value":97`, `"value":"+97"`, 1), broken},
	{"control character", strings.Replace(spo2, `"text":"SpO2"`, `"text":"Sp\u0001O2"`, 1), broken},
	{"control character in a code", strings.Replace(spo2, `"code":"59408-5"`, `"code":"59408\u00015"`, 1), r4Only},
	{"space in a code", strings.Replace(spo2, `"code":"59408-5"`, `"code":"59408  5"`, 1), broken},
	{"a name twice", strings.Replace(spo2, `"status":"final"`, `"status":"done","status":"final"`, 1), r4Only},
	{"a name twice, the last wrong", strings.Replace(spo2, `"status":"final"`, `"status":"final","status":"done"`, 1), broken},
	{"escaped name", strings.Replace(spo2, `"status":"final"`, `"st\u0061tus":"done"`, 1), broken},
	{"array for one value", strings.Replace(spo2, `"status":"final"`, `"status":["final"]`, 1), broken},
	{"one value for an array", strings.Replace(spo2, `"identifier":[{"system":"urn:wardgate:w:observation","value":"m/150456/2026-11-25T10:15:02Z"}]`, `"identifier":{"value":"x"}`, 1), broken},
	{"bad URI", strings.Replace(spo2, `"system":"http://loinc.org"`, `"system":"http://loinc.org/%zz"`, 1), broken},
	{"space in a URI", strings.Replace(spo2, `"system":"http://loinc.org"`, `"system":"http://loinc.org/a b"`, 1), r4Only},
	{"space in a URI's host", strings.Replace(spo2, `"system":"http://loinc.org"`, `"system":"http://loinc org"`, 1), broken},
	{"bad id", strings.Replace(spo2, `"status":"final"`, `"id":"a b","status":"final"`, 1), broken},
	{"extension", strings.Replace(spo2, `"status":"final"`, `"extension":[{"url":"http://x","valueString":"y"}],"status":"final"`, 1), notWritten},
	{"primitive extension", strings.Replace(spo2, `"status":"final"`, `"_status":{"id":"s"},"status":"final"`, 1), notWritten},
	{"status as its extension alone", strings.Replace(spo2, `"status":"final"`, `"_status":{"id":"s"}`, 1), notWritten},
	{"extension in other case", strings.Replace(spo2, `"status":"final"`, `"_Status":{"id":"s"},"status":"final"`, 1), notWritten},
	{"choice element in other case", strings.Replace(spo2, `"valueQuantity"`, `"ValueQuantity"`, 1), r4Only},
	{"choice type in other case", strings.Replace(spo2, `"valueQuantity"`, `"valuequantity"`, 1), broken},
	{"extension of a complex element", strings.Replace(spo2, `"status":"final"`, `"_code":{"id":"s"},"status":"final"`, 1), broken},
	{"narrative", strings.Replace(spo2, `"status":"final"`, `"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"status":"final"`, 1), notWritten},
	{"Patient", `{"resourceType":"Patient","id":"p"}`, notWritten},
	{"unknown resource type", `{"resourceType":"Vitals"}`, broken},
	{"no resource type", `{"status":"final"}`, broken},
	{"not JSON", `{"resourceType":"Observation",`, broken},
	{"not an object", `[]`, broken},
	{"comparator", strings.Replace(spo2, `"value":97`, `"value":97,"comparator":"less"`, 1), broken},
	{"comparator by name", strings.Replace(spo2, `"value":97`, `"value":97,"comparator":"less_than"`, 1), r4Only},
	{"identifier use", strings.Replace(spo2, `"system":"urn:wardgate:w:observation"`, `"use":"primary","system":"urn:wardgate:w:observation"`, 1), broken},
	{"Device name type", `{"resourceType":"Device","deviceName":[{"name":"x","type":"model"}]}`, broken},
	{"Device name without type", `{"resourceType":"Device","deviceName":[{"name":"x"}]}`, broken},
	{"Device status", `{"resourceType":"Device","status":"on"}`, broken},
	{"Device note markdown control", `{"resourceType":"Device","note":[{"text":"a\u0002b"}]}`, r4Only},
	{"Endpoint without payloadType", `{"resourceType":"Endpoint","status":"active","connectionType":{"code":"dicom-wado-rs"},"address":"https://pacs/dicomweb"}`, broken},
	{"Endpoint status", `{"resourceType":"Endpoint","status":"on","connectionType":{"code":"x"},"payloadType":[{"text":"DICOM"}],"address":"https://p"}`, broken},
	{"ImagingStudy status", `{"resourceType":"ImagingStudy","status":"done","subject":{"reference":"Patient/1"}}`, broken},
	{"ImagingStudy without subject", `{"resourceType":"ImagingStudy","status":"available"}`, broken},
	{"ImagingStudy subject Location", `{"resourceType":"ImagingStudy","status":"available","subject":{"reference":"Location/1"}}`, broken},
	{"negative series number", `{"resourceType":"ImagingStudy","status":"available","subject":{"reference":"Patient/1"},"series":[{"uid":"1.2","number":-1,"modality":{"code":"CT"}}]}`, broken},
	{"fractional count", `{"resourceType":"ImagingStudy","status":"available","subject":{"reference":"Patient/1"},"numberOfSeries":1.0}`, broken},
	{"count out of range", `{"resourceType":"ImagingStudy","status":"available","subject":{"reference":"Patient/1"},"numberOfSeries":2147483648}`, broken},
	{"series uid not an id", `{"resourceType":"ImagingStudy","status":"available","subject":{"reference":"Patient/1"},"series":[{"uid":"urn:oid:1.2","modality":{"code":"CT"}}]}`, broken},
	// per-1 (start <= end) is R4's: google/fhir evaluates no FHIRPath and
	// accepts a Period that ends before it starts.
	{"period ending before its start", strings.Replace(median, `"end":"2026-11-25T10:16:00Z"`, `"end":"2026-11-25T10:14:59Z"`, 1), r4Only},
	// A day without a zone may end as late as 14:00Z of the next.
	{"period ending two days before", strings.Replace(median, `"end":"2026-11-25T10:16:00Z"`, `"end":"2026-11-23"`, 1), r4Only},
	{"period ending the year before", strings.Replace(median, `"2026-11-25T10:15:00Z","end":"2026-11-25T10:16:00Z"`, `"2026","end":"2025"`, 1), r4Only},
	{"period with a bad dateTime", strings.Replace(median, `"end":"2026-11-25T10:16:00Z"`, `"end":"2026-11-25T10:16"`, 1), broken},
	{"period with a bad start", strings.Replace(median, `"start":"2026-11-25T10:15:00Z"`, `"start":"2026-13-25"`, 1), broken},
	{"period as a string", strings.Replace(median, `{"start":"2026-11-25T10:15:00Z","end":"2026-11-25T10:16:00Z"}`, `"2026-11-25T10:15:00Z/2026-11-25T10:16:00Z"`, 1), broken},
	{"period with a duration", strings.Replace(median, `"end":"2026-11-25T10:16:00Z"`, `"duration":"PT1M"`, 1), broken},
	{"effectiveDateTime and effectivePeriod", strings.Replace(median, `"effectivePeriod"`, `"effectiveDateTime":"2026-11-25T10:15:00Z","effectivePeriod"`, 1), broken},
	{"valueQuantity and valueSampledData", strings.Replace(wave, `"valueSampledData"`, `"valueQuantity":{"value":97},"valueSampledData"`, 1), broken},
	{"method as a list", strings.Replace(median, `"method":{"text":"median"}`, `"method":[{"text":"median"}]`, 1), broken},
	{"note as one value", strings.Replace(median, `"note":[{"text":"median of 58 readings"}]`, `"note":{"text":"median"}`, 1), broken},
	{"note without text", strings.Replace(median, `"note":[{"text":"median of 58 readings"}]`, `"note":[{"time":"2026-11-25T10:16:00Z"}]`, 1), broken},
	{"samples without origin", strings.Replace(wave, `"origin":{"value":0,"unit":"%","system":"http://unitsofmeasure.org","code":"%"},`, ``, 1), broken},
	{"samples without period", strings.Replace(wave, `"period":250,`, ``, 1), broken},
	{"samples without dimensions", strings.Replace(wave, `"dimensions":1,`, ``, 1), broken},
	{"samples of 0 dimensions", strings.Replace(wave, `"dimensions":1`, `"dimensions":0`, 1), broken},
	{"samples of -1 dimensions", strings.Replace(wave, `"dimensions":1`, `"dimensions":-1`, 1), broken},
	{"samples origin with comparator", strings.Replace(wave, `"origin":{"value":0,`, `"origin":{"value":0,"comparator":"<",`, 1), broken},
	{"samples period as a string", strings.Replace(wave, `"period":250`, `"period":"250"`, 1), broken},
	// R4's format of SampledData.data: google/fhir reads it as any string.
	{"samples with commas", strings.Replace(wave, `"194 195 E 196"`, `"1,2"`, 1), r4Only},
	{"samples with a word", strings.Replace(wave, `"194 195 E 196"`, `"abc"`, 1), r4Only},
	{"samples with a lower-case code", strings.Replace(wave, `"194 195 E 196"`, `"1 e 2"`, 1), r4Only},
	{"samples with a tab", strings.Replace(wave, `"194 195 E 196"`, `"1\t2"`, 1), r4Only},
	{"samples with a trailing dot", strings.Replace(wave, `"194 195 E 196"`, `"1. 2"`, 1), r4Only},
	{"samples as numbers", strings.Replace(wave, `"194 195 E 196"`, `[194,195]`, 1), broken},
	{"samples in a component without origin", `{"resourceType":"Observation","status":"final","code":{"text":"bp"},` +
		`"component":[{"code":{"text":"sys"},"valueSampledData":{"period":8,"dimensions":1,"data":"120 121"}}]}`, broken},
	{"instance without sopClass", `{"resourceType":"ImagingStudy","status":"available","subject":{"reference":"Patient/1"},"series":[{"uid":"1.2","modality":{"code":"CT"},"instance":[{"uid":"1.2.3"}]}]}`, broken},
}

func TestValidResources(t *testing.T) {
	for _, tc := range valid {
		t.Run(tc.name, func(t *testing.T) {
			if err := Validate([]byte(tc.json)); err != nil {
				t.Error(err)
			}
			if err := r4google.Validate([]byte(tc.json)); err != nil {
				t.Errorf("google/fhir: %v", err)
			}
		})
	}
}

func TestInvalidResources(t *testing.T) {
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			ours := Validate([]byte(tc.json))
			var invalid *InvalidError
			if !errors.As(ours, &invalid) {
				t.Fatalf("accepted, or not an InvalidError: %v", ours)
			}
			theirs := r4google.Validate([]byte(tc.json))
			if tc.only == broken && theirs == nil {
				t.Errorf("google/fhir accepts it; r4: %v", ours)
			}
			if tc.only != broken {
				if theirs != nil {
					t.Errorf("google/fhir rejects it too: %v", theirs)
				}
				for _, is := range invalid.Issues {
					if is.kind != tc.only {
						t.Errorf("issue %s: %s of kind %d, want %d", is.Path, is.Message, is.kind, tc.only)
					}
				}
			}
			if err := Disagreement(ours, theirs); err != nil {
				t.Error(err)
			}
		})
	}
}

// FuzzValidateAgrees holds Validate against google/fhir: whatever google/fhir
// rejects, Validate rejects; whatever it accepts, Validate accepts unless
// the resource has what Disagreement lists (an element wardgate does not
// write, an R4 rule google/fhir does not check).
func FuzzValidateAgrees(f *testing.F) {
	for _, b := range testdata(f) {
		f.Add(b)
	}
	f.Add([]byte(spo2))
	for _, tc := range valid {
		f.Add([]byte(tc.json))
	}
	for _, tc := range invalid {
		f.Add([]byte(tc.json))
	}
	for _, tc := range tricky {
		for _, v := range tc.values {
			if len(v) < 1000 {
				f.Add([]byte(strings.Replace(tc.in, tc.old, v, 1)))
			}
		}
	}
	for _, v := range []string{`"2024-02-29"`, `"2026-11-25T10:15:02.5+14:00"`, `"a b"`, `1e5`, `"Patient/1"`, `{}`, `[]`, `null`, `"\u0000"`, `"urn:oid:1.2"`} {
		f.Add([]byte(v))
	}
	for _, s := range slots {
		if !strings.Contains(s.in, s.key+s.value) {
			f.Fatalf("no %s%s", s.key, s.value)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		agree(t, b)
		// A JSON value is also tried in place of each slot's value, so that
		// the fuzzer's values meet the formats of the elements wardgate
		// writes.
		if len(b) < 256 && json.Valid(b) {
			for _, s := range slots {
				agree(t, []byte(strings.Replace(s.in, s.key+s.value, s.key+string(b), 1)))
			}
		}
	})
}

// slots are values of resources wardgate writes, one of each type: the
// first value after key.
var slots = []struct{ in, key, value string }{
	{spo2, `"status":`, `"final"`},                                                                // a code of a required binding
	{spo2, `"effectiveDateTime":`, `"2026-11-25T10:15:02Z"`},                                      // dateTime
	{spo2, `"issued":`, `"2026-11-25T10:15:02.5Z"`},                                               // instant
	{spo2, `"value":`, `97`},                                                                      // decimal
	{spo2, `"code":`, `"59408-5"`},                                                                // code
	{spo2, `"reference":`, `"Patient/123"`},                                                       // a reference
	{spo2, `"display":`, `"SpO2"`},                                                                // string
	{spo2, `"system":`, `"http://loinc.org"`},                                                     // uri
	{spo2, `"profile":[`, `"http://hl7.org/fhir/StructureDefinition/vitalsigns"`},                 // canonical
	{spo2, `"coding":[`, `{"system":"http://loinc.org","code":"59408-5","display":"SpO2"}`},       // a Coding
	{studyJSON, `"uid":`, `"1.2.3.1"`},                                                            // id
	{studyJSON, `"numberOfSeries":`, `1`},                                                         // unsignedInt
	{deviceJSON, `"text":`, `"monitor m"`},                                                        // markdown
	{deviceJSON, `"type":`, `"model-name"`},                                                       // Device.deviceName.type
	{endpointJSON, `"address":`, `"https://p/dicomweb"`},                                          // url
	{median, `"end":`, `"2026-11-25T10:16:00Z"`},                                                  // Period.end, against its start
	{median, `"method":`, `{"text":"median"}`},                                                    // a CodeableConcept
	{wave, `"dimensions":`, `1`},                                                                  // positiveInt
	{wave, `"data":`, `"194 195 E 196"`},                                                          // SampledData.data
	{wave, `"origin":`, `{"value":0,"unit":"%","system":"http://unitsofmeasure.org","code":"%"}`}, // SimpleQuantity
}

func agree(t *testing.T, b []byte) {
	t.Helper()
	if err := Disagreement(Validate(b), r4google.Validate(b)); err != nil {
		t.Fatalf("%s\non %q", err, b)
	}
}

func BenchmarkValidateObservation(b *testing.B) {
	obs := []byte(spo2)
	b.Run("r4", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := Validate(obs); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("google", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := r4google.Validate(obs); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// tricky are values at the edges of R4's formats and of google/fhir's
// reading of them, put in place of one value of a resource wardgate writes.
var tricky = []struct {
	in, old string
	values  []string
}{
	{spo2, `"2026-11-25T10:15:02Z"`, []string{
		`"2026"`, `"2026-11"`, `"2026-11-25"`, `"0000"`, `"0000-01-01"`, `"0001-01-01T00:00:00Z"`, `"-2026"`, `"20261125"`,
		`"2024-02-29"`, `"2023-02-29"`, `"2026-04-31"`, `"2026-00-10"`, `"2026-11-00"`, `"2026-11-25T24:00:00Z"`,
		`"2026-11-25T23:59:60Z"`, `"2026-11-25T10:15Z"`, `"2026-11-25T10:15:02"`, `"2026-11-25T10:15:02.1234567890123Z"`,
		`"2026-11-25T10:15:02.Z"`, `"2026-11-25T10:15:02+14:00"`, `"2026-11-25T10:15:02+14:01"`, `"2026-11-25T10:15:02-00:00"`,
		`"2026-11-25T10:15:02+1400"`, `"2026-11-25t10:15:02z"`, `"2026-11-25T10:15:02,5Z"`, `" 2026"`, `"2026 "`, `2026`, `""`,
	}},
	{spo2, `"2026-11-25T10:15:02.5Z"`, []string{
		`"2026-11-25T10:15:02Z"`, `"2026-11-25"`, `"2026-11-25T10:15:02+01:00"`, `"2026-11-25T10:15:02.000000001Z"`, `"0000-11-25T10:15:02Z"`,
		`"2026-02-29T10:15:02Z"`, `"2026-11-25T10:15:60Z"`,
	}},
	{spo2, `"value":97`, []string{
		`"value":0`, `"value":-0`, `"value":0.0`, `"value":1e5`, `"value":1E+5`, `"value":-1.5e-300`, `"value":1e400`, `"value":1e-400`, `"value":-1e309`,
		`"value":123456789012345678901234567890`, `"value":true`, `"value":"97"`, `"value":{}`, `"value":[97]`,
	}},
	{spo2, `"code":"59408-5"`, []string{
		`"code":"a b"`, `"code":"a  b"`, `"code":" a"`, `"code":"a "`, `"code":"a\tb"`, `"code":"a\nb"`, `"code":"a\u000cb"`,
		`"code":"a\u00a0b"`, `"code":"a\u0001"`, `"code":"\u2003"`, `"code":"é"`, `"code":"\ud800"`, `"code":5`,
	}},
	{spo2, `"display":"SpO2"`, []string{
		`"display":"a\tb"`, `"display":"\t"`, `"display":"\u00a0"`, `"display":"\u007f"`, `"display":"\u0085"`, `"display":"a\u0000"`,
		`"display":"\ufeff"`, `"display":"\ud83d\ude00"`, `"display":"\udc00"`, `"display":"` + strings.Repeat("x", 1<<20+1) + `"`,
	}},
	{spo2, `"system":"http://loinc.org"`, []string{
		`"system":"urn:oid:1.2.3"`, `"system":"a"`, `"system":":"`, `"system":"://x"`, `"system":"http://x/%zz"`, `"system":"http://x/a%20b"`,
		`"system":"http://[::1"`, `"system":"http://x:port"`, `"system":"a\tb"`, `"system":"http://x/\u00e9"`, `"system":"#x"`,
	}},
	{spo2, `"reference":"Patient/123"`, []string{
		`"reference":"Patient/"`, `"reference":"patient/123"`, `"reference":"Patient/123/_history/2"`, `"reference":"Patient/a b"`,
		`"reference":"Patient/123/x/2"`, `"reference":"Group/1"`, `"reference":"Device/1"`, `"reference":"Location/1"`,
		`"reference":"Encounter/1"`, `"reference":"encounter/1"`, `"reference":"Encounter/1/_history/1"`, `"reference":"Foo/1"`,
		`"reference":"http://x/Encounter/1"`, `"reference":"#p"`, `"reference":"urn:uuid:0b5ad5e4-8e8f-4f0b-8a39-4b4f5c5e5e5e"`,
		`"reference":"Patient?identifier=x"`, `"reference":"Encounter?identifier=x"`, `"reference":"%zz"`, `"reference":"Patient/%zz"`,
		`"reference":"Patient/1\u0001"`, `"reference":"a\u0001"`, `"reference":" "`,
	}},
	{spo2, `"status":"final"`, []string{
		`"status":"Final"`, `"status":"FINAL"`, `"status":"entered_in_error"`, `"status":"ENTERED-IN-ERROR"`, `"status":"entered-in-error"`,
		`"status":"invalid-uninitialized"`, `"status":"INVALID_UNINITIALIZED"`, `"status":"final "`, `"status":""`,
	}},
	{spo2, `"unit":"%"`, []string{
		`"unit":"%","comparator":"<"`, `"unit":"%","comparator":"less_than"`, `"unit":"%","comparator":"LESS-THAN"`, `"unit":"%","comparator":"=<"`,
		`"unit":"%","comparator":"greater_than_or_equal_to"`, `"unit":"%","comparator":""`,
	}},
	{spo2, `"system":"urn:wardgate:w:observation"`, []string{
		`"use":"official","system":"urn:wardgate:w:observation"`, `"use":"OFFICIAL","system":"urn:wardgate:w:observation"`,
		`"use":"","system":"urn:wardgate:w:observation"`, `"use":"main","system":"urn:wardgate:w:observation"`,
	}},
	{spo2, `"status":"final"`, []string{
		`"id":"a","status":"final"`, `"id":"` + strings.Repeat("a", 64) + `","status":"final"`, `"id":"` + strings.Repeat("a", 65) + `","status":"final"`,
		`"id":"a_b","status":"final"`, `"id":"","status":"final"`, `"meta":{"versionId":"1","lastUpdated":"2026-11-25T10:15:02Z"},"status":"final"`,
		`"meta":{"lastUpdated":"2026-11-25"},"status":"final"`, `"implicitRules":"x","status":"final"`, `"language":"en","status":"final"`,
		`"Status":"final"`, `"STATUS":"final"`, `"_status":{},"status":"final"`, `"contained":[],"status":"final"`, `"resourceType":"Device","status":"final"`,
	}},
}

const (
	studyJSON = `{"resourceType":"ImagingStudy","identifier":[{"system":"urn:dicom:uid","value":"urn:oid:1.2.3"}],"status":"available",` +
		`"modality":[{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"CT"}],"subject":{"reference":"Patient/7"},` +
		`"started":"2026-11-25T10:15:02.5+01:00","endpoint":[{"reference":"Endpoint/e"}],"numberOfSeries":1,"numberOfInstances":1,` +
		`"description":"CT CHEST","series":[{"uid":"1.2.3.1","number":1,"modality":{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"CT"},` +
		`"numberOfInstances":1,"bodySite":{"display":"CHEST"},"instance":[{"uid":"1.2.3.1.1","sopClass":{"system":"urn:ietf:rfc:3986",` +
		`"code":"urn:oid:1.2.840.10008.5.1.4.1.1.2"},"number":1}]}]}`
	deviceJSON = `{"resourceType":"Device","identifier":[{"system":"urn:wardgate:w:device","value":"m"}],"status":"active","manufacturer":"masimo",` +
		`"serialNumber":"1","deviceName":[{"name":"radical-7","type":"model-name"}],"version":[{"value":"7.3"}],"note":[{"text":"monitor m"}]}`
	endpointJSON = `{"resourceType":"Endpoint","identifier":[{"system":"urn:wardgate:w:endpoint","value":"https://p/dicomweb"}],"status":"active",` +
		`"connectionType":{"system":"http://terminology.hl7.org/CodeSystem/endpoint-connection-type","code":"dicom-wado-rs"},"name":"PACS",` +
		`"payloadType":[{"text":"DICOM"}],"address":"https://p/dicomweb"}`
)

func init() {
	tricky = append(tricky, []struct {
		in, old string
		values  []string
	}{
		{studyJSON, `"numberOfSeries":1`, []string{`"numberOfSeries":0`, `"numberOfSeries":-1`, `"numberOfSeries":1.5`, `"numberOfSeries":1e2`,
			`"numberOfSeries":"1"`, `"numberOfSeries":2147483647`, `"numberOfSeries":2147483648`, `"numberOfSeries":4294967296`, `"numberOfSeries":-0`}},
		{studyJSON, `"number":1}`, []string{`"number":0}`, `"number":-1}`, `"number":1.0}`, `"number":99999999999}`}},
		{studyJSON, `"uid":"1.2.3.1"`, []string{`"uid":"1.2.3.1 "`, `"uid":"urn:oid:1.2.3"`, `"uid":"` + strings.Repeat("1", 65) + `"`, `"uid":"a_b"`, `"uid":""`}},
		{studyJSON, `"reference":"Patient/7"`, []string{`"reference":"Device/7"`, `"reference":"Group/7"`, `"reference":"Location/7"`,
			`"reference":"Practitioner/7"`, `"reference":"Patient?identifier=urn%3Aoid%3A1%7C7"`, `"reference":"Location?identifier=x"`}},
		{studyJSON, `"endpoint":[{"reference":"Endpoint/e"}]`, []string{`"endpoint":[{"reference":"Device/e"}]`, `"endpoint":{"reference":"Endpoint/e"}`,
			`"endpoint":[]`, `"endpoint":[{}]`, `"endpoint":[null]`, `"referrer":{"reference":"Practitioner/1"}`, `"referrer":{"reference":"Patient/1"}`,
			`"referrer":{"display":"Dr X"}`, `"referrer":[{"display":"Dr X"}]`}},
		{studyJSON, `"status":"available"`, []string{`"status":"registered"`, `"status":"Available"`, `"status":"final"`}},
		{deviceJSON, `"type":"model-name"`, []string{`"type":"Model-Name"`, `"type":"model_name"`, `"type":"model"`, `"type":"other"`}},
		{deviceJSON, `"text":"monitor m"`, []string{`"text":"a"`, `"text":"# m

* x"`, `"text":" "`}},
		{deviceJSON, `"status":"active"`, []string{`"status":"inactive"`, `"status":"off"`, `"status":"Active"`}},
		{endpointJSON, `"address":"https://p/dicomweb"`, []string{`"address":"https://p/dicom web"`, `"address":"%zz"`, `"address":"p"`, `"address":""`}},
		{endpointJSON, `"status":"active"`, []string{`"status":"test"`, `"status":"off"`, `"status":"on"`, `"status":"entered-in-error"`}},
		{median, `"end":"2026-11-25T10:16:00Z"`, []string{`"end":"2026-11-25T10:15:00Z"`, `"end":"2026-11-25T10:14:59.999Z"`,
			`"end":"2026-11-25T10:15:00.000Z"`, `"end":"2026-11-25T09:15:00-01:00"`, `"end":"2026-11-25T11:14:59+01:00"`, `"end":"2026-11-25"`,
			`"end":"2026-11-24"`, `"end":"2026-11-23"`, `"end":"2026-11"`, `"end":"2026-10"`, `"end":"2026"`, `"end":"2025"`, `"end":"0000"`,
			`"end":""`, `"end":null`, `"end":"2026-11-25T10:16:00"`, `"end":"2026-11-25T10:16:00Z","end":"2026-11-25T10:17:00Z"`,
			`"end":"2026-11-25T10:16:00Z","_end":{"id":"e"}`, `"End":"2026-11-25T10:16:00Z"`}},
		{median, `"effectivePeriod":`, []string{`"effectiveDateTime":"2026-11-25T10:15:00Z","effectivePeriod":`, `"effectiveInstant":"2026-11-25T10:15:00Z","effectivePeriod":`,
			`"_effectiveDateTime":{"id":"e"},"effectivePeriod":`, `"EffectivePeriod":`, `"effectivePeriod":{},"x":`, `"valueSampledData":{"origin":{},"period":1,"dimensions":1},"effectivePeriod":`}},
		{wave, `"data":"194 195 E 196"`, []string{`"data":"1"`, `"data":"E"`, `"data":"U L E"`, `"data":"1  2"`, `"data":" 1"`, `"data":"1 "`,
			`"data":"+"`, `"data":"e5"`, `"data":".5"`, `"data":"-.5e-3"`, `"data":"0x10"`, `"data":"NaN"`, `"data":"1
2"`, `"data":""`, `"data":""`, `"data":1`}},
		{wave, `"dimensions":1`, []string{`"dimensions":0`, `"dimensions":+1`, `"dimensions":"1"`, `"dimensions":1.0`, `"dimensions":2147483648`, `"dimensions":null`}},
		{wave, `"period":250`, []string{`"period":0`, `"period":-1`, `"period":1e-3`, `"period":"250"`, `"period":{"value":250}`, `"period":null`}},
		{wave, `"origin":{"value":0,`, []string{`"origin":{"comparator":"<","value":0,`, `"origin":{"value":"0",`, `"origin":[{"value":0,`, `"origin":{"Comparator":">","value":0,`}},
		{endpointJSON, `"payloadType":[{"text":"DICOM"}]`, []string{`"payloadType":[]`, `"payloadType":{"text":"DICOM"}`, `"payloadMimeType":["application/dicom"]`}},
	}...)
}

// Both validators agree on each tricky value (by Disagreement's rules).
func TestTrickyValuesAgree(t *testing.T) {
	for _, tc := range tricky {
		if !strings.Contains(tc.in, tc.old) {
			t.Fatalf("%s is not in the resource", tc.old)
		}
		for _, v := range tc.values {
			b := []byte(strings.Replace(tc.in, tc.old, v, 1))
			if err := Disagreement(Validate(b), r4google.Validate(b)); err != nil {
				t.Errorf("%s → %.80s: %v", tc.old, v, err)
			}
		}
	}
}
