package test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/edge/fhir/fhirserver"
)

// wardgate queue against a running gateway: the dead letters are listed
// with their reasons; retry and drop are refused with a wrong token; with
// the right one a refused Observation is delivered once the record takes
// it, and an undecodable frame can only be dropped.
func TestQueueCommand(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	broker := startMosquitto(t, dir, port)
	token := filepath.Join(dir, "admin-token")
	os.WriteFile(token, []byte("s3cret-token-0123456789abcdef\n"), 0o600)
	record, cfg, _ := recordWith(t, mqttConfig(port)+"http: {listen: 127.0.0.1:0, admin_token_file: "+token+"}\n")
	// gatewayConfig already wrote an http section: the last one would be a
	// duplicate key, so merge by rewriting.
	b, _ := os.ReadFile(cfg)
	text := strings.Replace(string(b), "http:\n  listen: 127.0.0.1:0\n", "", 1)
	os.WriteFile(cfg, []byte(text), 0o600)
	const refusedHR = "MX450-Q/147842/2026-11-25T08:00:00Z"
	record.SetFaults(fhirserver.Faults{Reject: refusedHR})

	gw := Start(t, "run", "-config", cfg)
	addr := gw.WaitLog(t, statusRe, 30*time.Second)
	gw.WaitLog(t, `subscribed; waiting for messages`, 30*time.Second)
	// The queue command reaches the gateway on http.listen: give it the
	// port the gateway took.
	fixed := strings.Replace(text, "listen: 127.0.0.1:0", "listen: "+addr, 1)
	os.WriteFile(cfg, []byte(fixed), 0o600)

	broker.publish("ward4b/bed-14/vitals", []string{vitals("MX450-Q", 0), "PATIENT SMITH, not JSON"})
	Eventually(t, 30*time.Second, func() bool {
		_, ready := getJSON(t, "http://"+addr+"/readyz")
		return ready["outbox"].(map[string]any)["dead_letters"].(float64) == 2
	}, func() string { return "no two dead letters\n" + gw.Log() })

	list := Run(t, "queue", "-config", cfg, "list")
	if list.Code != 0 || !strings.Contains(list.Stdout, "undecodable") || !strings.Contains(list.Stdout, "2 dead letter(s)") {
		t.Fatalf("queue list: exit %d\n%s%s", list.Code, list.Stdout, list.Stderr)
	}
	if strings.Contains(list.Stdout, "SMITH") {
		t.Fatal("queue list shows a payload")
	}
	var fhirID, rawID string
	for _, line := range strings.Split(list.Stdout, "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && regexp.MustCompile(`^\d+$`).MatchString(f[0]) {
			switch f[1] {
			case "fhir":
				fhirID = f[0]
			case "undecodable":
				rawID = f[0]
			}
		}
	}
	if fhirID == "" || rawID == "" {
		t.Fatalf("ids not found in:\n%s", list.Stdout)
	}

	// A wrong token is refused by the gateway.
	wrong := filepath.Join(dir, "wrong-token")
	os.WriteFile(wrong, []byte("not-it-0123456789abcdefghij"), 0o600)
	wrongCfg := filepath.Join(filepath.Dir(cfg), "wrong.yaml")
	os.WriteFile(wrongCfg, []byte(strings.Replace(fixed, token, wrong, 1)), 0o600)
	if r := Run(t, "queue", "-config", wrongCfg, "retry", fhirID); r.Code != 1 || !strings.Contains(r.Stderr, "401") {
		t.Fatalf("retry with a wrong token: exit %d\n%s", r.Code, r.Stderr)
	}
	// An undecodable frame cannot be delivered.
	if r := Run(t, "queue", "-config", cfg, "retry", rawID); r.Code != 1 || !strings.Contains(r.Stderr, "409") {
		t.Fatalf("retry of an undecodable frame: exit %d\n%s", r.Code, r.Stderr)
	}

	record.SetFaults(fhirserver.Faults{})
	if r := Run(t, "queue", "-config", cfg, "retry", fhirID); r.Code != 0 {
		t.Fatalf("retry: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	Eventually(t, 30*time.Second, func() bool { return observationsByIdentifier(record)[refusedHR] == 1 },
		func() string { return fmt.Sprintf("the retried Observation is not in the record\n%s", gw.Log()) })
	if r := Run(t, "queue", "-config", cfg, "drop", "-all"); r.Code != 0 {
		t.Fatalf("drop -all: exit %d\n%s", r.Code, r.Stderr)
	}
	if r := Run(t, "queue", "-config", cfg, "list"); !strings.Contains(r.Stdout, "no dead letters") {
		t.Fatalf("after drop -all:\n%s", r.Stdout)
	}
}
