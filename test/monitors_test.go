package test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wardgate/wardgate/edge/fhir"
	"github.com/wardgate/wardgate/edge/fhir/fhirserver"
)

// recordWith starts the project's FHIR server and a gateway config that
// points at it.
func recordWith(t *testing.T, extra string) (*fhirserver.Server, string, string) {
	t.Helper()
	record := fhirserver.New()
	hs := httptest.NewServer(record)
	t.Cleanup(hs.Close)
	cfg, dataDir := gatewayConfig(t, extra)
	b, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, []byte(strings.Replace(string(b), "http://127.0.0.1:9/R4", hs.URL, 1)), 0o600)
	return record, cfg, dataDir
}

// observationsByIdentifier counts the record's Observations per identifier.
func observationsByIdentifier(record *fhirserver.Server) map[string]int {
	seen := map[string]int{}
	for _, raw := range record.Resources("Observation") {
		var o fhir.Observation
		json.Unmarshal(raw, &o)
		seen[o.Identifier[0].Value]++
	}
	return seen
}

// socatPair starts a pseudo-terminal pair, its two ends linked at
// dir/monitor and dir/gateway, as a null-modem cable between a monitor and
// the box.
func socatPair(t *testing.T, dir string) *exec.Cmd {
	t.Helper()
	RequirePeers(t, "socat")
	mon, gw := filepath.Join(dir, "monitor"), filepath.Join(dir, "gateway")
	cmd := exec.Command("socat", "pty,raw,echo=0,link="+mon, "pty,raw,echo=0,link="+gw)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	Eventually(t, 10*time.Second, func() bool {
		_, e1 := os.Stat(mon)
		_, e2 := os.Stat(gw)
		return e1 == nil && e2 == nil
	}, func() string { return "socat made no pseudo-terminals" })
	return cmd
}

func masimoLine(i int) string {
	t := time.Date(2026, 11, 25, 8, 0, 0, 0, time.Local).Add(time.Duration(i) * time.Second)
	return fmt.Sprintf("%s SN=0000056661 SPO2=%03d%% BPM=%03d PI=03.60%% SPCO=--.-%% SPMET=--.-%% DESAT=-- PIDELTA=+-- ALARM=0000 EXC=000800\r\n",
		t.Format("01/02/06 15:04:05"), 90+i%10, 60+i%40)
}

// A Masimo monitor on a serial line (a socat pseudo-terminal pair): its
// lines become Observations in the record; garbage and cut lines are
// counted and cost nothing else; the port vanishing (socat killed, as a USB
// adapter pulled out) and coming back is followed by the gateway.
func TestSerialMonitorThroughPseudoTerminal(t *testing.T) {
	dir := t.TempDir()
	socat := socatPair(t, dir)
	record, cfg, _ := recordWith(t, fmt.Sprintf(`monitors:
  - id: bed-12-monitor
    location: bed-12
    profile: masimo/radical-7
    serial: {port: %s}
patients:
  static: {bed-12: Patient/123}
`, filepath.Join(dir, "gateway")))
	gw := Start(t, "run", "-config", cfg)
	addr := gw.WaitLog(t, statusRe, 30*time.Second)
	gw.WaitLog(t, `port open; waiting for the monitor`, 30*time.Second)

	port, err := os.OpenFile(filepath.Join(dir, "monitor"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// 10 good lines, with garbage, an over-long line and a line cut short
	// between them; the pieces are written unevenly, as a UART delivers.
	var stream strings.Builder
	for i := range 10 {
		stream.WriteString(masimoLine(i))
		switch i {
		case 3:
			stream.WriteString("\x00\xff\xfe garbage ~~~\r\n")
		case 5:
			stream.WriteString(strings.Repeat("A", 2000) + "\r\n")
		case 7:
			stream.WriteString(masimoLine(100)[:40] + "\r\n")
		}
	}
	b := []byte(stream.String())
	for len(b) > 0 {
		n := min(len(b), 37)
		port.Write(b[:n])
		b = b[n:]
		time.Sleep(2 * time.Millisecond)
	}
	Eventually(t, 30*time.Second, func() bool { return record.Count("Observation") >= 30 },
		func() string {
			return fmt.Sprintf("%d Observations in the record\n%s", record.Count("Observation"), gw.Log())
		})
	seen := observationsByIdentifier(record)
	if len(seen) != 30 || record.Count("Observation") != 30 {
		t.Fatalf("want 30 Observations (10 lines × SpO2, pulse rate, PI), each once; got %d (%d distinct)", record.Count("Observation"), len(seen))
	}
	_, ready := getJSON(t, "http://"+addr+"/readyz")
	mon := ready["monitors"].([]any)[0].(map[string]any)
	counts := mon["counters"].(map[string]any)
	if mon["state"] != "connected" || counts["bad_frames"].(float64) != 3 || counts["frames"].(float64) != 10 {
		t.Fatalf("monitor status: state %v, %v bad frames (want 3), %v frames (want 10)", mon["state"], counts["bad_frames"], counts["frames"])
	}
	if strings.Contains(gw.Log(), "garbage") || strings.Contains(gw.Log(), "AAAA") {
		t.Fatal("a bad line's content reached the log")
	}

	// The cable is pulled: the gateway says so and keeps trying.
	port.Close()
	socat.Process.Kill()
	socat.Wait()
	gw.WaitLog(t, `monitor disconnected`, 30*time.Second)
	// And plugged back in.
	socatPair(t, dir)
	gw.WaitLogCount(t, `port open; waiting for the monitor`, 2, 30*time.Second)
	port, err = os.OpenFile(filepath.Join(dir, "monitor"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer port.Close()
	for i := 10; i < 15; i++ {
		port.WriteString(masimoLine(i))
	}
	Eventually(t, 30*time.Second, func() bool { return record.Count("Observation") >= 45 },
		func() string {
			return fmt.Sprintf("%d Observations after the port came back\n%s", record.Count("Observation"), gw.Log())
		})

	gw.Cmd.Process.Signal(syscall.SIGTERM)
	if code := gw.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// The simulator command drives a serial monitor end to end: what it writes
// is decoded and charted.
func TestSimulatorOnSerial(t *testing.T) {
	dir := t.TempDir()
	socatPair(t, dir)
	record, cfg, _ := recordWith(t, fmt.Sprintf(`monitors:
  - id: bed-3-monitor
    location: bed-3
    profile: nonin/avant
    serial: {port: %s}
patients:
  static: {bed-3: Patient/77}
`, filepath.Join(dir, "gateway")))
	gw := Start(t, "run", "-config", cfg)
	gw.WaitLog(t, `port open; waiting for the monitor`, 30*time.Second)
	sim := Run(t, "simulate", "-profile", "nonin/avant", "-serial", filepath.Join(dir, "monitor"), "-count", "5", "-interval", "1100ms", "-seed", "3")
	if sim.Code != 0 {
		t.Fatalf("simulate: exit %d\n%s", sim.Code, sim.Stderr)
	}
	Eventually(t, 30*time.Second, func() bool { return record.Count("Observation") >= 8 },
		func() string {
			return fmt.Sprintf("%d Observations from the simulator\n%s", record.Count("Observation"), gw.Log())
		})
	for _, raw := range record.Resources("Observation") {
		var o fhir.Observation
		json.Unmarshal(raw, &o)
		if o.Subject == nil || o.Subject.Reference != "Patient/77" {
			t.Fatalf("Observation for %v, want Patient/77", o.Subject)
		}
	}
}

// freePort returns a loopback port nobody listens on now, never one it
// gave before in this test process: the kernel may hand a port just
// released to the next bind(0), and two peers of one test (a PACS and the
// gateway) would then race for it.
func freePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	// Below the kernel's ephemeral range (32768–60999 by default), so that
	// no bind(0) or outgoing connection of another process (the test
	// binaries of other packages run beside this one) takes the port
	// between now and the peer's own bind; each process starts at its own
	// place in the range, so that two seldom walk the same ports.
	if portsNext == 0 {
		portsNext = portsLow + (os.Getpid()*7919)%(portsHigh-portsLow)
	}
	for tries := 0; tries < portsHigh-portsLow; tries++ {
		port := portsNext
		portsNext++
		if portsNext >= portsHigh {
			portsNext = portsLow
		}
		if portsGiven[port] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // in use
		}
		ln.Close()
		portsGiven[port] = true
		return port
	}
	t.Fatal("no free loopback port below the ephemeral range")
	return 0
}

const portsLow, portsHigh = 20000, 32000

var (
	portsNext  int
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)
