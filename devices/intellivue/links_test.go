package intellivue

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// timeoutPort stands for a serial port: Read returns (0, nil) when its
// timeout passes with nothing, and the bytes a few at a time.
type timeoutPort struct {
	mu      sync.Mutex
	pending []byte
	err     error
	written bytes.Buffer
}

func (p *timeoutPort) feed(b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending = append(p.pending, b...)
}

func (p *timeoutPort) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.err = err
}

func (p *timeoutPort) Read(b []byte) (int, error) {
	p.mu.Lock()
	if len(p.pending) == 0 {
		err := p.err
		p.mu.Unlock()
		if err != nil {
			return 0, err
		}
		time.Sleep(time.Millisecond) // the port's timeout
		return 0, nil
	}
	n := copy(b[:min(len(b), 3)], p.pending)
	p.pending = p.pending[n:]
	p.mu.Unlock()
	return n, nil
}

func (p *timeoutPort) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.written.Write(b)
}

func TestSerialLink(t *testing.T) {
	port := &timeoutPort{}
	l := NewSerialLink(port, 0)
	// nothing there: the deadline is kept
	start := time.Now()
	if _, err := l.ReadMessage(start.Add(50 * time.Millisecond)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("ReadMessage: %v", err)
	}
	// garbage, a frame in pieces, a broken frame, a frame
	port.feed([]byte{0x01, 0x02, 0xC1})
	port.feed(AppendFrame(nil, []byte("first")))
	bad := AppendFrame(nil, []byte("broken"))
	bad[3] ^= 1
	port.feed(bad)
	port.feed(AppendFrame(nil, []byte("second")))
	for _, want := range []string{"first", "second"} {
		m, err := l.ReadMessage(time.Now().Add(10 * time.Second))
		if err != nil || string(m) != want {
			t.Fatalf("ReadMessage = %q, %v; want %q", m, err, want)
		}
	}
	st := l.Stats()
	if st.Frames != 2 || st.Bad != 1 || st.Garbage != 3 {
		t.Fatalf("stats %+v", st)
	}
	// writes are framed
	if err := l.WriteMessage([]byte{0xC0}); err != nil {
		t.Fatal(err)
	}
	port.mu.Lock()
	w := append([]byte(nil), port.written.Bytes()...)
	port.mu.Unlock()
	if m, err := DecodeFrame(w); err != nil || !bytes.Equal(m, []byte{0xC0}) {
		t.Fatalf("written % X", w)
	}
	// the port fails (unplugged): what was read is still handed over,
	// then the error
	port.feed(AppendFrame(nil, []byte("last")))
	port.fail(io.ErrUnexpectedEOF)
	<-l.Done()
	if m, err := l.ReadMessage(time.Now().Add(time.Second)); err != nil || string(m) != "last" {
		t.Fatalf("ReadMessage = %q, %v", m, err)
	}
	if _, err := l.ReadMessage(time.Now().Add(time.Second)); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("after the failure: %v", err)
	}
}

// A reader that does not keep up loses the oldest messages, counted.
func TestSerialLinkBoundsItsQueue(t *testing.T) {
	port := &timeoutPort{}
	l := NewSerialLink(port, 0)
	for i := range serialQueue + 10 {
		port.feed(AppendFrame(nil, []byte{byte(i)}))
	}
	port.fail(io.EOF)
	<-l.Done()
	if st := l.Stats(); st.Bad != 10 || st.Frames != serialQueue+10 {
		t.Fatalf("stats %+v", st)
	}
	m, err := l.ReadMessage(time.Now().Add(time.Second))
	if err != nil || m[0] != 10 {
		t.Fatalf("first kept message % X, %v", m, err)
	}
}

func TestUDPLinkDeadline(t *testing.T) {
	a, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := net.DialUDP("udp", nil, a.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	l := NewUDPLink(b, nil)
	// nobody answers, and a closed port's ICMP is silence, not an error
	a.Close()
	if err := l.WriteMessage([]byte{1}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.ReadMessage(time.Now().Add(100 * time.Millisecond)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("ReadMessage: %v", err)
	}
	if err := l.WriteMessage([]byte{2}); err != nil {
		t.Fatalf("a second write: %v", err)
	}
}

func TestDialUDP(t *testing.T) {
	a, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	l, err := DialUDP(a.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.WriteMessage([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	a.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := a.ReadFromUDP(buf)
	if err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("%q %v", buf[:n], err)
	}
	a.WriteToUDP([]byte("pong"), from)
	if m, err := l.ReadMessage(time.Now().Add(5 * time.Second)); err != nil || string(m) != "pong" {
		t.Fatalf("%q %v", m, err)
	}
	d, err := DialUDP("127.0.0.1") // the default port
	if err != nil {
		t.Fatal(err)
	}
	if got := d.monitor.Port; got != PortDataExport {
		t.Fatalf("port %d", got)
	}
	d.Close()
}
