package gateway

import (
	"context"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/wardgate/wardgate/dicom"
	"github.com/wardgate/wardgate/dicom/internal/dicomtest"
)

// A report that could not be delivered is tried again at NextTry, a wall
// clock time. When the clock is set back an hour (NTP correcting a box
// that ran fast, a technician fixing the time zone) after a retry was
// scheduled a few seconds ahead, that retry is an hour and some seconds
// away: the modality, back and listening, waits an hour for a report it
// could have now. No backoff is ever longer than its maximum, so a retry
// further away than that is due now.
func TestReview13bCommitmentRetryAfterTheClockWentBack(t *testing.T) {
	dir := t.TempDir()
	spool := openSpool(t, filepath.Join(dir, "spool"), 0)
	storeFile(t, spool, dicomtest.WriteCT(t, t.TempDir(), "ct.dcm", 740))
	scuPort := dicomtest.FreePort(t)
	cfg := NodeConfig{Spool: spool, Commitment: &CommitmentConfig{After: CommitWhenSpooled,
		Peers: map[string]string{"MODALITY": net.JoinHostPort("127.0.0.1", strconv.Itoa(scuPort))}}}
	n, port, stop := startNode(t, cfg)
	as := commitmentSCU(t, port)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if st, err := as.RequestCommitment(ctx, "1.2.3.740", []dicom.SOPReference{ctRef(740)}); err != nil || st != dicom.StatusSuccess {
		t.Fatalf("N-ACTION: 0x%04x, %v", st, err)
	}
	as.Abort()
	dicomtest.WaitFor(t, "a failed delivery recorded", func() bool { return n.Committer.Stats().Retrying == 1 })
	// The clock goes back an hour: the next try, seconds ahead when it
	// was written, is now an hour and seconds ahead.
	c := n.Committer
	c.recMu.Lock()
	recs, err := c.all()
	if err != nil || len(recs) != 1 {
		c.recMu.Unlock()
		t.Fatalf("records %v, %v", recs, err)
	}
	recs[0].NextTry = recs[0].NextTry.Add(time.Hour)
	err = c.write(recs[0])
	c.recMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	stop()

	results := &commitmentResults{got: make(chan dicom.CommitmentResult, 1)}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(scuPort)))
	if err != nil {
		t.Fatal(err)
	}
	scp := &dicom.Server{AETitle: "MODALITY", CommitmentResults: results, Logger: dicomtest.DiscardLogger}
	go scp.Serve(ln)
	t.Cleanup(func() { scp.Shutdown(context.Background()) })

	startNode(t, cfg)
	select {
	case res := <-results.got:
		if res.TransactionUID != "1.2.3.740" || len(res.Committed) != 1 {
			t.Fatalf("report %+v", res)
		}
	case <-ctx.Done():
		t.Fatal("no report: the retry waits for the hour the clock went back")
	}
}
