package serial

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/devices/internal/devicestest"
)

// Tests of the Source against ports the test holds the other end of: OS
// pipes behind the Source's port opener, and, for the real serial library,
// a socat pseudo-terminal pair. The end-to-end tests in test/ run the whole
// gateway on socat.

// pipePort is the reading end of an OS pipe, behaving as go.bug.st/serial
// does: a read that times out returns (0, nil).
type pipePort struct {
	r       *os.File
	timeout time.Duration
}

func (p *pipePort) SetReadTimeout(d time.Duration) error { p.timeout = d; return nil }
func (p *pipePort) Close() error                         { return p.r.Close() }

func (p *pipePort) Read(b []byte) (int, error) {
	if p.timeout > 0 {
		p.r.SetReadDeadline(time.Now().Add(p.timeout))
	}
	n, err := p.r.Read(b)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return n, nil
	}
	return n, err
}

// cable stands for the cable and adapter between a monitor and the box:
// each port opened is a new pipe whose writing end (the monitor's) the test
// takes from monitor; while unplugged, the port cannot be opened.
type cable struct {
	mu        sync.Mutex
	unplugged bool
	opens     int
	monitor   chan *os.File
}

func newCable() *cable { return &cable{monitor: make(chan *os.File, 64)} }

func (c *cable) open(path string, _ Settings) (Port, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.opens++
	if c.unplugged {
		return nil, &os.PathError{Op: "open", Path: path, Err: syscall.ENOENT}
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	c.monitor <- w
	return &pipePort{r: r}, nil
}

func (c *cable) plug(in bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.unplugged = !in
}

func (c *cable) openCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.opens
}

// next is the monitor's end of the next port the Source opens.
func (c *cable) next(t *testing.T) *os.File {
	t.Helper()
	select {
	case w := <-c.monitor:
		t.Cleanup(func() { w.Close() })
		return w
	case <-time.After(10 * time.Second):
		t.Fatal("the source did not open the port within 10 s")
		return nil
	}
}

// masimoLine is a Masimo Radical-7 line (ASCII 1) at second i: SpO2,
// pulse rate and perfusion index, three readings.
func masimoLine(i int) string {
	t := time.Date(2026, 11, 25, 8, 0, 0, 0, time.Local).Add(time.Duration(i) * time.Second)
	return fmt.Sprintf("%s SN=0000056661 SPO2=%03d%% BPM=%03d PI=03.60%% SPCO=--.-%% SPMET=--.-%% DESAT=-- PIDELTA=+-- ALARM=0000 EXC=000800\r\n",
		t.Format("01/02/06 15:04:05"), 90+i%10, 60+i%40)
}

var errFull = errors.New("store is full: outbox holds 10 of its 10 bytes")

type running struct {
	src  *Source
	sink *devicestest.Sink
	log  *devicestest.Log
	stop func() // cancels Run and waits for it
}

// start runs a Source for the masimo/radical-7 profile on the port that
// open opens; adjust changes its settings first.
func start(t *testing.T, open func(string, Settings) (Port, error), path string, adjust func(*Source)) *running {
	t.Helper()
	sink := &devicestest.Sink{}
	log, logger := devicestest.NewLog()
	p := devicestest.Profile(t, "masimo/radical-7")
	s := &Source{ID: "bed-12-monitor", Location: "bed-12", Path: path, Settings: Settings{}.Merge(p.Transport.Serial),
		Profile: p, Sink: sink, Monitor: devices.NewMonitor("bed-12-monitor", "bed-12", p.Name, "serial "+path), Log: logger,
		Open: open, MaxBackoff: 50 * time.Millisecond, retryEvery: 5 * time.Millisecond, silentAfter: time.Hour}
	if adjust != nil {
		adjust(s)
	}
	stop := devicestest.Run(t, s.Run)
	return &running{src: s, sink: sink, log: log, stop: stop}
}

func (r *running) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	devicestest.WaitFor(t, what, cond, func() string {
		st := r.src.Monitor.Status()
		return fmt.Sprintf("monitor %s (%s), %d frames, %d bad, %d lost; sink: %d readings, %d offers\n%s",
			st.State, st.LastError, st.Frames, st.BadFrames, st.Lost, r.sink.Readings(), r.sink.Ingests(), r.log)
	})
}

func (r *running) state() devices.State {
	st, _ := r.src.Monitor.State()
	return st
}

func write(t *testing.T, w *os.File, s string) {
	t.Helper()
	if _, err := w.WriteString(s); err != nil {
		t.Fatalf("the monitor's end: %v", err)
	}
}

// Garbage, an over-long line and a line cut short are counted and logged
// without their content; the good lines around them are stored.
func TestMalformedLinesAreCountedAndCostNothingElse(t *testing.T) {
	c := newCable()
	r := start(t, c.open, "/dev/ttyTEST0", nil)
	w := c.next(t)
	var stream strings.Builder
	for i, bad := range []string{
		"\x00\xff\xfe garbage ~~~\r\n",
		strings.Repeat("A", 2000) + "\r\n", // longer than the profile's max_line
		masimoLine(100)[:40] + "\r\n",      // cut short
		"",
	} {
		stream.WriteString(masimoLine(i))
		stream.WriteString(bad)
	}
	// Written unevenly, as a UART delivers.
	for b := []byte(stream.String()); len(b) > 0; {
		n := min(len(b), 37)
		if _, err := w.Write(b[:n]); err != nil {
			t.Fatal(err)
		}
		b = b[n:]
	}
	r.waitFor(t, "4 frames and 3 bad lines", func() bool {
		st := r.src.Monitor.Status()
		return st.Frames == 4 && st.BadFrames == 3
	})
	frames := r.sink.Frames()
	if len(frames) != 4 || r.sink.Readings() != 12 {
		t.Fatalf("%d frames, %d readings stored; want 4 frames of 3 readings", len(frames), r.sink.Readings())
	}
	for _, rd := range frames[0] {
		if rd.Device != "bed-12-monitor" || rd.Location != "bed-12" || rd.Received.IsZero() || rd.DeviceTime.IsZero() {
			t.Fatalf("reading not stamped: %+v", rd)
		}
	}
	if r.state() != devices.Connected {
		t.Fatalf("state %s, want %s", r.state(), devices.Connected)
	}
	log := r.log.String()
	if strings.Contains(log, "garbage") || strings.Contains(log, "AAAA") || strings.Contains(log, "SPO2") {
		t.Fatalf("a line's content reached the log:\n%s", log)
	}
	if n := r.log.Count("bad line from the monitor"); n != 1 {
		t.Fatalf("%d log lines of bad lines within a minute, want 1:\n%s", n, log)
	}
}

// A monitor that sends nothing, or bytes that never make a frame, while
// the port is open is shown silent; a frame shows it connected again.
func TestSilentMonitorIsShownSilent(t *testing.T) {
	c := newCable()
	r := start(t, c.open, "/dev/ttyTEST0", func(s *Source) { s.silentAfter = 50 * time.Millisecond })
	w := c.next(t)
	r.waitFor(t, "silence before the first frame", func() bool { return r.state() == devices.Silent })
	write(t, w, masimoLine(0))
	r.waitFor(t, "the monitor connected", func() bool { return r.state() == devices.Connected })
	r.waitFor(t, "silence after the last frame", func() bool { return r.state() == devices.Silent })
	write(t, w, "\x00\xff\xfe garbage ~~~\r\n")
	r.waitFor(t, "the garbage counted", func() bool { return r.src.Monitor.Status().BadFrames == 1 })
	if r.state() != devices.Silent {
		t.Fatalf("state %s after bytes that make no frame, want %s", r.state(), devices.Silent)
	}
	write(t, w, masimoLine(1))
	r.waitFor(t, "the monitor connected again", func() bool { return r.state() == devices.Connected })
	if n := r.log.Count("monitor silent"); n != 2 {
		t.Fatalf("%d log lines of silence, want 2 (one each time it fell silent):\n%s", n, r.log)
	}
}

// The outbox refuses a frame for less than OutboxWait: it is offered again
// and stored, nothing is lost, and what the monitor sent meanwhile follows.
func TestRefusedFrameIsOfferedAgainThenStored(t *testing.T) {
	c := newCable()
	r := start(t, c.open, "/dev/ttyTEST0", func(s *Source) { s.OutboxWait = time.Hour })
	w := c.next(t)
	r.sink.RefuseIngest(errFull)
	write(t, w, masimoLine(0))
	r.waitFor(t, "three offers", func() bool { return r.sink.Ingests() >= 3 })
	if st := r.src.Monitor.Status(); st.State != devices.Failed || !strings.Contains(st.LastError, "outbox") {
		t.Fatalf("state %s (%q) while the outbox refuses, want %s saying so", st.State, st.LastError, devices.Failed)
	}
	write(t, w, masimoLine(1)) // waits in the port meanwhile
	r.sink.RefuseIngest(nil)
	r.waitFor(t, "both frames stored", func() bool { return r.sink.Readings() == 6 })
	if st := r.src.Monitor.Status(); st.Lost != 0 || st.State != devices.Connected {
		t.Fatalf("%d lost, state %s; want 0, connected", st.Lost, st.State)
	}
}

// The outbox refuses for longer than OutboxWait: the frame's readings are
// counted lost; while the refusal lasts, each later frame is offered once
// and counted lost; once the outbox takes readings again, frames are stored.
func TestRefusedPastOutboxWaitReadingsAreCountedLost(t *testing.T) {
	c := newCable()
	r := start(t, c.open, "/dev/ttyTEST0", func(s *Source) { s.OutboxWait = 30 * time.Millisecond })
	w := c.next(t)
	r.sink.RefuseIngest(errFull)
	write(t, w, masimoLine(0))
	r.waitFor(t, "the first frame's readings lost", func() bool { return r.src.Monitor.Status().Lost == 3 })
	if n := r.sink.Ingests(); n < 2 {
		t.Fatalf("the refused frame was offered %d times, want it offered again before it was lost", n)
	}
	offers := r.sink.Ingests()
	write(t, w, masimoLine(1)+masimoLine(2)+masimoLine(3))
	r.waitFor(t, "three more frames' readings lost", func() bool { return r.src.Monitor.Status().Lost == 12 })
	if n := r.sink.Ingests() - offers; n != 3 {
		t.Fatalf("3 frames during the refusal were offered %d times, want once each", n)
	}
	if st := r.src.Monitor.Status(); st.State != devices.Failed || st.Frames != 4 {
		t.Fatalf("state %s, %d frames; want %s, 4", st.State, st.Frames, devices.Failed)
	}
	r.sink.RefuseIngest(nil)
	write(t, w, masimoLine(4))
	r.waitFor(t, "a frame stored", func() bool { return r.sink.Readings() == 3 })
	if st := r.src.Monitor.Status(); st.Lost != 12 || st.State != devices.Connected {
		t.Fatalf("%d lost, state %s; want 12, connected", st.Lost, st.State)
	}
	if r.log.Count("readings lost") != 1 || r.log.Count("readings_lost=12") != 1 {
		t.Fatalf("the losses are logged once at first and counted when the refusal ends:\n%s", r.log)
	}
}

// Run ends soon after its context, whatever it was doing, and closes the
// port; a frame the outbox was refusing is counted lost.
func TestCancellationStopsTheSource(t *testing.T) {
	t.Run("reading", func(t *testing.T) {
		c := newCable()
		r := start(t, c.open, "/dev/ttyTEST0", nil)
		w := c.next(t)
		write(t, w, masimoLine(0))
		r.waitFor(t, "a frame stored", func() bool { return r.sink.Readings() == 3 })
		r.stop()
		if _, err := w.WriteString(masimoLine(1)); err == nil {
			t.Fatal("the port is still open after Run returned")
		}
	})
	t.Run("while the outbox refuses", func(t *testing.T) {
		c := newCable()
		r := start(t, c.open, "/dev/ttyTEST0", func(s *Source) { s.OutboxWait = time.Hour })
		w := c.next(t)
		r.sink.RefuseIngest(errFull)
		write(t, w, masimoLine(0))
		r.waitFor(t, "two offers", func() bool { return r.sink.Ingests() >= 2 })
		r.stop()
		if lost := r.src.Monitor.Status().Lost; lost != 3 || r.log.Count("the gateway stopped before the outbox took them") != 1 {
			t.Fatalf("%d readings counted lost, want 3, logged:\n%s", lost, r.log)
		}
	})
	t.Run("while the port will not open", func(t *testing.T) {
		c := newCable()
		c.plug(false)
		r := start(t, c.open, "/dev/ttyTEST0", func(s *Source) { s.MaxBackoff = time.Hour })
		r.waitFor(t, "two attempts to open", func() bool { return c.openCount() >= 2 })
		r.stop()
	})
}

// The port vanishes (a USB adapter pulled out): the monitor is shown
// disconnected, the port is tried again until it comes back, and frames
// flow again.
func TestPortThatVanishesIsReopened(t *testing.T) {
	c := newCable()
	r := start(t, c.open, "/dev/ttyTEST0", nil)
	w := c.next(t)
	write(t, w, masimoLine(0))
	r.waitFor(t, "a frame stored", func() bool { return r.sink.Readings() == 3 })
	c.plug(false)
	w.Close()
	r.waitFor(t, "the monitor disconnected", func() bool { return r.state() == devices.Disconnected })
	opens := c.openCount()
	r.waitFor(t, "attempts to reopen", func() bool { return c.openCount() >= opens+2 })
	if n := r.log.Count("monitor disconnected"); n != 1 {
		t.Fatalf("%d log lines of the disconnection, want 1 (not one per attempt):\n%s", n, r.log)
	}
	c.plug(true)
	w = c.next(t)
	write(t, w, masimoLine(1))
	r.waitFor(t, "a frame stored after the port came back", func() bool { return r.sink.Readings() == 6 })
	if r.state() != devices.Connected {
		t.Fatalf("state %s, want %s", r.state(), devices.Connected)
	}
}

// The same with the real serial library on a socat pseudo-terminal pair,
// socat killed as the adapter pulled out and started again.
func TestPseudoTerminalThatVanishesIsReopened(t *testing.T) {
	dir := t.TempDir()
	mon, gw := filepath.Join(dir, "monitor"), filepath.Join(dir, "gateway")
	socat := func() *exec.Cmd {
		_, _, cmd := devicestest.SocatPair(t, dir)
		return cmd
	}
	monitorEnd := func() *os.File {
		f, err := os.OpenFile(mon, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	cmd := socat()
	r := start(t, nil, gw, func(s *Source) { s.MaxBackoff = 200 * time.Millisecond })
	r.waitFor(t, "the port open", func() bool { return r.log.Count("port open") == 1 })
	w := monitorEnd()
	write(t, w, masimoLine(0))
	r.waitFor(t, "a frame stored", func() bool { return r.sink.Readings() == 3 })

	w.Close()
	cmd.Process.Kill()
	cmd.Wait()
	r.waitFor(t, "the monitor disconnected", func() bool { return r.state() == devices.Disconnected })
	socat()
	r.waitFor(t, "the port open again", func() bool { return r.log.Count("port open") == 2 })
	write(t, monitorEnd(), masimoLine(1))
	r.waitFor(t, "a frame stored after the port came back", func() bool { return r.sink.Readings() == 6 })
	if r.state() != devices.Connected {
		t.Fatalf("state %s, want %s", r.state(), devices.Connected)
	}
}
