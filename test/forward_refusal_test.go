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
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardgate/wardgate/dicom"
)

// refusingPACS is a C-STORE SCP that answers 0124 (refused: not
// authorized, PS3.4 Annex GG) while refuse is set and keeps what it takes
// otherwise. DCMTK's storescp cannot be told to refuse, so this one is
// built on the project's own SCP.
type refusingPACS struct {
	refuse atomic.Bool
	mu     sync.Mutex
	stored map[string]bool // SOP Instance UID
}

func (p *refusingPACS) BeginStore(ctx context.Context, req dicom.StoreRequest) (dicom.StoreWriter, error) {
	return &refusingWriter{p: p, uid: req.SOPInstanceUID}, nil
}

func (p *refusingPACS) has() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.stored)
}

type refusingWriter struct {
	p   *refusingPACS
	uid string
}

func (w *refusingWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *refusingWriter) Abort()                      {}
func (w *refusingWriter) Commit(context.Context) (uint16, error) {
	if w.p.refuse.Load() {
		return 0x0124, nil
	}
	w.p.mu.Lock()
	w.p.stored[w.uid] = true
	w.p.mu.Unlock()
	return dicom.StatusSuccess, nil
}

// A PACS that refuses instances for good: they become dead letters of kind
// forward beside every other kind, listed by `wardgate queue list`; a retry
// sends one again (the PACS takes it now), a drop gives the other up, and
// both then leave the spool.
func TestQueueListsRetriesAndDropsPACSRefusals(t *testing.T) {
	gw, pacs, cfg, port := refusingSetup(t)

	const study = "1.2.826.0.1.3680043.2.1125.91"
	storescu(t, port, studyOf(t, t.TempDir(), study, "PID-E2E", 1, 2)...)
	// Five refusals each, 1 s doubling apart: about 15 s.
	var ids []string
	Eventually(t, 60*time.Second, func() bool {
		ids = nil
		list := Run(t, "queue", "-config", cfg, "list")
		for _, line := range strings.Split(list.Stdout, "\n") {
			if f := strings.Fields(line); len(f) > 2 && f[1] == "forward" {
				ids = append(ids, f[0])
			}
		}
		return len(ids) == 2
	}, func() string { return "no two forward dead letters\n" + gw.Log() })
	list := Run(t, "queue", "-config", cfg, "list")
	if !strings.Contains(list.Stdout, "PACS@127.0.0.1") || !strings.Contains(list.Stdout, "not authorized") {
		t.Fatalf("the list does not say who refused and why:\n%s", list.Stdout)
	}
	if strings.Contains(list.Stdout, "PID-E2E") || strings.Contains(gw.Log(), "PID-E2E") {
		t.Fatal("a Patient ID reached the list or the log")
	}
	forward := func() map[string]any {
		return readyz(t, gw)["dicom"].(map[string]any)["forward"].([]any)[0].(map[string]any)
	}
	if f := forward(); f["dead_lettered"] != float64(2) {
		t.Fatalf("forward status %v", f)
	}

	pacs.refuse.Store(false)
	if r := Run(t, "queue", "-config", cfg, "retry", ids[0]); r.Code != 0 {
		t.Fatalf("retry: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	Eventually(t, 30*time.Second, func() bool { return pacs.has() == 1 },
		func() string { return "the retried instance did not reach the PACS\n" + gw.Log() })
	if r := Run(t, "queue", "-config", cfg, "drop", ids[1]); r.Code != 0 {
		t.Fatalf("drop: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if r := Run(t, "queue", "-config", cfg, "list"); !strings.Contains(r.Stdout, "no dead letters") {
		t.Fatalf("after a retry and a drop:\n%s", r.Stdout)
	}
	// Both leave the spool: one delivered, one given up.
	Eventually(t, 60*time.Second, func() bool {
		return readyz(t, gw)["dicom"].(map[string]any)["pruned"].(float64) == 2
	}, func() string { return "the instances stayed in the spool\n" + gw.Log() })
	if f := forward(); f["dead_lettered"] != float64(0) || pacs.has() != 1 {
		t.Fatalf("forward status %v, PACS has %d", f, pacs.has())
	}
}

// refusingSetup starts a refusingPACS (refusing) and wardgate forwarding to
// it, with refusals final after 1 s, the admin token, http.listen on a
// fixed port (so that wardgate queue reaches it) and the test patient in
// the record; it returns the gateway, the PACS, the config and the DICOM
// port.
func refusingSetup(t *testing.T) (gw *Process, pacs *refusingPACS, cfg string, port int) {
	t.Helper()
	RequirePeers(t, "storescu")
	pacs = &refusingPACS{stored: map[string]bool{}}
	pacs.refuse.Store(true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dicom.Server{AETitle: "PACS", Store: pacs, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })

	port = freePort(t)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	record, cfg0, _ := recordWith(t, fmt.Sprintf(`dicom:
  listen: 127.0.0.1:%d
  ae_title: WARDGATE
  allow_any: true
  study_stable_after: 1s
  refused_for_good_after: 1s
  forward:
    - {ae_title: PACS, host: 127.0.0.1, port: %d}
`, port, ln.Addr().(*net.TCPAddr).Port))
	cfg = cfg0
	token := filepath.Join(filepath.Dir(cfg), "admin-token")
	os.WriteFile(token, []byte("s3cret-token-0123456789abcdef\n"), 0o600)
	b, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, []byte(strings.Replace(string(b), "http:\n  listen: 127.0.0.1:0\n",
		"http:\n  listen: "+httpAddr+"\n  admin_token_file: "+token+"\n", 1)), 0o600)
	record.Put("Patient", "p-e2e", json.RawMessage(`{"resourceType":"Patient","id":"p-e2e","identifier":[{"system":"urn:oid:1.2.3.4","value":"PID-E2E"}]}`))
	gw = Start(t, "run", "-config", cfg)
	gw.WaitLog(t, `dicom listening`, 20*time.Second)
	return gw, pacs, cfg, port
}
