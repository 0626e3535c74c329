// Package datexsim plays a GE Datex-Ohmeda S/5 monitor's side of the
// computer interface over a byte stream, from the public facts of the
// interface (see devices/datex): it answers a displayed-values request with
// a record of the basic physiological class (whatever extended classes
// were asked for) at the asked interval, with
// values that change from record to record and its own clock, until asked
// to stop. Knobs make it misbehave as monitors and cables do: stop
// answering, put garbage between frames, send a record whose offsets claim
// more than it holds, or a frame whose checksum is wrong.
package datexsim

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/wardgate/wardgate/devices/datex"
)

// Monitor is one simulated monitor. Set its fields before Run; the knobs
// may be turned while it runs.
type Monitor struct {
	// Level is the interface level written in its records' headers
	// (datex.Level15 when zero).
	Level uint8
	// Answers lists the request levels it answers; a request at another
	// level is ignored, as a monitor might. Nil: every level.
	Answers []uint8
	// PlugID is its plug identifier.
	PlugID uint16
	// Clock is its clock when Run starts (time.Now() when zero); it then
	// runs at one second per Second.
	Clock time.Time
	// Second is how long one second of the protocol lasts (time.Second
	// when zero): tests shorten it, with the dialogue's.
	Second time.Duration

	mu        sync.Mutex
	mute      bool
	garbage   bool
	overclaim int
	badSum    int
	requests  []datex.Request
	sent      int
	running   time.Duration // the interval in force, 0: stopped
}

// Mute makes the monitor stop answering (on) or answer again (off); a
// muted monitor still reads and records requests.
func (m *Monitor) Mute(on bool) { m.mu.Lock(); m.mute = on; m.mu.Unlock() }

// Garbage puts (on) or stops putting bytes that are no frame between
// frames: a stray flag, a bad escape, bytes whose checksum fails.
func (m *Monitor) Garbage(on bool) { m.mu.Lock(); m.garbage = on; m.mu.Unlock() }

// OverClaim makes the next n records claim more than they hold: r_len and
// the sub-record table describe a whole record, but the frame ends 100
// bytes into the class block.
func (m *Monitor) OverClaim(n int) { m.mu.Lock(); m.overclaim += n; m.mu.Unlock() }

// BadChecksum makes the next n frames carry a wrong checksum.
func (m *Monitor) BadChecksum(n int) { m.mu.Lock(); m.badSum += n; m.mu.Unlock() }

// Requests lists the requests read so far.
func (m *Monitor) Requests() []datex.Request {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]datex.Request(nil), m.requests...)
}

// Sent counts the records written (whole, over-claiming or with a bad
// checksum).
func (m *Monitor) Sent() int { m.mu.Lock(); defer m.mu.Unlock(); return m.sent }

// Sending reports whether a request for a stream of records is in force.
func (m *Monitor) Sending() bool { m.mu.Lock(); defer m.mu.Unlock(); return m.running > 0 }

// Run plays the monitor on rw until ctx ends or rw fails; it returns nil
// when ctx ended. Reading stops when Run returns only if rw's Read
// returns: close rw to end it.
func (m *Monitor) Run(ctx context.Context, rw io.ReadWriter) error {
	sec := m.Second
	if sec <= 0 {
		sec = time.Second
	}
	start := time.Now()
	clock := m.Clock
	if clock.IsZero() {
		clock = start
	}
	now := func() time.Time {
		return clock.Add(time.Duration(float64(time.Since(start)) / float64(sec) * float64(time.Second)))
	}

	reqs := make(chan datex.Request, 16)
	readErr := make(chan error, 1)
	go func() {
		var u datex.Unframer
		buf := make([]byte, 1024)
		for {
			n, err := rw.Read(buf)
			u.Feed(buf[:n], func(rec []byte, err error) {
				if err != nil {
					return
				}
				if r, err := datex.ParseRequest(rec); err == nil {
					select {
					case reqs <- r:
					case <-ctx.Done():
					}
				}
			})
			if err != nil {
				readErr <- err
				return
			}
		}
	}()

	var tick <-chan time.Time
	var ticker *time.Ticker
	defer func() {
		if ticker != nil {
			ticker.Stop()
		}
	}()
	setInterval := func(d time.Duration) {
		if ticker != nil {
			ticker.Stop()
			ticker, tick = nil, nil
		}
		m.mu.Lock()
		m.running = d
		m.mu.Unlock()
		if d > 0 {
			ticker = time.NewTicker(d)
			tick = ticker.C
		}
	}
	var out []byte
	send := func() error {
		m.mu.Lock()
		if m.mute {
			m.mu.Unlock()
			return nil
		}
		n := m.sent
		m.sent++
		garbage, over, bad := m.garbage, m.overclaim > 0, m.badSum > 0
		if over {
			m.overclaim--
		}
		if bad {
			m.badSum--
		}
		m.mu.Unlock()
		rec := Record(n, now(), m.level(), m.PlugID)
		if over {
			rec = rec[:datex.HeaderLen+4+100]
			// A second sub-record that lies beyond the record.
			binary.LittleEndian.PutUint16(rec[16+3:], uint16(datex.SubrecordLen))
			rec[16+5] = datex.SubDisplayed
			rec[16+8] = 0xFF
		}
		out = out[:0]
		if garbage {
			out = append(out, 0x55, 0x7D, 0x11, 0x7E, 0xA5, 0x00, 0xFF)
		}
		at := len(out)
		out = datex.AppendFrame(out, rec)
		if bad {
			// One byte of the record changed after the checksum was
			// taken.
			for i := at + 1; i < len(out)-1; i++ {
				if c := out[i] ^ 0x01; out[i] != 0x7D && out[i] != 0x7E && c != 0x7D && c != 0x7E {
					out[i] = c
					break
				}
			}
		}
		_, err := rw.Write(out)
		return err
	}

	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-readErr:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case r := <-reqs:
			m.mu.Lock()
			m.requests = append(m.requests, r)
			m.mu.Unlock()
			if !m.answers(r.Level) || r.Type != datex.SubDisplayed || r.Classes&datex.DenyBasic != 0 {
				continue
			}
			switch {
			case r.Interval == datex.IntervalStop:
				setInterval(0)
			case r.Interval == datex.IntervalOnce:
				if err := send(); err != nil {
					return err
				}
			case r.Interval > 0:
				setInterval(time.Duration(r.Interval) * sec)
				if err := send(); err != nil {
					return err
				}
			}
		case <-tick:
			if err := send(); err != nil {
				return err
			}
		}
	}
}

func (m *Monitor) level() uint8 {
	if m.Level == 0 {
		return datex.Level15
	}
	return m.Level
}

func (m *Monitor) answers(level uint8) bool {
	if m.Answers == nil {
		return true
	}
	for _, l := range m.Answers {
		if l == level {
			return true
		}
	}
	return false
}
