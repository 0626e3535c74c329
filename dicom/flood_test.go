package dicom

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/wardgate/wardgate/dicom/internal/dicomtest"
)

// idleConns opens n TCP connections to host:port from local address from
// (another loopback address than the modality's) and never sends a byte.
func idleConns(t *testing.T, from, host, port string, n int) []net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	var conns []net.Conn
	for range n {
		c, err := d.Dial("tcp", net.JoinHostPort(host, port))
		if err != nil {
			t.Fatalf("dial from %s: %v", from, err)
		}
		conns = append(conns, c)
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	return conns
}

// closedByServer reports whether the server closed c within d (whatever
// it sent before, an A-ABORT say, is read and dropped).
func closedByServer(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return true
}

// A host opening connections and never asking for an association (a port
// scanner, a stuck client, an attacker) neither uses up the association
// slots nor holds more than MaxUnaskedPerPeer sockets: the modality on
// another address is served all along, with a limit of two associations,
// by DCMTK's echoscu and storescu.
func TestIdleConnectionFloodWhileAModalitySends(t *testing.T) {
	s := quietServer(&Server{AETitle: "WARDGATE", MaxAssociations: 2, MaxUnaskedPerPeer: 4, Store: newTestStore(t)})
	host, port := startServer(t, s)
	conns := idleConns(t, "127.0.0.2", host, port, 40)

	dicomtest.WaitFor(t, "36 of the 40 connections closed at once", func() bool { return s.Stats().ConnectionsRefused == 36 })
	open := 0
	for _, c := range conns {
		if !closedByServer(c, 50*time.Millisecond) {
			open++
		}
	}
	if open != 4 {
		t.Fatalf("%d idle connections from one address still open, want MaxUnaskedPerPeer (4)", open)
	}
	if out, err := dicomtest.DCMTK(t, "echoscu", "-aet", "MODALITY", "-aec", "WARDGATE", host, port); err != nil {
		t.Fatalf("echoscu during the flood: %v\n%s", err, out)
	}
	files := dicomtest.WriteCTs(t, 1, 3)
	args := append([]string{"-aet", "MODALITY", "-aec", "WARDGATE", host, port}, files...)
	if out, err := dicomtest.DCMTK(t, "storescu", args...); err != nil {
		t.Fatalf("storescu during the flood: %v\n%s", err, out)
	}
	st := s.Stats()
	if st.AssociationsAccepted != 2 || st.InstancesStored != 3 || st.Unasked != 4 {
		t.Fatalf("stats %+v: want 2 associations, 3 instances stored, 4 connections still unasked", st)
	}
}

// A connection that does not send its A-ASSOCIATE-RQ within
// Timeouts.Request is closed, and its place is free again.
func TestUnaskedConnectionIsClosedAfterTheRequestTimeout(t *testing.T) {
	s := quietServer(&Server{MaxUnaskedPerPeer: 1, Timeouts: Timeouts{Request: 200 * time.Millisecond}})
	host, port := startServer(t, s)
	c := idleConns(t, "127.0.0.3", host, port, 1)[0]
	if !closedByServer(c, 30*time.Second) {
		t.Fatal("an unasked connection was kept past Timeouts.Request")
	}
	dicomtest.WaitFor(t, "its place given back", func() bool { return s.Stats().Unasked == 0 })
	// The address may connect again, and is served.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}}
	c2, err := d.Dial("tcp", net.JoinHostPort(host, port))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if closedByServer(c2, 50*time.Millisecond) {
		t.Fatal("the address's next connection was closed at once")
	}
}
