package test

import (
	"strings"
	"syscall"
	"testing"
	"time"
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
	gw, pacs, cfg, port := refusingSetup(t)
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
