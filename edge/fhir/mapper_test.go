package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices/mdc"
	"github.com/wardgate/wardgate/dicom/dataset"

	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/edge/fhir/r4"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func testMapper() *Mapper {
	return &Mapper{
		Site:                    "ward-4b",
		PatientIdentifierSystem: "urn:oid:1.2.3.4",
		WADORSBase:              "https://pacs.example.org/dicomweb/",
		Local:                   time.FixedZone("CET", 3600),
	}
}

// charted gives readings their patient as the gateway's association model
// would: Patient/123.
func charted(rs ...devices.Reading) []PatientReading {
	out := make([]PatientReading, len(rs))
	for i, r := range rs {
		out[i] = PatientReading{Reading: r, Patient: "Patient/123"}
	}
	return out
}

var deviceTime = time.Date(2026, 11, 25, 3, 0, 5, 0, time.UTC)

func reading(code uint32, ref string, v float64, unit string) devices.Reading {
	return devices.Reading{
		Device: "bed-12-monitor", Location: "bed-12", Profile: "masimo/radical-7",
		Code: devices.MDC{Code: code, RefID: ref}, Value: v, Unit: unit,
		DeviceTime: deviceTime, ClockOffset: 2 * time.Second,
		Received:     deviceTime.Add(-1500 * time.Millisecond),
		SerialNumber: "0000056661", Firmware: "7.3.1.1",
	}
}

// golden compares v, as indented JSON, with testdata/name.json.
func golden(t *testing.T, name string, raw json.RawMessage) {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		t.Fatal(err)
	}
	buf.WriteByte('\n')
	path := filepath.Join("testdata", name+".json")
	if *update {
		os.WriteFile(path, buf.Bytes(), 0o644)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("%s differs from %s:\n%s", name, path, buf.String())
	}
}

func kinds(entries []Entry) []string {
	var out []string
	for _, e := range entries {
		var h struct{ ResourceType string }
		json.Unmarshal(e.Resource, &h)
		out = append(out, h.ResourceType+" "+e.Request.Method)
	}
	return out
}

func TestEachParameterMapsToItsProfile(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    devices.Reading
	}{
		{"spo2", reading(150456, "MDC_PULS_OXIM_SAT_O2", 98, "%")},
		{"pulse-rate", reading(149530, "MDC_PULS_OXIM_PULS_RATE", 97, "/min")},
		{"heart-rate-ecg", reading(147842, "MDC_ECG_HEART_RATE", 72, "/min")},
		{"resp-rate", reading(151562, "MDC_RESP_RATE", 16, "/min")},
		{"body-temp", reading(150364, "MDC_TEMP_BODY", 36.6, "Cel")},
		{"body-temp-f", reading(150364, "MDC_TEMP_BODY", 97.9, "[degF]")},
		{"etco2", reading(151708, "MDC_CONC_AWAY_CO2_ET", 38, "mm[Hg]")},
		{"perfusion-index", reading(150488, "MDC_BLD_PERF_INDEX", 3.6, "%")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := testMapper()
			entries, rejected := m.MapReadings(charted(tc.r))
			if len(rejected) != 0 || len(entries) != 2 {
				t.Fatalf("entries %v, rejected %v", kinds(entries), rejected)
			}
			golden(t, "observation-"+tc.name, entries[1].Resource)
			if e := entries[1]; e.Request.Method != "POST" || e.Request.URL != "Observation" ||
				!strings.HasPrefix(e.Request.IfNoneExist, "identifier=urn%3Awardgate%3Award-4b%3Aobservation%7Cbed-12-monitor%2F") {
				t.Fatalf("request: %+v", e.Request)
			}
		})
	}
}

func TestBloodPressureIsOnePanel(t *testing.T) {
	m := testMapper()
	entries, rejected := m.MapReadings(charted(
		reading(150021, "MDC_PRESS_BLD_NONINV_SYS", 120, "mm[Hg]"),
		reading(150022, "MDC_PRESS_BLD_NONINV_DIA", 80, "mm[Hg]"),
		reading(150023, "MDC_PRESS_BLD_NONINV_MEAN", 93, "mm[Hg]"),
		reading(150456, "MDC_PULS_OXIM_SAT_O2", 97, "%"),
		reading(150039, "MDC_PRESS_BLD_ART_ABP_MEAN", 90, "mm[Hg]"), // arterial mean alone
	))
	if len(rejected) != 0 {
		t.Fatal(rejected)
	}
	if got := strings.Join(kinds(entries), ", "); got != "Device PUT, Observation POST, Observation POST, Observation POST" {
		t.Fatalf("entries: %s", got)
	}
	golden(t, "observation-nibp-panel", entries[2].Resource)
	golden(t, "observation-art-mean-alone", entries[3].Resource)
}

func TestTheSameReadingAlwaysHasTheSameIdentifier(t *testing.T) {
	r := reading(150456, "MDC_PULS_OXIM_SAT_O2", 98, "%")
	a, _ := testMapper().MapReadings(charted(r))
	r.ClockOffset = 5 * time.Second // a new offset estimate after a restart
	r.Received = r.Received.Add(time.Minute)
	b, _ := testMapper().MapReadings(charted(r))
	if a[1].Request.IfNoneExist != b[1].Request.IfNoneExist {
		t.Fatalf("identifiers differ: %s vs %s", a[1].Request.IfNoneExist, b[1].Request.IfNoneExist)
	}
	var oa, ob Observation
	json.Unmarshal(a[1].Resource, &oa)
	json.Unmarshal(b[1].Resource, &ob)
	if oa.EffectiveDateTime != "2026-11-25T03:00:03Z" || ob.EffectiveDateTime != "2026-11-25T03:00:00Z" {
		t.Fatalf("effective times %s, %s: the offset is not applied", oa.EffectiveDateTime, ob.EffectiveDateTime)
	}
}

func TestDeviceIsWrittenOncePerRunAndOnChange(t *testing.T) {
	m := testMapper()
	r := reading(150456, "MDC_PULS_OXIM_SAT_O2", 98, "%")
	first, _ := m.MapReadings(charted(r, r))
	again, _ := m.MapReadings(charted(r)) // before the first is in the outbox
	m.ConfirmDevices(first)
	second, _ := m.MapReadings(charted(r))
	r.Firmware = "7.4"
	third, _ := m.MapReadings(charted(r))
	if len(first) != 3 || len(again) != 2 || len(second) != 1 || len(third) != 2 {
		t.Fatalf("entries: %v / %v / %v / %v", kinds(first), kinds(again), kinds(second), kinds(third))
	}
	golden(t, "device", first[0].Resource)
	m.ConfirmDevices(third)
	m.Forget("bed-12-monitor")
	if again, _ := m.MapReadings(charted(r)); len(again) != 2 {
		t.Fatalf("after Forget: %v", kinds(again))
	}
}

func TestReadingsThatCannotBeMappedAreRejectedWithAReason(t *testing.T) {
	noBed := reading(150456, "MDC_PULS_OXIM_SAT_O2", 98, "%")
	noBed.Location = "bed-99"
	_, rejected := testMapper().MapReadings(append([]PatientReading{{Reading: noBed}}, charted(
		reading(150456, "MDC_PULS_OXIM_SAT_O2", 0.98, "1"),
		reading(999999, "MDC_UNKNOWN", 1, "1"),
		reading(150021, "MDC_PRESS_BLD_NONINV_SYS", 16, "kPa"),
		reading(150022, "MDC_PRESS_BLD_NONINV_DIA", 10, "kPa"),
	)...))
	want := []string{"no patient is given", `unit "1"`, "no mapping for MDC code 999999", `unit "kPa"`, `unit "kPa"`}
	if len(rejected) != len(want) {
		t.Fatalf("rejected: %v", rejected)
	}
	for i, w := range want {
		if !strings.Contains(rejected[i].Reason.Error(), w) {
			t.Errorf("rejected[%d] = %v, want %q", i, rejected[i].Reason, w)
		}
	}
	if !errors.Is(rejected[0].Reason, ErrNoPatient) || strings.Contains(rejected[0].What, "123") {
		t.Errorf("no-patient rejection: %+v", rejected[0])
	}
}

func header(series, sop string, seriesNo, instNo int, modality string) dataset.InstanceHeader {
	return dataset.InstanceHeader{
		SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", SOPInstanceUID: sop,
		StudyInstanceUID: "1.2.826.0.1.3680043.2.1125.1", SeriesInstanceUID: series,
		PatientID: "MRN-0042", AccessionNumber: "ACC123",
		StudyDate: "20261125", StudyTime: "101502.5", StudyDescription: "CT CHEST",
		ModalitiesInStudy: nil, Modality: modality, SeriesNumber: seriesNo,
		SeriesDescription: "Axial " + modality, SeriesDate: "20261125", SeriesTime: "1016",
		BodyPartExamined: "CHEST", Laterality: "", InstanceNumber: instNo,
	}
}

func TestStudyMapsToOneImagingStudy(t *testing.T) {
	m := testMapper()
	hs := []dataset.InstanceHeader{
		header("1.2.3.2", "1.2.3.2.1", 2, 1, "SR"),
		header("1.2.3.1", "1.2.3.1.2", 1, 2, "CT"),
		header("1.2.3.1", "1.2.3.1.1", 1, 1, "CT"),
		header("1.2.3.1", "1.2.3.1.1", 1, 1, "CT"), // received twice
	}
	hs[1].TimezoneOffset, hs[2].TimezoneOffset = "+0100", "+0100"
	s, err := m.MapStudy(hs, ConditionalPatient(m.PatientIdentifierSystem, "MRN-0042"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := m.StudyEntry(s)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "imagingstudy", e.Resource)
	if e.Request.Method != "PUT" || e.Request.URL != "ImagingStudy?identifier=urn%3Adicom%3Auid%7Curn%3Aoid%3A1.2.826.0.1.3680043.2.1125.1" {
		t.Fatalf("request: %+v", e.Request)
	}
	ep, err := m.EndpointEntry()
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "endpoint", ep.Resource)
	if _, err := m.MapStudy(hs, ""); err == nil {
		t.Fatal("a study was mapped without a patient")
	}
}

func TestDICOMDateTimes(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	for _, tc := range []struct{ da, tm, tz, want string }{
		{"20261125", "101502.5", "", "2026-11-25T10:15:02.5+01:00"},
		{"20261125", "1015", "-0500", "2026-11-25T10:15:00-05:00"},
		{"20261125", "", "", "2026-11-25"},
		{"2026112", "10", "", ""},
	} {
		if got := dicomDateTime(tc.da, tc.tm, tc.tz, cet); got != tc.want {
			t.Errorf("%s %s %s: %q, want %q", tc.da, tc.tm, tc.tz, got, tc.want)
		}
	}
}

// The validator is what stops a broken resource from entering the outbox.
func TestTheValidatorRejectsBrokenResources(t *testing.T) {
	for _, tc := range []struct{ name, json, want string }{
		{"no status", `{"resourceType":"Observation","code":{"text":"x"}}`, "status"},
		{"bad status", `{"resourceType":"Observation","status":"done","code":{"text":"x"}}`, "Observation.status"},
		{"bad date", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"effectiveDateTime":"yesterday"}`, "Observation.effectiveDateTime"},
		{"unknown element", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"colour":"red"}`, "Observation.colour"},
		{"not json", `{"resourceType":`, "JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := r4.Validate([]byte(tc.json))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v, want an error about %q", err, tc.want)
			}
		})
	}
}

// The FHIR mapping's own table and the MDC table the profiles are checked
// against must agree on every code they share.
func TestParamsAgreeWithMDCTable(t *testing.T) {
	for code, p := range params {
		term, ok := mdc.ByCode(code)
		if !ok {
			t.Errorf("%d %s is mapped but not in devices/mdc", code, p.RefID)
			continue
		}
		if term.RefID != p.RefID || term.UCUM != p.UCUM {
			t.Errorf("%d: fhir says %s in %s, devices/mdc says %s in %s", code, p.RefID, p.UCUM, term.RefID, term.UCUM)
		}
		if term.LOINC != "" && term.LOINC != p.LOINC[len(p.LOINC)-1].Code && term.LOINC != p.LOINC[0].Code {
			t.Errorf("%d: LOINC %s in devices/mdc is not among fhir's %v", code, term.LOINC, p.LOINC)
		}
	}
	for _, f := range bpFamilies {
		for m := uint32(0); m <= 3; m++ {
			if _, ok := mdc.ByCode(f.Panel + m); !ok {
				t.Errorf("blood pressure code %d is not in devices/mdc", f.Panel+m)
			}
		}
	}
}

func TestParseConditionalPatientReadsWhatConditionalPatientWrote(t *testing.T) {
	for _, v := range [][2]string{{"urn:oid:1.2.3", "MRN1"}, {"https://h.example/mrn", `a|b,c$d\e f&g`}, {"urn:oid:1", ""}} {
		s, val, ok := ParseConditionalPatient(ConditionalPatient(v[0], v[1]))
		if !ok || s != v[0] || val != v[1] {
			t.Errorf("%q %q: got %q %q %v", v[0], v[1], s, val, ok)
		}
	}
	if _, _, ok := ParseConditionalPatient("Patient/123"); ok {
		t.Error("a literal reference read as conditional")
	}
}
