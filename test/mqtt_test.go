package test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mosquitto runs Debian's broker on a free port, with persistence in dir so
// that a restart keeps sessions and queued messages.
type mosquitto struct {
	t    testing.TB
	dir  string
	port int
	cmd  *exec.Cmd
}

func startMosquitto(t testing.TB, dir string, port int) *mosquitto {
	t.Helper()
	RequirePeers(t, "mosquitto", "mosquitto_pub")
	conf := filepath.Join(dir, "mosquitto.conf")
	// user root: run as root, Debian's mosquitto drops to its own user,
	// which cannot write persistence into the test's folder.
	os.WriteFile(conf, []byte(fmt.Sprintf("listener %d 127.0.0.1\nuser root\nallow_anonymous true\npersistence true\npersistence_location %s/\nautosave_interval 1\nmax_queued_messages 100000\nlog_dest stdout\nlog_type all\n", port, dir)), 0o600)
	m := &mosquitto{t: t, dir: dir, port: port}
	m.cmd = exec.Command("mosquitto", "-c", conf)
	logf, _ := os.OpenFile(filepath.Join(dir, "mosquitto.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	m.cmd.Stdout = logf
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.cmd.Process.Kill(); m.cmd.Wait() })
	Eventually(t, 10*time.Second, func() bool {
		return exec.Command("mosquitto_pub", "-p", fmt.Sprint(port), "-t", "probe", "-m", "x").Run() == nil
	}, func() string { return "mosquitto did not start" })
	return m
}

// stop stops the broker as a service manager would (SIGTERM: it saves its
// persistence file).
func (m *mosquitto) stop() {
	m.cmd.Process.Signal(syscall.SIGTERM)
	m.cmd.Wait()
}

// publish sends messages at QoS 1, one per line.
func (m *mosquitto) publish(topic string, msgs []string) {
	m.t.Helper()
	cmd := exec.Command("mosquitto_pub", "-p", fmt.Sprint(m.port), "-q", "1", "-t", topic, "-l")
	cmd.Stdin = strings.NewReader(strings.Join(msgs, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		m.t.Fatalf("mosquitto_pub: %v\n%s", err, out)
	}
}

// vitals is a generic/json message with two readings at second i.
func vitals(device string, i int) string {
	t := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second)
	return fmt.Sprintf(`{"device":{"id":%q},"time":%q,"observations":[{"code":"MDC_ECG_HEART_RATE","value":%d,"unit":"MDC_DIM_BEAT_PER_MIN"},{"code":"MDC_PULS_OXIM_SAT_O2","value":%d,"unit":"%%"}]}`,
		device, t.Format(time.RFC3339Nano), 60+i%50, 90+i%10)
}

func mqttConfig(port int) string {
	return fmt.Sprintf(`monitors:
  - id: bed-14-monitor
    location: bed-14
    profile: generic/json
    mqtt: {broker: "tcp://127.0.0.1:%d", topic: ward4b/bed-14/vitals, client_id: wg-test-bed14}
patients:
  static: {bed-14: Patient/123}
`, port)
}

// Messages published while the gateway is down wait at the broker (QoS 1,
// persistent session) and reach the record after it starts; a payload that
// cannot be decoded is acknowledged and kept raw among the dead letters.
func TestMQTTMessagesPublishedWhileDownArrive(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	broker := startMosquitto(t, dir, port)
	record, cfg, _ := recordWith(t, mqttConfig(port))

	gw := Start(t, "run", "-config", cfg)
	gw.WaitLog(t, `subscribed; waiting for messages`, 30*time.Second)
	gw.Cmd.Process.Signal(syscall.SIGTERM)
	gw.Wait(t, 30*time.Second)

	var msgs []string
	for i := range 50 {
		msgs = append(msgs, vitals("MX450-1", i))
		if i == 25 {
			msgs = append(msgs, `{"device": "this is not the documented shape", "observations": 7}`, `PATIENT SMITH not json`)
		}
	}
	broker.publish("ward4b/bed-14/vitals", msgs)

	gw = Start(t, "run", "-config", cfg)
	addr := gw.WaitLog(t, statusRe, 30*time.Second)
	Eventually(t, 60*time.Second, func() bool { return record.Count("Observation") >= 100 },
		func() string { return fmt.Sprintf("%d of 100 Observations\n%s", record.Count("Observation"), gw.Log()) })
	if seen := observationsByIdentifier(record); len(seen) != 100 || record.Count("Observation") != 100 {
		t.Fatalf("record holds %d Observations, %d distinct; want 100", record.Count("Observation"), len(seen))
	}
	_, ready := getJSON(t, "http://"+addr+"/readyz")
	if dead := ready["outbox"].(map[string]any)["dead_letters"].(float64); dead != 1 {
		// The first bad message decodes to no readings (an empty list is
		// not an error); the second is not JSON: one dead letter.
		t.Fatalf("%v dead letters, want 1 (the undecodable payload)", dead)
	}
	if strings.Contains(gw.Log(), "SMITH") {
		t.Fatal("a payload reached the log")
	}
	// Acknowledged: a restart does not bring them back.
	gw.Cmd.Process.Signal(syscall.SIGTERM)
	gw.Wait(t, 30*time.Second)
	gw = Start(t, "run", "-config", cfg)
	addr = gw.WaitLog(t, statusRe, 30*time.Second)
	gw.WaitLog(t, `subscribed; waiting for messages`, 30*time.Second)
	time.Sleep(time.Second)
	_, ready = getJSON(t, "http://"+addr+"/readyz")
	if dead := ready["outbox"].(map[string]any)["dead_letters"].(float64); dead != 1 {
		t.Fatalf("after a restart: %v dead letters, want 1: the bad payload was redelivered", dead)
	}
}

// SIGKILL of the gateway while messages flow, then a broker restart: every
// message published reaches the record, each reading exactly once.
func TestMQTTSIGKILLWhileMessagesFlow(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	broker := startMosquitto(t, dir, port)
	record, cfg, _ := recordWith(t, mqttConfig(port))

	gw := Start(t, "run", "-config", cfg)
	gw.WaitLog(t, `subscribed; waiting for messages`, 30*time.Second)

	const n = 3000
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		for start := 0; start < n; start += 500 {
			var msgs []string
			for i := start; i < start+500; i++ {
				msgs = append(msgs, vitals("MX450-2", i))
			}
			broker.publish("ward4b/bed-14/vitals", msgs)
		}
	}()
	// Kill it once some, not all, readings are in the outbox.
	Eventually(t, 60*time.Second, func() bool { return strings.Contains(gw.Log(), "connected") || record.Count("Observation") > 0 },
		func() string { return "no traffic\n" + gw.Log() })
	time.Sleep(300 * time.Millisecond)
	gw.Cmd.Process.Signal(syscall.SIGKILL)
	gw.Wait(t, 30*time.Second)
	<-pubDone
	before := record.Count("Observation")

	gw = Start(t, "run", "-config", cfg)
	gw.WaitLog(t, `subscribed; waiting for messages`, 30*time.Second)
	// The broker goes down and comes back with its persistence.
	broker.stop()
	gw.WaitLog(t, `broker connection lost`, 30*time.Second)
	broker = startMosquitto(t, dir, port)
	var tail []string
	for i := n; i < n+100; i++ {
		tail = append(tail, vitals("MX450-2", i))
	}
	broker.publish("ward4b/bed-14/vitals", tail)

	want := 2 * (n + 100)
	Eventually(t, 120*time.Second, func() bool { return record.Count("Observation") >= want },
		func() string {
			return fmt.Sprintf("%d of %d Observations\n%s", record.Count("Observation"), want, gw.Log())
		})
	time.Sleep(time.Second) // anything more would be a duplicate
	if seen := observationsByIdentifier(record); len(seen) != want || record.Count("Observation") != want {
		t.Fatalf("record holds %d Observations, %d distinct; want %d each once", record.Count("Observation"), len(seen), want)
	}
	t.Logf("%d Observations were in the record at the kill; all %d are there once", before, want)
}

// One wildcard subscription serves many beds: each message's bed is taken
// from its topic, and its readings go to that bed's patient.
func TestMQTTWildcardTopicGivesTheBed(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	broker := startMosquitto(t, dir, port)
	record, cfg, _ := recordWith(t, fmt.Sprintf(`monitors:
  - id: ward-bridge
    profile: generic/flat-json
    mqtt: {broker: "tcp://127.0.0.1:%d", topic: ward4b/+/flat, location_level: 1}
patients:
  static: {bed-1: Patient/one, bed-2: Patient/two}
`, port))
	gw := Start(t, "run", "-config", cfg)
	gw.WaitLog(t, `subscribed; waiting for messages`, 30*time.Second)
	for bed, hr := range map[string]int{"bed-1": 61, "bed-2": 62} {
		broker.publish("ward4b/"+bed+"/flat", []string{fmt.Sprintf(`{"device":"bridge/%s","ts":1795593600000,"vitals":{"hr":%d}}`, bed, hr)})
	}
	Eventually(t, 30*time.Second, func() bool { return record.Count("Observation") == 2 },
		func() string { return fmt.Sprintf("%d Observations\n%s", record.Count("Observation"), gw.Log()) })
	for _, raw := range record.Resources("Observation") {
		var o struct {
			Subject       struct{ Reference string }
			ValueQuantity struct{ Value float64 }
		}
		json.Unmarshal(raw, &o)
		want := map[float64]string{61: "Patient/one", 62: "Patient/two"}[o.ValueQuantity.Value]
		if o.Subject.Reference != want {
			t.Fatalf("heart rate %v charted for %s, want %s", o.ValueQuantity.Value, o.Subject.Reference, want)
		}
	}
}
