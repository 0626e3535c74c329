package edge

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/dicom/dataset"

	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/edge/config"
	"github.com/wardgate/wardgate/edge/fhir/fhirserver"
)

// running starts a gateway whose FHIR server is an in-memory record.
func running(t *testing.T) (*Gateway, *fhirserver.Server, string) {
	t.Helper()
	record := fhirserver.New()
	g, base := runGateway(t, record, `patients:
  static: {bed-12: Patient/123}
monitors:
  - {id: bed-12-monitor, location: bed-12, profile: masimo/radical-7, serial: {port: /dev/null}}
dicom: {ae_title: WARDGATE, allow_any: true, listen: "127.0.0.1:0", wado_rs_base: "https://pacs.example.org/dicomweb", study_stable_after: 1s}
`)
	return g, record, base
}

// runGateway runs a gateway recording to record, with extra appended to a
// minimal config, until the test ends; it returns once the gateway is
// ready, with the record's base URL.
func runGateway(t testing.TB, record *fhirserver.Server, extra string) (*Gateway, string) {
	t.Helper()
	return runGatewayFHIR(t, record, "", extra)
}

// runGatewayFHIR is runGateway with more keys for the fhir section (each
// line indented by two spaces).
func runGatewayFHIR(t testing.TB, record *fhirserver.Server, fhirExtra, extra string) (*Gateway, string) {
	t.Helper()
	hs := httptest.NewServer(record)
	t.Cleanup(hs.Close)
	path := filepath.Join(t.TempDir(), "wardgate.yaml")
	// Most tests count one Observation per reading: their continuous
	// parameters are charted each (charting_test.go charts intervals).
	chart := "charting: {chart: {continuous: each}}\n"
	if strings.Contains(extra, "charting:") {
		chart = ""
	}
	os.WriteFile(path, []byte(`site: ward-4b
data_dir: data
`+chart+`http: {listen: "127.0.0.1:0"}
fhir:
  base_url: `+hs.URL+`
  patient_identifier_system: urn:oid:1.2.3.4
`+fhirExtra+extra), 0o600)
	cfg, _, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	g := New(cfg, slog.New(slog.NewTextHandler(logOut(), nil)), "test")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	waitFor(t, "the gateway ready", g.isReady)
	return g, hs.URL
}

func (g *Gateway) isReady() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ready
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestReadingsReachTheRecordAndUnchartableOnesAreCounted(t *testing.T) {
	g, record, _ := running(t)
	at := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	r := devices.Reading{Device: "bed-12-monitor", Location: "bed-12", Profile: "masimo/radical-7",
		Code: devices.MDC{Code: 150456, RefID: "MDC_PULS_OXIM_SAT_O2"}, Value: 97, Unit: "%", DeviceTime: at, Received: at}
	hr := r
	hr.Code, hr.Value, hr.Unit = devices.MDC{Code: 149530, RefID: "MDC_PULS_OXIM_PULS_RATE"}, 72, "/min"
	unknownBed := r
	unknownBed.Location = "bed-99"
	if err := g.IngestReadings(context.Background(), []devices.Reading{r, hr, unknownBed}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two Observations", func() bool { return record.Count("Observation") == 2 })
	// The reading from a bed with no patient waits for one.
	if g.ingest.held.Load() != 1 || g.ingest.entries.Load() != 3 || g.held.Stats().Waiting != 1 {
		t.Fatalf("counters: held %d, entries %d, waiting %d", g.ingest.held.Load(), g.ingest.entries.Load(), g.held.Stats().Waiting)
	}
}

func TestAStudyIsChartedOnlyForAPatientTheRecordKnows(t *testing.T) {
	g, record, base := running(t)
	h := dataset.InstanceHeader{SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", SOPInstanceUID: "1.2.3.4.5.1",
		StudyInstanceUID: "1.2.3.4", SeriesInstanceUID: "1.2.3.4.5", PatientID: "MRN-7", Modality: "CT",
		StudyDate: "20261125", StudyTime: "101500", SeriesNumber: 1, InstanceNumber: 1}
	// Nobody in the record has this MRN: the study is not guessed onto anyone.
	if err := g.IngestStudy(context.Background(), []dataset.InstanceHeader{h}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a dead letter", func() bool { return g.outbox.Stats().Dead == 1 })
	dl, _ := g.outbox.DeadLetters(0)
	if !strings.Contains(dl[0].Reason, "matches no resource") {
		t.Fatalf("dead letter: %s", dl[0].Reason)
	}
	// Once the patient exists, a later instance charts the study.
	resp, err := http.Post(base+"/Patient", "application/fhir+json", strings.NewReader(
		`{"resourceType":"Patient","identifier":[{"system":"urn:oid:1.2.3.4","value":"MRN-7"}]}`))
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("create Patient: %v %v", resp, err)
	}
	h2 := h
	h2.SOPInstanceUID, h2.InstanceNumber = "1.2.3.4.5.2", 2
	if err := g.IngestStudy(context.Background(), []dataset.InstanceHeader{h, h2}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ImagingStudy", func() bool { return record.Count("ImagingStudy") == 1 })
	if record.Count("Endpoint") != 1 {
		t.Fatalf("%d Endpoints", record.Count("Endpoint"))
	}
	st := string(record.Resources("ImagingStudy")[0])
	if !strings.Contains(st, `"numberOfInstances":2`) || !strings.Contains(st, `"reference":"Patient/`) {
		t.Fatalf("ImagingStudy: %s", st)
	}
}

// logOut is where test gateways log: nowhere, or stderr with
// WARDGATE_TEST_LOG=1.
func logOut() io.Writer {
	if os.Getenv("WARDGATE_TEST_LOG") != "" {
		return os.Stderr
	}
	return io.Discard
}
