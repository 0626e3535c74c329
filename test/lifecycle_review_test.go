package test

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// SIGTERM while a modality sends a study: the association in progress is
// let finish (every instance acknowledged), the gateway exits 0, and after
// the restart every instance reaches the PACS and the study the record,
// whole, once.
func TestReviewSIGTERMDuringTransferLetsTheAssociationFinish(t *testing.T) {
	RequirePeers(t, "storescu", "storescp")
	pacsPort, pacsDir := freePort(t), t.TempDir()
	p, record, cfg, port := dicomGateway(t, fmt.Sprintf(`  forward: [{ae_title: PACS, host: 127.0.0.1, port: %d}]
  study_stable_after: 1s
`, pacsPort), "")
	const n = 300
	files := studyFiles(t, "1.2.826.0.1.3680043.2.1125.94", n, 256, 256)
	args := append([]string{"-v", "-xi", "-aet", "MODALITY", "-aec", "WARDGATE", "127.0.0.1", strconv.Itoa(port)}, files...)
	scu := dcmtkCmd("storescu", args...)
	var out syncBuffer
	scu.Stdout, scu.Stderr = &out, &out
	if err := scu.Start(); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 30*time.Second, func() bool { return len(acknowledged(out.String())) >= 20 },
		func() string { return "storescu made no progress:\n" + out.String() })
	p.Cmd.Process.Signal(syscall.SIGTERM)
	atSignal := len(acknowledged(out.String()))
	scuErr := scu.Wait()
	code := p.Wait(t, 90*time.Second)
	acked := acknowledged(out.String())
	t.Logf("storescu: %d of %d acknowledged at SIGTERM, %d in the end, err %v; wardgate exit %d", atSignal, n, len(acked), scuErr, code)
	if atSignal >= n {
		t.Fatal("the transfer finished before SIGTERM")
	}
	if code != 0 || !strings.Contains(p.Log(), "stopped cleanly") {
		t.Fatalf("wardgate exit %d after SIGTERM:\n%s", code, p.Log())
	}
	if len(acked) != n || scuErr != nil {
		t.Errorf("the association in progress was not let finish: %d of %d acknowledged (%v)", len(acked), n, scuErr)
	}

	startStorescp(t, pacsPort, pacsDir)
	p2 := Start(t, "run", "-config", cfg)
	p2.WaitLog(t, `dicom listening`, 20*time.Second)
	Eventually(t, 60*time.Second, func() bool { return countDir(pacsDir) == len(acked) },
		func() string { return fmt.Sprintf("%d of %d at storescp", countDir(pacsDir), len(acked)) })
	Eventually(t, 30*time.Second, func() bool { return studyHas(record, len(acked)) },
		func() string { return fmt.Sprintf("ImagingStudies: %d", len(imagingStudies(record))) })
}
