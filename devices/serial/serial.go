// Package serial reads a bedside monitor on an RS-232 port (or a USB
// adapter, or a pseudo-terminal standing in for one), frames its output
// with the monitor's firmware profile, and hands each frame's readings to
// the sink. Serial has no acknowledgement: each frame is handed to the sink
// as it arrives, and the sink returns once its readings are durable, so a
// crash loses at most the frame in hand and the bytes the port's driver
// holds unread.
//
// When the outbox refuses a frame's readings (full, or its disk failing),
// the monitor cannot be asked to send them again: the source offers them
// again each second for at most OutboxWait (5 s), then counts them lost and
// logs it; until the outbox takes readings again, later frames are offered
// once each, so the source keeps pace with the line. The package comment of
// devices states the policy for every source.
//
// The port is opened with the profile's settings, each overridable in the
// config. A port that vanishes (an adapter pulled out) or fails is reopened
// with backoff; a monitor that says nothing for longer than its profile
// allows is shown as silent. Bad lines are counted and logged without their
// content.
package serial

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	bugst "go.bug.st/serial"

	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/devices/profile"
)

// Settings are a port's line settings; zero values take the profile's.
type Settings struct {
	Baud        int
	DataBits    int
	Parity      string // none, even, odd, mark, space
	StopBits    string // 1, 1.5, 2
	FlowControl string // none, rtscts, xonxoff (set through termios after the library opens the port: Linux only; see flow_linux.go)
}

// Merge returns s with its zero fields taken from the profile's defaults,
// then from 9600 8N1.
func (s Settings) Merge(d profile.SerialDefaults) Settings {
	pick := func(a, b, c string) string {
		if a != "" {
			return a
		}
		if b != "" {
			return b
		}
		return c
	}
	out := s
	if out.Baud == 0 {
		out.Baud = d.Baud
	}
	if out.Baud == 0 {
		out.Baud = 9600
	}
	if out.DataBits == 0 {
		out.DataBits = d.DataBits
	}
	if out.DataBits == 0 {
		out.DataBits = 8
	}
	out.Parity = pick(s.Parity, d.Parity, "none")
	out.StopBits = pick(s.StopBits, d.StopBits, "1")
	out.FlowControl = pick(s.FlowControl, d.FlowControl, "none")
	return out
}

func (s Settings) mode() (*bugst.Mode, error) {
	m := &bugst.Mode{BaudRate: s.Baud, DataBits: s.DataBits}
	switch s.Parity {
	case "none":
		m.Parity = bugst.NoParity
	case "even":
		m.Parity = bugst.EvenParity
	case "odd":
		m.Parity = bugst.OddParity
	case "mark":
		m.Parity = bugst.MarkParity
	case "space":
		m.Parity = bugst.SpaceParity
	default:
		return nil, fmt.Errorf("parity %q", s.Parity)
	}
	switch s.StopBits {
	case "1":
		m.StopBits = bugst.OneStopBit
	case "1.5":
		m.StopBits = bugst.OnePointFiveStopBits
	case "2":
		m.StopBits = bugst.TwoStopBits
	default:
		return nil, fmt.Errorf("stop bits %q", s.StopBits)
	}
	if !flowSupported(s.FlowControl) {
		return nil, fmt.Errorf("flow control %q is not supported by this build", s.FlowControl)
	}
	// InitialStatusBits stays nil: setting DTR/RTS needs modem ioctls that
	// pseudo-terminals and some adapters refuse.
	return m, nil
}

func (s Settings) String() string {
	p := map[string]string{"none": "N", "even": "E", "odd": "O", "mark": "M", "space": "S"}[s.Parity]
	return fmt.Sprintf("%d %d%s%s", s.Baud, s.DataBits, p, s.StopBits)
}

// Port is what the source reads: a serial port, or anything that behaves
// like one in tests.
type Port interface {
	io.ReadCloser
	SetReadTimeout(time.Duration) error
}

// Source reads one monitor.
type Source struct {
	ID, Location string
	Path         string // /dev/ttyUSB0
	Settings     Settings
	Profile      *profile.Profile
	Sink         devices.Sink
	Monitor      *devices.Monitor
	Log          *slog.Logger
	// Clocks holds the device's clock estimate (a registry of its own when
	// nil).
	Clocks *devices.Clocks

	// Open opens the port; go.bug.st/serial when nil.
	Open func(path string, s Settings) (Port, error)
	// MaxBackoff caps the wait between reopen attempts (30 s when zero).
	MaxBackoff time.Duration
	// LogContent logs each bad line's content (the first 256 bytes): it may
	// hold patient data, so only for debugging a profile
	// (log.patient_data).
	LogContent bool
	// OutboxWait is how long a frame whose readings the outbox refuses is
	// offered again before they are counted lost (5 s when zero; see the
	// package comment).
	OutboxWait time.Duration

	in *devices.Intake
	// For tests: the wait between offers of refused readings (a second),
	// and how long the monitor may be quiet (the profile's).
	retryEvery, silentAfter time.Duration
}

// outboxWait is the default OutboxWait: long enough to ride out a commit
// that fails once, or a moment of a full disk while delivery frees room;
// short enough that what the monitor sends meanwhile fits in the port
// driver's receive buffer (at least 4 KiB on Linux: half a minute of a
// Masimo's output), so that the wait itself loses nothing.
const outboxWait = 5 * time.Second

func openSerial(path string, s Settings) (Port, error) {
	m, err := s.mode()
	if err != nil {
		return nil, err
	}
	p, err := bugst.Open(path, m)
	if err != nil {
		return nil, err
	}
	// The library opens with flow control off; "none" needs nothing more.
	if s.FlowControl != "none" {
		if err := SetFlowControl(p, path, s.FlowControl); err != nil {
			p.Close()
			return nil, err
		}
	}
	return p, nil
}

// readTimeout is the read timeout: the loop wakes at least this often
// to notice silence and cancellation.
const readTimeout = 500 * time.Millisecond

// Run reads the monitor until ctx ends.
func (s *Source) Run(ctx context.Context) error {
	if s.Open == nil {
		s.Open = openSerial
	}
	if s.MaxBackoff == 0 {
		s.MaxBackoff = 30 * time.Second
	}
	if s.Monitor == nil {
		s.Monitor = devices.NewMonitor(s.ID, s.Location, s.Profile.Name, "serial")
	}
	if s.Clocks == nil {
		s.Clocks = devices.NewClocks()
	}
	if s.OutboxWait == 0 {
		s.OutboxWait = outboxWait
	}
	log := s.Log.With("monitor", s.ID, "port", s.Path)
	silentAfter := s.silentAfter
	if silentAfter == 0 {
		silentAfter = s.Profile.SilentAfter()
	}
	s.in = &devices.Intake{Sink: s.Sink, Monitor: s.Monitor, Clocks: s.Clocks, Log: log,
		Interval: s.Profile.Transport.Interval.D(), SilentAfter: silentAfter,
		Buffered:    false, // a serial line keeps nothing back
		GiveUpAfter: s.OutboxWait, RetryEvery: s.retryEvery}
	defer s.in.Stop()
	if _, err := s.Settings.mode(); err != nil {
		s.Monitor.Set(devices.Failed, err.Error())
		log.Error("serial settings not usable", "err", err)
		<-ctx.Done()
		return nil
	}
	backoff := time.Second / 4
	opens := 0
	var framesBefore uint64
	for ctx.Err() == nil {
		port, err := s.Open(s.Path, s.Settings)
		if err != nil {
			if s.Monitor.Set(devices.Disconnected, "cannot open the port: "+err.Error()) {
				log.Warn("monitor disconnected: cannot open its port; retrying", "err", err)
			}
			if !devices.Sleep(ctx, backoff) {
				break
			}
			backoff = min(backoff*2, s.MaxBackoff)
			continue
		}
		if opens == 0 || framesBefore != s.Monitor.Status().Frames {
			// Said once per stretch of work, not at every retry of a port
			// that opens and fails at once.
			log.Info("port open; waiting for the monitor", "settings", s.Settings.String(), "profile", s.Profile.Name)
		}
		opens++
		framesBefore = s.Monitor.Status().Frames
		opened := time.Now()
		err = s.read(ctx, port, log)
		port.Close()
		if ctx.Err() != nil {
			break
		}
		if s.Monitor.Set(devices.Disconnected, "the port failed: "+err.Error()) {
			log.Warn("monitor disconnected: the port failed; reopening", "err", err)
		}
		// A port that worked for a while is reopened at once; one that
		// fails as soon as it opens backs off like one that will not open.
		if s.Monitor.Status().Frames != framesBefore || time.Since(opened) > s.MaxBackoff {
			backoff = time.Second / 4
		} else {
			backoff = min(backoff*2, s.MaxBackoff)
		}
		if !devices.Sleep(ctx, backoff) {
			break
		}
	}
	return nil
}

// read reads from an open port until it fails or ctx ends.
func (s *Source) read(ctx context.Context, port Port, log *slog.Logger) error {
	if err := port.SetReadTimeout(readTimeout); err != nil {
		return err
	}
	// A blocked Read returns within readTimeout, so closing is not needed
	// to stop; ctx is checked between reads.
	lines := s.Profile.NewLines()
	buf := make([]byte, 4096)
	opened := time.Now()
	var badLogged time.Time
	var badSince int
	for ctx.Err() == nil {
		n, err := port.Read(buf)
		if n > 0 {
			s.Monitor.AddBytes(n)
			received := time.Now()
			lines.Feed(buf[:n], func(line []byte, tooLong bool) {
				if tooLong {
					s.bad(log, &badLogged, &badSince, profile.ErrTooLong)
					return
				}
				s.frame(ctx, line, received, log, &badLogged, &badSince)
			})
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("end of file")
			}
			return err
		}
		// Every pass, not only on a timed-out read (go.bug.st/serial
		// returns (0, nil) then): a monitor sending bytes that never make a
		// frame (a wrong baud rate, new firmware) is silent too.
		s.in.NoticeSilence(opened)
	}
	return ctx.Err()
}

func (s *Source) frame(ctx context.Context, line []byte, received time.Time, log *slog.Logger, badLogged *time.Time, badSince *int) {
	f, err := s.Profile.Decode(line)
	if err != nil {
		if s.LogContent {
			log.Warn("bad line (log.patient_data is on)", "reason", err.Error(), "line", string(line[:min(len(line), 256)]))
		}
		s.bad(log, badLogged, badSince, err)
		return
	}
	if f.Ignored {
		return
	}
	s.in.Stamp(devices.Receipt{Device: s.ID, Location: s.Location, At: received}, f.Readings, f.DeviceTime, f.DeviceTimeAlt, len(f.Dropped))
	// Stored, or counted lost and logged by the intake: a serial line
	// cannot be asked to send it again.
	s.in.Ingest(ctx, f.Readings)
}

// bad counts a bad line and logs it without its content, at most once a
// minute with the count since the last message.
func (s *Source) bad(log *slog.Logger, last *time.Time, since *int, err error) {
	s.Monitor.BadFrame()
	*since++
	if time.Since(*last) < time.Minute {
		return
	}
	log.Warn("bad line from the monitor (its content is not logged)", "reason", err.Error(), "bad_lines", *since)
	*last, *since = time.Now(), 0
}
