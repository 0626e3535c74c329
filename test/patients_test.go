package test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/wardgate/wardgate/edge/fhir/fhirserver"
)

// End-to-end tests of "right patient, right time": real Mosquitto and socat,
// the gateway as its own process, the project's FHIR server holding
// Encounters with location periods.

func putBedLocation(record *fhirserver.Server, bed, id string) {
	record.PutLocation("urn:example:beds", bed, id)
}

// stayEntry is a location entry of an Encounter.
type stayEntry = fhirserver.LocationEntry

func putEncounterStay(record *fhirserver.Server, id, patient, status string, start, end time.Time, entries ...stayEntry) {
	record.PutEncounter(id, patient, status, start, end, entries...)
}

// vitalsAt is a generic/json message measured at `at`.
func vitalsAt(device string, at time.Time, hr, spo2 float64) string {
	return fmt.Sprintf(`{"device":{"id":%q},"time":%q,"observations":[{"code":"MDC_ECG_HEART_RATE","value":%v,"unit":"MDC_DIM_BEAT_PER_MIN"},{"code":"MDC_PULS_OXIM_SAT_O2","value":%v,"unit":"%%"}]}`,
		device, at.UTC().Format(time.RFC3339Nano), hr, spo2)
}

// charted is an Observation as these tests look at it.
type charted struct {
	ID, Subject, Code string
	Value             float64
	Effective, Issued time.Time
}

func chartedObservations(record *fhirserver.Server) []charted {
	var out []charted
	for _, raw := range record.Resources("Observation") {
		var o struct {
			Identifier []struct{ Value string }
			Subject    struct{ Reference string }
			Code       struct {
				Coding []struct{ System, Code string }
			}
			EffectiveDateTime string
			Issued            string
			ValueQuantity     struct{ Value float64 }
		}
		json.Unmarshal(raw, &o)
		c := charted{ID: o.Identifier[0].Value, Subject: o.Subject.Reference, Value: o.ValueQuantity.Value}
		for _, cd := range o.Code.Coding {
			if cd.System == "urn:iso:std:iso:11073:10101" {
				c.Code = cd.Code
			}
		}
		c.Effective, _ = time.Parse(time.RFC3339Nano, o.EffectiveDateTime)
		c.Issued, _ = time.Parse(time.RFC3339Nano, o.Issued)
		out = append(out, c)
	}
	return out
}

func mqttMonitor(port int, clientID string) string {
	return fmt.Sprintf(`monitors:
  - id: bed-14-monitor
    location: bed-14
    profile: generic/json
    mqtt: {broker: "tcp://127.0.0.1:%d", topic: ward4b/bed-14/vitals, client_id: %s}
`, port, clientID)
}

// Finding 1 (and 2): a backlog published while the gateway is down spans a
// transfer: patient A left bed 14 forty minutes before it came back up, the
// bed stood empty for ten minutes, patient B has lain in it since. Each
// reading is charted at its own time to the patient who lay there then;
// those from the empty spell wait, then go to the dead letters. (The build
// before this charted the whole backlog at the time of receipt to B.)
func TestMQTTBacklogIsChartedByEachReadingsOwnTime(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	broker := startMosquitto(t, dir, port)
	record, cfg, _ := recordWith(t, mqttMonitor(port, "wg-test-backlog")+`patients:
  encounter_lookup: {location_system: "urn:example:beds", refresh: 1s}
  hold_unassociated: 5s
`)
	now := time.Now().UTC().Truncate(time.Second)
	putBedLocation(record, "bed-14", "L14")
	putEncounterStay(record, "enc-a", "Patient/A", "finished", now.Add(-2*time.Hour), now.Add(-30*time.Minute),
		stayEntry{Location: "L14", Status: "completed", Start: now.Add(-2 * time.Hour), End: now.Add(-30 * time.Minute)})
	putEncounterStay(record, "enc-b", "Patient/B", "in-progress", now.Add(-20*time.Minute), time.Time{},
		stayEntry{Location: "L14", Status: "active", Start: now.Add(-20 * time.Minute)})

	gw := Start(t, "run", "-config", cfg) // makes the persistent session
	gw.WaitLog(t, `subscribed; waiting for messages`, 30*time.Second)
	gw.Cmd.Process.Signal(syscall.SIGTERM)
	gw.Wait(t, 30*time.Second)

	measured := map[float64]time.Time{} // heart rate → when measured
	var msgs []string
	for k := 50; k >= 2; k-- {
		at := now.Add(-time.Duration(k)*time.Minute + 15*time.Second)
		measured[float64(100+k)] = at
		msgs = append(msgs, vitalsAt("MX450-14", at, float64(100+k), float64(90+k%10)))
	}
	broker.publish("ward4b/bed-14/vitals", msgs)

	gw = Start(t, "run", "-config", cfg)
	addr := gw.WaitLog(t, statusRe, 30*time.Second)
	// A: k = 50…31, B: k = 20…2, two readings each; k = 30…21 from the
	// empty bed.
	Eventually(t, 60*time.Second, func() bool {
		_, ready := getJSON(t, "http://"+addr+"/readyz")
		held := ready["outbox"].(map[string]any)["held"].(map[string]any)
		return record.Count("Observation") >= 78 && held["readings_expired"].(float64) >= 20
	}, func() string {
		return fmt.Sprintf("%d of 78 Observations\n%s", record.Count("Observation"), gw.Log())
	})
	time.Sleep(time.Second) // anything more would be wrong
	obs := chartedObservations(record)
	if len(obs) != 78 {
		t.Fatalf("%d Observations, want 78", len(obs))
	}
	byTime := map[time.Time]float64{}
	for hr, at := range measured {
		byTime[at] = hr
	}
	for _, o := range obs {
		hr, ok := byTime[o.Effective]
		if !ok {
			t.Fatalf("an Observation at %v, which is no reading's own time (charted at receipt?)", o.Effective)
		}
		k := int(hr) - 100
		want := "Patient/B"
		switch {
		case k >= 31:
			want = "Patient/A"
		case k >= 21:
			t.Fatalf("a reading from the empty bed (%d min ago) was charted for %s", k, o.Subject)
		}
		if o.Subject != want {
			t.Fatalf("the reading of %d minutes ago went to %s, want %s", k, o.Subject, want)
		}
	}
	_, dl := getJSON(t, "http://"+addr+"/api/dead-letters")
	if dl["count"].(float64) != 10 {
		t.Fatalf("%v dead letters, want the 10 frames from the empty bed", dl["count"])
	}
	for _, d := range dl["dead_letters"].([]any) {
		if d.(map[string]any)["kind"] != "held" {
			t.Fatalf("dead letter %v", d)
		}
	}
}

func flatBridge(port int, clientID string) string {
	return fmt.Sprintf(`monitors:
  - id: ward-bridge
    profile: generic/flat-json
    mqtt: {broker: "tcp://127.0.0.1:%d", topic: ward4b/+/flat, location_level: 1, client_id: %s}
patients:
  static: {bed-1: Patient/one}
`, port, clientID)
}

// livePublisher publishes one message per line written to it, as a
// monitor would, through one mosquitto_pub.
type livePublisher struct {
	cmd   *exec.Cmd
	lines chan string
}

func startLivePublisher(t *testing.T, port int, topic string) *livePublisher {
	t.Helper()
	cmd := exec.Command("mosquitto_pub", "-p", fmt.Sprint(port), "-q", "1", "-t", topic, "-l")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &livePublisher{cmd: cmd, lines: make(chan string)}
	go func() {
		for l := range p.lines {
			fmt.Fprintln(in, l)
		}
		in.Close()
	}()
	t.Cleanup(func() { close(p.lines); cmd.Wait() })
	return p
}

// Finding 1: one frame dated an hour ahead, in the middle of a live
// stream. It does not move the clock estimate: it is charted no later than
// its receipt, and the frames after it keep their own times. (The build
// before this took it as the offset, charting the next ten minutes of
// readings an hour early.)
func TestAFutureDatedFrameMovesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	port := freePort(t)
	startMosquitto(t, dir, port)
	record, cfg, _ := recordWith(t, mqttMonitor(port, "wg-test-future")+`patients:
  static: {bed-14: Patient/123}
`)
	gw := Start(t, "run", "-config", cfg)
	addr := gw.WaitLog(t, statusRe, 30*time.Second)
	gw.WaitLog(t, `subscribed; waiting for messages`, 30*time.Second)
	pub := startLivePublisher(t, port, "ward4b/bed-14/vitals")
	sent := map[float64]time.Time{} // heart rate → device time
	send := func(hr float64, at time.Time) {
		sent[hr] = at.UTC().Truncate(time.Millisecond)
		pub.lines <- vitalsAt("MX450-F", sent[hr], hr, 97)
	}
	// 70 s of live frames, once a second: enough for an estimate.
	for i := range 70 {
		send(float64(60+i%40)+float64(i)/1000, time.Now())
		time.Sleep(time.Second)
	}
	send(150, time.Now().Add(time.Hour))
	var after []float64
	for i := range 5 {
		time.Sleep(time.Second)
		hr := 200 + float64(i)
		after = append(after, hr)
		send(hr, time.Now())
	}
	Eventually(t, 30*time.Second, func() bool { return record.Count("Observation") >= 2*76 },
		func() string {
			return fmt.Sprintf("%d of %d Observations\n%s", record.Count("Observation"), 2*76, gw.Log())
		})
	byHR := map[float64]charted{}
	for _, o := range chartedObservations(record) {
		if o.Code == "147842" {
			byHR[o.Value] = o
		}
	}
	future := byHR[150]
	if future.Effective.After(future.Issued) || future.Issued.IsZero() {
		t.Fatalf("the future-dated frame was charted at %v, received %v", future.Effective, future.Issued)
	}
	for _, hr := range after {
		if o := byHR[hr]; o.Effective.Sub(sent[hr]).Abs() > time.Second {
			t.Fatalf("a frame after the future one was charted at %v; it was measured at %v", o.Effective, sent[hr])
		}
	}
	_, st := getJSON(t, "http://"+addr+"/api/status")
	clock := st["monitors"].([]any)[0].(map[string]any)["clock"].(map[string]any)
	if clock["state"] != "tracking" || clock["steps"].(float64) != 0 || clock["frames_disagreed"].(float64) < 1 {
		t.Fatalf("clock after the future frame: %v", clock)
	}
}

// Finding 6: a monitor whose clock shows local time without an offset
// repeats the wall-clock times of the fold when daylight saving time ends.
// The gateway's zone here (TZ) is one whose clocks go back 20 seconds a
// little after the test starts; a Masimo on a pseudo-terminal prints its
// local time once a second through the fold. Each line is its own
// measurement: every reading is charted once, at the instant it was taken
// (the fold resolved by the clock estimate), none sharing an identifier.
func TestADSTFoldInALocalDeviceClock(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("zic"); err != nil {
		t.Fatalf("zic is missing (Debian package libc-bin): it compiles the test's time zone")
	}
	dir := t.TempDir()
	fold := time.Now().UTC().Add(40 * time.Second).Truncate(time.Second)
	src := filepath.Join(dir, "fold.zone")
	os.WriteFile(src, []byte(fmt.Sprintf("Zone Test/Fold 1:00 - TFA %s\n 0:59:40 - TFB\n",
		fold.Format("2006 Jan 2 15:04:05u"))), 0o644)
	zones := filepath.Join(dir, "zoneinfo")
	if out, err := exec.Command("zic", "-d", zones, src).CombinedOutput(); err != nil {
		t.Fatalf("zic: %v\n%s", err, out)
	}
	zonePath := filepath.Join(zones, "Test", "Fold")
	zb, err := os.ReadFile(zonePath)
	if err != nil {
		t.Fatal(err)
	}
	zone, err := time.LoadLocationFromTZData("Test/Fold", zb)
	if err != nil {
		t.Fatal(err)
	}
	socatPair(t, dir)
	record, cfg, _ := recordWith(t, fmt.Sprintf(`monitors:
  - id: bed-12-monitor
    location: bed-12
    profile: masimo/radical-7
    serial: {port: %s}
patients:
  static: {bed-12: Patient/123}
`, filepath.Join(dir, "gateway")))
	gw := StartEnv(t, []string{"TZ=" + zonePath}, "run", "-config", cfg)
	gw.WaitLog(t, `port open; waiting for the monitor`, 30*time.Second)
	port, err := os.OpenFile(filepath.Join(dir, "monitor"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer port.Close()
	// From 30 s before the clocks go back to 30 s after.
	time.Sleep(time.Until(fold.Add(-30 * time.Second)))
	lines, walls := 0, map[string]int{}
	for time.Now().Before(fold.Add(30 * time.Second)) {
		now := time.Now().In(zone)
		wall := now.Format("01/02/06 15:04:05")
		walls[wall]++
		fmt.Fprintf(port, "%s SN=0000056661 SPO2=%03d%% BPM=%03d PI=03.60%% SPCO=--.-%% SPMET=--.-%% DESAT=-- PIDELTA=+-- ALARM=0000 EXC=000800\r\n",
			wall, 90+lines%10, 60+lines%40)
		lines++
		time.Sleep(time.Until(now.Truncate(time.Second).Add(time.Second)))
	}
	repeated := 0
	for _, n := range walls {
		if n > 1 {
			repeated++
		}
	}
	if repeated < 10 {
		t.Fatalf("only %d wall-clock times repeated: the fold was not crossed", repeated)
	}
	want := 3 * lines // SpO2, pulse rate, perfusion index
	Eventually(t, 30*time.Second, func() bool { return record.Count("Observation") >= want },
		func() string {
			return fmt.Sprintf("%d of %d Observations\n%s", record.Count("Observation"), want, gw.Log())
		})
	time.Sleep(time.Second)
	obs := chartedObservations(record)
	ids := map[string]bool{}
	for _, o := range obs {
		if ids[o.ID] {
			t.Fatalf("two readings share the identifier %s", o.ID)
		}
		ids[o.ID] = true
		if d := o.Issued.Sub(o.Effective); d < 0 || d > 2*time.Second {
			t.Fatalf("a reading received at %v was charted at %v", o.Issued, o.Effective)
		}
	}
	if len(obs) != want {
		t.Fatalf("%d Observations for %d lines (%d wall-clock times repeated), want %d", len(obs), lines, repeated, want)
	}
}
