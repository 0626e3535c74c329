package dicom

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/wardgate/wardgate/dicom/internal/dicomtest"
)

// gatedStore holds every Commit until the gate opens, counting how many
// wait at once.
type gatedStore struct {
	gate           chan struct{}
	mu             sync.Mutex
	now, most, all int
}

func (g *gatedStore) BeginStore(ctx context.Context, req StoreRequest) (StoreWriter, error) {
	return &gatedWriter{g: g}, nil
}

type gatedWriter struct {
	g *gatedStore
	n int
}

func (w *gatedWriter) Write(b []byte) (int, error) { w.n += len(b); return len(b), nil }
func (w *gatedWriter) Abort()                      {}
func (w *gatedWriter) Commit(ctx context.Context) (uint16, error) {
	g := w.g
	g.mu.Lock()
	g.now++
	g.all++
	g.most = max(g.most, g.now)
	g.mu.Unlock()
	<-g.gate
	g.mu.Lock()
	g.now--
	g.mu.Unlock()
	return StatusSuccess, nil
}

func (g *gatedStore) counts() (now, most, all int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.now, g.most, g.all
}

// sendStores puts n C-STORE-RQs on as without waiting for answers, as a
// requestor using its asynchronous operations window does.
func sendStores(t *testing.T, as *Association, first, n int) {
	t.Helper()
	pcid := as.accepted[0].ID
	for i := first; i < first+n; i++ {
		uid := fmt.Sprintf("1.2.826.0.1.3680043.2.1125.99.%d", i)
		if err := as.a.sendCommand(pcid, &command{AffectedSOPClassUID: dicomtest.CTImage, CommandField: cStoreRQ, MessageID: uint16(i), AffectedSOPInstanceUID: uid}); err != nil {
			t.Fatal(err)
		}
		if _, err := as.a.sendDataSet(pcid, bytes.NewReader(make([]byte, 4096))); err != nil {
			t.Fatal(err)
		}
	}
}

// A requestor that offers an asynchronous operations window gets ours at
// most (PS3.7 D.3.3.3): that many instances are made durable at once while
// the next one arrives, each answered when it is durable; no more than the
// window wait at once; an A-RELEASE-RQ is answered only after every
// instance sent before it. A requestor that offers no window works one at
// a time.
func TestAsynchronousOperationsWindow(t *testing.T) {
	g := &gatedStore{gate: make(chan struct{})}
	s := quietServer(&Server{Store: g, MaxAsyncOps: 3})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	ctx := context.Background()
	proposals := StorageProposals([]SOPClassTransfer{{dicomtest.CTImage, ImplicitVRLittleEndian}})

	plain, err := Dialer{CallingAE: "MOD", CalledAE: "X"}.Dial(ctx, ln.Addr().String(), proposals)
	if err != nil {
		t.Fatal(err)
	}
	if w := plain.AsyncWindow(); w != 1 {
		t.Fatalf("window without a proposal: %d", w)
	}
	plain.Abort()

	as, err := Dialer{CallingAE: "MOD", CalledAE: "X", MaxOpsInvoked: 8}.Dial(ctx, ln.Addr().String(), proposals)
	if err != nil {
		t.Fatal(err)
	}
	defer as.Abort()
	if w := as.AsyncWindow(); w != 3 {
		t.Fatalf("window granted for 8 asked with MaxAsyncOps 3: %d", w)
	}
	sendStores(t, as, 1, 5)
	dicomtest.WaitFor(t, "three commits at once", func() bool { now, _, _ := g.counts(); return now == 3 })
	// The release comes while instances are still being made durable.
	if err := as.a.write(releaseRQPDU); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // a moment for a wrong server to commit a fourth
	if _, most, _ := g.counts(); most != 3 {
		t.Fatalf("%d commits at once, window 3", most)
	}
	close(g.gate)
	answered := map[uint16]uint16{}
	for len(answered) < 5 {
		_, rsp, err := as.a.readCommand()
		if err != nil {
			t.Fatalf("after %d answers: %v", len(answered), err)
		}
		if rsp.CommandField != cStoreRSP {
			t.Fatalf("command 0x%04x before every C-STORE was answered", rsp.CommandField)
		}
		answered[rsp.MessageIDBeingRespondedTo] = rsp.Status
	}
	for id := uint16(1); id <= 5; id++ {
		if st, ok := answered[id]; !ok || st != StatusSuccess {
			t.Fatalf("message %d: answered %v with 0x%04x", id, ok, st)
		}
	}
	as.a.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if h, _, err := readPDU(as.a.br, as.a.ourMax); err != nil || h.Type != pduReleaseRP {
		t.Fatalf("after the answers: PDU %+v, %v; want A-RELEASE-RP", h, err)
	}
	if st := s.Stats(); st.InstancesStored != 5 {
		t.Fatalf("stats %+v", st)
	}
}
