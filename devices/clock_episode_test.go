package devices

import (
	"testing"
	"time"
)

// Tests of the clock estimator's episodes written by a second reader, each
// a finding that failed before its fix: what must hold for "right time",
// and how it broke.

// A restart in the middle of a clock episode: the device's clock was set an
// hour back a minute before the gateway stopped, so the frames of that
// minute are pending (held). After the restart the resolver settles them at
// once: the restored clock has no episode, so they take the offset from
// before the step, an hour off. They should stay pending until the clock
// decides (the frames after the restart keep disagreeing and step it), or
// be decided by the step.
func TestRestartDuringAClockStepKeepsFramesPending(t *testing.T) {
	old := NewClock(time.Second)
	at := live(old, clockStart, 10*time.Minute, 0, 30*time.Millisecond)
	var during []Reading
	for end := at.Add(time.Minute); at.Before(end); at = at.Add(time.Second) {
		rs := []Reading{{Device: "d", DeviceTime: at.Add(-time.Hour)}} // set an hour back
		old.Stamp(rs, rs[0].DeviceTime, time.Time{}, at, false)
		during = append(during, rs[0])
	}
	if !during[0].ClockPending {
		t.Fatal("precondition: the frames after the clock was set are pending")
	}
	// Stop (keepClocks saves the state), start again 10 s later.
	reg := NewClocks()
	reg.Restore(map[string]ClockState{"d": old.State()})
	restart := at.Add(10 * time.Second)
	settledAtStart := 0
	for i := range during {
		r := during[i]
		if reg.Settle(&r, restart) == TimeSettled { // the resolver's first pass
			settledAtStart++
			if d := r.Effective().Sub(r.Received); d.Abs() > 2*time.Second {
				t.Fatalf("frame %d, measured at its receipt, was settled at the restart and charted %v from it (%v, not %v)",
					i, d.Round(time.Second), r.Effective().Format(time.TimeOnly), r.Received.Format(time.TimeOnly))
			}
		}
	}
	// The device keeps sending with its clock set back: the clock steps.
	c := reg.Clock("d", time.Second, true)
	for end := restart.Add(3 * time.Minute); restart.Before(end); restart = restart.Add(time.Second) {
		c.Observe(restart.Add(-time.Hour).Add(-30*time.Millisecond), restart, false)
	}
	if st := c.Status(); st.Steps != 1 {
		t.Fatalf("after the restart the clock did not step: %+v", st)
	}
	for i := range during {
		r := during[i]
		if reg.Settle(&r, restart) != TimeSettled {
			t.Fatalf("frame %d never settled", i)
		}
		if d := r.Effective().Sub(r.Received); d.Abs() > 2*time.Second {
			t.Fatalf("frame %d charted %v from its receipt (settled at the restart: %d)", i, d.Round(time.Second), settledAtStart)
		}
	}
}

// The device's clock is set an hour forward half-way through an hour's
// outage of the gateway (the broker keeps the backlog). The backlog's first
// half carries the old clock, its second half the new one. The first live
// frames step the estimate, and the step is taken to hold from the start of
// the episode, i.e. for the whole backlog: the first half is charted an hour
// before it was measured (to whoever lay in the bed then).
func TestClockSetForwardDuringAnOutage(t *testing.T) {
	t0, c, reg := restartedAfterTenMinutes()
	recv := t0.Add(time.Hour) // the gateway is back
	type item struct {
		r        Reading
		measured time.Time
	}
	var backlog []item
	for k := 0; k < 3600; k += 10 {
		measured := t0.Add(time.Duration(k) * time.Second)
		dev := measured
		if k >= 1800 {
			dev = dev.Add(time.Hour) // the clock was set forward at half-time
		}
		rs := []Reading{{Device: "d", DeviceTime: dev}}
		c.Stamp(rs, dev, time.Time{}, recv.Add(time.Duration(k)*100*time.Microsecond), false)
		backlog = append(backlog, item{rs[0], measured})
	}
	at := recv.Add(time.Second)
	for end := at.Add(4 * time.Minute); at.Before(end); at = at.Add(time.Second) {
		rs := []Reading{{Device: "d", DeviceTime: at.Add(time.Hour).Add(-30 * time.Millisecond)}}
		c.Stamp(rs, rs[0].DeviceTime, time.Time{}, at, false)
	}
	bad := 0
	var first item
	for _, it := range backlog {
		r := it.r
		if reg.Settle(&r, at) != TimeSettled {
			t.Fatalf("a backlog frame measured at %v is still pending", it.measured)
		}
		if r.Effective().Sub(it.measured).Abs() > 2*time.Second {
			if bad == 0 {
				first, first.r = it, r
			}
			bad++
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d backlog frames charted at the wrong time; e.g. measured %v, charted %v (%v off); clock %+v",
			bad, len(backlog), first.measured.Format(time.TimeOnly), first.r.Effective().Format(time.TimeOnly),
			first.r.Effective().Sub(first.measured).Round(time.Second), c.Status())
	}
}

// The same with the clock set an hour back during the outage: the first
// half of the backlog is charted at its receipt (the clamp), to whoever is
// in the bed now: finding 1 of the issue, back by another road.
func TestClockSetBackDuringAnOutage(t *testing.T) {
	t0, c, reg := restartedAfterTenMinutes()
	recv := t0.Add(time.Hour)
	type item struct {
		r        Reading
		measured time.Time
	}
	var backlog []item
	for k := 0; k < 3600; k += 10 {
		measured := t0.Add(time.Duration(k) * time.Second)
		dev := measured
		if k >= 1800 {
			dev = dev.Add(-time.Hour)
		}
		rs := []Reading{{Device: "d", DeviceTime: dev}}
		c.Stamp(rs, dev, time.Time{}, recv.Add(time.Duration(k)*100*time.Microsecond), false)
		backlog = append(backlog, item{rs[0], measured})
	}
	at := recv.Add(time.Second)
	for end := at.Add(4 * time.Minute); at.Before(end); at = at.Add(time.Second) {
		rs := []Reading{{Device: "d", DeviceTime: at.Add(-time.Hour).Add(-30 * time.Millisecond)}}
		c.Stamp(rs, rs[0].DeviceTime, time.Time{}, at, false)
	}
	bad := 0
	var first item
	for _, it := range backlog {
		r := it.r
		if reg.Settle(&r, at) != TimeSettled {
			t.Fatalf("a backlog frame measured at %v is still pending", it.measured)
		}
		if r.Effective().Sub(it.measured).Abs() > 2*time.Second {
			if bad == 0 {
				first, first.r = it, r
			}
			bad++
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d backlog frames charted at the wrong time; e.g. measured %v, charted %v (%v off, received %v); clock %+v",
			bad, len(backlog), first.measured.Format(time.TimeOnly), first.r.Effective().Format(time.TimeOnly),
			first.r.Effective().Sub(first.measured).Round(time.Second), first.r.Received.Format(time.TimeOnly), c.Status())
	}
}

// A device that sends a frame every 90 s (a spot-check monitor, a wearable
// publishing each minute and a half) through a profile whose transport
// interval is the generic 5 s: its clock is set an hour back. Each episode
// runs out (2.5 min) before three buckets in the 2-minute step window
// agree, so the clock never steps; every episode is decided "late" and
// every reading from then on is charted an hour before it was measured,
// with no step shown.
func TestASlowDeviceWhoseClockIsSetBackSteps(t *testing.T) {
	c := NewClock(5 * time.Second)
	reg := &Clocks{m: map[string]*Clock{"d": c}}
	at := clockStart
	for end := at.Add(30 * time.Minute); at.Before(end); at = at.Add(90 * time.Second) {
		c.Observe(at.Add(-30*time.Millisecond), at, false)
	}
	if st := c.Status(); st.State != "tracking" {
		t.Fatalf("precondition: an estimate after 30 minutes: %+v", st)
	}
	var after []Reading
	for end := at.Add(30 * time.Minute); at.Before(end); at = at.Add(90 * time.Second) {
		rs := []Reading{{Device: "d", DeviceTime: at.Add(-time.Hour).Add(-30 * time.Millisecond)}}
		c.Stamp(rs, rs[0].DeviceTime, time.Time{}, at, false)
		after = append(after, rs[0])
	}
	wrong := 0
	var example time.Duration
	for i := range after {
		r := after[i]
		if reg.Settle(&r, at.Add(10*time.Minute)) != TimeSettled {
			continue
		}
		if d := r.Effective().Sub(r.Received); d.Abs() > 2*time.Second {
			wrong++
			example = d
		}
	}
	if wrong > 0 {
		t.Fatalf("%d of %d readings in the 30 minutes after the clock was set were charted %v from their receipt; clock %+v",
			wrong, len(after), example.Round(time.Second), c.Status())
	}
}

// A serial frame cannot be an hour late (there is no store-and-forward on
// an RS-232 line), so a single serial frame whose time reads an hour in the
// past is a garbled or glitched time, not a backlog. Before the fix the next
// agreeing frame decides it "late" and it is charted an hour in the past,
// to whoever lay in the bed then.
func TestOneSerialFrameDatedAnHourBackIsNotChartedThen(t *testing.T) {
	c := NewClock(time.Second)
	c.SetBuffered(false) // RS-232
	reg := &Clocks{m: map[string]*Clock{"d": c}}
	at := live(c, clockStart, 10*time.Minute, 0, 20*time.Millisecond)
	rs := []Reading{{Device: "d", DeviceTime: at.Add(-time.Hour)}} // "08" read as "07"
	c.Stamp(rs, rs[0].DeviceTime, time.Time{}, at, false)          // serial: never redelivered
	at = live(c, at.Add(time.Second), 10*time.Second, 0, 20*time.Millisecond)
	if reg.Settle(&rs[0], at) != TimeSettled {
		t.Fatal("still pending")
	}
	if d := rs[0].Effective().Sub(rs[0].Received); d < -time.Minute {
		t.Fatalf("a live serial frame with a glitched time is charted %v before it was received", d.Round(time.Second))
	}
}

// The gateway is down across the end of daylight saving time; a device
// that sends local time without an offset (time_zone: Europe/Berlin) has
// its frames of both 02:xx hours queued at the broker. When they arrive,
// both instants of a frame from the first 02:xx hour are in the past, and
// Choose takes the one nearer "receipt + estimate": the second. The first
// hour's frames are charted an hour late, and carry the identity (device
// time) of the second hour's frames with the same wall clock, so one of
// each pair is dropped by ifNoneExist.
func TestAFoldInABacklogIsResolvedByTheFramesOwnOrder(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	fold := time.Date(2026, 10, 25, 0, 0, 0, 0, time.UTC) // 02:00 CEST
	old := NewClock(time.Second)
	live(old, fold.Add(-40*time.Minute), 10*time.Minute, 0, 30*time.Millisecond)
	c := NewClock(time.Second)
	c.Restore(old.State())
	reg := &Clocks{m: map[string]*Clock{"d": c}}
	recv := fold.Add(2*time.Hour + 10*time.Minute) // back at 03:10 CET
	type item struct {
		r        Reading
		measured time.Time
	}
	var backlog []item
	for k := 0; k < 7200; k += 60 { // both 02:xx hours, a frame a minute
		measured := fold.Add(time.Duration(k) * time.Second)
		// What the profile gives (parseTime, foldAlternative): the first
		// instant of the wall clock in the zone, and the second.
		parsed := measured
		if k >= 3600 {
			parsed = measured.Add(-time.Hour)
		}
		parsed = parsed.In(berlin)
		alt := parsed.Add(time.Hour)
		if parsed.Format("15:04:05") != alt.In(berlin).Format("15:04:05") {
			t.Fatalf("not a fold: %v %v", parsed, alt)
		}
		rs := []Reading{{Device: "d", DeviceTime: parsed}}
		c.Stamp(rs, parsed, alt, recv.Add(time.Duration(k)*time.Millisecond), false)
		backlog = append(backlog, item{rs[0], measured})
	}
	at := live(c, recv.Add(time.Second), 30*time.Second, 0, 30*time.Millisecond)
	wrong, ids := 0, map[time.Time]int{}
	var ex item
	for _, it := range backlog {
		r := it.r
		reg.Settle(&r, at)
		ids[r.DeviceTime.UTC()]++
		if r.Effective().Sub(it.measured).Abs() > 2*time.Second {
			if wrong == 0 {
				ex, ex.r = it, r
			}
			wrong++
		}
	}
	if wrong > 0 || len(ids) != len(backlog) {
		t.Fatalf("%d of %d frames charted at the wrong time (e.g. measured %v, charted %v); %d distinct identities for %d frames",
			wrong, len(backlog), ex.measured.Format(time.TimeOnly), ex.r.Effective().UTC().Format(time.TimeOnly), len(ids), len(backlog))
	}
}

// restartedAfterTenMinutes is a device "d" whose clock was watched live for
// ten minutes (1 s cadence, 30 ms delay), then the gateway restarted with
// the saved state: the clock at the restart, the registry holding it and
// the last live time.
func restartedAfterTenMinutes() (t0 time.Time, c *Clock, reg *Clocks) {
	old := NewClock(time.Second)
	t0 = live(old, clockStart, 10*time.Minute, 0, 30*time.Millisecond)
	c = NewClock(time.Second)
	c.Restore(old.State())
	return t0, c, &Clocks{m: map[string]*Clock{"d": c}}
}
