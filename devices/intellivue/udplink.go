package intellivue

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/wardgate/wardgate/devices"
)

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
