// Package dialogues runs the monitors that must be talked to: a Source opens
// the transport (a serial port, a UDP socket) as a devices.Link, runs the
// protocol's devices.Dialogue over it, maps each answer through the firmware
// profile that names the dialogue, and hands the readings to the gateway, as
// the serial and MQTT sources do for monitors that only print. The protocols
// built in are registered here (registry.go), which is what makes their
// names valid profile formats.
package dialogues

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/devices/profile"
)

// Source talks to one monitor.
type Source struct {
	ID, Location string
	Profile      *profile.Profile
	Dialogue     devices.Dialogue
	// Open opens the transport as a link; closing the Closer ends it.
	Open func(ctx context.Context) (devices.Link, io.Closer, error)
	// Transport names the transport on the page and in logs ("serial",
	// "udp"); Address where it goes (a port, host:port).
	Transport, Address string
	Sink               devices.Sink
	Monitor            *devices.Monitor
	Clocks             *devices.Clocks
	Log                *slog.Logger
	// MaxBackoff caps the wait between attempts (30 s when zero).
	MaxBackoff time.Duration
	// OutboxWait is how long readings the outbox refuses are offered again
	// before they are counted lost: a monitor that is polled keeps nothing
	// back (5 s when zero, as for a serial line).
	OutboxWait time.Duration
}

// Run talks to the monitor until ctx ends: it opens the link, runs a
// session, and after a failure or a silence opens it again, backing off
// while nothing works.
func (s *Source) Run(ctx context.Context) error {
	if s.MaxBackoff == 0 {
		s.MaxBackoff = 30 * time.Second
	}
	if s.OutboxWait == 0 {
		s.OutboxWait = 5 * time.Second
	}
	if s.Monitor == nil {
		s.Monitor = devices.NewMonitor(s.ID, s.Location, s.Profile.Name, s.Transport)
	}
	if s.Clocks == nil {
		s.Clocks = devices.NewClocks()
	}
	log := s.Log.With("monitor", s.ID, s.Transport, s.Address)
	in := &devices.Intake{Sink: s.Sink, Monitor: s.Monitor, Clocks: s.Clocks, Log: log,
		Interval: s.Profile.Transport.Interval.D(), SilentAfter: s.Profile.SilentAfter(),
		Buffered: false, GiveUpAfter: s.OutboxWait}
	defer in.Stop()

	backoff := time.Second / 4
	for ctx.Err() == nil {
		link, closer, err := s.Open(ctx)
		if err != nil {
			if s.Monitor.Set(devices.Disconnected, "cannot open the link: "+err.Error()) {
				log.Warn("monitor disconnected: cannot open its link; retrying", "err", err)
			}
			if !devices.Sleep(ctx, backoff) {
				break
			}
			backoff = min(backoff*2, s.MaxBackoff)
			continue
		}
		framesBefore := s.Monitor.Status().Frames
		if st, _ := s.Monitor.State(); st != devices.Connected {
			s.Monitor.Set(devices.Connecting, "")
		}
		// What the link itself drops (a checksum that does not hold, a
		// queue overflow) is counted with the monitor's bad frames.
		counter, _ := link.(interface{ BadFrames() uint64 })
		var linkBad uint64
		linkBadFrames := func() {
			if counter == nil {
				return
			}
			n := counter.BadFrames()
			for ; linkBad < n; linkBad++ {
				s.Monitor.BadFrame()
			}
		}
		err = s.Dialogue.Run(ctx, link, func(df devices.DriverFrame) error {
			received := time.Now()
			linkBadFrames()
			for i := 0; i < df.Bad; i++ {
				s.Monitor.BadFrame()
			}
			// The answer's time is what the monitor's clock showed then;
			// a value of its own time (an NIBP taken minutes before) is
			// stamped with the same clock, never taken for the clock's
			// reading.
			frames := s.Profile.DecodeDriver(df)
			var all []devices.Reading
			dropped := 0
			for _, f := range frames {
				all = append(all, f.Readings...)
				dropped += len(f.Dropped)
			}
			in.Stamp(devices.Receipt{Device: s.ID, Location: s.Location, At: received}, all, df.DeviceTime, time.Time{}, dropped)
			parts := make([][]devices.Reading, 0, len(frames))
			for _, f := range frames {
				n := len(f.Readings)
				parts, all = append(parts, all[:n:n]), all[n:]
			}
			// Stored, or counted lost and logged by the intake: a monitor
			// that is polled does not send the answer again.
			in.Ingest(ctx, parts...)
			return nil
		})
		linkBadFrames()
		closer.Close()
		if ctx.Err() != nil {
			break
		}
		worked := s.Monitor.Status().Frames != framesBefore
		switch {
		case errors.Is(err, devices.ErrSilent):
			if s.Monitor.Set(devices.Silent, err.Error()) {
				log.Warn("monitor silent: the session is opened again", "err", err)
			}
		case err != nil:
			if s.Monitor.Set(devices.Disconnected, err.Error()) {
				log.Warn("monitor disconnected; the session is opened again", "err", err)
			}
		}
		if worked {
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
