package dicom

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/wardgate/wardgate/dicom/internal/dicomtest"
)

// review13RQ is a well-formed A-ASSOCIATE-RQ PDU from callingAE to calledAE
// proposing Verification.
func review13RQ(callingAE, calledAE string) []byte {
	return appendAssociate(nil, pduAssociateRQ, &associate{
		ProtocolVersion: 1, CalledAE: calledAE, CallingAE: callingAE,
		ApplicationContext: ApplicationContextName,
		Contexts: []presentationContext{{ID: 1, AbstractSyntax: VerificationSOPClass,
			TransferSyntaxes: []string{ImplicitVRLittleEndian}}},
		User: userInformation{MaxPDULength: DefaultMaxPDULength, ImplementationClassUID: ImplementationClassUID,
			ImplementationVersion: ImplementationVersionName},
	})
}

// review13Dial opens a connection from the loopback address from, sends
// first (if any), and leaves it open (never reads, never closes) until
// the test ends. The client side is closed before the server is shut down
// (cleanups run last-in first-out), so the server is not left waiting.
func review13Dial(t *testing.T, from, host, port string, first []byte, n int) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	var conns []net.Conn
	for range n {
		c, err := d.Dial("tcp", net.JoinHostPort(host, port))
		if err != nil {
			t.Fatalf("dial from %s: %v", from, err)
		}
		if first != nil {
			if _, err := c.Write(first); err != nil {
				t.Fatal(err)
			}
		}
		conns = append(conns, c)
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
}

// served is how many connections the server is serving now.
func (s *Server) review13Served() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Finding 1: the per-address bound (MaxUnaskedPerPeer) is given back as
// soon as the first PDU is read, but a connection whose request is
// rejected (wrong called AE, not allowed, over the limit) or whose first
// PDU is garbage is then held for ARTIM (30 s) waiting for the peer to
// close (closeGracefully / abort in scp.go serveConn). A host that sends
// one rejected A-ASSOCIATE-RQ (or 6 bytes of garbage) per connection and
// never closes holds any number of sockets, none of them counted as
// unasked: the bound the commit adds is bypassed with one write.
// Cause: dicom/scp.go serveConn calls asked() right after readAssociateRQ,
// before the reject/abort paths that wait ARTIM. Fix: keep the connection
// counted against its address until it is accepted (call asked() only
// after the A-ASSOCIATE-AC is sent) or closed, and bound the post-reject
// wait by Timeouts.Request rather than ARTIM.
func TestReview13RejectedConnectionsEscapeThePerAddressBound(t *testing.T) {
	for _, tc := range []struct {
		name  string
		first []byte
	}{
		{"wrong called AE", review13RQ("INTRUDER", "NOT-US")},
		{"garbage PDU", []byte{0x09, 0, 0, 0, 0, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := quietServer(&Server{AETitle: "WARDGATE", MaxUnaskedPerPeer: 4})
			host, port := startServer(t, s)
			review13Dial(t, "127.0.0.4", host, port, tc.first, 30)
			time.Sleep(500 * time.Millisecond)
			st := s.Stats()
			if served := s.review13Served(); served > 4 {
				t.Fatalf("%d connections from one address held by the server (unasked %d, refused %d), want at most MaxUnaskedPerPeer (4)",
					served, st.Unasked, st.ConnectionsRefused)
			}
		})
	}
}

// Finding 2: a request rejected because MaxAssociations is reached keeps
// the slot it took (slot = true before the limit check) for as long as
// the rejected peer keeps its connection open after the A-ASSOCIATE-RJ
// (closeGracefully waits up to ARTIM, 30 s). Meanwhile a real association
// ends, and the next modality is rejected although only one association
// runs; Stats().AssociationsActive counts the rejected connection too.
// Cause: dicom/scp.go serveConn, `slot = true; if n := s.active.Add(1); ... n > Max { rj = ... }`.
// Fix: on that rejection give the slot back at once (s.active.Add(-1);
// slot = false) before writing the A-ASSOCIATE-RJ.
func TestReview13RejectedOverTheLimitDoesNotKeepASlot(t *testing.T) {
	s := quietServer(&Server{AETitle: "WARDGATE", MaxAssociations: 1})
	host, port := startServer(t, s)
	addr := net.JoinHostPort(host, port)
	ctx := context.Background()
	d := Dialer{CallingAE: "MODALITY", CalledAE: "WARDGATE"}
	verif := []PresentationContextProposal{{AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}}}

	first, err := d.Dial(ctx, addr, verif)
	if err != nil {
		t.Fatal(err)
	}
	// A second peer asks while the only slot is taken, is rejected, and
	// does not close its connection.
	review13Dial(t, "127.0.0.6", host, port, review13RQ("OTHER", "WARDGATE"), 1)
	dicomtest.WaitFor(t, "the second request rejected", func() bool { return s.Stats().AssociationsRejected == 1 })
	if err := first.Release(ctx); err != nil {
		t.Fatal(err)
	}
	dicomtest.WaitFor(t, "the first association ended", func() bool { return s.review13Served() == 1 })

	if st := s.Stats(); st.AssociationsActive != 0 {
		t.Errorf("AssociationsActive %d with no association running (a rejected connection counted)", st.AssociationsActive)
	}
	third, err := d.Dial(ctx, addr, verif)
	if err != nil {
		t.Fatalf("no association runs, yet the next one was refused: %v (stats %+v)", err, s.Stats())
	}
	third.Release(ctx)
}

// Finding 3: Shutdown waits for connections that never asked for an
// association (a port scanner's) until Timeouts.Request (10 s) or its
// context expires, and then reports the context's error, although no
// association was running. A gateway stopping while anything holds an
// idle connection is delayed 10 s and logs a failed shutdown.
// Cause: dicom/scp.go Shutdown closes the listeners and waits on s.wg for
// every connection, unasked ones included. Fix: in Shutdown, close the
// connections still unasked at once (track them, e.g. an `unasked` flag
// per assoc under s.mu, and close those before waiting).
func TestReview13ShutdownDoesNotWaitForUnaskedConnections(t *testing.T) {
	s := quietServer(&Server{AETitle: "WARDGATE"})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	review13Dial(t, "127.0.0.7", host, port, nil, 1)
	dicomtest.WaitFor(t, "the connection seen", func() bool { return s.Stats().Unasked == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	err = s.Shutdown(ctx)
	<-done
	if err != nil || time.Since(start) > time.Second {
		t.Fatalf("Shutdown with one idle, unasked connection: %v after %v; want nil at once", err, time.Since(start).Round(time.Millisecond))
	}
}

// Finding 4: peers are keyed by their exact IP, so for IPv6 every address
// of a host's /64 (privacy addresses; an attacker has 2^64 of them) is
// another peer with its own MaxUnaskedPerPeer, and nothing bounds the
// unasked connections in total: the bound does not hold for IPv6 peers.
// Cause: dicom/scp.go peerIP (ta.IP.String()) and the lack of a global
// cap in Serve. Fix: key IPv6 peers by their /64 (ip.Mask(net.CIDRMask(64,128))),
// and add a server-wide cap on unasked connections.
func TestReview13IPv6PeersOfOneSubnetShareTheirBound(t *testing.T) {
	a := peerIP(&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2::10"), Port: 40000})
	b := peerIP(&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:ffff:1:2:3"), Port: 40001})
	if a != b {
		t.Fatalf("two addresses of one /64 are two peers (%q, %q): MaxUnaskedPerPeer is per address, unbounded per host", a, b)
	}
}

// Pins: an IPv4 peer on a dual-stack listener (IPv4-mapped) is the same
// peer as when it comes over IPv4.
func TestReview13IPv4MappedIsTheSamePeer(t *testing.T) {
	v4 := peerIP(&net.TCPAddr{IP: net.ParseIP("10.20.0.5").To4()})
	mapped := peerIP(&net.TCPAddr{IP: net.ParseIP("::ffff:10.20.0.5")})
	if v4 != mapped {
		t.Fatalf("IPv4 %q and IPv4-mapped %q counted as different peers", v4, mapped)
	}
}

// Pins: connections that sent a whole A-ASSOCIATE-RQ slowly but within
// Timeouts.Request are served; the counters return to zero on every path
// (accepted and released, rejected, timed out, bad PDU, server closing
// the over-limit connection), and MaxAssociations admits exactly its
// number.
func TestReview13CountersReturnToZero(t *testing.T) {
	s := quietServer(&Server{AETitle: "WARDGATE", MaxAssociations: 2, MaxUnaskedPerPeer: 2,
		Timeouts: Timeouts{Request: 300 * time.Millisecond, ARTIM: 300 * time.Millisecond}})
	host, port := startServer(t, s)
	addr := net.JoinHostPort(host, port)
	ctx := context.Background()
	d := Dialer{CallingAE: "MODALITY", CalledAE: "WARDGATE"}
	verif := []PresentationContextProposal{{AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}}}

	a1, err := d.Dial(ctx, addr, verif)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := d.Dial(ctx, addr, verif)
	if err != nil {
		t.Fatalf("second of MaxAssociations 2: %v", err)
	}
	if _, err := d.Dial(ctx, addr, verif); err == nil {
		t.Fatal("a third association past MaxAssociations 2 was accepted")
	}
	a1.Release(ctx)
	a2.Release(ctx)
	// Timed out, garbage, rejected, over the per-address bound.
	review13Dial(t, "127.0.0.8", host, port, nil, 3)
	review13Dial(t, "127.0.0.9", host, port, []byte{0x09, 0, 0, 0, 0, 4}, 1)
	review13Dial(t, "127.0.0.9", host, port, review13RQ("X", "NOT-US"), 1)
	dicomtest.WaitFor(t, "every connection ended", func() bool { return s.review13Served() == 0 })
	st := s.Stats()
	s.mu.Lock()
	left := len(s.unaskedBy)
	s.mu.Unlock()
	if st.AssociationsActive != 0 || st.Unasked != 0 || left != 0 || st.ConnectionsRefused != 1 {
		t.Fatalf("stats %+v, %d addresses still counted: want all zero and one refused connection", st, left)
	}
	// Slow but legitimate: the request arrives in pieces within Request.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rq := review13RQ("MODALITY", "WARDGATE")
	for i := 0; i < len(rq); i += 20 {
		c.Write(rq[i:min(i+20, len(rq))])
		time.Sleep(10 * time.Millisecond)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var h [1]byte
	if _, err := io.ReadFull(c, h[:]); err != nil || h[0] != pduAssociateAC {
		t.Fatalf("a request sent in pieces within Timeouts.Request: %v, PDU type 0x%02x", err, h[0])
	}
}
