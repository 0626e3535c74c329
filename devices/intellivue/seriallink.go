package intellivue

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/wardgate/wardgate/devices"
)

// SerialBaud is the MIB/RS232 port's speed (8 data bits, no parity, one
// stop bit, no flow control).
const SerialBaud = 115200

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

// BadFrames counts the frames the link dropped (checksum, header, length,
// abort, over the bound, or the reader behind): what the monitor's row on
// the status page counts as bad frames.
func (l *SerialLink) BadFrames() uint64 { return l.Stats().Bad }
