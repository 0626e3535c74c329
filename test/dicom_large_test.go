package test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	dicomsim "github.com/wardgate/wardgate/dicom/sim"

	"github.com/wardgate/wardgate/dicom"
)

// vmHWM is a process's peak resident memory, from /proc.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// A 1 GiB instance streams from the socket to the spool: the gateway's
// peak resident memory stays under 100 MiB, and the instance is stored
// whole and charted.
func TestDicomOneGiBInstanceInBoundedMemory(t *testing.T) {
	gw, record, _, port := dicomGateway(t, "  study_stable_after: 1s\n", "buffer: {spool_quota: 3GiB}\n")
	before := vmHWM(t, gw.Cmd.Process.Pid)
	st := dicomsim.SyntheticStudy{StudyUID: "1.2.826.0.1.3680043.2.1125.7001", SeriesUID: "1.2.826.0.1.3680043.2.1125.7001.1",
		PatientID: "PID-E2E", PatientName: "Large^Instance"}
	ds, size := st.Instance(1, 23170, 23170) // 1.07 GB of pixels
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	d := dicom.Dialer{CallingAE: "BIGCT", CalledAE: "WARDGATE"}
	a, err := d.Dial(ctx, fmt.Sprintf("127.0.0.1:%d", port), dicom.ExactStorageProposals([]dicom.SOPClassTransfer{{SOPClassUID: dicom.CTImageStorage, TransferSyntaxUID: dicom.ImplicitVRLittleEndian}}))
	if err != nil {
		t.Fatal(err)
	}
	status, err := a.Store(ctx, dicom.CTImageStorage, st.InstanceUID(1), dicom.ImplicitVRLittleEndian, ds)
	if err != nil || status != 0 {
		t.Fatalf("C-STORE of %d bytes: status %04X, %v", size, status, err)
	}
	a.Release(ctx)
	peak := vmHWM(t, gw.Cmd.Process.Pid)
	t.Logf("%d bytes received; gateway peak RSS %d MiB (%d MiB before)", size, peak>>20, before>>20)
	if peak > 100<<20 {
		t.Fatalf("peak resident memory %d MiB, want under 100 MiB", peak>>20)
	}
	Eventually(t, 60*time.Second, func() bool { return studyHas(record, 1) },
		func() string { return "the study did not reach the record\n" + gw.Log() })
}
