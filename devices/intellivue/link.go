package intellivue

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/wardgate/wardgate/devices"
)

// SerialLink is a devices.Link over the MIB/RS232 port: it frames what it
// writes and takes whole, checked frames out of what it reads, dropping
// and counting the rest (Stats).
//
// A goroutine reads the port from NewSerialLink on, so that ReadMessage
// keeps its deadline whatever the port's Read does: a serial port whose
// Read returns (0, nil) at its timeout, a pipe or a pseudo-terminal that
// blocks. It ends when Read fails (the port closed or gone); ReadMessage
// then returns that error.
type SerialLink struct {
	w    io.Writer
	msgs chan []byte
	done chan struct{}
	err  error // set before done is closed
	mu   sync.Mutex
	d    *Deframer
	wmu  sync.Mutex
	wbuf []byte
}

// serialQueue is how many whole messages wait for ReadMessage; a reader
// that falls further behind loses the oldest (counted as bad frames).
const serialQueue = 64

// NewSerialLink starts reading rw. maxMessage bounds a message's data
// (DefaultMaxMessage when <= 0).
func NewSerialLink(rw io.ReadWriter, maxMessage int) *SerialLink {
	l := &SerialLink{
		w:    rw,
		msgs: make(chan []byte, serialQueue),
		done: make(chan struct{}),
		d:    NewDeframer(maxMessage),
	}
	go l.read(rw)
	return l
}

func (l *SerialLink) read(r io.Reader) {
	buf := make([]byte, 4096)
	idle := 0
	for {
		n, err := r.Read(buf)
		if n > 0 {
			idle = 0
			l.mu.Lock()
			l.d.Push(buf[:n], func(msg []byte) {
				m := append([]byte(nil), msg...)
				select {
				case l.msgs <- m:
				default:
					// the dialogue is not reading: drop the oldest
					select {
					case <-l.msgs:
						l.d.bad(errors.New("message dropped: the reader fell behind"))
					default:
					}
					l.msgs <- m
				}
			})
			l.mu.Unlock()
		}
		if err != nil {
			l.err = err
			close(l.done)
			return
		}
		if n == 0 {
			// a serial port's read timeout; do not spin on a port that
			// returns (0, nil) at once
			idle++
			if idle > 3 {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
}

// ReadMessage returns the data of the next whole frame.
func (l *SerialLink) ReadMessage(deadline time.Time) ([]byte, error) {
	select {
	case m := <-l.msgs:
		return m, nil
	default:
	}
	wait := time.Until(deadline)
	if wait <= 0 {
		return nil, fmt.Errorf("serial link: %w", os.ErrDeadlineExceeded)
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case m := <-l.msgs:
		return m, nil
	case <-l.done:
		select {
		case m := <-l.msgs:
			return m, nil
		default:
		}
		return nil, fmt.Errorf("serial link: %w", l.err)
	case <-t.C:
		return nil, fmt.Errorf("serial link: %w", os.ErrDeadlineExceeded)
	}
}

// WriteMessage frames msg and writes it.
func (l *SerialLink) WriteMessage(msg []byte) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.wbuf = AppendFrame(l.wbuf[:0], msg)
	if _, err := l.w.Write(l.wbuf); err != nil {
		return fmt.Errorf("serial link: %w", err)
	}
	return nil
}

// Stats returns the framing counts: frames taken, frames dropped and why,
// bytes of garbage between frames.
func (l *SerialLink) Stats() DeframerStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.d.Stats()
}

// Done is closed when the reading goroutine has ended (Read failed).
func (l *SerialLink) Done() <-chan struct{} { return l.done }

var _ devices.Link = (*SerialLink)(nil)

// UDPLink is a devices.Link over the LAN: one datagram is one message,
// exchanged with the monitor's data-export port (24105). Datagrams from
// any other address are ignored and counted.
type UDPLink struct {
	conn    *net.UDPConn
	monitor *net.UDPAddr
	buf     []byte
	mu      sync.Mutex
	ignored uint64
}

// Ports of the IntelliVue LAN interface.
const (
	// PortConnectIndication is where monitors broadcast their Connect
	// Indication.
	PortConnectIndication = 24005
	// PortDataExport is the monitor's port for association and polls.
	PortDataExport = 24105
)

// SerialBaud is the MIB/RS232 port's speed (8 data bits, no parity, one
// stop bit, no flow control).
const SerialBaud = 115200

// DialUDP opens a UDP link to the monitor at address ("host" or
// "host:port"; the port is 24105 when not given). Close ends it.
func DialUDP(address string) (*UDPLink, error) {
	if _, _, err := net.SplitHostPort(address); err != nil {
		address = net.JoinHostPort(address, strconv.Itoa(PortDataExport))
	}
	ra, err := net.ResolveUDPAddr("udp", address)
	if err != nil {
		return nil, fmt.Errorf("intellivue monitor %s: %w", address, err)
	}
	conn, err := net.DialUDP("udp", nil, ra)
	if err != nil {
		return nil, fmt.Errorf("intellivue monitor %s: %w", address, err)
	}
	return NewUDPLink(conn, ra), nil
}

// Close closes the link's socket.
func (l *UDPLink) Close() error { return l.conn.Close() }

// NewUDPLink talks to monitor over conn. conn may be connected to the
// monitor (net.DialUDP) or not (net.ListenUDP); monitor may be nil for a
// connected conn.
func NewUDPLink(conn *net.UDPConn, monitor *net.UDPAddr) *UDPLink {
	if monitor == nil {
		if ra, ok := conn.RemoteAddr().(*net.UDPAddr); ok {
			monitor = ra
		}
	}
	return &UDPLink{conn: conn, monitor: monitor, buf: make([]byte, 65536)}
}

// ReadMessage returns the next datagram from the monitor.
func (l *UDPLink) ReadMessage(deadline time.Time) ([]byte, error) {
	if err := l.conn.SetReadDeadline(deadline); err != nil {
		return nil, fmt.Errorf("udp link: %w", err)
	}
	for {
		n, from, err := l.conn.ReadFromUDP(l.buf)
		if errors.Is(err, syscall.ECONNREFUSED) {
			// an ICMP port-unreachable for an earlier datagram: nobody
			// listens there now, which is silence, not a broken link
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("udp link: %w", err)
		}
		if l.monitor != nil && (!from.IP.Equal(l.monitor.IP) || from.Port != l.monitor.Port) {
			l.mu.Lock()
			l.ignored++
			l.mu.Unlock()
			continue
		}
		return append([]byte(nil), l.buf[:n]...), nil
	}
}

// WriteMessage sends msg as one datagram.
func (l *UDPLink) WriteMessage(msg []byte) error {
	var err error
	if l.conn.RemoteAddr() != nil {
		_, err = l.conn.Write(msg)
	} else if l.monitor != nil {
		_, err = l.conn.WriteToUDP(msg, l.monitor)
	} else {
		err = errors.New("no monitor address")
	}
	if err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("udp link: %w", err)
	}
	return nil
}

// Ignored is how many datagrams came from other addresses than the
// monitor's.
func (l *UDPLink) Ignored() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ignored
}

var _ devices.Link = (*UDPLink)(nil)
