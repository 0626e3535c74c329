package test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// gatewayConfig writes a config for a gateway on a free port in a fresh
// folder and returns its path and data_dir.
func gatewayConfig(t testing.TB, extra string) (cfg, dataDir string) {
	t.Helper()
	dir := t.TempDir()
	cfg = filepath.Join(dir, "wardgate.yaml")
	body := `site: ward-4b
data_dir: data
charting: {chart: {continuous: each}}
http:
  listen: 127.0.0.1:0
fhir:
  base_url: http://127.0.0.1:9/R4
  patient_identifier_system: urn:oid:1.2.3.4
` + extra
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg, filepath.Join(dir, "data")
}

const statusRe = `status=http://([0-9.:]+)/`

func getJSON(t testing.TB, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	return resp.StatusCode, v
}

func TestUsageErrorsExitWith2(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"run"},
		{"check"},
		{"check", "-config"},
		{"run", "-config", "a.yaml", "extra"},
		{"check", "-config", filepath.Join(t.TempDir(), "missing.yaml")},
	} {
		r := Run(t, args...)
		if r.Code != 2 || r.Stderr == "" {
			t.Errorf("wardgate %q: exit %d, stderr %q; want 2 with a message", args, r.Code, r.Stderr)
		}
	}
	if r := Run(t, "version"); r.Code != 0 || !strings.HasPrefix(r.Stdout, "wardgate ") {
		t.Errorf("version: %+v", r)
	}
}

func TestCheckListsEveryProblemAndExits2(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "wardgate.yaml")
	os.WriteFile(cfg, []byte(`site: ward-4b
data_dir: /var/lib/wardgate
fhir:
  base_url: https://fhir.example.org/R4
monitors:
  - id: bed-12-monitor
    location: bed-12
    profile: masimo/radical-7
    serial: {port: /dev/ttyUSB0, baud: 9600}
  - id: bed-14-monitor
    location: bed-14
    profile: masimo/radical-7
    serial: {port: /dev/ttyUSB1, baud: 9601}
dicom:
  ae_titel: WARDGATE
`), 0o600)
	r := Run(t, "check", "-config", cfg)
	if r.Code != 2 {
		t.Fatalf("exit %d, want 2:\n%s", r.Code, r.Stderr)
	}
	for _, want := range []string{
		cfg + ":13: monitors[1].serial.baud: 9601 is not a standard rate",
		cfg + `:15: dicom.ae_titel: unknown key (did you mean "ae_title"?)`,
		cfg + ":14: dicom.ae_title: is required",
		cfg + ":3: fhir.patient_identifier_system: is required with dicom",
		cfg + ":14: dicom.allow: is empty: every host on the network could send studies", // closed by default
		"5 error(s)",
	} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.Stderr)
		}
	}

	good, _ := gatewayConfig(t, "")
	r = Run(t, "check", "-config", good)
	if r.Code != 0 || !strings.Contains(r.Stdout, "OK: site ward-4b") {
		t.Fatalf("check of a good config: %+v", r)
	}
}

func TestRunServesHealthLocksTheDataDirAndStopsCleanly(t *testing.T) {
	cfg, dataDir := gatewayConfig(t, "dicom: {ae_title: WARDGATE, allow_any: true, listen: '127.0.0.1:0'}\n")
	first := Start(t, "run", "-config", cfg)
	addr := first.WaitLog(t, statusRe, 30*time.Second)

	code, health := getJSON(t, "http://"+addr+"/healthz")
	if code != 200 || health["status"] != "ok" || health["site"] != "ward-4b" {
		t.Fatalf("/healthz: %d %v", code, health)
	}
	code, ready := getJSON(t, "http://"+addr+"/readyz")
	if code != 200 || ready["status"] != "ready" || ready["disk"].(map[string]any)["spool"] == nil {
		t.Fatalf("/readyz: %d %v", code, ready)
	}
	for _, f := range []string{"outbox.db", "outbox.db.journal", "spool/index.db", "wardgate.lock"} {
		if _, err := os.Stat(filepath.Join(dataDir, f)); err != nil {
			t.Errorf("data_dir lacks %s: %v", f, err)
		}
	}

	// A second gateway on the same data_dir fails at once and names the first.
	second := Run(t, "run", "-config", cfg)
	want := fmt.Sprintf("is in use by another wardgate (pid %d)", first.Cmd.Process.Pid)
	if second.Code != 1 || !strings.Contains(second.Stderr, want) {
		t.Fatalf("second gateway: exit %d, want 1 with %q:\n%s", second.Code, want, second.Stderr)
	}

	first.Cmd.Process.Signal(syscall.SIGTERM)
	if code := first.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0", code)
	}
	if !strings.Contains(first.Log(), "stopped cleanly") {
		t.Fatalf("no clean stop in the log:\n%s", first.Log())
	}

	// The lock went with the process: the next start works, and Ctrl-C stops it.
	again := Start(t, "run", "-config", cfg)
	again.WaitLog(t, statusRe, 30*time.Second)
	if strings.Contains(again.Log(), "leases") || strings.Contains(again.Log(), "removed files") {
		t.Fatalf("a clean stop left work to repair:\n%s", again.Log())
	}
	again.Cmd.Process.Signal(syscall.SIGINT)
	if code := again.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGINT", code)
	}
}

func TestAKilledGatewayLeavesNoStaleLock(t *testing.T) {
	cfg, _ := gatewayConfig(t, "")
	p := Start(t, "run", "-config", cfg)
	p.WaitLog(t, statusRe, 30*time.Second)
	p.Cmd.Process.Signal(syscall.SIGKILL)
	p.Wait(t, 30*time.Second)
	again := Start(t, "run", "-config", cfg)
	again.WaitLog(t, statusRe, 30*time.Second)
}

func TestRunRefusesAForeignOutboxAndLeavesIt(t *testing.T) {
	cfg, dataDir := gatewayConfig(t, "")
	os.MkdirAll(dataDir, 0o700)
	outbox := filepath.Join(dataDir, "outbox.db")
	garbage := []byte(strings.Repeat("this is not a database\n", 500))
	os.WriteFile(outbox, garbage, 0o600)
	r := Run(t, "run", "-config", cfg)
	if r.Code != 1 || !strings.Contains(r.Stderr, outbox) || !strings.Contains(r.Stderr, "not a wardgate store") {
		t.Fatalf("exit %d, want 1 naming %s:\n%s", r.Code, outbox, r.Stderr)
	}
	if strings.Contains(r.Stderr, "panic") {
		t.Fatalf("panicked:\n%s", r.Stderr)
	}
	if b, _ := os.ReadFile(outbox); string(b) != string(garbage) {
		t.Fatal("the foreign file was changed")
	}
}

func TestRunFailsWhenItsPortIsTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg, _ := gatewayConfig(t, "")
	b, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, []byte(strings.Replace(string(b), "127.0.0.1:0", ln.Addr().String(), 1)), 0o600)
	r := Run(t, "run", "-config", cfg)
	if r.Code != 1 || !strings.Contains(r.Stderr, "http.listen "+ln.Addr().String()) {
		t.Fatalf("exit %d, want 1 naming http.listen:\n%s", r.Code, r.Stderr)
	}
}

// The harness itself: every peer the end-to-end tests use is installed and
// runs (./test/run installs what is missing).
func TestRealPeersAreInstalled(t *testing.T) {
	names := make([]string, 0, len(Peers))
	for n := range Peers {
		names = append(names, n)
	}
	RequirePeers(t, names...)
	for _, c := range [][]string{
		{"storescp", "--version"}, {"echoscu", "--version"}, {"socat", "-V"},
		{"chromium", "--headless", "--no-sandbox", "--disable-gpu", "--version"},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", strings.Join(c, " "), err, out)
		}
	}
	if out, err := exec.Command("mosquitto", "-h").CombinedOutput(); !strings.Contains(string(out), "mosquitto version") {
		t.Errorf("mosquitto -h: %v\n%s", err, out)
	}
}
