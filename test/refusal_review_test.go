package test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wardgate/wardgate/dicom"
)

// Review of PACS refusals as dead letters and of the lifecycle, against the
// built binary.

func reviewForwardIDs(t *testing.T, cfg string) []string {
	t.Helper()
	var ids []string
	list := Run(t, "queue", "-config", cfg, "list")
	for _, line := range strings.Split(list.Stdout, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[1] == "forward" {
			ids = append(ids, f[0])
		}
	}
	return ids
}

// A gateway SIGKILLed as (or just after) a PACS refusal becomes final: at
// the next start the refusal is a dead letter once, and again once after
// another restart; `wardgate queue drop -all` gives it up, and the
// instance, charted, leaves the spool without the PACS ever having it.
func TestReviewRefusalSurvivesSIGKILLOnceAndDropAllLetsItGo(t *testing.T) {
	RequirePeers(t, "storescu")
	pacs := &refusingPACS{stored: map[string]bool{}}
	pacs.refuse.Store(true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dicom.Server{AETitle: "PACS", Store: pacs, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })

	port := freePort(t)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	record, cfg, _ := recordWith(t, fmt.Sprintf(`dicom:
  listen: 127.0.0.1:%d
  ae_title: WARDGATE
  study_stable_after: 1s
  refused_for_good_after: 1s
  forward:
    - {ae_title: PACS, host: 127.0.0.1, port: %d}
`, port, ln.Addr().(*net.TCPAddr).Port))
	token := filepath.Join(filepath.Dir(cfg), "admin-token")
	os.WriteFile(token, []byte("s3cret-token\n"), 0o600)
	b, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, []byte(strings.Replace(string(b), "http:\n  listen: 127.0.0.1:0\n",
		"http:\n  listen: "+httpAddr+"\n  admin_token_file: "+token+"\n", 1)), 0o600)
	record.Put("Patient", "p-e2e", json.RawMessage(`{"resourceType":"Patient","id":"p-e2e","identifier":[{"system":"urn:oid:1.2.3.4","value":"PID-E2E"}]}`))

	gw := Start(t, "run", "-config", cfg)
	gw.WaitLog(t, `dicom listening`, 20*time.Second)
	storescu(t, port, studyOf(t, t.TempDir(), "1.2.826.0.1.3680043.2.1125.93", "PID-E2E", 1, 1)...)
	gw.WaitLog(t, `refused an instance for good`, 60*time.Second)
	gw.Cmd.Process.Signal(syscall.SIGKILL)
	gw.Wait(t, 10*time.Second)

	gw = Start(t, "run", "-config", cfg)
	gw.WaitLog(t, `dicom listening`, 20*time.Second)
	Eventually(t, 60*time.Second, func() bool { return len(reviewForwardIDs(t, cfg)) >= 1 },
		func() string { return "the refusal is not listed after the restart\n" + gw.Log() })
	time.Sleep(2 * time.Second)
	if ids := reviewForwardIDs(t, cfg); len(ids) != 1 {
		t.Fatalf("%d forward dead letters after the SIGKILL and restart, want 1", len(ids))
	}
	gw.Cmd.Process.Signal(syscall.SIGTERM)
	if code := gw.Wait(t, 40*time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit %d", code)
	}

	gw = Start(t, "run", "-config", cfg)
	gw.WaitLog(t, `dicom listening`, 20*time.Second)
	time.Sleep(time.Second)
	if ids := reviewForwardIDs(t, cfg); len(ids) != 1 {
		t.Fatalf("%d forward dead letters after a second restart, want 1", len(ids))
	}
	r := Run(t, "queue", "-config", cfg, "drop", "-all")
	if r.Code != 0 || !strings.Contains(r.Stdout, `"not_droppable":0`) {
		t.Fatalf("drop -all: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if r := Run(t, "queue", "-config", cfg, "list"); !strings.Contains(r.Stdout, "no dead letters") {
		t.Fatalf("after drop -all:\n%s", r.Stdout)
	}
	Eventually(t, 60*time.Second, func() bool {
		d, _ := readyz(t, gw)["dicom"].(map[string]any)
		return d != nil && d["pruned"] == float64(1)
	}, func() string { return "the dropped instance stayed in the spool\n" + gw.Log() })
	if pacs.has() != 0 {
		t.Fatal("the PACS has the instance it refused")
	}
}
