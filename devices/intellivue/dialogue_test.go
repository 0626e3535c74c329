package intellivue_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/devices/intellivue"
	"github.com/wardgate/wardgate/devices/internal/devicestest"
	"github.com/wardgate/wardgate/devices/sim/intellivuesim"
)

// recorder keeps what a Run emits.
type recorder struct {
	mu     sync.Mutex
	frames []devices.DriverFrame
	fail   error
}

func (r *recorder) emit(f devices.DriverFrame) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.frames = append(r.frames, f)
	return r.fail
}

func (r *recorder) all() []devices.DriverFrame {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]devices.DriverFrame(nil), r.frames...)
}

func (r *recorder) count() int { return len(r.all()) }

// find is the last value of field emitted, and its frame.
func (r *recorder) find(field string) (devices.DriverValue, devices.DriverFrame, bool) {
	fs := r.all()
	for i := len(fs) - 1; i >= 0; i-- {
		for _, v := range fs[i].Values {
			if v.Field == field {
				return v, fs[i], true
			}
		}
	}
	return devices.DriverValue{}, devices.DriverFrame{}, false
}

func (r *recorder) String() string {
	fs := r.all()
	if len(fs) == 0 {
		return "no frames"
	}
	return fmt.Sprintf("%d frames, the last %+v", len(fs), fs[len(fs)-1])
}

// fast are options that keep the tests short: keep-alives every 300 ms,
// association requests again every 500 ms, an extended poll of 3 s (the
// simulator answers it every 100 ms).
func fast(o intellivue.Options) intellivue.Options {
	o.Location = time.UTC
	if o.KeepAlive == 0 {
		o.KeepAlive = 300 * time.Millisecond
	}
	if o.Silence == 0 {
		// long enough that a machine busy with other tests is not taken
		// for a silent monitor; the silence tests shorten it
		o.Silence = 5 * time.Second
	}
	if o.AssociateRetry == 0 {
		o.AssociateRetry = 500 * time.Millisecond
	}
	if o.ExtendedPeriod == 0 {
		o.ExtendedPeriod = 3 * time.Second
	}
	_, o.Logger = devicestest.NewLog()
	return o
}

func newSim(cfg intellivuesim.Config) *intellivuesim.Monitor {
	if cfg.Interval == 0 {
		cfg.Interval = 100 * time.Millisecond
	}
	_, cfg.Logger = devicestest.NewLog()
	return intellivuesim.New(cfg)
}

// serveUDP runs the simulator on a loopback UDP port and returns a link to
// it over a socket of the client's own.
func serveUDP(t *testing.T, m *intellivuesim.Monitor) *intellivue.UDPLink {
	link, _ := serveUDPAt(t, m)
	return link
}

func serveUDPAt(t *testing.T, m *intellivuesim.Monitor) (*intellivue.UDPLink, *net.UDPAddr) {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Serve(ctx, conn) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("simulator: %v", err)
		}
		conn.Close()
	})
	client, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return intellivue.NewUDPLink(client, conn.LocalAddr().(*net.UDPAddr)), client.LocalAddr().(*net.UDPAddr)
}

// running is a Run under way.
type running struct {
	done chan struct{}
	err  error
}

// run starts a Run; the test's end cancels it and waits for it.
func run(t *testing.T, d *intellivue.Dialogue, link devices.Link, rec *recorder) (cancel func(), r *running) {
	ctx, cancel := context.WithCancel(context.Background())
	r = &running{done: make(chan struct{})}
	go func() {
		r.err = d.Run(ctx, link, rec.emit)
		close(r.done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return within 10 s of its context ending")
		}
	})
	return cancel, r
}

// wait is the end of a Run.
func wait(t *testing.T, what string, r *running) error {
	t.Helper()
	select {
	case <-r.done:
		return r.err
	case <-time.After(15 * time.Second):
		t.Fatalf("waited 15 s for %s", what)
		return nil
	}
}

func dialogue(t *testing.T, o intellivue.Options) *intellivue.Dialogue {
	t.Helper()
	d, err := intellivue.New(fast(o))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// checkValues checks every numeric the simulator sends: its field (the
// physio id as sent), unit code, state and a plausible value; the NIBP
// with its own time, every frame with the monitor's clock.
func checkValues(t *testing.T, rec *recorder, skew time.Duration) {
	t.Helper()
	devicestest.WaitFor(t, "every numeric, the NIBP among them", func() bool {
		_, _, ok := rec.find("0x4A05")
		_, _, ok2 := rec.find("0x4B48")
		return ok && ok2 && rec.count() >= 3
	}, rec.String)
	for _, c := range []struct {
		field, unit string
		lo, hi      float64
	}{
		{"0x4182", "2720", 60, 85},   // HR, bpm
		{"0x4BB8", "544", 90, 100},   // SpO2, %
		{"0x4822", "2720", 60, 85},   // pulse rate from the pleth, as sent
		{"0x500A", "2784", 10, 22},   // RR, /min
		{"0x4A05", "3872", 110, 130}, // NIBP systolic, mmHg
		{"0x4A06", "3872", 70, 90},
		{"0x4A07", "3872", 85, 100},
		{"0x4B48", "6048", 36, 38}, // temperature, °C
	} {
		v, f, ok := rec.find(c.field)
		if !ok {
			t.Errorf("%s never came", c.field)
			continue
		}
		if v.Unit != c.unit || v.State != 0 || v.Value < c.lo || v.Value > c.hi {
			t.Errorf("%s: %+v", c.field, v)
		}
		if f.Model != "MX800" || f.SerialNumber != "DE00000001" || f.Firmware != "M.00.03" {
			t.Errorf("%s: identity %q %q %q", c.field, f.Model, f.SerialNumber, f.Firmware)
		}
		now := time.Now().Add(skew)
		if d := f.DeviceTime.Sub(now); d > 2*time.Second || d < -5*time.Second {
			t.Errorf("%s: device time %v, the monitor's clock is %v", c.field, f.DeviceTime, now)
		}
		nibp := strings.HasPrefix(c.field, "0x4A0")
		if nibp != !v.Time.IsZero() {
			t.Errorf("%s: own time %v", c.field, v.Time)
		}
		if nibp {
			// the cuff was taken 20 s before the monitor started: the
			// value carries that, not the answer's time
			if d := f.DeviceTime.Sub(v.Time); d < 19*time.Second || d > 40*time.Second {
				t.Errorf("%s taken %v before the answer, want about 20 s", c.field, d)
			}
		}
	}
	// the NIBP came once, in one answer
	n := 0
	for _, f := range rec.all() {
		for _, v := range f.Values {
			if v.Field == "0x4A05" {
				n++
			}
		}
	}
	if n != 1 {
		t.Errorf("the NIBP came %d times", n)
	}
}

func TestValuesOverUDP(t *testing.T) {
	const skew = -90 * time.Second
	m := newSim(intellivuesim.Config{ClockSkew: skew})
	m.Garbage(true) // datagrams that are no message among the answers
	link := serveUDP(t, m)
	rec := &recorder{}
	cancel, done := run(t, dialogue(t, intellivue.Options{}), link, rec)
	checkValues(t, rec, skew)

	// a measurement the monitor marks invalid arrives as NaN with its state
	m.SetState(intellivuesim.PhysioSpO2, 0x8000)
	devicestest.WaitFor(t, "SpO2 marked invalid", func() bool {
		v, _, _ := rec.find("0x4BB8")
		return v.State == 0x8000 && math.IsNaN(v.Value)
	}, rec.String)

	// the extended poll is asked again before its 3 s end, and the
	// association lives on keep-alives
	devicestest.WaitFor(t, "the extended poll asked again", func() bool { return m.Stats().ExtendedPolls >= 2 }, func() string { return fmt.Sprintf("%+v", m.Stats()) })
	devicestest.WaitFor(t, "a keep-alive", func() bool { return m.Stats().KeepAlives >= 1 }, func() string { return fmt.Sprintf("%+v", m.Stats()) })

	// the end of the context releases the association
	cancel()
	if err := wait(t, "Run to end", done); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st := m.Stats(); st.Releases != 1 || m.Associated() || st.Associations != 1 || st.MDSCreateResults != 1 {
		t.Fatalf("simulator %+v, associated %v", st, m.Associated())
	}
	for _, f := range rec.all() {
		if f.Bad != 0 {
			t.Fatalf("a frame with %d bad parts", f.Bad)
		}
	}
}

// With the monitor's wall clock in the answers' headers the device time is
// taken from there.
func TestAbsoluteTimeInAnswers(t *testing.T) {
	const skew = 2 * time.Hour
	m := newSim(intellivuesim.Config{ClockSkew: skew, AbsInPolls: true})
	rec := &recorder{}
	run(t, dialogue(t, intellivue.Options{}), serveUDP(t, m), rec)
	checkValues(t, rec, skew)
}

// A poll period above a second polls once each period.
func TestSinglePolls(t *testing.T) {
	m := newSim(intellivuesim.Config{})
	rec := &recorder{}
	run(t, dialogue(t, intellivue.Options{PollPeriod: 1200 * time.Millisecond, KeepAlive: 500 * time.Millisecond}), serveUDP(t, m), rec)
	devicestest.WaitFor(t, "two polls answered", func() bool { return rec.count() >= 2 }, rec.String)
	if st := m.Stats(); st.ExtendedPolls != 0 || st.Polls < 2 {
		t.Fatalf("simulator %+v", st)
	}
	if _, _, ok := rec.find("0x4182"); !ok {
		t.Fatal("no HR")
	}
}

// A monitor that stops answering ends Run with ErrSilent; a new Run
// associates again once it answers.
func TestSilentMonitor(t *testing.T) {
	m := newSim(intellivuesim.Config{})
	link := serveUDP(t, m)
	d := dialogue(t, intellivue.Options{Silence: 1300 * time.Millisecond, AssociateTimeout: 2 * time.Second})
	rec := &recorder{}
	_, done := run(t, d, link, rec)
	devicestest.WaitFor(t, "values", func() bool { return rec.count() >= 2 }, rec.String)
	m.Silence(true)
	err := wait(t, "Run to notice the silence", done)
	if !errors.Is(err, devices.ErrSilent) {
		t.Fatalf("Run: %v, want ErrSilent", err)
	}
	// silent from the start: the association times out as silence
	rec2 := &recorder{}
	_, done = run(t, d, link, rec2)
	if err := wait(t, "an unanswered association", done); !errors.Is(err, devices.ErrSilent) {
		t.Fatalf("Run: %v, want ErrSilent", err)
	}
	m.Silence(false)
	rec3 := &recorder{}
	run(t, d, link, rec3)
	devicestest.WaitFor(t, "values after a new association", func() bool { return rec3.count() >= 2 }, rec3.String)
	if n := m.Stats().Associations; n != 2 {
		t.Fatalf("%d associations, want 2", n)
	}
}

// A monitor that restarts in the middle of an answer: the part that came
// is used, Run ends, and the next Run associates again.
func TestResetMidPoll(t *testing.T) {
	m := newSim(intellivuesim.Config{})
	link := serveUDP(t, m)
	d := dialogue(t, intellivue.Options{})
	rec := &recorder{}
	_, done := run(t, d, link, rec)
	devicestest.WaitFor(t, "values", func() bool { return rec.count() >= 2 }, rec.String)
	m.ResetMidPoll()
	err := wait(t, "Run to end after the reset", done)
	if !errors.Is(err, intellivue.ErrAborted) && !errors.Is(err, devices.ErrSilent) {
		t.Fatalf("Run: %v, want the association aborted or silent", err)
	}
	rec2 := &recorder{}
	run(t, d, link, rec2)
	devicestest.WaitFor(t, "values after the reset", func() bool { return rec2.count() >= 2 }, rec2.String)
	if n := m.Stats().Associations; n != 2 {
		t.Fatalf("%d associations, want 2", n)
	}
}

// A poll answer that claims more than it holds: the whole values are
// emitted, the rest counted in Bad, and the next answers are whole.
func TestOverlongAnswer(t *testing.T) {
	m := newSim(intellivuesim.Config{})
	rec := &recorder{}
	run(t, dialogue(t, intellivue.Options{}), serveUDP(t, m), rec)
	devicestest.WaitFor(t, "values", func() bool { return rec.count() >= 2 }, rec.String)
	m.OverlongNext()
	var bad devices.DriverFrame
	devicestest.WaitFor(t, "a frame with a bad part", func() bool {
		for _, f := range rec.all() {
			if f.Bad > 0 {
				bad = f
				return true
			}
		}
		return false
	}, rec.String)
	if len(bad.Values) != 4 { // HR, SpO2, PR, RR; the temperature cut off
		t.Fatalf("the cut answer gave %+v", bad.Values)
	}
	n := rec.count()
	devicestest.WaitFor(t, "whole answers after it", func() bool {
		fs := rec.all()
		return len(fs) > n+2 && fs[len(fs)-1].Bad == 0 && len(fs[len(fs)-1].Values) == 5
	}, rec.String)
}

// Datagrams from elsewhere are not the monitor's: an abort from another
// address ends nothing.
func TestUDPIgnoresOtherSenders(t *testing.T) {
	m := newSim(intellivuesim.Config{})
	link, client := serveUDPAt(t, m)
	rec := &recorder{}
	_, r := run(t, dialogue(t, intellivue.Options{}), link, rec)
	devicestest.WaitFor(t, "values", func() bool { return rec.count() >= 1 }, rec.String)
	stranger, err := net.DialUDP("udp", nil, client)
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	if _, err := stranger.Write(intellivue.AbortRequest()); err != nil {
		t.Fatal(err)
	}
	devicestest.WaitFor(t, "the stranger's datagram ignored", func() bool { return link.Ignored() == 1 }, rec.String)
	n := rec.count()
	devicestest.WaitFor(t, "values after it", func() bool { return rec.count() > n+2 }, rec.String)
	select {
	case <-r.done:
		t.Fatalf("Run ended: %v", r.err)
	default:
	}
}

// An emit that fails ends Run with its error, after a release.
func TestEmitErrorEndsRun(t *testing.T) {
	m := newSim(intellivuesim.Config{})
	rec := &recorder{fail: errors.New("outbox full")}
	_, done := run(t, dialogue(t, intellivue.Options{}), serveUDP(t, m), rec)
	err := wait(t, "Run to end", done)
	if err == nil || !strings.Contains(err.Error(), "outbox full") {
		t.Fatalf("Run: %v", err)
	}
	devicestest.WaitFor(t, "the release", func() bool { return m.Stats().Releases == 1 }, func() string { return fmt.Sprintf("%+v", m.Stats()) })
}

// The time emit takes to store values is not the monitor's silence.
func TestSlowEmitIsNotSilence(t *testing.T) {
	m := newSim(intellivuesim.Config{})
	rec := &recorder{}
	slow := func(f devices.DriverFrame) error {
		if rec.count() == 1 {
			time.Sleep(2 * time.Second)
		}
		return rec.emit(f)
	}
	d := dialogue(t, intellivue.Options{Silence: 1300 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, serveUDP(t, m), slow) }()
	devicestest.WaitFor(t, "values after the slow emit", func() bool { return rec.count() >= 5 }, rec.String)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestRefused(t *testing.T) {
	m := newSim(intellivuesim.Config{Refuse: true})
	_, done := run(t, dialogue(t, intellivue.Options{}), serveUDP(t, m), &recorder{})
	if err := wait(t, "Run to end", done); !errors.Is(err, intellivue.ErrRefused) {
		t.Fatalf("Run: %v", err)
	}
}

// pipes is a byte stream between the two ends, as a serial cable is.
type pipes struct {
	io.Reader
	io.Writer
	closers []io.Closer
}

func (p *pipes) Close() error {
	for _, c := range p.closers {
		c.Close()
	}
	return nil
}

func streamPair() (client, monitor *pipes) {
	r1, w1 := io.Pipe()
	r2, w2 := io.Pipe()
	client = &pipes{Reader: r1, Writer: w2, closers: []io.Closer{r1, w2}}
	monitor = &pipes{Reader: r2, Writer: w1, closers: []io.Closer{r2, w1}}
	return client, monitor
}

func serveStream(t *testing.T, m *intellivuesim.Monitor, rw io.ReadWriteCloser) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.ServeStream(ctx, rw) }()
	t.Cleanup(func() {
		cancel()
		rw.Close()
		<-done
	})
}

// Over a byte stream with the serial framing, with garbage between the
// frames: every value arrives, the garbage is counted.
func TestValuesOverStreamWithGarbage(t *testing.T) {
	m := newSim(intellivuesim.Config{})
	client, monitor := streamPair()
	serveStream(t, m, monitor)
	link := intellivue.NewSerialLink(client, 0)
	t.Cleanup(func() { client.Close() })
	m.Garbage(true)
	rec := &recorder{}
	d := dialogue(t, intellivue.Options{Transport: intellivue.Serial})
	_, done := run(t, d, link, rec)
	checkValues(t, rec, 0)
	if st := link.Stats(); st.Garbage == 0 && st.Bad == 0 {
		t.Fatalf("no garbage seen: %+v", st)
	}

	// reset mid-poll and silence over the stream too
	m.ResetMidPoll()
	if err := wait(t, "Run to end after the reset", done); !errors.Is(err, intellivue.ErrAborted) && !errors.Is(err, devices.ErrSilent) {
		t.Fatalf("Run: %v", err)
	}
	rec2 := &recorder{}
	_, done = run(t, d, link, rec2)
	devicestest.WaitFor(t, "values after the reset", func() bool { return rec2.count() >= 2 }, rec2.String)
	m.Silence(true) // Silence is 5 s here
	if err := wait(t, "Run to notice the silence", done); !errors.Is(err, devices.ErrSilent) {
		t.Fatalf("Run: %v", err)
	}
}

// The same over a real pseudo-terminal pair (socat), the monitor on one
// end, the gateway on the other.
func TestValuesOverPseudoTerminal(t *testing.T) {
	mon, gw, _ := devicestest.SocatPair(t, t.TempDir())
	mf, err := os.OpenFile(mon, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	gf, err := os.OpenFile(gw, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gf.Close() })
	m := newSim(intellivuesim.Config{})
	serveStream(t, m, mf)
	link := intellivue.NewSerialLink(gf, 0)
	rec := &recorder{}
	m.Garbage(true)
	run(t, dialogue(t, intellivue.Options{Transport: intellivue.Serial}), link, rec)
	checkValues(t, rec, 0)
}
