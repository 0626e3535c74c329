package gateway

import (
	"context"
	"net"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/wardgate/wardgate/dicom"
	"github.com/wardgate/wardgate/dicom/internal/dicomtest"
	"github.com/wardgate/wardgate/dicom/internal/dicomtest/dstest"
)

// commitmentSCU is a modality asking for storage commitment, written on
// the project's own SCU.
func commitmentSCU(t *testing.T, port string) *dicom.Association {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	as, err := dicom.Dialer{CallingAE: "MODALITY", CalledAE: "WARDGATE"}.Dial(ctx, net.JoinHostPort("127.0.0.1", port),
		[]dicom.PresentationContextProposal{dicom.CommitmentProposal()})
	if err != nil {
		t.Fatal(err)
	}
	if as.TransferSyntaxFor(dicom.StorageCommitmentPushModelSOPClass) == "" {
		t.Fatal("storage commitment not accepted")
	}
	t.Cleanup(func() { as.Abort() })
	return as
}

func ctRef(n int) dicom.SOPReference {
	return dicom.SOPReference{SOPClassUID: dicom.CTImageStorage, SOPInstanceUID: dicomtest.InstanceUID(n)}
}

func pendingRecords(t *testing.T, n *Node) int {
	t.Helper()
	recs, err := n.Committer.all()
	if err != nil {
		t.Fatal(err)
	}
	return len(recs)
}

// Stored instances are committed, an unknown one and one named with
// another SOP class fail at once, on the association that asked; the
// request is gone once the report was answered.
func TestCommitmentOfSpooledInstances(t *testing.T) {
	spool := openSpool(t, t.TempDir(), 0)
	files := dicomtest.WriteCTs(t, 700, 2)
	for _, f := range files {
		storeFile(t, spool, f)
	}
	n, port, _ := startNode(t, NodeConfig{Spool: spool, Commitment: &CommitmentConfig{After: CommitWhenSpooled}})
	as := commitmentSCU(t, port)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mr := dicom.SOPReference{SOPClassUID: "1.2.840.10008.5.1.4.1.1.4", SOPInstanceUID: dicomtest.InstanceUID(701)}
	refs := []dicom.SOPReference{ctRef(700), mr, ctRef(799)}
	if st, err := as.RequestCommitment(ctx, "1.2.3.700", refs); err != nil || st != dicom.StatusSuccess {
		t.Fatalf("N-ACTION: 0x%04x, %v", st, err)
	}
	res, err := as.ReceiveCommitmentResult(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := dicom.CommitmentResult{TransactionUID: "1.2.3.700", Committed: refs[:1], Failed: []dicom.FailedReference{
		{SOPReference: mr, Reason: dicom.FailureClassConflict}, {SOPReference: refs[2], Reason: dicom.FailureNoSuchObject}}}
	if !reflect.DeepEqual(res, want) {
		t.Fatalf("report %+v\nwant %+v", res, want)
	}
	dicomtest.WaitFor(t, "the request removed once answered", func() bool {
		st := n.Committer.Stats()
		return pendingRecords(t, n) == 0 && st.Pending == 0 && st.ReportsSent == 1
	})
	if st := n.Committer.Stats(); st.Committed != 1 || st.Failed != 2 || st.Requests != 1 || st.Waiting != 0 {
		t.Fatalf("stats %+v", st)
	}
	if err := as.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// Under commit_after forwarded an instance the PACS does not have yet
// waits, and is kept from the pruner, until the PACS (down at first) has it.
func TestCommitmentWaitsUntilForwarded(t *testing.T) {
	dir := t.TempDir()
	spool := openSpool(t, filepath.Join(dir, "spool"), 0)
	file := dicomtest.WriteCT(t, t.TempDir(), "ct.dcm", 710)
	storeFile(t, spool, file)
	pacsPort := dicomtest.FreePort(t)
	n, port, _ := startNode(t, NodeConfig{Spool: spool, Forward: []Destination{{AETitle: "PACS", Host: "127.0.0.1", Port: pacsPort}},
		Commitment: &CommitmentConfig{After: CommitWhenForwarded}})
	as := commitmentSCU(t, port)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if st, err := as.RequestCommitment(ctx, "1.2.3.710", []dicom.SOPReference{ctRef(710)}); err != nil || st != dicom.StatusSuccess {
		t.Fatalf("N-ACTION: 0x%04x, %v", st, err)
	}
	if st := n.Committer.Stats(); st.Waiting != 1 || !n.Committer.Holds(dicomtest.InstanceUID(710)) {
		t.Fatalf("stats %+v: the reference should wait, holding its instance", st)
	}
	recv := t.TempDir()
	storescpAt(t, pacsPort, recv)
	res, err := as.ReceiveCommitmentResult(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Committed) != 1 || len(res.Failed) != 0 {
		t.Fatalf("report %+v", res)
	}
	if countFiles(recv) != 1 {
		t.Fatal("reported committed before the PACS had it")
	}
	_, want := dstest.DataSetOf(t, file)
	_, got := dstest.DataSetOf(t, filepath.Join(recv, "CT."+dicomtest.InstanceUID(710)))
	if !reflect.DeepEqual(got, want) {
		t.Fatal("the PACS has other bytes")
	}
	if n.Committer.Holds(dicomtest.InstanceUID(710)) {
		t.Fatal("a decided reference still holds its instance")
	}
}

// commitmentResults is the modality's side of a report on a new
// association: a dicom.Server taking N-EVENT-REPORTs.
type commitmentResults struct{ got chan dicom.CommitmentResult }

func (r *commitmentResults) CommitmentResult(ctx context.Context, callingAE string, res dicom.CommitmentResult) uint16 {
	r.got <- res
	return dicom.StatusSuccess
}

// The requester leaves before its report: it goes on a new association
// to the requester's address, retried while the requester is away and
// across a restart of the node.
func TestCommitmentReportOnANewAssociationAcrossARestart(t *testing.T) {
	dir := t.TempDir()
	spool := openSpool(t, filepath.Join(dir, "spool"), 0)
	storeFile(t, spool, dicomtest.WriteCT(t, t.TempDir(), "ct.dcm", 720))
	scuPort := dicomtest.FreePort(t)
	cfg := NodeConfig{Spool: spool, Commitment: &CommitmentConfig{After: CommitWhenSpooled,
		Peers: map[string]string{"MODALITY": net.JoinHostPort("127.0.0.1", strconv.Itoa(scuPort))}}}
	n, port, stop := startNode(t, cfg)
	as := commitmentSCU(t, port)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if st, err := as.RequestCommitment(ctx, "1.2.3.720", []dicom.SOPReference{ctRef(720)}); err != nil || st != dicom.StatusSuccess {
		t.Fatalf("N-ACTION: 0x%04x, %v", st, err)
	}
	as.Abort()
	dicomtest.WaitFor(t, "a failed delivery recorded", func() bool { return n.Committer.Stats().Retrying == 1 })
	stop()

	results := &commitmentResults{got: make(chan dicom.CommitmentResult, 1)}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(scuPort)))
	if err != nil {
		t.Fatal(err)
	}
	scp := &dicom.Server{AETitle: "MODALITY", CommitmentResults: results, Logger: dicomtest.DiscardLogger}
	go scp.Serve(ln)
	t.Cleanup(func() { scp.Shutdown(context.Background()) })

	n, _, _ = startNode(t, cfg)
	select {
	case res := <-results.got:
		if res.TransactionUID != "1.2.3.720" || len(res.Committed) != 1 {
			t.Fatalf("report %+v", res)
		}
	case <-ctx.Done():
		t.Fatal("no report after the restart")
	}
	dicomtest.WaitFor(t, "the request removed", func() bool { return pendingRecords(t, n) == 0 && n.Committer.Stats().Pending == 0 })
}

// Requests are bounded: one more than MaxPending is refused with 0213.
func TestCommitmentPendingRequestsAreBounded(t *testing.T) {
	spool := openSpool(t, t.TempDir(), 0)
	n, port, _ := startNode(t, NodeConfig{Spool: spool, Forward: []Destination{{AETitle: "PACS", Host: "127.0.0.1", Port: dicomtest.FreePort(t)}},
		Commitment: &CommitmentConfig{After: CommitWhenForwarded, MaxPending: 1}})
	storeFile(t, spool, dicomtest.WriteCT(t, t.TempDir(), "ct.dcm", 730))
	as := commitmentSCU(t, port)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if st, err := as.RequestCommitment(ctx, "1.2.3.730", []dicom.SOPReference{ctRef(730)}); err != nil || st != dicom.StatusSuccess {
		t.Fatalf("first: 0x%04x, %v", st, err)
	}
	if st, err := as.RequestCommitment(ctx, "1.2.3.731", []dicom.SOPReference{ctRef(730)}); err != nil || st != dicom.StatusResourceLimitation {
		t.Fatalf("second: 0x%04x, %v; want 0213", st, err)
	}
	// The same transaction again replaces the first: not one more.
	if st, err := as.RequestCommitment(ctx, "1.2.3.730", []dicom.SOPReference{ctRef(730)}); err != nil || st != dicom.StatusSuccess {
		t.Fatalf("repeated: 0x%04x, %v", st, err)
	}
	if st := n.Committer.Stats(); st.Pending != 1 || st.Refused != 1 || st.Waiting != 1 {
		t.Fatalf("stats %+v", st)
	}
}
