package gateway

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/wardgate/wardgate/buffer"
	"github.com/wardgate/wardgate/dicom/internal/dicomtest"
)

// Forward destinations changed while the node runs (a reload): an added
// destination gets every instance still in the spool and every one that
// arrives after, as it would after a restart; a removed one is stopped and
// holds nothing back any more, from the pruner or from a storage
// commitment; one that stays is not disturbed.
func TestSetForwardAddsAndRemovesDestinationsLive(t *testing.T) {
	files := dicomtest.WriteCTs(t, 300, 14)
	dir := t.TempDir()
	spool := openSpool(t, filepath.Join(dir, "spool"), 0)
	portA, portB, portC := dicomtest.FreePort(t), dicomtest.FreePort(t), dicomtest.FreePort(t)
	recvA, recvB := t.TempDir(), t.TempDir()
	storescpAt(t, portA, recvA)
	storescpAt(t, portB, recvB)
	a := Destination{AETitle: "PACS", Host: "127.0.0.1", Port: portA}
	b := Destination{AETitle: "PACS", Host: "127.0.0.1", Port: portB}
	c := Destination{AETitle: "PACS", Host: "127.0.0.1", Port: portC} // never listens
	sink := &recordingSink{}
	n, port, _ := startNode(t, NodeConfig{
		Spool: spool, Forward: []Destination{a}, Sink: sink, StableAfter: 50 * time.Millisecond,
		Commitment: &CommitmentConfig{After: CommitWhenForwarded},
	})

	send := func(fs []string) {
		args := append([]string{"-xi", "-aet", "MODALITY", "-aec", "WARDGATE", "127.0.0.1", port}, fs...)
		dicomtest.MustDCMTK(t, "storescu", args...)
	}
	send(files[:4])
	dicomtest.WaitFor(t, "4 at A", func() bool { return countFiles(recvA) == 4 })

	// B and C added: B gets the 4 in the spool and what comes next.
	changes, err := n.SetForward([]Destination{a, b, c})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"dicom.forward: " + b.LedgerName() + " added", "dicom.forward: " + c.LedgerName() + " added"}
	if !slices.Equal(changes, want) {
		t.Fatalf("changes %q, want %q", changes, want)
	}
	send(files[4:8])
	dicomtest.WaitFor(t, "8 at B, 8 at A", func() bool { return countFiles(recvB) == 8 && countFiles(recvA) == 8 })
	if got := len(n.Forwarders()); got != 3 {
		t.Fatalf("%d forwarders, want 3", got)
	}
	dicomtest.WaitFor(t, "C with the 8 waiting", func() bool {
		st := n.Stats()
		return len(st.Forward) == 3 && st.Forward[2].Waiting == 8
	})

	// The record has the study: only C (down) holds the spool back.
	var uid string
	dicomtest.WaitFor(t, "the study handed over with 8", func() bool {
		for _, s := range sink.snapshot() {
			if len(s) == 8 {
				uid = s[0].StudyInstanceUID
				return true
			}
		}
		return false
	})
	chartedAll(t, n, uid)
	prune := func() int64 {
		if err := n.Pruner.Prune(context.Background()); err != nil {
			t.Fatal(err)
		}
		return spool.Stats().Instances
	}
	dicomtest.WaitFor(t, "A's and B's marks", func() bool {
		ma, _ := n.Ledger.Forwarded(a.LedgerName())
		mb, _ := n.Ledger.Forwarded(b.LedgerName())
		return len(ma) == 8 && len(mb) == 8
	})
	if left := prune(); left != 8 {
		t.Fatalf("%d in the spool, want the 8 C has not", left)
	}

	// C removed: nothing waits for it; A and B go on.
	changes, err = n.SetForward([]Destination{a, b})
	if err != nil || !slices.Equal(changes, []string{"dicom.forward: " + c.LedgerName() + " removed"}) {
		t.Fatalf("changes %q, %v", changes, err)
	}
	if left := prune(); left != 0 {
		t.Fatalf("%d in the spool after C was removed, want 0", left)
	}
	send(files[8:12])
	dicomtest.WaitFor(t, "12 at A and B", func() bool { return countFiles(recvA) == 12 && countFiles(recvB) == 12 })

	// B's settings changed (its TLS, its credentials): its forwarder is
	// started again, and goes on.
	changes, err = n.SetForward([]Destination{a, b}, b.LedgerName())
	if err != nil || !slices.Equal(changes, []string{"dicom.forward: " + b.LedgerName() + " changed: restarted"}) {
		t.Fatalf("changes %q, %v", changes, err)
	}
	send(files[12:14])
	dicomtest.WaitFor(t, "14 at A and B", func() bool { return countFiles(recvA) == 14 && countFiles(recvB) == 14 })

	// A destination given twice is refused, nothing changed.
	if _, err := n.SetForward([]Destination{a, a}); err == nil {
		t.Fatal("a destination twice was accepted")
	}
	if got := len(n.Forwarders()); got != 2 {
		t.Fatalf("%d forwarders after a refused change, want 2", got)
	}
}

// chartedAll marks the instances of a study as in the record, as the
// gateway's delivery does once the record acknowledged its ImagingStudy.
func chartedAll(t *testing.T, n *Node, study string) {
	t.Helper()
	marks := map[string]ChartedMark{}
	handed := time.Now()
	err := n.Assembler.Spool.Each(func(in buffer.Instance) bool {
		h, err := HeaderOf(in)
		if err == nil && h.StudyInstanceUID == study {
			marks[in.Key] = ChartedMark{SHA256: in.SHA256, HandedAt: handed}
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	n.Ledger.MarkCharted(study, marks)
	n.Ledger.MarkStudyDelivered(study, handed.Add(time.Millisecond))
}
