package datex_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/devices/datex"
	"github.com/wardgate/wardgate/devices/internal/devicestest"
	"github.com/wardgate/wardgate/devices/sim/datexsim"
)

// The dialogue against the simulated monitor over a byte stream. A
// protocol second lasts 200 ms on both sides, so that the 5-s interval and
// the 15-s silence pass in 1 s and 3 s. Nothing here asserts a timing, but
// a goroutine kept from a CPU for longer than the silence would make the
// monitor look silent: with 100 ms, the race detector on a machine loaded
// eight times over its two cores did so.
const second = 200 * time.Millisecond

// session is a Dialogue's Run against a monitor on the other end of rw.
type session struct {
	mon  *datexsim.Monitor
	d    *datex.Dialogue
	link *datex.SerialLink

	mu      sync.Mutex
	frames  []devices.DriverFrame
	emitErr error // what emit returns once set
	err     error
	done    chan struct{}
	cancel  context.CancelFunc
}

func (s *session) emit(f devices.DriverFrame) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.emitErr != nil {
		return s.emitErr
	}
	s.frames = append(s.frames, f)
	return nil
}

func (s *session) got() []devices.DriverFrame {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]devices.DriverFrame(nil), s.frames...)
}

func (s *session) result() (error, bool) {
	select {
	case <-s.done:
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.err, true
	default:
		return nil, false
	}
}

func (s *session) state() string {
	err, ended := s.result()
	return fmt.Sprintf("%d frames; run ended %v (%v); monitor: %d records sent, requests %+v; link: %d bad frames (%v)",
		len(s.got()), ended, err, s.mon.Sent(), s.mon.Requests(), s.link.BadFrames(), s.link.LastBad())
}

func (s *session) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	devicestest.WaitFor(t, what, cond, s.state)
}

// pipe is a connected pair of byte streams (net.Pipe: each write waits
// for the other end to read it, as a line with flow control does).
func pipe(t *testing.T) (gateway, monitor io.ReadWriteCloser) {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// start runs mon on monitorEnd and d's Run on a SerialLink over gwEnd.
func start(t *testing.T, mon *datexsim.Monitor, d *datex.Dialogue, gwEnd, monitorEnd io.ReadWriter) *session {
	t.Helper()
	startMonitor(t, mon, monitorEnd)
	return runDialogue(t, mon, d, gwEnd)
}

// startMonitor runs mon on monitorEnd until the test ends.
func startMonitor(t *testing.T, mon *datexsim.Monitor, monitorEnd io.ReadWriter) {
	monDone := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { monDone <- mon.Run(ctx, monitorEnd) }()
	t.Cleanup(func() {
		cancel()
		if c, ok := monitorEnd.(io.Closer); ok {
			c.Close()
		}
		select {
		case err := <-monDone:
			if err != nil && !errors.Is(err, io.ErrClosedPipe) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, os.ErrClosed) {
				t.Logf("monitor: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("the simulated monitor did not stop within 10 s")
		}
	})
}

// runDialogue runs d's Run on a new SerialLink over gwEnd until the test
// ends or stop is called.
func runDialogue(t *testing.T, mon *datexsim.Monitor, d *datex.Dialogue, gwEnd io.ReadWriter) *session {
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{mon: mon, d: d, link: datex.NewSerialLink(gwEnd), done: make(chan struct{}), cancel: cancel}
	go func() {
		err := d.Run(ctx, s.link, s.emit)
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
		close(s.done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return within 10 s of its context ending")
		}
		if c, ok := gwEnd.(net.Conn); ok {
			c.Close() // a pipe's Read returns only then
		}
		s.link.Close()
	})
	return s
}

// stop ends the session's context and waits for Run to return.
func (s *session) stop(t *testing.T) error {
	t.Helper()
	s.cancel()
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("Run did not return within 10 s of its context ending; %s", s.state())
	}
	err, _ := s.result()
	return err
}

func newMonitor() *datexsim.Monitor {
	return &datexsim.Monitor{Second: second, Clock: at, PlugID: 7}
}

func newDialogue() *datex.Dialogue {
	return &datex.Dialogue{Second: second, Levels: datex.LevelsFrom(datex.Level15), Log: slog.New(slog.DiscardHandler)}
}

// slower makes a session's protocol second last sec on both sides.
func slower(m *datexsim.Monitor, d *datex.Dialogue, sec time.Duration) (*datexsim.Monitor, *datex.Dialogue) {
	m.Second, d.Second = sec, sec
	return m, d
}

// checkFrame checks a frame as the simulator's first records hold it:
// with the NIBP (nibp: the first record the Dialogue sees, the NIBP of no
// known time) or without (a record that shows it again).
func checkFrame(t *testing.T, f devices.DriverFrame, nibp bool) {
	t.Helper()
	v := byField(f)
	want := len(datex.Fields())
	if !nibp {
		want -= 4
	}
	if f.Bad != 0 || len(f.Values) != want {
		t.Fatalf("bad %d, %d values, want %d", f.Bad, len(f.Values), want)
	}
	if _, ok := v["nibp.sys"]; ok != nibp {
		t.Fatalf("NIBP in the frame: %v, want %v", ok, nibp)
	}
	// The first record a Dialogue sees: its NIBP may have been charted
	// before the gateway started; its time is not known.
	if nibp && (!v["nibp.sys"].TimeUnknown || !v["nibp.sys"].Time.IsZero()) {
		t.Errorf("the NIBP of a Dialogue's first record: time %v, unknown %v", v["nibp.sys"].Time, v["nibp.sys"].TimeUnknown)
	}
	if hr := v["ecg.hr"].Value; hr < 60 || hr >= 90 || hr != math.Trunc(hr) {
		t.Errorf("ecg.hr %v", hr)
	}
	for field, want := range map[string]float64{"nibp.sys": 120, "nibp.mean": 93, "t1.temp": 37.1, "co2.et": 38} {
		if _, ok := v[field]; !ok && !nibp {
			continue
		}
		if got := v[field].Value; got != want {
			t.Errorf("%s = %v, want %v", field, got, want)
		}
	}
	if !math.IsNaN(v["p2.sys"].Value) || datex.StateMarker(v["p2.sys"].State) != datex.NoData {
		t.Errorf("p2.sys %v state %#x", v["p2.sys"].Value, v["p2.sys"].State)
	}
	// The monitor's own clock: it started at `at` and runs a second per
	// protocol second.
	if f.DeviceTime.Before(at) || f.DeviceTime.After(at.Add(24*time.Hour)) {
		t.Errorf("device time %v, the monitor's clock started at %v", f.DeviceTime, at)
	}
}

func TestDialogueValuesAndStop(t *testing.T) {
	gw, mon := pipe(t)
	s := start(t, newMonitor(), newDialogue(), gw, mon)
	s.waitFor(t, "three records", func() bool { return len(s.got()) >= 3 })
	for i, f := range s.got()[:3] {
		checkFrame(t, f, i == 0)
	}
	req := s.mon.Requests()[0]
	if req != (datex.Request{Type: datex.SubDisplayed, Interval: 5, Level: datex.Level15}) {
		t.Fatalf("request %+v", req)
	}
	if err := s.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	s.waitFor(t, "the stop request", func() bool {
		r := s.mon.Requests()
		return len(r) >= 2 && r[len(r)-1].Interval == datex.IntervalStop && r[len(r)-1].Level == datex.Level15
	})
	s.waitFor(t, "the monitor to stop sending", func() bool { return !s.mon.Sending() })
}

func TestDialogueMonitorStopsAnswering(t *testing.T) {
	gw, mon := pipe(t)
	s := start(t, newMonitor(), newDialogue(), gw, mon)
	s.waitFor(t, "two records", func() bool { return len(s.got()) >= 2 })
	s.mon.Mute(true)
	s.waitFor(t, "Run to end", func() bool { _, ended := s.result(); return ended })
	err, _ := s.result()
	if !errors.Is(err, devices.ErrSilent) {
		t.Fatalf("Run: %v, want an error wrapping ErrSilent", err)
	}
	// It asked again before it gave up: a monitor that reset forgets.
	s.waitFor(t, "the request asked again", func() bool { return len(s.mon.Requests()) >= 2 })
	// Answered at its first level, the next session keeps it.
	if l := s.d.Level(); l != datex.Level15 {
		t.Fatalf("next level %s", datex.LevelName(l))
	}
}

func TestDialogueGarbageOnTheLine(t *testing.T) {
	gw, mon := pipe(t)
	m := newMonitor()
	m.Garbage(true)
	m.BadChecksum(2)
	s := start(t, m, newDialogue(), gw, mon)
	s.waitFor(t, "three records", func() bool { return len(s.got()) >= 3 })
	for i, f := range s.got()[:3] {
		checkFrame(t, f, i == 0)
	}
	// Two frames with a bad checksum, and two garbage candidates before
	// each frame.
	s.waitFor(t, "bad frames counted", func() bool { return s.link.BadFrames() >= 2+2*3 })
	if m.Sent() < len(s.got())+2 {
		t.Fatalf("%d sent, %d frames: the frames with bad checksums were taken", m.Sent(), len(s.got()))
	}
}

func TestDialogueRecordClaimsMoreThanItHolds(t *testing.T) {
	gw, mon := pipe(t)
	m := newMonitor()
	m.OverClaim(1)
	s := start(t, m, newDialogue(), gw, mon)
	s.waitFor(t, "two records", func() bool { return len(s.got()) >= 2 })
	first, second := s.got()[0], s.got()[1]
	v := byField(first)
	if first.Bad == 0 || v["ecg.hr"].Value != 60 || v["nibp.sys"].Value != 120 {
		t.Fatalf("over-claiming record: bad %d, %d values %v", first.Bad, len(first.Values), first.Values)
	}
	if _, ok := v["spo2.spo2"]; ok {
		t.Fatal("spo2 lies beyond what the record holds and was decoded")
	}
	checkFrame(t, second, false)
}

// A monitor that answers level 0 only: the first session, written at
// '15, hears nothing and ends silent; the next is written at 0.
func TestDialogueFallsBackToAnotherLevel(t *testing.T) {
	m := newMonitor()
	m.Answers = []uint8{0}
	d := newDialogue()
	gw, mon := pipe(t)
	s := start(t, m, d, gw, mon)
	s.waitFor(t, "the first session to end", func() bool { _, ended := s.result(); return ended })
	if err, _ := s.result(); !errors.Is(err, devices.ErrSilent) {
		t.Fatalf("Run: %v", err)
	}
	if l := d.Level(); l != 0 {
		t.Fatalf("next level %s, want 0", datex.LevelName(l))
	}
	gw, mon = pipe(t)
	s = start(t, m, d, gw, mon)
	s.waitFor(t, "a record at level 0", func() bool { return len(s.got()) >= 1 })
	checkFrame(t, s.got()[0], true)
}

// The gateway that cannot store the values ends the session with its
// error, and the monitor is told to stop.
func TestDialogueEndsWhenValuesCannotBeStored(t *testing.T) {
	gw, mon := pipe(t)
	d := newDialogue()
	d.Interval = 10 * time.Second
	s := start(t, newMonitor(), d, gw, mon)
	s.waitFor(t, "a record", func() bool { return len(s.got()) >= 1 })
	full := errors.New("outbox full")
	s.mu.Lock()
	s.emitErr = full
	s.mu.Unlock()
	s.waitFor(t, "Run to end", func() bool { _, ended := s.result(); return ended })
	if err, _ := s.result(); !errors.Is(err, full) {
		t.Fatalf("Run: %v, want the emit's error", err)
	}
	s.waitFor(t, "the stop request", func() bool {
		r := s.mon.Requests()
		return len(r) >= 2 && r[len(r)-1].Interval == datex.IntervalStop
	})
	if r := s.mon.Requests()[0]; r.Interval != 10 {
		t.Fatalf("request %+v: the configured interval is 10 s", r)
	}
}
