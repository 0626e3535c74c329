package test

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// SIGHUP reloads the config of the running binary (systemctl reload): a
// file `check` would refuse, or one changing a key read only at start,
// changes nothing; a monitor added starts while the others read on.

// monitorIDs are the monitors the status API shows.
func monitorIDs(t *testing.T, addr string) []string {
	t.Helper()
	_, st := getJSON(t, "http://"+addr+"/api/status")
	var ids []string
	for _, m := range st["monitors"].([]any) {
		ids = append(ids, m.(map[string]any)["id"].(string))
	}
	return ids
}

// steadyPublisher publishes vitals(device, i) for i = 0, 1, ... every
// `every` through one mosquitto_pub at QoS 1, until stop, which returns
// how many were handed to it.
func steadyPublisher(t *testing.T, port int, topic, device string, every time.Duration) (stop func() int) {
	t.Helper()
	cmd := exec.Command("mosquitto_pub", "-p", fmt.Sprint(port), "-q", "1", "-t", topic, "-l")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	quit, sent := make(chan struct{}), make(chan int, 1)
	go func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		i := 0
		for {
			select {
			case <-quit:
				sent <- i
				return
			case <-tick.C:
			}
			if _, err := io.WriteString(in, vitals(device, i)+"\n"); err != nil {
				sent <- i
				return
			}
			i++
		}
	}()
	return func() int {
		close(quit)
		n := <-sent
		in.Close() // mosquitto_pub sends what it has and exits
		if err := cmd.Wait(); err != nil {
			t.Fatalf("mosquitto_pub: %v\n%s", err, out.String())
		}
		return n
	}
}

// observationsFrom counts the record's Observations of a device (their
// identifier is device/code/time) and says whether each is there once.
func observationsFrom(seen map[string]int, device string) (n int, once bool) {
	once = true
	for id, c := range seen {
		if strings.HasPrefix(id, device+"/") {
			n += c
			once = once && c == 1
		}
	}
	return n, once
}

func TestSIGHUPWithABadConfigChangesNothing(t *testing.T) {
	sock, notes := systemdNotifySocket(t)
	dir := t.TempDir()
	port := freePort(t)
	startMosquitto(t, dir, port)
	record, cfg, _ := recordWith(t, mqttConfig(port))
	good, _ := os.ReadFile(cfg)

	gw := StartEnv(t, []string{"NOTIFY_SOCKET=" + sock}, "run", "-config", cfg)
	addr := gw.WaitLog(t, statusRe, 30*time.Second)
	gw.WaitLog(t, `subscribed; waiting for messages`, 30*time.Second)
	waitNote := func(want string) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case n := <-notes:
				if strings.Contains(n, want) {
					return
				}
			case <-deadline:
				t.Fatalf("systemd was not told %s; log:\n%s", want, gw.Log())
			}
		}
	}
	waitNote("READY=1")
	before := monitorIDs(t, addr)

	// Each with a second monitor, which is not started either.
	withBed15 := withMonitor(string(good), port)
	for _, c := range []struct{ name, file, logged string }{
		// A value `check` refuses: its problem is logged as check prints it.
		{"an invalid value", withBed15 + "log: {level: loud}\n", `config not reloaded.*log\.level: .*loud`},
		// Valid, but the status server's address takes a restart.
		{"a key that takes a restart", strings.Replace(withBed15, "listen: 127.0.0.1:0", "listen: 127.0.0.1:1", 1),
			`config not reloaded.*not reloaded, nothing changed: http\.listen changed`},
	} {
		os.WriteFile(cfg, []byte(c.file), 0o600)
		gw.Cmd.Process.Signal(syscall.SIGHUP)
		waitNote("RELOADING=1")
		waitNote("READY=1")
		gw.WaitLog(t, c.logged, 10*time.Second)
		if ids := monitorIDs(t, addr); strings.Join(ids, ",") != strings.Join(before, ",") {
			t.Fatalf("%s: the page shows monitors %v, want %v", c.name, ids, before)
		}
	}
	if strings.Contains(gw.Log(), "bed-15-monitor") {
		t.Fatalf("a refused config started its monitor:\n%s", gw.Log())
	}
	// Still running, still reading with the old config.
	startMosquittoPub(t, port, "ward4b/bed-14/vitals", []string{vitals("MX450-1", 1)})
	Eventually(t, 30*time.Second, func() bool { return record.Count("Observation") == 2 },
		func() string { return fmt.Sprintf("%d Observations\n%s", record.Count("Observation"), gw.Log()) })
}

// startMosquittoPub publishes msgs at QoS 1 (mosquitto.publish without the
// broker's handle).
func startMosquittoPub(t *testing.T, port int, topic string, msgs []string) {
	t.Helper()
	(&mosquitto{t: t, port: port}).publish(topic, msgs)
}

func TestSIGHUPAddingAMonitorDropsNoReadingOfTheOthers(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	startMosquitto(t, dir, port)
	record, cfg, _ := recordWith(t, mqttConfig(port))
	good, _ := os.ReadFile(cfg)

	gw := Start(t, "run", "-config", cfg)
	addr := gw.WaitLog(t, statusRe, 30*time.Second)
	gw.WaitLog(t, `subscribed; waiting for messages`, 30*time.Second)

	// bed-14's monitor publishes every 10 ms throughout.
	stop := steadyPublisher(t, port, "ward4b/bed-14/vitals", "MX450-1", 10*time.Millisecond)
	Eventually(t, 30*time.Second, func() bool { return record.Count("Observation") > 20 },
		func() string { return "no readings of bed-14\n" + gw.Log() })

	os.WriteFile(cfg, []byte(withMonitor(string(good), port)), 0o600)
	gw.Cmd.Process.Signal(syscall.SIGHUP)
	gw.WaitLog(t, `change="monitor bed-15-monitor added"`, 30*time.Second)
	gw.WaitLog(t, `change="patients.static: bed\(s\) bed-15 added"`, time.Second)
	gw.WaitLogCount(t, `subscribed; waiting for messages`, 2, 30*time.Second)
	if ids := monitorIDs(t, addr); strings.Join(ids, ",") != "bed-14-monitor,bed-15-monitor" {
		t.Fatalf("the page shows monitors %v", ids)
	}
	// Measured after the reload: bed-15's static patient counts from the
	// reload on (a reading from before it keeps the table of then).
	var added []string
	measured := time.Now()
	for i := range 20 {
		added = append(added, vitalsAt("MX450-2", measured.Add(time.Duration(i)*time.Second), float64(60+i), float64(90+i%10)))
	}
	startMosquittoPub(t, port, "ward4b/bed-15/vitals", added)
	time.Sleep(500 * time.Millisecond) // bed-14's monitor goes on beside it
	n := stop()

	Eventually(t, 60*time.Second, func() bool {
		seen := observationsByIdentifier(record)
		a, _ := observationsFrom(seen, "MX450-1")
		b, _ := observationsFrom(seen, "MX450-2")
		return a >= 2*n && b >= 40
	}, func() string {
		seen := observationsByIdentifier(record)
		a, _ := observationsFrom(seen, "MX450-1")
		b, _ := observationsFrom(seen, "MX450-2")
		return fmt.Sprintf("bed-14: %d of %d Observations, bed-15: %d of 40\n%s", a, 2*n, b, gw.Log())
	})
	time.Sleep(time.Second) // anything more would be a duplicate
	seen := observationsByIdentifier(record)
	a, onceA := observationsFrom(seen, "MX450-1")
	b, onceB := observationsFrom(seen, "MX450-2")
	if a != 2*n || b != 40 || !onceA || !onceB {
		t.Fatalf("bed-14: %d Observations (once each: %v), want %d; bed-15: %d (once each: %v), want 40", a, onceA, 2*n, b, onceB)
	}
	t.Logf("bed-14's monitor sent %d messages around the reload; all %d Observations are in the record once", n, 2*n)
}

// withMonitor adds to mqttConfig(port) a second monitor, at bed-15 on
// topic ward4b/bed-15/vitals, and its bed's patient.
func withMonitor(config string, port int) string {
	const patients = "patients:\n  static: {bed-14: Patient/123}\n"
	if !strings.Contains(config, patients) {
		panic("mqttConfig changed: fix withMonitor")
	}
	return strings.Replace(config, patients, fmt.Sprintf(`  - id: bed-15-monitor
    location: bed-15
    profile: generic/json
    mqtt: {broker: "tcp://127.0.0.1:%d", topic: ward4b/bed-15/vitals, client_id: wg-test-bed15}
patients:
  static: {bed-14: Patient/123, bed-15: Patient/456}
`, port), 1)
}
