package edge

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/wardgate/wardgate/dicom/dataset"
	"github.com/wardgate/wardgate/dicom/gateway"

	"github.com/wardgate/wardgate/edge/fhir/fhirserver"
)

func ctHeader(sop string, n int, patientID string) dataset.InstanceHeader {
	return dataset.InstanceHeader{SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", SOPInstanceUID: sop,
		StudyInstanceUID: "1.2.3.9", SeriesInstanceUID: "1.2.3.9.1", PatientID: patientID, Modality: "CT",
		StudyDate: "20261125", StudyTime: "101500", SeriesNumber: 1, InstanceNumber: n}
}

func createPatient(t *testing.T, base, mrn string) string {
	t.Helper()
	resp, err := http.Post(base+"/Patient", "application/fhir+json", strings.NewReader(
		`{"resourceType":"Patient","identifier":[{"system":"urn:oid:1.2.3.4","value":"`+mrn+`"}]}`))
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("create Patient: %v %v", resp, err)
	}
	return strings.Split(resp.Header.Get("Location"), "/_history")[0]
}

func imagingStudy(t *testing.T, record *fhirserver.Server) map[string]any {
	t.Helper()
	studies := record.Resources("ImagingStudy")
	if len(studies) != 1 {
		t.Fatalf("%d ImagingStudies in the record", len(studies))
	}
	var s map[string]any
	json.Unmarshal(studies[0], &s)
	return s
}

// Finding 4: a study whose instances name two patients is not charted
// under the first one's: it is a dead letter with the reason, and a
// corrected re-send that makes it agree charts it and clears the dead
// letter.
func TestAStudyWhoseInstancesNameTwoPatientsIsNotCharted(t *testing.T) {
	g, record, base := running(t)
	createPatient(t, base, "MRN-1")
	ctx := context.Background()
	mixed := []dataset.InstanceHeader{ctHeader("1.2.3.9.1.1", 1, "MRN-1"), ctHeader("1.2.3.9.1.2", 2, "MRN-2")}
	err := g.IngestStudy(ctx, mixed)
	if !errors.Is(err, gateway.ErrStudyRefused) {
		t.Fatalf("a study naming two patients: %v", err)
	}
	dls, _ := g.outbox.DeadLetters(0)
	if len(dls) != 1 || dls[0].Kind != KindStudy || !strings.Contains(dls[0].Reason, "2 different patients") ||
		!strings.Contains(string(dls[0].Payload), "MRN-2") {
		t.Fatalf("dead letters: %+v", dls)
	}
	// The same Patient ID under another issuer is another patient too.
	issuers := []dataset.InstanceHeader{ctHeader("1.2.3.9.1.1", 1, "MRN-1"), ctHeader("1.2.3.9.1.2", 2, "MRN-1")}
	issuers[1].IssuerOfPatientID = "OTHER-HOSPITAL"
	if err := g.IngestStudy(ctx, issuers); !errors.Is(err, gateway.ErrStudyRefused) {
		t.Fatalf("two issuers: %v", err)
	}
	if g.outbox.Stats().Dead != 1 {
		t.Fatalf("%d dead letters: one per study, the newest reason", g.outbox.Stats().Dead)
	}
	// The modality sends the second instance again, corrected.
	fixed := []dataset.InstanceHeader{ctHeader("1.2.3.9.1.1", 1, "MRN-1"), ctHeader("1.2.3.9.1.2", 2, "MRN-1")}
	if err := g.IngestStudy(ctx, fixed); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ImagingStudy", func() bool { return record.Count("ImagingStudy") == 1 })
	if n := imagingStudy(t, record)["numberOfInstances"]; n != 2.0 {
		t.Fatalf("%v instances", n)
	}
	if g.outbox.Stats().Dead != 0 {
		t.Fatal("the refused study's dead letter stayed after it was charted")
	}
}

// An Issuer of Patient ID other than dicom.issuer_of_patient_id means the
// Patient ID is not a record number here: no patient.
func TestAForeignIssuerIsNoPatient(t *testing.T) {
	record := fhirserver.New()
	g, base := runGateway(t, record, `dicom: {ae_title: WARDGATE, allow_any: true, listen: "127.0.0.1:0", study_stable_after: 1s, issuer_of_patient_id: HOSP}
`)
	createPatient(t, base, "MRN-1")
	ctx := context.Background()
	h := ctHeader("1.2.3.9.1.1", 1, "MRN-1")
	h.IssuerOfPatientID = "OTHER"
	if err := g.IngestStudy(ctx, []dataset.InstanceHeader{h}); !errors.Is(err, gateway.ErrStudyRefused) {
		t.Fatalf("a foreign issuer: %v", err)
	}
	h.IssuerOfPatientID = "HOSP"
	if err := g.IngestStudy(ctx, []dataset.InstanceHeader{h}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ImagingStudy", func() bool { return record.Count("ImagingStudy") == 1 })
}

// Finding 7: the gateway forgot what it charted (ledger.db lost, or the
// study forgotten after 30 days) and one late instance arrives. The
// ImagingStudy it writes keeps every instance the record listed.
func TestAStudyIsNeverWrittenFromASubset(t *testing.T) {
	g, record, base := running(t)
	createPatient(t, base, "MRN-1")
	ctx := context.Background()
	var all []dataset.InstanceHeader
	for i := 1; i <= 3; i++ {
		all = append(all, ctHeader("1.2.3.9.1."+string(rune('0'+i)), i, "MRN-1"))
	}
	if err := g.IngestStudy(ctx, all); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ImagingStudy", func() bool { return record.Count("ImagingStudy") == 1 })
	waitFor(t, "delivered", func() bool { return g.outbox.Stats().Waiting == 0 })
	late := ctHeader("1.2.3.9.1.4", 4, "MRN-1")
	if err := g.IngestStudy(ctx, []dataset.InstanceHeader{late}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "four instances", func() bool { return imagingStudy(t, record)["numberOfInstances"] == 4.0 })

	// A late instance for another patient than the record's: not charted.
	other := ctHeader("1.2.3.9.1.5", 5, "MRN-2")
	createPatient(t, base, "MRN-2")
	if err := g.IngestStudy(ctx, []dataset.InstanceHeader{other}); !errors.Is(err, gateway.ErrStudyRefused) {
		t.Fatalf("a late instance naming another patient: %v", err)
	}
	if s := imagingStudy(t, record); s["numberOfInstances"] != 4.0 {
		t.Fatalf("the ImagingStudy changed: %v", s["numberOfInstances"])
	}
}

// Finding 9: a server that stores conditional references as sent (Medplum)
// leaves the ImagingStudy pointing at nothing. With
// fhir.patient_reference: resolve the gateway writes the literal reference;
// a Patient ID the record does not know makes the study wait, not guess.
func TestPatientReferenceResolve(t *testing.T) {
	record := fhirserver.New()
	record.SetFaults(fhirserver.Faults{KeepConditionalReferences: true})
	dicomSection := `dicom: {ae_title: WARDGATE, allow_any: true, listen: "127.0.0.1:0", study_stable_after: 1s}
`
	g, base := runGateway(t, record, dicomSection)
	ref := createPatient(t, base, "MRN-1")
	ctx := context.Background()
	if err := g.IngestStudy(ctx, []dataset.InstanceHeader{ctHeader("1.2.3.9.1.1", 1, "MRN-1")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ImagingStudy", func() bool { return record.Count("ImagingStudy") == 1 })
	subject := imagingStudy(t, record)["subject"].(map[string]any)["reference"].(string)
	if !strings.HasPrefix(subject, "Patient?") {
		t.Fatalf("this server was to keep the conditional reference; it holds %s", subject)
	}

	record2 := fhirserver.New()
	record2.SetFaults(fhirserver.Faults{KeepConditionalReferences: true})
	g2, base2 := runGatewayFHIR(t, record2, "  patient_reference: resolve\n", dicomSection)
	ref = createPatient(t, base2, "MRN-1")
	if err := g2.IngestStudy(ctx, []dataset.InstanceHeader{ctHeader("1.2.3.9.1.1", 1, "MRN-1")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ImagingStudy", func() bool { return record2.Count("ImagingStudy") == 1 })
	if subject := imagingStudy(t, record2)["subject"].(map[string]any)["reference"]; subject != ref {
		t.Fatalf("subject %v, want %s", subject, ref)
	}
	// Nobody with this MRN: the study waits (the assembler retries), no
	// dead letter yet, nothing charted.
	unknown := ctHeader("1.2.3.8.1.1", 1, "MRN-404")
	unknown.StudyInstanceUID = "1.2.3.8"
	err := g2.IngestStudy(ctx, []dataset.InstanceHeader{unknown})
	if err == nil || errors.Is(err, gateway.ErrStudyRefused) || g2.outbox.Stats().Dead != 0 {
		t.Fatalf("an unknown patient: %v, %d dead letters", err, g2.outbox.Stats().Dead)
	}
}
