package devices

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Intake is what every source does with a frame once its transport has
// handed it over, done in one place whatever the transport (as Telegraf's
// RunningInput does for each of its plugins): Stamp gives the frame's
// readings their device, bed, receipt time and clock offset and records
// the frame on the Monitor; NoticeSilence shows a monitor whose link is up
// but which sends nothing as silent; Ingest hands readings to the Sink
// under the one policy for readings the Sink refuses (see the package
// comment).
//
// An Intake belongs to one source and is used from that source's loop
// only: it is not safe for concurrent use.
type Intake struct {
	Sink    Sink
	Monitor *Monitor
	Clocks  *Clocks
	Log     *slog.Logger

	// Interval is the device's usual time between frames (the profile's).
	Interval time.Duration
	// SilentAfter is how long a monitor whose link is up may send no frame
	// that decodes before it is shown as silent.
	SilentAfter time.Duration
	// Buffered says whether the link can deliver frames late: a broker
	// keeps messages, a serial line keeps nothing back.
	Buffered bool
	// GiveUpAfter is how long readings the Sink refuses are offered again
	// before they are counted lost. Zero: never; the transport keeps what is
	// not acknowledged (MQTT QoS 1), so Ingest offers them until they are
	// stored or its context ends, and nothing is lost.
	GiveUpAfter time.Duration
	// RetryEvery is the wait between two offers of refused readings (a
	// second when zero).
	RetryEvery time.Duration

	refusedSince time.Time // when the Sink began refusing; zero while it takes readings
	gaveUp       bool      // readings were counted lost since refusedSince
	lost         int       // readings counted lost since refusedSince
	lostUnlogged int       // of those, the ones no log line has counted yet
	lostLogged   time.Time
}

// Receipt is how a frame reached the gateway.
type Receipt struct {
	// Device is the device's id, Location its bed.
	Device, Location string
	// At is when the gateway read the frame; for one the transport
	// delivered again, when it first read it.
	At time.Time
	// Redelivered: the transport delivered the frame again (MQTT DUP).
	Redelivered bool
}

// Stamp fills in a decoded frame's readings (device, bed, receipt time,
// and for those with a device time the device clock's offset; see
// Clock.Stamp) and records the frame on the Monitor. deviceTime is the
// frame's time (zero when the device sends none), alt the other instant a
// local time may mean in the hour repeated when daylight saving time ends,
// dropped how many of the frame's values were left out.
func (in *Intake) Stamp(rc Receipt, rs []Reading, deviceTime, alt time.Time, dropped int) {
	for i := range rs {
		rs[i].Device, rs[i].Location = rc.Device, rc.Location
	}
	off := in.Clocks.Clock(rc.Device, in.Interval, in.Buffered).Stamp(rs, deviceTime, alt, rc.At, rc.Redelivered)
	// While the Sink refuses readings the monitor stays shown as failing,
	// since when it began: its frames arriving do not make that right.
	refusing := !in.refusedSince.IsZero()
	was, _ := in.Monitor.State()
	in.Monitor.frame(rs, dropped, off, refusing)
	if was != Connected && !(refusing && was == Failed) {
		in.Log.Info("monitor connected: frames are arriving")
	}
}

// NoticeSilence shows the monitor as silent when its link has been up
// since linkUp and no frame has decoded for longer than SilentAfter: a
// monitor that sends nothing, or bytes that never make a frame (a wrong
// baud rate, new firmware). A source calls it often while its link is up,
// and never while it is down (then it is disconnected, not silent). A
// failure the source reported stands.
func (in *Intake) NoticeSilence(linkUp time.Time) {
	if st, _ := in.Monitor.State(); st == Silent || st == Failed {
		return
	}
	last := in.Monitor.LastFrame()
	if last.Before(linkUp) {
		last = linkUp
	}
	if quiet := time.Since(last); quiet > in.SilentAfter && in.Monitor.Set(Silent, "") {
		in.Log.Warn("monitor silent: no frame decoded", "for", quiet.Round(time.Second))
	}
}

// Ingest hands frames to the Sink and returns nil once their readings are
// stored: only then may the source acknowledge them. When the Sink refuses
// them (the outbox is full or failing), it offers them again every
// RetryEvery, the monitor shown as failing meanwhile, until they are
// stored, or ctx ends, or GiveUpAfter has passed, and then they are counted
// lost. Once readings were counted lost, later ones are offered once each
// until the Sink takes some again: a refusal that lasts does not hold the
// source back at every frame. The error says why the frames were not
// stored.
func (in *Intake) Ingest(ctx context.Context, frames ...[]Reading) error {
	n := 0
	for _, f := range frames {
		n += len(f)
	}
	if n == 0 {
		return nil
	}
	start := time.Now()
	for {
		err := in.Sink.Ingest(ctx, frames...)
		if err == nil {
			in.taken()
			return nil
		}
		if ctx.Err() != nil {
			in.stopped(n)
			return ctx.Err()
		}
		in.refused(err)
		wait := in.RetryEvery
		if wait <= 0 {
			wait = time.Second
		}
		if in.GiveUpAfter > 0 {
			left := in.GiveUpAfter - time.Since(start)
			if in.gaveUp || left <= 0 {
				in.gaveUp = true
				in.lose(n, err)
				return fmt.Errorf("%d readings lost: %w", n, err)
			}
			wait = min(wait, left)
		}
		if !Sleep(ctx, wait) {
			in.stopped(n)
			return ctx.Err()
		}
	}
}

// refused notes that the Sink refused readings: the monitor is shown as
// failing, and the refusal is logged when it begins.
func (in *Intake) refused(err error) {
	in.Monitor.Set(Failed, "the outbox does not take readings: "+err.Error())
	if !in.refusedSince.IsZero() {
		return
	}
	in.refusedSince = time.Now()
	if in.GiveUpAfter == 0 {
		in.Log.Error("the outbox does not take readings; they stay unacknowledged and are offered again", "err", err)
	} else {
		in.Log.Error("the outbox does not take readings; they are offered again, then counted lost", "err", err, "give_up_after", in.GiveUpAfter)
	}
}

// taken notes that the Sink took readings: a refusal is over.
func (in *Intake) taken() {
	if in.refusedSince.IsZero() {
		return
	}
	if st, _ := in.Monitor.State(); st == Failed {
		in.Monitor.Set(Connected, "")
	}
	in.Log.Info("the outbox takes readings again", "refused_for", time.Since(in.refusedSince).Round(time.Second), "readings_lost", in.lost)
	in.refusedSince, in.gaveUp, in.lost, in.lostUnlogged = time.Time{}, false, 0, 0
}

// lose counts readings lost, and logs them at once, then at most once a
// minute with the count since the last line: a refusal that lasts must not
// fill the log.
func (in *Intake) lose(n int, err error) {
	in.Monitor.Lost(n)
	in.lost += n
	in.lostUnlogged += n
	if time.Since(in.lostLogged) < time.Minute {
		return
	}
	in.Log.Error("readings lost: the outbox did not take them", "readings", in.lostUnlogged, "err", err)
	in.lostLogged, in.lostUnlogged = time.Now(), 0
}

// Stop logs the readings lost that no log line has counted yet; a source
// calls it when it stops.
func (in *Intake) Stop() {
	if in.lostUnlogged > 0 {
		in.Log.Error("readings lost: the outbox did not take them", "readings", in.lostUnlogged)
		in.lostUnlogged = 0
	}
}

// stopped accounts for readings not stored when the source stops: lost
// when its transport keeps nothing back, and always logged.
func (in *Intake) stopped(n int) {
	if in.GiveUpAfter == 0 {
		return // unacknowledged: the transport offers them again at the next start
	}
	in.Monitor.Lost(n)
	in.Log.Error("readings lost: the gateway stopped before the outbox took them", "readings", n)
}

// Sleep waits d, or less when ctx ends first; it reports whether the whole
// d passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
