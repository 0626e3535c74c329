package intellivuesim

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"syscall"
	"time"
)

// step is how often the monitor looks at its clock for what it sends by
// itself.
const step = 20 * time.Millisecond

// Serve answers clients on conn (a UDP socket bound to the data-export
// port, 24105 on a real monitor) until ctx ends. It talks to the last
// client that asked for an association.
func (m *Monitor) Serve(ctx context.Context, conn *net.UDPConn) error {
	buf := make([]byte, 65536)
	var peer *net.UDPAddr
	send := func(msgs [][]byte) {
		for _, msg := range msgs {
			if peer == nil {
				return
			}
			if m.junk() {
				// a datagram that is no message: its first byte is no
				// session identifier
				conn.WriteToUDP(append([]byte{0x00}, junkBytes()...), peer)
			}
			conn.WriteToUDP(msg, peer)
		}
	}
	for ctx.Err() == nil {
		conn.SetReadDeadline(time.Now().Add(step))
		n, from, err := conn.ReadFromUDP(buf)
		now := time.Now()
		switch {
		case err == nil:
			if n > 0 && buf[0] == 0x0D {
				peer = from
			}
			if peer != nil && from.IP.Equal(peer.IP) && from.Port == peer.Port {
				send(m.handle(append([]byte(nil), buf[:n]...), now))
			}
		case errors.Is(err, os.ErrDeadlineExceeded):
		default:
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		send(m.tick(now))
	}
	return nil
}

// UDPConfig says where a simulated monitor listens on the LAN.
type UDPConfig struct {
	// Listen is the data-export address (":24105" when empty).
	Listen string
	// Broadcast, when set, is where the Connect Indication goes every
	// Every (5 s when zero): "255.255.255.255:24005" on a real network.
	Broadcast string
	Every     time.Duration
}

// ListenAndServe binds the data-export port, broadcasts the Connect
// Indication if asked, and serves clients until ctx ends.
func (m *Monitor) ListenAndServe(ctx context.Context, c UDPConfig) error {
	if c.Listen == "" {
		c.Listen = ":24105"
	}
	if c.Every <= 0 {
		c.Every = 5 * time.Second
	}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(ctx, "udp", c.Listen)
	if err != nil {
		return err
	}
	conn := pc.(*net.UDPConn)
	defer conn.Close()
	if c.Broadcast != "" {
		to, err := net.ResolveUDPAddr("udp", c.Broadcast)
		if err != nil {
			return err
		}
		go m.BroadcastConnectIndication(ctx, conn, to, c.Every)
	}
	return m.Serve(ctx, conn)
}

// BroadcastConnectIndication sends the monitor's Connect Indication to to
// (the LAN's broadcast address, port 24005, on a real network) every
// period until ctx ends.
func (m *Monitor) BroadcastConnectIndication(ctx context.Context, conn *net.UDPConn, to *net.UDPAddr, period time.Duration) error {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		if _, err := conn.WriteToUDP(m.connectIndication(time.Now()), to); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// ServeStream answers a client over a byte stream with the MIB/RS232
// framing (a pseudo-terminal, a pipe) until ctx ends or the stream fails.
// A goroutine reads rw until its Read fails: close rw to end it.
func (m *Monitor) ServeStream(ctx context.Context, rw io.ReadWriter) error {
	in := make(chan []byte, 64)
	readErr := make(chan error, 1)
	go func() {
		var u unframer
		buf := make([]byte, 4096)
		for {
			n, err := rw.Read(buf)
			u.push(buf[:n], func(msg []byte) {
				select {
				case in <- msg:
				case <-ctx.Done():
				}
			})
			if err != nil {
				readErr <- err
				return
			}
			if n == 0 {
				time.Sleep(step)
			}
		}
	}()
	send := func(msgs [][]byte) error {
		for _, msg := range msgs {
			var out []byte
			if m.junk() {
				out = append(out, junkBytes()...)
			}
			out = append(out, frame(msg)...)
			if m.junk() {
				out = append(out, junkBytes()...)
			}
			if _, err := rw.Write(out); err != nil {
				return err
			}
		}
		return nil
	}
	t := time.NewTicker(step)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-readErr:
			if ctx.Err() != nil {
				return nil
			}
			return err
		case msg := <-in:
			if err := send(m.handle(msg, time.Now())); err != nil {
				return err
			}
		case now := <-t.C:
			if err := send(m.tick(now)); err != nil {
				return err
			}
		}
	}
}

func (m *Monitor) junk() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.garbage
}

// junkBytes is line noise: random bytes with the framing's own bytes
// among them (a stray BOF, an escape, an EOF), so that the client must
// resynchronise.
func junkBytes() []byte {
	n := 1 + rand.IntN(24)
	b := make([]byte, n)
	for i := range b {
		switch rand.IntN(8) {
		case 0:
			b[i] = bof
		case 1:
			b[i] = eof
		case 2:
			b[i] = esc
		default:
			b[i] = byte(rand.IntN(256))
		}
	}
	return b
}
