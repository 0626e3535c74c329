package edge

import (
	"context"
	"encoding/json"
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

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/wardgate/wardgate/buffer"
	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/edge/build"
	"github.com/wardgate/wardgate/edge/config"
	"github.com/wardgate/wardgate/edge/fhir/fhirserver"
)

// operatorGateway runs a gateway on dir (kept across runs) with config
// body (without site, data_dir, http and fhir) against record; token, when
// not empty, is the admin token. stop ends it and waits.
func operatorGateway(t *testing.T, dir string, record *fhirserver.Server, token, body string) (g *Gateway, base string, stop func()) {
	t.Helper()
	return operatorGatewayOn(t, dir, record, `listen: "127.0.0.1:0"`, token, body)
}

// operatorGatewayOn is operatorGateway with httpKeys (listen and more, in
// YAML flow style) in the http section.
func operatorGatewayOn(t *testing.T, dir string, record *fhirserver.Server, httpKeys, token, body string) (g *Gateway, base string, stop func()) {
	t.Helper()
	hs := httptest.NewServer(record)
	t.Cleanup(hs.Close)
	tokenLine := ""
	if token != "" {
		os.WriteFile(filepath.Join(dir, "admin-token"), []byte(token+"\n"), 0o600)
		tokenLine = ", admin_token_file: admin-token"
	}
	path := filepath.Join(dir, "wardgate.yaml")
	os.WriteFile(path, []byte(`site: ward-4b
data_dir: data
charting: {chart: {continuous: each}}
http: {`+httpKeys+tokenLine+`}
fhir: {base_url: `+hs.URL+`, patient_identifier_system: urn:oid:1.2.3.4}
`+body), 0o600)
	cfg, _, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	g = New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), "test-1.2")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(stop)
	waitFor(t, "ready", g.isReady)
	return g, "http://" + g.httpLn.Addr().String(), stop
}

func get(t *testing.T, url string, header ...string) (int, string) {
	t.Helper()
	return do(t, "GET", url, "", header...)
}

func do(t *testing.T, method, url, body string, header ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func spo2(device, bed string, at time.Time, v float64) devices.Reading {
	return devices.Reading{Device: device, Location: bed, Profile: "masimo/radical-7",
		Code: devices.MDC{Code: 150456, RefID: "MDC_PULS_OXIM_SAT_O2"}, Value: v, Unit: "%", DeviceTime: at, Received: at}
}

func TestStatusPageShowsMonitorsAndStudiesWithoutPatientData(t *testing.T) {
	g, record, _ := running(t)
	base := "http://" + g.httpLn.Addr().String()
	at := time.Now().Add(-time.Second).UTC().Truncate(time.Second)
	r := spo2("bed-12-monitor", "bed-12", at, 97)
	hr := r
	hr.Code, hr.Value, hr.Unit = devices.MDC{Code: 149530, RefID: "MDC_PULS_OXIM_PULS_RATE"}, 72, "/min"
	// As a source does: the frame to the monitor's status, then to the sink.
	g.monitorList()[0].Frame([]devices.Reading{r, hr}, 0, 0)
	if err := g.Ingest(context.Background(), []devices.Reading{r, hr}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two Observations", func() bool { return record.Count("Observation") == 2 })

	code, page := get(t, base+"/")
	if code != 200 {
		t.Fatalf("GET /: %d\n%s", code, page)
	}
	for _, want := range []string{
		// The state is the source's: its port (/dev/null) fails to open and
		// is retried while the test hands the monitor a frame, so it may be
		// connected or disconnected here.
		`<tr class="monitor" id="monitor-bed-12-monitor" data-monitor="bed-12-monitor" data-state="`,
		`data-bed="bed-12" data-associated="true">`,
		`class="value" data-code="MDC_PULS_OXIM_SAT_O2" data-value="97" data-unit="%">97 %</span>`,
		`data-code="MDC_PULS_OXIM_PULS_RATE" data-value="72" data-unit="/min">72 /min</span>`,
		`<svg class="trend" data-code="MDC_PULS_OXIM_SAT_O2"`,
		`<section id="dicom" data-configured="true" data-ae-title="WARDGATE">`,
		`<span id="version">test</span>`,
		`<meta http-equiv="refresh" content="5">`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if strings.Contains(page, "Patient/") || strings.Contains(page, "123<") {
		t.Errorf("the page shows a patient reference:\n%s", page)
	}

	// A study: received, handed over, delivered: in the chart, shown by
	// the end of its UID only, without the patient's ID.
	node := g.dicomNode()
	uid := "1.2.826.0.1.3680043.9999.20261125.42"
	h := dataset.InstanceHeader{SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", SOPInstanceUID: uid + ".1.1",
		StudyInstanceUID: uid, SeriesInstanceUID: uid + ".1", PatientID: "MRN-7", AccessionNumber: "ACC-991",
		Modality: "CT", StudyDate: "20261125", StudyTime: "101500", SeriesNumber: 1, InstanceNumber: 1}
	recordPatient(t, record, "MRN-7")
	node.Receiver.Stored(h, buffer.Instance{Key: h.SOPInstanceUID, Group: uid, SHA256: "x"})
	// As the assembler does once the study is stable.
	if err := node.Assembler.Sink.IngestStudy(context.Background(), []dataset.InstanceHeader{h}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ImagingStudy", func() bool { return record.Count("ImagingStudy") == 1 })
	waitFor(t, "the study charted on the page", func() bool {
		_, page = get(t, base+"/")
		return strings.Contains(page, `<tr class="study" data-study="61125.42" data-instances="1" data-charted="true" data-forwarded="none">`)
	})
	for _, secret := range []string{"MRN-7", "ACC-991", uid} {
		if strings.Contains(page, secret) {
			t.Errorf("the page shows %q", secret)
		}
	}

	var st struct {
		Site     string `json:"site"`
		Monitors []struct {
			ID, State  string
			Associated bool
			Values     []struct {
				Code  string
				Value float64
			}
			Trends []struct{ Code string }
		}
		DICOM struct {
			RecentStudies []struct {
				Handle  string
				Charted bool
			} `json:"recent_studies"`
		}
		Outbox struct {
			Waiting            int
			DeliveredPerMinute int `json:"delivered_last_minute"`
		}
	}
	code, body := get(t, base+"/api/status")
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil {
		t.Fatalf("/api/status: %d %v\n%s", code, err, body)
	}
	if st.Site != "ward-4b" || len(st.Monitors) != 1 || st.Monitors[0].State == "" || !st.Monitors[0].Associated ||
		len(st.Monitors[0].Values) != 2 || len(st.Monitors[0].Trends) != 2 || len(st.DICOM.RecentStudies) != 1 ||
		!st.DICOM.RecentStudies[0].Charted || st.Outbox.DeliveredPerMinute < 3 {
		t.Fatalf("/api/status: %+v\n%s", st, body)
	}
	if strings.Contains(body, "Patient/") || strings.Contains(body, "MRN-7") {
		t.Errorf("/api/status shows patient data: %s", body)
	}
	for _, p := range []string{"/api/monitors", "/api/dicom", "/api/outbox", "/api/dead-letters", "/readyz", "/healthz"} {
		if code, body := get(t, base+p); code != 200 || !json.Valid([]byte(body)) {
			t.Errorf("%s: %d %s", p, code, body)
		}
	}
}

func recordPatient(t *testing.T, record *fhirserver.Server, mrn string) {
	t.Helper()
	record.Put("Patient", "p-"+mrn, json.RawMessage(`{"resourceType":"Patient","id":"p-`+mrn+`","identifier":[{"system":"urn:oid:1.2.3.4","value":"`+mrn+`"}]}`))
}

func TestStatusPageRendersWithNoMonitorsAndNoDICOM(t *testing.T) {
	_, base, _ := operatorGateway(t, t.TempDir(), fhirserver.New(), "", "")
	code, page := get(t, base+"/")
	if code != 200 || !strings.Contains(page, `id="no-monitors"`) || !strings.Contains(page, `<section id="dicom" data-configured="false">`) {
		t.Fatalf("GET /: %d\n%s", code, page)
	}
	if code, body := get(t, base+"/api/dicom"); code != 404 || !strings.Contains(body, "no dicom section") {
		t.Fatalf("/api/dicom without dicom: %d %s", code, body)
	}
	if code, _ := get(t, base+"/nothing-here"); code != 404 {
		t.Fatalf("an unknown page: %d", code)
	}
}

func scrape(t *testing.T, base string) map[string]float64 {
	t.Helper()
	code, body := get(t, base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, body)
	}
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.Metric {
			key := name
			for _, l := range m.Label {
				key += "|" + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case m.Counter != nil:
				out[key] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[key] = m.Gauge.GetValue()
			case m.Histogram != nil:
				out[key+"|count"] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return out
}

func TestMetricsParseAndMoveWithTraffic(t *testing.T) {
	g, record, _ := running(t)
	base := "http://" + g.httpLn.Addr().String()
	before := scrape(t, base)
	for _, name := range []string{"wardgate_readings_total", "wardgate_observations_delivered_total", "wardgate_outbox_waiting",
		"wardgate_outbox_dead_letters", "wardgate_held_frames", "wardgate_dicom_associations_active", "wardgate_dicom_associations_total",
		"wardgate_dicom_instances_received_total", "wardgate_dicom_bytes_received_total", "wardgate_errors_total|kind=bad_frames",
		"wardgate_monitor_state|monitor=bed-12-monitor|state=connecting", "wardgate_monitor_frames_total|monitor=bed-12-monitor",
		"go_goroutines", "wardgate_delivery_latency_seconds|count", "wardgate_build_info|commit=" + build.Commit() + "|goversion=" + build.GoVersion() + "|site=ward-4b|version=test"} {
		if _, ok := before[name]; !ok {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	at := time.Now().UTC()
	frame := []devices.Reading{spo2("bed-12-monitor", "bed-12", at, 96), spo2("bed-12-monitor", "bed-12", at.Add(time.Second), 95)}
	g.monitorList()[0].Frame(frame[:1], 0, 0)
	g.monitorList()[0].BadFrame()
	if err := g.Ingest(context.Background(), frame[:1], frame[1:]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two Observations", func() bool { return record.Count("Observation") == 2 })
	var after map[string]float64
	waitFor(t, "the deliveries counted", func() bool {
		after = scrape(t, base)
		return after["wardgate_observations_delivered_total"] >= before["wardgate_observations_delivered_total"]+3
	})
	for name, want := range map[string]float64{
		"wardgate_readings_total":                                       2,
		"wardgate_observations_delivered_total":                         3, // and the Device
		"wardgate_delivery_latency_seconds|count":                       3,
		"wardgate_monitor_frames_total|monitor=bed-12-monitor":          1,
		"wardgate_errors_total|kind=bad_frames":                         1,
		"wardgate_monitor_state|monitor=bed-12-monitor|state=connected": 1,
	} {
		if got := after[name] - before[name]; got != want {
			t.Errorf("%s moved by %v, want %v", name, got, want)
		}
	}
	if after["wardgate_monitor_state|monitor=bed-12-monitor|state=connecting"] != 0 {
		t.Errorf("a monitor in two states")
	}
}

const adminToken = "s3cret-admin-token-0123456789"

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

func TestAdminActionsNeedTheToken(t *testing.T) {
	actions := []struct{ method, path, body string }{
		{"POST", "/api/dead-letters/retry", `{"all":true}`},
		{"POST", "/api/dead-letters/drop", `{"all":true}`},
		{"GET", "/api/beds", ""},
		{"PUT", "/api/beds/bed-12", `{"patient":"Patient/9"}`},
		{"DELETE", "/api/beds/bed-12", ""},
		{"GET", "/api/dead-letters?payload=1", ""},
	}
	_, open, _ := operatorGateway(t, t.TempDir(), fhirserver.New(), "", "")
	for _, a := range actions {
		code, body := do(t, a.method, open+a.path, a.body, bearer(adminToken)...)
		if code != 403 || !strings.Contains(body, "admin actions are disabled: set http.admin_token_file") {
			t.Errorf("%s %s with no token configured: %d %s", a.method, a.path, code, body)
		}
	}
	gg, guarded, _ := operatorGateway(t, t.TempDir(), fhirserver.New(), adminToken, "")
	gg.auth.setBurst(1 << 30) // 24 failures here; the rate limit has its own test
	for _, a := range actions {
		for _, h := range [][]string{nil, bearer("wrong"), bearer(""), {"Authorization", adminToken}} {
			if code, body := do(t, a.method, guarded+a.path, a.body, h...); code != 401 {
				t.Errorf("%s %s with %q: %d %s", a.method, a.path, h, code, body)
			}
		}
	}
}

func TestDeadLettersAreRetriedAndDroppedWithTheToken(t *testing.T) {
	record := fhirserver.New()
	g, base, _ := operatorGateway(t, t.TempDir(), record, adminToken, "")
	ctx := context.Background()
	raw, err := g.outbox.AddDeadLetter(ctx, buffer.Item{Key: "bed-3-monitor", Kind: KindUndecodable,
		// Looks like a Bundle entry; must never be posted all the same.
		Payload: []byte(`{"resource":{"resourceType":"Basic","code":{"text":"x"}},"request":{"method":"POST","url":"Basic"}}`)}, "line 1: no SPO2 field")
	if err != nil {
		t.Fatal(err)
	}
	bad, err := g.outbox.AddDeadLetter(ctx, buffer.Item{Key: "bed-3-monitor/150456", Kind: "fhir", Payload: []byte(`{"not":"an entry"}`)}, "r4: invalid")
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Count       int
		DeadLetters []struct {
			ID        string
			Kind      string
			Retryable bool
			Payload   *string
		} `json:"dead_letters"`
	}
	_, body := get(t, base+"/api/dead-letters")
	json.Unmarshal([]byte(body), &list)
	if list.Count != 2 || len(list.DeadLetters) != 2 || list.DeadLetters[0].Payload != nil || strings.Contains(body, "SPO2 field\"") && strings.Contains(body, "Basic") {
		t.Fatalf("dead letters: %s", body)
	}
	if code, body := get(t, base+"/api/dead-letters?payload=1", bearer(adminToken)...); code != 200 || !strings.Contains(body, `"payload":`) {
		t.Fatalf("with payloads: %d %s", code, body)
	}
	code, body := do(t, "POST", base+"/api/dead-letters/retry", `{"ids":["`+itoa(raw)+`"]}`, bearer(adminToken)...)
	if code != 409 || !strings.Contains(body, "could not be decoded") {
		t.Fatalf("retrying an undecodable frame: %d %s", code, body)
	}
	if code, body := do(t, "POST", base+"/api/dead-letters/retry", `{"ids":[1]}`, bearer(adminToken)...); code != 404 {
		t.Fatalf("retrying an unknown id: %d %s", code, body)
	}
	if code, body := do(t, "POST", base+"/api/dead-letters/retry", `{}`, bearer(adminToken)...); code != 400 {
		t.Fatalf("retrying nothing: %d %s", code, body)
	}
	code, body = do(t, "POST", base+"/api/dead-letters/retry", `{"all":true}`, bearer(adminToken)...)
	if code != 200 || body != "{\"not_retryable\":1,\"retried\":1}\n" {
		t.Fatalf("retry all: %d %s", code, body)
	}
	// The retried one is not a Bundle entry: back among the dead letters.
	waitFor(t, "the retried entry back", func() bool { return g.outbox.Stats().Dead == 2 && g.outbox.Stats().Waiting == 0 })

	// The deliverer never posts a raw frame, whatever it looks like.
	if _, err := g.outbox.Append(ctx, buffer.Item{Key: "bed-3-monitor", Kind: KindUndecodable,
		Payload: []byte(`{"resource":{"resourceType":"Basic","code":{"text":"x"}},"request":{"method":"POST","url":"Basic"}}`)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the raw frame dead-lettered", func() bool { return g.outbox.Stats().Dead == 3 })
	if record.Count("Basic") != 0 {
		t.Fatal("a raw frame was posted to the record")
	}

	code, body = do(t, "POST", base+"/api/dead-letters/drop", `{"ids":[`+itoa(bad)+`]}`, bearer(adminToken)...)
	if code != 200 || body != "{\"dropped\":1,\"not_droppable\":0}\n" { // dead-lettered again under its id
		t.Fatalf("drop one: %d %s", code, body)
	}
	code, body = do(t, "POST", base+"/api/dead-letters/drop", `{"all":true}`, bearer(adminToken)...)
	if code != 200 || body != "{\"dropped\":2,\"not_droppable\":0}\n" || g.outbox.Stats().Dead != 0 {
		t.Fatalf("drop all: %d %s, %d left", code, body, g.outbox.Stats().Dead)
	}
}

func itoa(n uint64) string { b, _ := json.Marshal(n); return string(b) }

func TestManualBedAssociationChartsPersistsAndEnds(t *testing.T) {
	record := fhirserver.New()
	dir := t.TempDir()
	const monitors = `patients: {static: {bed-12: Patient/123}, hold_unassociated: 1h}
monitors:
  - {id: bed-14-monitor, location: bed-14, profile: masimo/radical-7, serial: {port: /dev/null}}
`
	g, base, stop := operatorGateway(t, dir, record, adminToken, monitors)
	ctx := context.Background()
	code, body := do(t, "PUT", base+"/api/beds/bed-14", `{"patient":"Patient/456","by":"nurse station"}`, bearer(adminToken)...)
	if code != 200 || !strings.Contains(body, `"patient":"Patient/456"`) || !strings.Contains(body, `nurse station`) {
		t.Fatalf("PUT: %d %s", code, body)
	}
	for _, bad := range []string{`{"patient":"456"}`, `{"patient":"Patient/4 56"}`, `{"patient":"Patient/1","extra":1}`, `not json`} {
		if code, body := do(t, "PUT", base+"/api/beds/bed-14", bad, bearer(adminToken)...); code != 400 {
			t.Errorf("PUT %s: %d %s", bad, code, body)
		}
	}
	during := time.Now().UTC()
	if err := g.Ingest(ctx, []devices.Reading{spo2("bed-14-monitor", "bed-14", during, 94)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "an Observation", func() bool { return record.Count("Observation") == 1 })
	if obs := string(record.Resources("Observation")[0]); !strings.Contains(obs, `"reference":"Patient/456"`) {
		t.Fatalf("Observation: %s", obs)
	}
	_, page := get(t, base+"/")
	if !strings.Contains(page, `data-bed="bed-14" data-associated="true"`) || strings.Contains(page, "Patient/") {
		t.Fatalf("the page, bed-14 associated:\n%s", page)
	}
	code, body = get(t, base+"/api/beds", bearer(adminToken)...)
	if code != 200 || !strings.Contains(body, `{"bed":"bed-12","patient":"Patient/123","source":"static"}`) ||
		!strings.Contains(body, `"bed":"bed-14","patient":"Patient/456","source":"manual"`) {
		t.Fatalf("GET /api/beds: %d %s", code, body)
	}

	// It survives a restart.
	stop()
	g, base, _ = operatorGateway(t, dir, record, adminToken, monitors)
	if p, ok := g.beds.patientAt("bed-14", time.Now()); !ok || p != "Patient/456" {
		t.Fatalf("after a restart: %q %v", p, ok)
	}
	code, body = do(t, "DELETE", base+"/api/beds/bed-14", "", bearer(adminToken)...)
	if code != 200 || !strings.Contains(body, `"end":`) {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	if code, body := do(t, "DELETE", base+"/api/beds/bed-14", "", bearer(adminToken)...); code != 404 {
		t.Fatalf("DELETE again: %d %s", code, body)
	}
	// A reading from before the end is still that patient's; one after
	// it waits for a patient.
	after := time.Now().UTC().Add(time.Second)
	if p, ok := g.beds.patientAt("bed-14", during); !ok || p != "Patient/456" {
		t.Fatalf("a reading from during the stay, looked at after its end: %q %v", p, ok)
	}
	if p, ok := g.beds.patientAt("bed-14", during.Add(-time.Hour)); ok {
		t.Fatalf("a reading from before the stay went to %s", p)
	}
	heldBefore := g.ingest.held.Load()
	if err := g.Ingest(ctx, []devices.Reading{spo2("bed-14-monitor", "bed-14", after, 92)}); err != nil {
		t.Fatal(err)
	}
	if g.ingest.held.Load() != heldBefore+1 {
		t.Fatalf("a reading after the end was not held")
	}
	_, page = get(t, base+"/")
	if !strings.Contains(page, `data-bed="bed-14" data-associated="false"`) {
		t.Fatalf("the page, bed-14 ended:\n%s", page)
	}
	b, err := os.ReadFile(filepath.Join(dir, "data", associationsFile))
	if err != nil || !strings.Contains(string(b), `"end"`) {
		t.Fatalf("%s: %v %s", associationsFile, err, b)
	}
}
