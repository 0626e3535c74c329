package test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wardgate/wardgate/buffer"
	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/edge/fhir"
	"github.com/wardgate/wardgate/edge/fhir/fhirserver"
)

// fillOutbox puts n mapped SpO2 readings into the outbox of dataDir, as the
// gateway's sources would.
func fillOutbox(t *testing.T, dataDir string, n int) {
	t.Helper()
	os.MkdirAll(dataDir, 0o700)
	ob, err := buffer.OpenOutbox(filepath.Join(dataDir, "outbox.db"), buffer.OutboxOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	m := &fhir.Mapper{Site: "ward-4b"}
	start := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		frame := []fhir.PatientReading{{Reading: devices.Reading{
			Device: "bed-12-monitor", Location: "bed-12", Profile: "masimo/radical-7",
			Code: devices.MDC{Code: 150456, RefID: "MDC_PULS_OXIM_SAT_O2"}, Value: 97, Unit: "%",
			DeviceTime: start.Add(time.Duration(i) * time.Second), Received: start.Add(time.Duration(i) * time.Second),
		}, Patient: "Patient/123"}}
		entries, rejected := m.MapReadings(frame)
		if len(rejected) > 0 {
			t.Fatal(rejected)
		}
		m.ConfirmDevices(entries)
		for _, e := range entries {
			b, _ := json.Marshal(e)
			if _, err := ob.Append(context.Background(), buffer.Item{Key: "bed-12-monitor", Kind: "fhir", Payload: b}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// The gateway is killed after the record has written a Bundle but before
// the answer reached it; after the restart it sends the Bundle again, and
// the record still holds each Observation once.
func TestSIGKILLBetweenPostAndAckMakesNoDuplicate(t *testing.T) {
	record := fhirserver.New()
	hs := httptest.NewServer(record)
	defer hs.Close()
	// Writes Observations, then never answers (the Device goes through).
	record.SetFaults(fhirserver.Faults{Hang: time.Hour, HangOnly: "Observation"})

	cfg, dataDir := gatewayConfig(t, "")
	b, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, []byte(strings.Replace(string(b), "http://127.0.0.1:9/R4", hs.URL, 1)), 0o600)
	const n = 120
	fillOutbox(t, dataDir, n)

	gw := Start(t, "run", "-config", cfg)
	gw.WaitLog(t, statusRe, 30*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for record.Count("Observation") == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("nothing reached the record:\n%s", gw.Log())
		}
		time.Sleep(5 * time.Millisecond)
	}
	gw.Cmd.Process.Signal(syscall.SIGKILL)
	gw.Wait(t, 30*time.Second)
	written := record.Count("Observation")

	record.SetFaults(fhirserver.Faults{})
	again := Start(t, "run", "-config", cfg)
	addr := again.WaitLog(t, statusRe, 30*time.Second)
	again.WaitLog(t, `deliveries cut short by the last stop will be made again`, 30*time.Second)
	deadline = time.Now().Add(60 * time.Second)
	for {
		_, ready := getJSON(t, "http://"+addr+"/readyz")
		if ob := ready["outbox"].(map[string]any); ob["waiting"].(float64) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox not drained: %v\n%s", ready, again.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	seen := map[string]int{}
	for _, raw := range record.Resources("Observation") {
		var o fhir.Observation
		json.Unmarshal(raw, &o)
		seen[o.Identifier[0].Value]++
	}
	if len(seen) != n || record.Count("Observation") != n || record.Count("Device") != 1 {
		t.Fatalf("the record holds %d Observations (%d distinct) and %d Devices; want %d and 1",
			record.Count("Observation"), len(seen), record.Count("Device"), n)
	}
	t.Logf("%d Observations were written before the kill; all %d are in the record once", written, n)
	again.Cmd.Process.Signal(syscall.SIGTERM)
	if code := again.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
