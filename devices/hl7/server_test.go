package hl7

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// oruMsg is a small ORU^R01 with control id id from sending application app;
// mode is MSH-15^MSH-16 ("" for original mode).
func oruMsg(id, app, accept, application string) []byte {
	return []byte("MSH|^~\\&|" + app + "|WARD4||WARDGATE|20261202101500+0100||ORU^R01^ORU_R01|" + id + "|P|2.6|||" + accept + "|" + application + "\r" +
		"PID|||MRN1^^^HOSP\rOBR|1|||182777000^monitoring of patient^SCT\rOBX|1|NM|147842^MDC_ECG_HEART_RATE^MDC||72|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R\r")
}

// startServer serves s on a loopback port and returns its address.
func startServer(t *testing.T, s *Server) string {
	t.Helper()
	if s.Logger == nil {
		s.Logger = quietLog
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return ln.Addr().String()
}

// client is a sender on one connection.
type client struct {
	t *testing.T
	c net.Conn
	r *Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c, r: NewReader(bufio.NewReader(c), 1<<20)}
}

func (cl *client) send(b []byte) {
	cl.t.Helper()
	if err := WriteFrame(cl.c, b); err != nil {
		cl.t.Fatal(err)
	}
}

// ack reads one acknowledgement and returns MSA-1, MSA-2 and the message.
func (cl *client) ack() (string, string, *Message) {
	cl.t.Helper()
	cl.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	raw, err := cl.r.ReadMessage()
	if err != nil {
		cl.t.Fatalf("no acknowledgement: %v", err)
	}
	m, err := Parse(raw, Limits{})
	if err != nil {
		cl.t.Fatalf("acknowledgement does not parse: %v\n%q", err, raw)
	}
	return m.Field("MSA", 1, 1).Text(), m.Field("MSA", 1, 2).Text(), m
}

// closed reports whether the server closed the connection (read gives EOF
// or a reset before the deadline).
func (cl *client) closed() bool {
	cl.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := cl.r.ReadMessage()
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// recorder is a Handler that records what it was given and answers with
// verdict.
type recorder struct {
	mu      sync.Mutex
	ids     []string
	verdict Outcome
}

func (r *recorder) HandleMessage(ctx context.Context, m *Message, from Peer) Reply {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids = append(r.ids, m.Field("MSH", 1, 10).Text())
	return Reply{Outcome: r.verdict}
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ids...)
}

// Many messages on one connection, garbage between them, each answered
// AA echoing its control id once the handler took it; enhanced mode gets
// what MSH-15/16 ask; an acknowledgement from the sender is not answered;
// one that does not parse gets AE with ERR; a handler that could not store
// gets AE with RETRY.
func TestServerAcknowledgesEachMessageAfterItsHandler(t *testing.T) {
	h := &recorder{}
	s := &Server{Handler: h, Application: "WARDGATE"}
	cl := dial(t, startServer(t, s))

	cl.send(oruMsg("M1", "CIS", "", ""))
	if code, id, _ := cl.ack(); code != "AA" || id != "M1" {
		t.Fatalf("first: %s %s", code, id)
	}
	cl.c.Write([]byte("noise between frames\r\n"))
	cl.send(oruMsg("M2", "CIS", "", ""))
	if code, id, _ := cl.ack(); code != "AA" || id != "M2" {
		t.Fatalf("after garbage: %s %s", code, id)
	}
	// Enhanced mode, accept and application acknowledgements both asked.
	cl.send(oruMsg("M3", "CIS", "AL", "AL"))
	if code, id, _ := cl.ack(); code != "CA" || id != "M3" {
		t.Fatalf("enhanced accept ack: %s %s", code, id)
	}
	if code, id, _ := cl.ack(); code != "AA" || id != "M3" {
		t.Fatalf("enhanced application ack: %s %s", code, id)
	}
	// The sender acknowledging our AA: nothing comes back.
	cl.send([]byte("MSH|^~\\&|CIS|WARD4|WARDGATE||20261202101501||ACK^R01^ACK|A9|P|2.6\rMSA|AA|WG1\r"))
	// A message whose OBX-5 is an unclosed... segment id that is not one.
	cl.send([]byte("MSH|^~\\&|CIS|WARD4||WARDGATE|20261202101500||ORU^R01|M4|P|2.6\rX\r"))
	code, id, m := cl.ack()
	if code != "AE" || id != "M4" || m.Field("ERR", 1, 3).Comp(1).Text() == "" {
		t.Fatalf("unreadable message: %s %s %q", code, id, m.Field("ERR", 1, 3).Text())
	}
	h.mu.Lock()
	h.verdict = Busy
	h.mu.Unlock()
	cl.send(oruMsg("M5", "CIS", "", ""))
	code, id, m = cl.ack()
	if code != "AE" || id != "M5" || !strings.Contains(m.Field("ERR", 1, 5).Text(), RetryCode) {
		t.Fatalf("busy: %s %s %q", code, id, m.Field("ERR", 1, 5).Text())
	}
	if got := strings.Join(h.got(), ","); got != "M1,M2,M3,M5" {
		t.Fatalf("handled %s", got)
	}
	st := s.Stats()
	if st.Messages != 6 || st.Accepted != 3 || st.Failed != 1 || st.Busy != 1 || st.Ignored != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// A frame past MaxMessage closes that connection, unacknowledged, and a
// stream that ends inside a frame is not acknowledged; another connection
// goes on meanwhile.
func TestServerClosesAConnectionThatSendsTooMuch(t *testing.T) {
	h := &recorder{}
	s := &Server{Handler: h, MaxMessage: 64 << 10}
	addr := startServer(t, s)
	good := dial(t, addr)
	bad := dial(t, addr)
	bad.c.Write(append([]byte{0x0B}, bytes.Repeat([]byte("OBX|1|NM|x||1\r"), 10<<20/14)...))
	if !bad.closed() {
		t.Fatal("a 10 MB frame did not close the connection")
	}
	good.send(oruMsg("G1", "CIS", "", ""))
	if code, _, _ := good.ack(); code != "AA" {
		t.Fatalf("the other connection: %s", code)
	}
	cut := dial(t, addr)
	cut.c.Write(append([]byte{0x0B}, oruMsg("C1", "CIS", "", "")...))
	cut.c.(*net.TCPConn).CloseWrite()
	if !cut.closed() {
		t.Fatal("a truncated frame was answered")
	}
	waitStats(t, s, func(st ServerStats) bool { return st.FramesTooLarge == 1 && st.FramesTruncated == 1 })
	if got := h.got(); len(got) != 1 || got[0] != "G1" {
		t.Fatalf("handled %v", got)
	}
}

// hl7.allow: a connection from an address not allowed is closed before
// anything is read; a message from a sending application not allowed is
// rejected (AR) without reaching the handler.
func TestServerAllowLists(t *testing.T) {
	h := &recorder{}
	s := &Server{Handler: h,
		AllowPeer:   func(p Peer) bool { return p.Remote.(*net.TCPAddr).IP.IsLoopback() },
		AllowSender: func(snd Sender, _ Peer) bool { return snd.Application == "CIS" },
	}
	addr := startServer(t, s)
	cl := dial(t, addr)
	cl.send(oruMsg("S1", "INTRUDER", "", ""))
	if code, id, m := cl.ack(); code != "AR" || id != "S1" || !strings.Contains(m.Field("MSA", 1, 3).Text()+m.Field("ERR", 1, 8).Text(), "not allowed") {
		t.Fatalf("a sender not allowed: %s %s", code, id)
	}
	cl.send(oruMsg("S2", "CIS", "", ""))
	if code, _, _ := cl.ack(); code != "AA" {
		t.Fatalf("an allowed sender: %s", code)
	}
	denied := &Server{Handler: h, AllowPeer: func(Peer) bool { return false }}
	other := dial(t, startServer(t, denied))
	other.send(oruMsg("S3", "CIS", "", ""))
	if !other.closed() {
		t.Fatal("a connection from an address not allowed was served")
	}
	if got := h.got(); len(got) != 1 || got[0] != "S2" {
		t.Fatalf("handled %v", got)
	}
	if st := denied.Stats(); st.ConnectionsRefused != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// An idle connection is closed after IdleTimeout; connections past
// MaxConnections are closed at once; Shutdown waits for a message being
// handled, acknowledges it, and closes the idle ones.
func TestServerBoundsAndShutdown(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	s := &Server{MaxConnections: 2, IdleTimeout: 300 * time.Millisecond, Handler: HandlerFunc(func(ctx context.Context, m *Message, _ Peer) Reply {
		if m.Field("MSH", 1, 10).Text() == "SLOW" {
			started <- struct{}{}
			<-release
		}
		return Reply{Outcome: Accepted}
	})}
	addr := startServer(t, s)
	idle := dial(t, addr)
	if !idle.closed() {
		t.Fatal("an idle connection stayed open")
	}
	s2 := &Server{MaxConnections: 1, Handler: HandlerFunc(func(context.Context, *Message, Peer) Reply { return Reply{Outcome: Accepted} })}
	addr2 := startServer(t, s2)
	first := dial(t, addr2)
	first.send(oruMsg("F1", "CIS", "", ""))
	first.ack()
	second := dial(t, addr2)
	if !second.closed() {
		t.Fatal("a connection past MaxConnections was served")
	}

	s3 := &Server{Logger: quietLog, Handler: s.Handler}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	served := make(chan error, 1)
	go func() { served <- s3.Serve(ln) }()
	busy := dial(t, ln.Addr().String())
	waiting := dial(t, ln.Addr().String())
	busy.send(oruMsg("SLOW", "CIS", "", ""))
	<-started
	shut := make(chan error, 1)
	go func() { shut <- s3.Shutdown(context.Background()) }()
	if !waiting.closed() {
		t.Fatal("Shutdown left an idle connection open")
	}
	close(release)
	if code, id, _ := busy.ack(); code != "AA" || id != "SLOW" {
		t.Fatalf("the message being handled at Shutdown: %s %s", code, id)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
}

func waitStats(t *testing.T, s *Server, cond func(ServerStats) bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(s.Stats()); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", s.Stats())
		}
	}
}

// MLLP over TLS: the handshake comes first, a peer without a certificate
// the server's CA verifies is closed and counted, and AllowPeer sees the
// verified certificate.
func TestServerOverTLS(t *testing.T) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ward CA"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	ca, _ := x509.ParseCertificate(caDER)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	issue := func(cn string, server bool) tls.Certificate {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		if server {
			tmpl.ExtKeyUsage, tmpl.IPAddresses = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, []net.IP{net.ParseIP("127.0.0.1")}
		}
		der, _ := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
	}
	var seen []string
	var mu sync.Mutex
	s := &Server{Logger: quietLog, Handler: &recorder{}, AllowPeer: func(p Peer) bool {
		mu.Lock()
		defer mu.Unlock()
		if p.Certificate != nil {
			seen = append(seen, p.Certificate.Subject.CommonName)
		}
		return p.TLS && p.Certificate != nil && p.Certificate.Subject.CommonName == "central-station"
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{issue("wardgate", true)}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}))
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	connect := func(cert *tls.Certificate) *client {
		cfg := &tls.Config{RootCAs: pool}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
		if err != nil {
			return nil
		}
		t.Cleanup(func() { c.Close() })
		return &client{t: t, c: c, r: NewReader(bufio.NewReader(c), 1<<20)}
	}
	station := issue("central-station", false)
	cl := connect(&station)
	cl.send(oruMsg("T1", "CIS", "", ""))
	if code, id, _ := cl.ack(); code != "AA" || id != "T1" {
		t.Fatalf("over TLS: %s %s", code, id)
	}
	other := issue("laptop", false)
	if c := connect(&other); c != nil {
		c.send(oruMsg("T2", "CIS", "", ""))
		if !c.closed() {
			t.Fatal("a certificate AllowPeer refuses was served")
		}
	}
	if c := connect(nil); c != nil {
		c.send(oruMsg("T3", "CIS", "", ""))
		if !c.closed() {
			t.Fatal("a peer without a certificate was served")
		}
	}
	waitStats(t, s, func(st ServerStats) bool { return st.TLSHandshakeFailed == 1 && st.ConnectionsRefused == 2 })
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(seen, ",") != "central-station,laptop" {
		t.Fatalf("AllowPeer saw %v", seen)
	}
}
