package datex

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// SerialLink carries records over a byte stream (a serial port, a
// pseudo-terminal, a pipe in tests) as a devices.Link: it frames what it
// writes and unframes what it reads, resynchronising at the next flag
// after garbage, refusing a frame longer than a record, and counting
// every candidate that was not a record.
//
// The port is read by a goroutine of the link's own, started at the first
// ReadMessage, so that a deadline holds whatever the port's Read does: a
// serial port's Read that returns (0, nil) at its timeout, or a pipe's
// that blocks. The goroutine ends when Read fails, or when Read returns
// after Close.
type SerialLink struct {
	port io.ReadWriter

	start   sync.Once
	records chan []byte
	failed  chan struct{} // closed when the reader stops; err says why
	err     error
	done    chan struct{} // closed by Close
	close   sync.Once
	exited  chan struct{} // closed when the reader returns
	started atomic.Bool

	wmu  sync.Mutex
	wbuf []byte

	bad     atomic.Uint64
	badMu   sync.Mutex
	lastBad error
}

// NewSerialLink returns a link over port.
func NewSerialLink(port io.ReadWriter) *SerialLink {
	return &SerialLink{port: port, records: make(chan []byte, 8), failed: make(chan struct{}), done: make(chan struct{}), exited: make(chan struct{})}
}

// BadFrames counts the candidates that were not records (garbage,
// a checksum that did not hold, a bad escape, a frame too long).
func (l *SerialLink) BadFrames() uint64 { return l.bad.Load() }

// LastBad is why the latest bad frame was refused, nil before any.
func (l *SerialLink) LastBad() error {
	l.badMu.Lock()
	defer l.badMu.Unlock()
	return l.lastBad
}

// WriteMessage frames rec and writes it to the port in one write.
func (l *SerialLink) WriteMessage(rec []byte) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.wbuf = AppendFrame(l.wbuf[:0], rec)
	_, err := l.port.Write(l.wbuf)
	return err
}

// Close stops the link's reader and returns once it stopped, which is
// when the port's Read next returns; the port stays open. A serial port's
// Read returns at its timeout, so that the port can then be given to a new
// link: two readers at once must not be, as go.bug.st/serial lets both
// through its select and one blocks in read(2) with nothing left to read,
// and its Close then waits for that reader for ever. For a port whose
// Read blocks until data comes (a pipe), close the port first.
func (l *SerialLink) Close() error {
	l.close.Do(func() { close(l.done) })
	if l.started.Load() {
		<-l.exited
	}
	return nil
}

// ReadMessage returns the next record, waiting until deadline at most;
// past it the error wraps os.ErrDeadlineExceeded. Once the port failed,
// the records read before are still handed out, then its error.
func (l *SerialLink) ReadMessage(deadline time.Time) ([]byte, error) {
	l.start.Do(func() {
		l.started.Store(true)
		go l.read()
	})
	select {
	case rec := <-l.records:
		return rec, nil
	default:
	}
	wait := time.Until(deadline)
	if wait <= 0 {
		return nil, fmt.Errorf("datex link: %w", os.ErrDeadlineExceeded)
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case rec := <-l.records:
		return rec, nil
	case <-l.failed:
		select {
		case rec := <-l.records:
			return rec, nil
		default:
		}
		return nil, l.err
	case <-t.C:
		return nil, fmt.Errorf("datex link: %w", os.ErrDeadlineExceeded)
	}
}

// read is the link's own read loop (no bufio.Scanner: a serial port's
// Read returns (0, nil) when its timeout passes with nothing read).
func (l *SerialLink) read() {
	defer close(l.exited)
	var u Unframer
	buf := make([]byte, 4096)
	got := func(rec []byte, err error) {
		if err != nil {
			l.badMu.Lock()
			l.lastBad = err
			l.badMu.Unlock()
			l.bad.Add(1)
			return
		}
		select {
		case l.records <- append([]byte(nil), rec...):
		case <-l.done:
		}
	}
	for {
		select {
		case <-l.done:
			l.err = errors.New("datex link: closed")
			close(l.failed)
			return
		default:
		}
		n, err := l.port.Read(buf)
		if n > 0 {
			u.Feed(buf[:n], got)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			l.err = fmt.Errorf("datex link: reading the port: %w", err)
			close(l.failed)
			return
		}
	}
}
