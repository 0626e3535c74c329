package hl7

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// flakyListener fails its first Accept as a process out of file
// descriptors does, then accepts as ln does.
type flakyListener struct {
	net.Listener
	failed atomic.Bool
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if !l.failed.Swap(true) {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// Running out of file descriptors for a moment (a burst of connections,
// another part of the gateway holding many files) is not the end of the
// listener: Serve waits and accepts again, as net/http does. Before the
// fix Serve returned the error and no central station could connect
// again until a restart.
func TestServeSurvivesTemporaryAcceptErrors_review12(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Logger: quietLog, Handler: &recorder{}}
	served := make(chan error, 1)
	go func() { served <- s.Serve(&flakyListener{Listener: ln}) }()
	t.Cleanup(func() { s.Shutdown(context.Background()) })

	cl := dial(t, ln.Addr().String())
	cl.send(oruMsg("E1", "CIS", "", ""))
	acked := make(chan string, 1)
	go func() {
		cl.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		raw, err := cl.r.ReadMessage()
		if err != nil {
			acked <- "no acknowledgement: " + err.Error()
			return
		}
		acked <- string(raw)
	}()
	select {
	case err := <-served:
		t.Fatalf("Serve returned after one EMFILE: %v", err)
	case a := <-acked:
		if !bytes.Contains([]byte(a), []byte("MSA|AA|E1")) {
			t.Fatalf("%q", a)
		}
	}
}

// A handler stuck on a commit (a disk that does not answer) must not keep
// Shutdown past its context: the handler's context ends then, and
// Shutdown returns. Before the fix the handler got context.Background(),
// and Shutdown waited for it for ever after closing the connections.
func TestShutdownEndsHandlerContext_review12(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	var sawCancel atomic.Bool
	s := &Server{Handler: HandlerFunc(func(ctx context.Context, m *Message, _ Peer) Reply {
		close(entered)
		select {
		case <-ctx.Done():
			sawCancel.Store(true)
		case <-release:
		}
		return Reply{Outcome: Busy}
	})}
	cl := dial(t, startServer(t, s))
	t.Cleanup(func() { close(release) }) // before startServer's Shutdown
	cl.send(oruMsg("STUCK", "CIS", "", ""))
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the grace period is over at once
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(ctx) }()
	select {
	case err := <-shut:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Shutdown: %v, want context.Canceled", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Shutdown did not return while a handler waited")
	}
	if !sawCancel.Load() {
		t.Error("the handler's context did not end")
	}
}

// deadlineConn lets a test run Shutdown between the server's check of
// closing and its arming of the idle deadline.
type deadlineConn struct {
	net.Conn
	once     sync.Once
	shutdown func()
	zeroed   chan struct{} // closed when Shutdown set a deadline in the past
	zeroOnce sync.Once
}

func (c *deadlineConn) SetReadDeadline(t time.Time) error {
	if !t.After(time.Now()) {
		c.zeroOnce.Do(func() { close(c.zeroed) })
		return c.Conn.SetReadDeadline(t)
	}
	c.once.Do(func() {
		go c.shutdown()
		<-c.zeroed
	})
	return c.Conn.SetReadDeadline(t)
}

type deadlineListener struct {
	net.Listener
	shutdown func()
}

func (l *deadlineListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &deadlineConn{Conn: c, shutdown: l.shutdown, zeroed: make(chan struct{})}, nil
}

// Shutdown wakes a connection waiting for a message by setting its read
// deadline to now. A connection that had just checked "closing" and was
// about to arm its idle deadline overwrote that wake-up and kept waiting
// for IdleTimeout (10 minutes by default), so Shutdown ran into its
// context instead of returning nil.
func TestShutdownWhileArmingIdleDeadline_review12(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Logger: quietLog, IdleTimeout: time.Hour, Handler: &recorder{}}
	shut := make(chan error, 1)
	dl := &deadlineListener{Listener: ln, shutdown: func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		shut <- s.Shutdown(ctx)
	}}
	go s.Serve(dl)
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v (a connection kept waiting for its idle timeout)", err)
	}
}

// A handler that panics costs its own connection only, is counted, and
// the others go on.
func TestHandlerPanicClosesOnlyItsConnection_review12(t *testing.T) {
	s := &Server{Handler: HandlerFunc(func(_ context.Context, m *Message, _ Peer) Reply {
		if m.Field("MSH", 1, 10).Text() == "BOOM" {
			panic("handler bug")
		}
		return Reply{Outcome: Accepted}
	})}
	addr := startServer(t, s)
	bad, good := dial(t, addr), dial(t, addr)
	bad.send(oruMsg("BOOM", "CIS", "", ""))
	if !bad.closed() {
		t.Fatal("the connection whose handler panicked stayed open")
	}
	good.send(oruMsg("OK1", "CIS", "", ""))
	if code, id, _ := good.ack(); code != "AA" || id != "OK1" {
		t.Fatalf("%s %s", code, id)
	}
	if st := s.Stats(); st.Panics != 1 {
		t.Errorf("stats %+v, want one panic counted", st)
	}
}

// pipeListener hands the server one end of net.Pipe per Dial.
type pipeListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error   { l.once.Do(func() { close(l.closed) }); return nil }
func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

func (l *pipeListener) Dial() net.Conn {
	a, b := net.Pipe()
	select {
	case l.conns <- b:
	case <-l.closed:
	}
	return a
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// A peer that sends but never reads its acknowledgements (net.Pipe has no
// buffer: every write waits for the reader) is closed at WriteTimeout,
// and Shutdown does not wait on it.
func TestPeerThatNeverReadsIsClosed_review12(t *testing.T) {
	l := newPipeListener()
	s := &Server{Logger: quietLog, WriteTimeout: 50 * time.Millisecond, Handler: &recorder{}}
	go s.Serve(l)
	c := l.Dial()
	defer c.Close()
	if err := WriteFrame(c, oruMsg("W1", "CIS", "", "")); err != nil {
		t.Fatal(err)
	}
	waitStats(t, s, func(st ServerStats) bool { return st.Accepted == 1 && st.Connections == 0 })
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}
