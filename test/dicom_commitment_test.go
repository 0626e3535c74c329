package test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/dicom"
)

// commitmentResults is the modality's side of a storage commitment report
// that comes on an association the gateway opens: a dicom.Server taking
// N-EVENT-REPORTs, as a modality listening as SCP does.
type commitmentResults struct {
	got chan dicom.CommitmentResult
}

func (r *commitmentResults) CommitmentResult(ctx context.Context, callingAE string, res dicom.CommitmentResult) uint16 {
	r.got <- res
	return dicom.StatusSuccess
}

// commitmentSCU associates with the gateway as MODALITY, proposing
// Storage Commitment and Verification, on the project's own SCU.
func commitmentSCU(t *testing.T, port int) *dicom.Association {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	as, err := dicom.Dialer{CallingAE: "MODALITY", CalledAE: "WARDGATE"}.Dial(ctx, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		[]dicom.PresentationContextProposal{dicom.CommitmentProposal(),
			{AbstractSyntax: dicom.VerificationSOPClass, TransferSyntaxes: []string{dicom.ImplicitVRLittleEndian}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { as.Abort() })
	return as
}

// Storage commitment end to end, commit_after: forwarded: instances sent
// with storescu wait for a PACS (storescp) that is down; the gateway is
// SIGKILLed after its N-ACTION-RSP and restarted; once the PACS is up the
// report comes on a new association to the modality's configured address,
// with the stored instances committed and an unknown one failed (0112). A
// hostile N-ACTION gets a failure status, and the gateway goes on.
func TestDicomStorageCommitmentAcrossARestart(t *testing.T) {
	RequirePeers(t, "storescu", "storescp")
	pacsPort, pacsDir, scuPort := freePort(t), t.TempDir(), freePort(t)

	results := &commitmentResults{got: make(chan dicom.CommitmentResult, 4)}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(scuPort)))
	if err != nil {
		t.Fatal(err)
	}
	modality := &dicom.Server{AETitle: "MODALITY", CommitmentResults: results}
	go modality.Serve(ln)
	t.Cleanup(func() { modality.Shutdown(context.Background()) })

	p, _, cfg, port := dicomGateway(t, fmt.Sprintf(`  allow: [{ae_title: MODALITY, host: 127.0.0.1, port: %d}]
  forward: [{ae_title: PACS, host: 127.0.0.1, port: %d}]
  commitment: {commit_after: forwarded, timeout: 1h}
`, scuPort, pacsPort), "")

	study := "1.2.826.0.1.3680043.2.1125.88"
	files := studyFiles(t, study, 2, 64, 64)
	args := append([]string{"-xi", "-aet", "MODALITY", "-aec", "WARDGATE", "127.0.0.1", strconv.Itoa(port)}, files...)
	if out, err := dcmtkCmd("storescu", args...).CombinedOutput(); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	refs := []dicom.SOPReference{
		{SOPClassUID: dicom.CTImageStorage, SOPInstanceUID: study + ".1.1"},
		{SOPClassUID: dicom.CTImageStorage, SOPInstanceUID: study + ".1.2"},
		{SOPClassUID: dicom.CTImageStorage, SOPInstanceUID: study + ".1.99"}, // never sent
	}

	as := commitmentSCU(t, port)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// A hostile request first: refused, nothing else happens.
	if st, err := as.Action(ctx, dicom.StorageCommitmentPushModelSOPClass, dicom.StorageCommitmentPushModelSOPInstance, 1,
		[]byte(strings.Repeat("\x08\x00\x99\x11\xff\xff\xff\xff\xfe\xff\x00\xe0\xff\xff\xff\xff", 64))); err != nil || st == dicom.StatusSuccess {
		t.Fatalf("hostile N-ACTION: status 0x%04x, %v; want a failure status", st, err)
	}
	if st, err := as.Echo(ctx); err != nil || st != dicom.StatusSuccess {
		t.Fatalf("echo after a hostile N-ACTION: 0x%04x, %v", st, err)
	}
	if st, err := as.RequestCommitment(ctx, "1.2.826.0.1.3680043.2.1125.88.500", refs); err != nil || st != dicom.StatusSuccess {
		t.Fatalf("N-ACTION: 0x%04x, %v", st, err)
	}

	// Acknowledged means durable: killed now, the request is still there.
	p.Cmd.Process.Kill()
	p.Wait(t, 10*time.Second)
	select {
	case res := <-results.got:
		t.Fatalf("reported before the PACS had the instances: %+v", res)
	default:
	}
	again := Start(t, "run", "-config", cfg)
	again.WaitLog(t, `storage commitment requests waiting from before.*requests=1`, 30*time.Second)
	startStorescp(t, pacsPort, pacsDir)

	var res dicom.CommitmentResult
	select {
	case res = <-results.got:
	case <-ctx.Done():
		t.Fatalf("no storage commitment report after the restart:\n%s", again.Log())
	}
	if res.TransactionUID != "1.2.826.0.1.3680043.2.1125.88.500" || len(res.Committed) != 2 || len(res.Failed) != 1 ||
		res.Failed[0].SOPInstanceUID != refs[2].SOPInstanceUID || res.Failed[0].Reason != dicom.FailureNoSuchObject {
		t.Fatalf("report %+v", res)
	}
	if countDir(pacsDir) != 2 {
		t.Fatalf("reported committed with %d of 2 instances at the PACS", countDir(pacsDir))
	}
	Eventually(t, 30*time.Second, func() bool {
		d, _ := readyz(t, again)["dicom"].(map[string]any)
		c, _ := d["commitment"].(map[string]any)
		return c != nil && c["reports_sent"] == float64(1) && c["pending"] == float64(0)
	}, func() string { return fmt.Sprintf("/readyz dicom: %v", readyz(t, again)["dicom"]) })
}
