package dicom

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardgate/wardgate/dicom/internal/dicomtest"
)

func TestEchoscu(t *testing.T) {
	s := quietServer(&Server{
		AETitle: "WARDGATE",
		Allow:   func(p Peer) bool { return p.CallingAE != "INTRUDER" },
	})
	host, port := startServer(t, s)
	for _, tc := range []struct {
		name, calling, called string
		ok                    bool
		want                  string
	}{
		{"accepted", "MODALITY", "WARDGATE", true, ""},
		{"wrong called AE", "MODALITY", "ELSEWHERE", false, "Called AE Title Not Recognized"},
		{"calling AE not allowed", "INTRUDER", "WARDGATE", false, "Calling AE Title Not Recognized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := dicomtest.DCMTK(t, "echoscu", "-v", "-aet", tc.calling, "-aec", tc.called, host, port)
			if tc.ok && err != nil {
				t.Fatalf("echoscu failed: %v\n%s", err, out)
			}
			if !tc.ok && (err == nil || !strings.Contains(out, tc.want)) {
				t.Fatalf("echoscu: %v, want a rejection saying %q:\n%s", err, tc.want, out)
			}
		})
	}
	if st := s.Stats(); st.AssociationsAccepted != 1 || st.AssociationsRejected != 2 {
		t.Errorf("stats %+v", st)
	}
}

// TestStorescuBitExact sends each fixture with storescu to our server and
// to storescp +B, and compares the data sets the two received.
func TestStorescuBitExact(t *testing.T) {
	store := newTestStore(t)
	host, port := startServer(t, quietServer(&Server{AETitle: "WARDGATE", Store: store}))
	for _, f := range dicomtest.Fixtures {
		t.Run(f.Name, func(t *testing.T) {
			file := dicomtest.FixturePath(t, f)
			args := append(append([]string{"-aet", "MODALITY", "-aec", "WARDGATE"}, f.SCUFlags...), host, port, file)
			dicomtest.MustDCMTK(t, "storescu", args...)

			var scpArgs []string
			if f.SCPFlag != "" {
				scpArgs = append(scpArgs, f.SCPFlag)
			}
			scpPort, dir := dicomtest.Storescp(t, scpArgs...)
			args[len(args)-2] = fmt.Sprint(scpPort)
			dicomtest.MustDCMTK(t, "storescu", args...)
			meta, want := dataSetOf(t, dicomtest.OnlyFile(t, dir))

			store.mu.Lock()
			req, ok := store.committed[dicomtest.InstanceUID(0)]
			delete(store.committed, dicomtest.InstanceUID(0))
			store.mu.Unlock()
			if !ok {
				t.Fatal("nothing committed")
			}
			if req.TransferSyntaxUID != f.TransferSyntax || meta.TransferSyntaxUID != f.TransferSyntax {
				t.Fatalf("transfer syntax: ours %s, storescp %s, want %s", req.TransferSyntaxUID, meta.TransferSyntaxUID, f.TransferSyntax)
			}
			if req.SOPClassUID != dicomtest.CTImage || req.CallingAE != "MODALITY" || req.CalledAE != "WARDGATE" {
				t.Fatalf("request %+v", req)
			}
			got := store.data(t, dicomtest.InstanceUID(0))
			if !bytes.Equal(got, want) {
				t.Fatalf("data set differs from storescp's: %d bytes vs %d", len(got), len(want))
			}
		})
	}
}

// writeCTs writes n distinct CT instances numbered from first.

func TestStorescuManyInstancesAndParallel(t *testing.T) {
	store := newTestStore(t)
	s := quietServer(&Server{Store: store})
	host, port := startServer(t, s)
	files := dicomtest.WriteCTs(t, 1, 12)

	// Ten instances over one association.
	dicomtest.MustDCMTK(t, "storescu", append([]string{"-xi", host, port}, files[:10]...)...)
	if st := s.Stats(); st.AssociationsAccepted != 1 || st.InstancesStored != 10 {
		t.Fatalf("after one association: %+v", st)
	}
	// Four associations at once, sending the same and other instances.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := []string{"-xi", host, port, files[i], files[10+i%2], files[(i+5)%12]}
			if out, err := dicomtest.DCMTK(t, "storescu", args...); err != nil {
				errs <- fmt.Errorf("storescu %d: %v\n%s", i, err, out)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := store.count(); n != 12 {
		t.Fatalf("%d distinct instances committed, want 12", n)
	}
	if st := s.Stats(); st.AssociationsAccepted != 5 || st.InstancesStored != 22 || st.AssociationsAborted != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestMaxAssociations(t *testing.T) {
	s := quietServer(&Server{MaxAssociations: 1})
	host, port := startServer(t, s)
	addr := net.JoinHostPort(host, port)
	d := Dialer{CallingAE: "GO", CalledAE: "ANY"}
	verification := []PresentationContextProposal{{AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}}}
	ctx := context.Background()
	first, err := d.Dial(ctx, addr, verification)
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.Dial(ctx, addr, verification)
	var rj *RejectError
	if !errors.As(err, &rj) || *rj != (RejectError{Result: 2, Source: 3, Reason: 2}) || !rj.Transient() {
		t.Fatalf("second association: %v, want transient rejection (local limit exceeded)", err)
	}
	if out, err := dicomtest.DCMTK(t, "echoscu", host, port); err == nil || !strings.Contains(out, "Local Limit Exceeded") {
		t.Fatalf("echoscu over the limit: %v\n%s", err, out)
	}
	if err := first.Release(ctx); err != nil {
		t.Fatal(err)
	}
	// The slot frees once the first connection has closed.
	dicomtest.WaitFor(t, "the released association to end", func() bool { return s.Stats().AssociationsActive == 0 })
	dicomtest.MustDCMTK(t, "echoscu", host, port)
}

// TestAbortMidInstance sends half a data set, then aborts (or just drops the
// connection): the handler's Abort runs and nothing is committed.
func TestAbortMidInstance(t *testing.T) {
	for _, how := range []string{"A-ABORT", "close"} {
		t.Run(how, func(t *testing.T) {
			store := newTestStore(t)
			s := quietServer(&Server{Store: store})
			host, port := startServer(t, s)
			as, err := Dialer{CallingAE: "GO", CalledAE: "X"}.Dial(context.Background(), net.JoinHostPort(host, port),
				StorageProposals([]SOPClassTransfer{{dicomtest.CTImage, ImplicitVRLittleEndian}}))
			if err != nil {
				t.Fatal(err)
			}
			pcid := as.accepted[0].ID
			if err := as.a.sendCommand(pcid, &command{AffectedSOPClassUID: dicomtest.CTImage, CommandField: cStoreRQ, MessageID: 1, AffectedSOPInstanceUID: "1.2.3.9"}); err != nil {
				t.Fatal(err)
			}
			half := make([]byte, 1000)
			if err := as.a.write(append(appendPDataHeader(nil, pcid, 0, len(half)), half...)); err != nil {
				t.Fatal(err)
			}
			if how == "A-ABORT" {
				as.Abort()
			} else {
				as.a.nc.Close()
			}
			select {
			case uid := <-store.aborted:
				if uid != "1.2.3.9" {
					t.Fatalf("aborted %s", uid)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("StoreWriter.Abort not called")
			}
			if store.count() != 0 {
				t.Fatal("partial instance committed")
			}
			if left, _ := filepath.Glob(filepath.Join(store.dir, "*")); len(left) != 0 {
				t.Fatalf("partial files left: %v", left)
			}
			dicomtest.WaitFor(t, "the abort to be counted", func() bool {
				st := s.Stats()
				return st.AssociationsAborted == 1 && st.AssociationsActive == 0
			})
		})
	}
}

// TestStoreRefusals checks the statuses for a full spool, a failing handler
// and a failing write, and that the association survives each.
func TestStoreRefusals(t *testing.T) {
	file := dicomtest.FixturePath(t, dicomtest.Fixtures[0])
	meta, ds := dataSetOf(t, file)
	for _, tc := range []struct {
		name              string
		refuse, failWrite error
		want              uint16
	}{
		{"spool full", fmt.Errorf("spool: %w", ErrOutOfResources), nil, StatusOutOfResources},
		{"handler error", errors.New("bad"), nil, StatusCannotUnderstand},
		{"write fails full", nil, fmt.Errorf("disk: %w", ErrOutOfResources), StatusOutOfResources},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := newTestStore(t)
			store.refuse, store.failWrite = tc.refuse, tc.failWrite
			host, port := startServer(t, quietServer(&Server{Store: store, MaxPDULength: 4096}))
			ctx := context.Background()
			as, err := Dialer{CallingAE: "GO", CalledAE: "X"}.Dial(ctx, net.JoinHostPort(host, port),
				append(StorageProposals([]SOPClassTransfer{{meta.SOPClassUID, meta.TransferSyntaxUID}}),
					PresentationContextProposal{VerificationSOPClass, []string{ImplicitVRLittleEndian}}))
			if err != nil {
				t.Fatal(err)
			}
			defer as.Release(ctx)
			for range 2 {
				st, err := as.Store(ctx, meta.SOPClassUID, meta.SOPInstanceUID, meta.TransferSyntaxUID, bytes.NewReader(ds))
				if err != nil || st != tc.want {
					t.Fatalf("status 0x%04x, %v; want 0x%04x", st, err, tc.want)
				}
			}
			if st, err := as.Echo(ctx); err != nil || st != StatusSuccess {
				t.Fatalf("echo after refusals: 0x%04x, %v", st, err)
			}
			if tc.failWrite != nil {
				for range 2 {
					<-store.aborted
				}
			}
			if store.count() != 0 {
				t.Fatal("refused instance committed")
			}
		})
	}
}

// TestGoSCUToServer stores through our SCU to our SCP with small PDUs, so
// both sides fragment, and checks an unsupported command gets 0x0211.
func TestGoSCUToServer(t *testing.T) {
	store := newTestStore(t)
	host, port := startServer(t, quietServer(&Server{AETitle: "WARDGATE", Store: store, MaxPDULength: 4096}))
	ctx := context.Background()
	var pairs []SOPClassTransfer
	for _, f := range dicomtest.Fixtures {
		m, _ := dataSetOf(t, dicomtest.FixturePath(t, f))
		pairs = append(pairs, SOPClassTransfer{m.SOPClassUID, m.TransferSyntaxUID})
	}
	as, err := Dialer{CallingAE: "GO", CalledAE: "WARDGATE", MaxPDULength: 8192}.Dial(ctx, net.JoinHostPort(host, port),
		append(StorageProposals(pairs), PresentationContextProposal{VerificationSOPClass, []string{ImplicitVRLittleEndian}}))
	if err != nil {
		t.Fatal(err)
	}
	if as.PeerMaxPDULength() != 4096 {
		t.Fatalf("peer max %d", as.PeerMaxPDULength())
	}
	for _, f := range dicomtest.Fixtures {
		m, ds := dataSetOf(t, dicomtest.FixturePath(t, f))
		if !as.AcceptedTransferSyntax(m.SOPClassUID, m.TransferSyntaxUID) {
			t.Fatalf("%s not accepted: %+v", f.Name, as.Accepted())
		}
		st, err := as.Store(ctx, m.SOPClassUID, m.SOPInstanceUID, m.TransferSyntaxUID, bytes.NewReader(ds))
		if err != nil || st != StatusSuccess {
			t.Fatalf("%s: 0x%04x, %v", f.Name, st, err)
		}
		if len(ds)%2 == 1 {
			ds = append(ds, 0) // sent padded to even length
		}
		if got := store.data(t, m.SOPInstanceUID); !bytes.Equal(got, ds) {
			t.Fatalf("%s: received %d bytes differ from the %d sent", f.Name, len(got), len(ds))
		}
	}
	if _, err := as.Store(ctx, "1.2.3.4", "1.2.3", ImplicitVRLittleEndian, strings.NewReader("x")); !errors.Is(err, ErrNoPresentationContext) {
		t.Fatalf("store without context: %v", err)
	}
	rsp, err := as.exchange(ctx, as.accepted[0].ID, &command{AffectedSOPClassUID: dicomtest.CTImage, CommandField: 0x0020, CommandDataSetType: 0}, strings.NewReader("\x08\x00\x52\x00\x06\x00\x00\x00STUDY "))
	if err != nil || rsp.Status != StatusUnrecognizedOperation {
		t.Fatalf("C-FIND: %+v, %v", rsp, err)
	}
	if st, err := as.Echo(ctx); err != nil || st != StatusSuccess {
		t.Fatalf("echo: 0x%04x, %v", st, err)
	}
	if err := as.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestRejectedDial checks the RejectError our SCU reports.
func TestRejectedDial(t *testing.T) {
	host, port := startServer(t, quietServer(&Server{AETitle: "WARDGATE"}))
	_, err := Dialer{CallingAE: "GO", CalledAE: "OTHER"}.Dial(context.Background(), net.JoinHostPort(host, port),
		[]PresentationContextProposal{{VerificationSOPClass, []string{ImplicitVRLittleEndian}}})
	var rj *RejectError
	if !errors.As(err, &rj) || *rj != (RejectError{1, 1, 7}) || !strings.Contains(err.Error(), "called AE title not recognized") {
		t.Fatalf("got %v", err)
	}
}

// TestHostilePeers sends garbage, absurd lengths and trickles of bytes; each
// connection is cut off and the server keeps answering echoscu.
func TestHostilePeers(t *testing.T) {
	s := quietServer(&Server{Timeouts: Timeouts{ARTIM: 500 * time.Millisecond, Read: 500 * time.Millisecond, Idle: time.Second}})
	host, port := startServer(t, s)
	addr := net.JoinHostPort(host, port)
	// readAll returns what the server sent before closing, failing if it
	// did not close within limit.
	readAll := func(t *testing.T, c net.Conn, limit time.Duration) []byte {
		c.SetReadDeadline(time.Now().Add(limit))
		b, err := io.ReadAll(c)
		if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
			t.Fatalf("server did not close the connection: %v", err)
		}
		return b
	}
	dial := func(t *testing.T) net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	for _, tc := range []struct {
		name string
		send []byte
		want []byte // A-ABORT expected back
	}{
		{"HTTP request", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), abortPDU(2, abortUnrecognizedPDU)},
		{"associate claiming 4 GiB", []byte{1, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 1}, abortPDU(2, abortInvalidPDUParameterValue)},
		{"P-DATA before association", rawPData([]byte{0, 0, 0, 3, 1, 3, 0}), abortPDU(2, abortUnexpectedPDU)},
		{"nothing at all", nil, abortPDU(2, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t)
			c.Write(tc.send)
			if got := readAll(t, c, 3*time.Second); !bytes.Equal(got, tc.want) {
				t.Fatalf("got % x, want % x", got, tc.want)
			}
		})
	}
	t.Run("slow loris before association", func(t *testing.T) {
		c := dial(t)
		rq := appendAssociate(nil, pduAssociateRQ, sampleAssociate())
		start := time.Now()
		go func() {
			for _, b := range rq {
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
		readAll(t, c, 3*time.Second)
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("cut off after %v", d)
		}
	})
	t.Run("slow loris in association", func(t *testing.T) {
		as, err := Dialer{CallingAE: "GO", CalledAE: "X"}.Dial(context.Background(), addr,
			[]PresentationContextProposal{{VerificationSOPClass, []string{ImplicitVRLittleEndian}}})
		if err != nil {
			t.Fatal(err)
		}
		c := as.a.nc
		pdu := pdataPDU(pdv(1, 3, string(encodeCommand(&command{CommandField: cEchoRQ, CommandDataSetType: noDataSet}))))
		go func() {
			for _, b := range pdu {
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
		if got := readAll(t, c, 3*time.Second); !bytes.Equal(got, abortPDU(2, 0)) {
			t.Fatalf("got % x, want an A-ABORT", got)
		}
	})
	t.Run("idle association", func(t *testing.T) {
		as, err := Dialer{CallingAE: "GO", CalledAE: "X"}.Dial(context.Background(), addr,
			[]PresentationContextProposal{{VerificationSOPClass, []string{ImplicitVRLittleEndian}}})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(1500 * time.Millisecond)
		if _, err := as.Echo(context.Background()); err == nil {
			t.Fatal("echo on an association idle past the timeout succeeded")
		}
	})
	dicomtest.MustDCMTK(t, "echoscu", host, port)
	dicomtest.WaitFor(t, "the aborts to be counted", func() bool {
		st := s.Stats()
		return st.AssociationsAborted >= 6 && st.AssociationsActive == 0
	})
}

// TestShutdownAbortsAfterDeadline checks that Shutdown waits for running
// associations and aborts them when its context expires.
func TestShutdownAbortsAfterDeadline(t *testing.T) {
	store := newTestStore(t)
	s := quietServer(&Server{Store: store})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	ctx := context.Background()
	as, err := Dialer{CallingAE: "GO", CalledAE: "X"}.Dial(ctx, ln.Addr().String(),
		append(StorageProposals([]SOPClassTransfer{{dicomtest.CTImage, ImplicitVRLittleEndian}}),
			PresentationContextProposal{VerificationSOPClass, []string{ImplicitVRLittleEndian}}))
	if err != nil {
		t.Fatal(err)
	}
	// An instance in flight when the server goes down.
	pcid := as.accepted[0].ID
	as.a.sendCommand(pcid, &command{AffectedSOPClassUID: dicomtest.CTImage, CommandField: cStoreRQ, MessageID: 1, AffectedSOPInstanceUID: "1.2.3.7"})
	as.a.write(append(appendPDataHeader(nil, pcid, 0, 10), make([]byte, 10)...))

	sctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := s.Shutdown(sctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("shutdown: %v", err)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 3*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
	if err := <-served; err != ErrServerClosed {
		t.Fatalf("Serve: %v", err)
	}
	select {
	case <-store.aborted:
	case <-time.After(3 * time.Second):
		t.Fatal("in-flight instance not aborted")
	}
	b := make([]byte, 10)
	as.a.nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, _ := io.ReadFull(as.a.nc, b); !bytes.Equal(b[:n], abortPDU(0, 0)) {
		t.Fatalf("peer got % x, want an A-ABORT", b[:n])
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Fatal("still accepting after shutdown")
	}
}
