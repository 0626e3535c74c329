package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Readings from devices that send no time of their own (generic/flat-json
// without "ts"): their receipt is their time, as long as they did not wait
// somewhere first.

// Finding 6: the same untimed payload twice, seconds apart, is two
// measurements, so two Observations. (The build before this named an
// untimed message by its content and charted the second one never.)
func TestMQTTIdenticalUntimedPayloadsAreTwoMeasurements(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	broker := startMosquitto(t, dir, port)
	record, cfg, _ := recordWith(t, flatBridge(port, "wg-test-same"))
	gw := Start(t, "run", "-config", cfg)
	gw.WaitLog(t, `subscribed; waiting for messages`, 30*time.Second)
	time.Sleep(4 * time.Second) // past the seconds after a connect, when what waited at the broker arrives
	same := `{"device":"bridge/bed-1","vitals":{"hr":72}}`
	broker.publish("ward4b/bed-1/flat", []string{same})
	time.Sleep(2 * time.Second)
	broker.publish("ward4b/bed-1/flat", []string{same})
	Eventually(t, 20*time.Second, func() bool { return record.Count("Observation") == 2 },
		func() string {
			return fmt.Sprintf("%d Observations for two measurements of 72/min\n%s", record.Count("Observation"), gw.Log())
		})
	obs := chartedObservations(record)
	if obs[0].ID == obs[1].ID || obs[0].Effective.Equal(obs[1].Effective) {
		t.Fatalf("two measurements share %s / %v", obs[0].ID, obs[0].Effective)
	}
}

// Untimed messages are named by when they were first received: a SIGKILL
// while they flow makes the broker deliver again what was stored but not
// acknowledged (DUP), and the record of first receipts (seen.db) gives each
// its first receipt back. Fifty devices publish at their pace (once a
// second, as their profile says); the gateway is killed in the middle. Every message is accounted for, once: charted, or (those
// that waited at the broker while the gateway was down) waiting with an
// unknown time. None is charted twice.
func TestMQTTSIGKILLWithUntimedMessagesChartsEachOnce(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	broker := startMosquitto(t, dir, port)
	// The bridge's devices send once a second: its profile says so.
	profiles := filepath.Join(dir, "profiles")
	os.MkdirAll(filepath.Join(profiles, "bridge"), 0o755)
	os.WriteFile(filepath.Join(profiles, "bridge", "flat-1s.yaml"), []byte(`vendor: Bridge
model: Flat-1s
transport: {interval: 1s}
format: json
json: {device_id: $.device}
parameters:
  - {path: $.vitals.hr, mdc: MDC_ECG_HEART_RATE, unit: /min, range: [15, 350]}
`), 0o644)
	record, cfg, _ := recordWith(t, fmt.Sprintf(`profiles_dir: %s
monitors:
  - id: ward-bridge
    profile: bridge/flat-1s
    mqtt: {broker: "tcp://127.0.0.1:%d", topic: ward4b/+/flat, location_level: 1, client_id: wg-test-untimed}
patients:
  static: {bed-1: Patient/one}
`, profiles, port))
	gw := Start(t, "run", "-config", cfg)
	gw.WaitLog(t, `subscribed; waiting for messages`, 30*time.Second)
	time.Sleep(4 * time.Second)

	const devices, rounds = 50, 12
	value := func(d, r int) float64 { return 60 + float64(d*rounds+r)/100 }
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		for r := range rounds {
			var msgs []string
			for d := range devices {
				msgs = append(msgs, fmt.Sprintf(`{"device":"bridge/d%d","vitals":{"hr":%v}}`, d, value(d, r)))
			}
			broker.publish("ward4b/bed-1/flat", msgs)
			time.Sleep(time.Second)
		}
	}()
	Eventually(t, 60*time.Second, func() bool { return record.Count("Observation") > 3*devices },
		func() string { return "no traffic\n" + gw.Log() })
	gw.Cmd.Process.Signal(syscall.SIGKILL)
	gw.Wait(t, 30*time.Second)
	before := record.Count("Observation")
	gw = Start(t, "run", "-config", cfg)
	addr := gw.WaitLog(t, statusRe, 30*time.Second)
	<-pubDone

	total := devices * rounds
	waiting := func() int {
		_, ready := getJSON(t, "http://"+addr+"/readyz")
		return int(ready["outbox"].(map[string]any)["held"].(map[string]any)["waiting"].(float64))
	}
	Eventually(t, 60*time.Second, func() bool { return record.Count("Observation")+waiting() >= total },
		func() string {
			return fmt.Sprintf("%d charted + %d waiting of %d messages\n%s", record.Count("Observation"), waiting(), total, gw.Log())
		})
	time.Sleep(2 * time.Second) // anything more would be a duplicate
	seen := map[float64]int{}
	for _, o := range chartedObservations(record) {
		if seen[o.Value]++; seen[o.Value] > 1 {
			t.Fatalf("%v charted twice", o.Value)
		}
	}
	if n, w := record.Count("Observation"), waiting(); n+w != total {
		t.Fatalf("%d charted + %d waiting for %d messages", n, w, total)
	}
	t.Logf("%d Observations at the kill; %d charted once, %d waiting with an unknown time (they waited at the broker)", before, record.Count("Observation"), waiting())
}

// A bridge that publishes its last values retained (a "current state"
// topic), untimed. The broker sends a retained message again at every
// subscription, without DUP and at once: its time is not known (it was
// published before the gateway subscribed, or was charted when it came
// live). It is never charted at a guessed time, however often the gateway
// starts. (The build before this named it by its content; with receipt
// times it would have been charted again at each start. Found by a second
// reader.)
func TestARetainedUntimedMessageIsNotChartedAtAGuessedTime(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	startMosquitto(t, dir, port)
	record, cfg, _ := recordWith(t, flatBridge(port, "wg-test-retained"))
	msg := `{"device":"bridge/bed-1","vitals":{"hr":72}}`
	if out, err := exec.Command("mosquitto_pub", "-p", fmt.Sprint(port), "-q", "1", "-r", "-t", "ward4b/bed-1/flat", "-m", msg).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub: %v\n%s", err, out)
	}
	for range 3 {
		gw := Start(t, "run", "-config", cfg)
		gw.WaitLog(t, `subscribed; waiting for messages`, 30*time.Second)
		gw.WaitLog(t, `retained messages without a device time are not charted`, 20*time.Second)
		time.Sleep(2 * time.Second)
		gw.Cmd.Process.Signal(syscall.SIGTERM)
		gw.Wait(t, 30*time.Second)
	}
	if n := record.Count("Observation"); n != 0 {
		t.Fatalf("a retained untimed message was charted %d times", n)
	}
}

// The backlog of an outage from a bridge that sends no time: patient A lay
// in bed 1 until a transfer during the outage, B since. The broker delivers
// the queued messages (not as DUP) when the gateway is back. They must not
// be charted at their receipt, to B: their time is not known, and they
// wait with that reason. (Found by a second reader.)
func TestAnUntimedBacklogIsNotChartedToWhoeverIsThereNow(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	broker := startMosquitto(t, dir, port)
	record, cfg, _ := recordWith(t, fmt.Sprintf(`monitors:
  - id: ward-bridge
    profile: generic/flat-json
    mqtt: {broker: "tcp://127.0.0.1:%d", topic: ward4b/+/flat, location_level: 1, client_id: wg-test-untimed-backlog}
patients:
  encounter_lookup: {location_system: "urn:example:beds", refresh: 1s}
  hold_unassociated: 1h
`, port))
	now := time.Now().UTC().Truncate(time.Second)
	transfer := now.Add(8 * time.Second)
	putBedLocation(record, "bed-1", "L1")
	putEncounterStay(record, "enc-a", "Patient/A", "in-progress", now.Add(-2*time.Hour), time.Time{},
		stayEntry{Location: "L1", Status: "completed", Start: now.Add(-2 * time.Hour), End: transfer})
	putEncounterStay(record, "enc-b", "Patient/B", "in-progress", transfer, time.Time{},
		stayEntry{Location: "L1", Status: "active", Start: transfer})

	gw := Start(t, "run", "-config", cfg) // makes the persistent session
	gw.WaitLog(t, `subscribed; waiting for messages`, 30*time.Second)
	gw.Cmd.Process.Signal(syscall.SIGTERM)
	gw.Wait(t, 30*time.Second)

	var fromA []string // measured while A lay in bed 1
	for i := range 5 {
		fromA = append(fromA, fmt.Sprintf(`{"device":"bridge/bed-1","vitals":{"hr":%d}}`, 61+i))
	}
	broker.publish("ward4b/bed-1/flat", fromA)
	time.Sleep(time.Until(transfer.Add(2 * time.Second)))

	gw = Start(t, "run", "-config", cfg)
	addr := gw.WaitLog(t, statusRe, 30*time.Second)
	Eventually(t, 20*time.Second, func() bool {
		_, st := getJSON(t, "http://"+addr+"/api/status")
		held := st["outbox"].(map[string]any)["held"].(map[string]any)
		return held["waiting"].(float64) == 5
	}, func() string { return "the backlog does not wait\n" + gw.Log() })
	time.Sleep(3 * time.Second)
	for _, o := range chartedObservations(record) {
		if o.Value >= 61 && o.Value <= 65 {
			t.Fatalf("heart rate %v, measured while A lay in bed 1 (before %v), charted at %v to %s",
				o.Value, transfer.Format(time.TimeOnly), o.Effective.Format(time.TimeOnly), o.Subject)
		}
	}
	_, st := getJSON(t, "http://"+addr+"/api/status")
	if reasons := fmt.Sprint(st["outbox"].(map[string]any)["held"].(map[string]any)["reasons"]); !regexpMatch(`time of a reading .* is not known`, reasons) {
		t.Fatalf("the page does not say why: %s", reasons)
	}
}
