package devices

import (
	"testing"
	"time"
)

var clockStart = time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)

// live feeds c one frame a second for d, from at, from a device whose clock
// is off by offset, each frame delayed by delay; it returns the time after.
func live(c *Clock, at time.Time, d, offset, delay time.Duration) time.Time {
	for end := at.Add(d); at.Before(end); at = at.Add(time.Second) {
		c.Observe(at.Add(-delay).Add(offset), at, false)
	}
	return at
}

// With no estimate yet, the device's time is used as it is: a backlog
// received at once after a restart keeps its own times, never the receipt
// time.
func TestWithoutAnEstimateTheDeviceTimeIsUsed(t *testing.T) {
	c := NewClock(time.Second)
	recv := clockStart
	for i := range 100 {
		measured := recv.Add(-50 * time.Minute).Add(time.Duration(i) * time.Second)
		rs := []Reading{{DeviceTime: measured}}
		c.Stamp(rs, measured, time.Time{}, recv, false)
		if !rs[0].Effective().Equal(measured) || rs[0].ClockPending {
			t.Fatalf("frame %d: effective %v (pending %v), want its own time %v", i, rs[0].Effective(), rs[0].ClockPending, measured)
		}
	}
	if c.Status().State != "none" {
		t.Fatalf("an estimate formed from one burst: %+v", c.Status())
	}
}

// A device 90 s fast whose frames are delayed by 0 to 5 s: the estimate is
// the true offset minus the least delay seen, and it needs three buckets.
func TestTheEstimateIsTheLeastDelayedSamples(t *testing.T) {
	c := NewClock(time.Second)
	const truth = 90 * time.Second
	delays := []time.Duration{5 * time.Second, 2 * time.Second, 20 * time.Millisecond, 4 * time.Second, time.Second}
	at := clockStart
	for i := range 59 { // two buckets of 30 s
		c.Observe(at.Add(truth-delays[i%len(delays)]), at, false)
		at = at.Add(time.Second)
	}
	if st := c.Status(); st.State != "none" {
		t.Fatalf("an estimate after %v: %+v", at.Sub(clockStart), st)
	}
	for i := range 60 {
		c.Observe(at.Add(truth-delays[i%len(delays)]), at, false)
		at = at.Add(time.Second)
	}
	if st := c.Status(); st.State != "tracking" || st.Offset != truth-20*time.Millisecond {
		t.Fatalf("estimate %+v, want %v", st, truth-20*time.Millisecond)
	}
}

// One frame dated an hour ahead moves nothing: it is pending, charted no
// later than its receipt, and the next frame decides it was an outlier.
func TestAFutureDatedFrameDoesNotMoveTheEstimate(t *testing.T) {
	c := NewClock(time.Second)
	at := live(c, clockStart, 5*time.Minute, 0, 100*time.Millisecond)
	before := c.Status().Offset
	rs := []Reading{{DeviceTime: at.Add(time.Hour)}}
	c.Stamp(rs, at.Add(time.Hour), time.Time{}, at, false)
	if !rs[0].ClockPending || !rs[0].Effective().Equal(at) {
		t.Fatalf("the future frame: pending %v, effective %v (received %v)", rs[0].ClockPending, rs[0].Effective(), at)
	}
	at = live(c, at.Add(time.Second), 10*time.Minute, 0, 100*time.Millisecond)
	if st := c.Status(); st.Offset != before || st.Steps != 0 || st.State != "tracking" {
		t.Fatalf("after the future frame: %+v, offset before %v", st, before)
	}
	reg := &Clocks{m: map[string]*Clock{"d": c}}
	rs[0].Device = "d"
	// Decided: a clock set forward for one frame and back (a glitched
	// time): charted at its receipt.
	if reg.Settle(&rs[0], at) != TimeSettled || rs[0].Effective().Sub(rs[0].Received).Abs() > time.Second {
		t.Fatalf("settled: %+v", rs[0])
	}
}

// After a restart the estimate from before judges a backlog: frames 50 to
// 10 minutes late are pending (their time disagrees), not learnt from; the
// first live frame decides they were late, and they keep their own times.
func TestABacklogAfterARestartKeepsItsTimes(t *testing.T) {
	old := NewClock(time.Second)
	live(old, clockStart, 10*time.Minute, 90*time.Second, 50*time.Millisecond)
	c := NewClock(time.Second)
	c.Restore(old.State())
	reg := &Clocks{m: map[string]*Clock{"d": c}}
	recv := clockStart.Add(2 * time.Hour)
	var backlog []Reading
	for i := range 2400 { // 40 minutes of frames, received in one second
		measured := recv.Add(-50 * time.Minute).Add(time.Duration(i) * time.Second)
		rs := []Reading{{Device: "d", DeviceTime: measured.Add(90 * time.Second)}}
		c.Stamp(rs, rs[0].DeviceTime, time.Time{}, recv.Add(time.Duration(i)*300*time.Microsecond), false)
		backlog = append(backlog, rs[0])
	}
	if st := c.Status(); st.State != "checking" || st.Steps != 0 {
		t.Fatalf("during the backlog: %+v", st)
	}
	if reg.Settle(&backlog[0], recv.Add(time.Second)) == TimeSettled {
		t.Fatal("a backlog frame was settled before anything decided it")
	}
	live(c, recv.Add(2*time.Second), 5*time.Second, 90*time.Second, 50*time.Millisecond)
	for i, r := range backlog {
		if reg.Settle(&r, recv.Add(10*time.Second)) != TimeSettled {
			t.Fatalf("backlog frame %d is still pending after live frames", i)
		}
		want := recv.Add(-50 * time.Minute).Add(time.Duration(i) * time.Second)
		if got := r.Effective(); got.Sub(want).Abs() > 100*time.Millisecond {
			t.Fatalf("backlog frame %d charted at %v, measured at %v", i, got, want)
		}
	}
	if st := c.Status(); st.Offset.Round(time.Second) != 90*time.Second {
		t.Fatalf("the backlog moved the estimate: %+v", st)
	}
}

// A clock that is set (an hour back, while frames flow) disagrees by one
// same amount: after two minutes the estimate steps, the step is counted,
// and the frames that disagreed take the new offset.
func TestAClockThatIsSetSteps(t *testing.T) {
	c := NewClock(time.Second)
	reg := &Clocks{m: map[string]*Clock{"d": c}}
	at := live(c, clockStart, 10*time.Minute, 0, 30*time.Millisecond)
	var during []Reading
	for end := at.Add(3 * time.Minute); at.Before(end); at = at.Add(time.Second) {
		rs := []Reading{{Device: "d", DeviceTime: at.Add(-time.Hour)}}
		c.Stamp(rs, rs[0].DeviceTime, time.Time{}, at, false)
		during = append(during, rs[0])
	}
	st := c.Status()
	if st.Steps != 1 || (st.LastStep+time.Hour).Abs() > time.Second || st.State != "tracking" {
		t.Fatalf("after the clock was set: %+v", st)
	}
	for i, r := range during {
		if reg.Settle(&r, at) != TimeSettled {
			t.Fatalf("frame %d still pending", i)
		}
		if d := r.Effective().Sub(r.Received); d.Abs() > time.Second {
			t.Fatalf("frame %d charted %v from its receipt", i, d)
		}
		// Its device time was shown an hour before: a second showing,
		// another measurement.
		if r.ClockRepeat != 1 {
			t.Fatalf("frame %d: repeat %d, want 1", i, r.ClockRepeat)
		}
	}
	// And the frames after the step, stamped live, likewise while the
	// clock shows the hour again.
	rs := []Reading{{Device: "d", DeviceTime: at.Add(-time.Hour)}}
	c.Stamp(rs, rs[0].DeviceTime, time.Time{}, at, false)
	if rs[0].ClockPending || rs[0].ClockRepeat != 1 {
		t.Fatalf("a live frame after the step: %+v", rs[0])
	}
}

// A backlog that drains over minutes (the gateway was away for forty, the
// device kept measuring) disagrees by ever smaller amounts: it never steps
// the clock; once it has been quiet for the step window it is decided as
// late, each frame keeping its own time.
func TestADrainingBacklogDoesNotStep(t *testing.T) {
	c := NewClock(time.Second)
	reg := &Clocks{m: map[string]*Clock{"d": c}}
	at := live(c, clockStart, 10*time.Minute, 0, 30*time.Millisecond)
	measured := at
	at = at.Add(40 * time.Minute)
	var backlog []Reading
	for end := at.Add(150 * time.Second); at.Before(end); at = at.Add(100 * time.Millisecond) {
		rs := []Reading{{Device: "d", DeviceTime: measured}}
		c.Stamp(rs, measured, time.Time{}, at, false)
		backlog = append(backlog, rs[0])
		measured = measured.Add(time.Second) // ten frames' worth a second
	}
	if st := c.Status(); st.Steps != 0 || st.Offset.Abs() > time.Second {
		t.Fatalf("a draining backlog stepped the clock: %+v", st)
	}
	r := backlog[0]
	if v := reg.Settle(&r, at.Add(time.Minute)); v != TimePending {
		t.Fatalf("a burst was decided before it had been quiet for the step window: %v", v)
	}
	for i, r := range backlog {
		if v := reg.Settle(&r, at.Add(3*time.Minute)); v != TimeSettled || r.ClockOffset.Abs() > time.Second || r.DeviceTime.IsZero() {
			t.Fatalf("backlog frame %d, quiet since: %v %+v", i, v, r)
		}
	}
}

// Frames the transport redelivered teach the estimate nothing.
func TestRedeliveredFramesAreNotLearnt(t *testing.T) {
	c := NewClock(time.Second)
	at := clockStart
	for range 200 {
		c.Observe(at.Add(-time.Hour), at, true)
		at = at.Add(time.Second)
	}
	if st := c.Status(); st.State != "none" || st.Redelivered != 200 {
		t.Fatalf("%+v", st)
	}
}

// The estimate follows a drifting clock no faster than 1 ms a second.
func TestTheEstimateSlewsSlowly(t *testing.T) {
	c := NewClock(time.Second)
	at := live(c, clockStart, 5*time.Minute, 0, 0)
	start := c.Status().Offset
	// 1.5 s off: within what agrees, so it is learnt, not stepped.
	at = live(c, at, 40*time.Minute, 1500*time.Millisecond, 0)
	moved := c.Status().Offset - start
	if moved <= 0 || moved > time.Duration(float64(time.Millisecond)*(40*time.Minute).Seconds()) {
		t.Fatalf("moved %v in 40 minutes", moved)
	}
	if c.Status().Steps != 0 {
		t.Fatal("a small change stepped the clock")
	}
}

// Of the two instants a local time means in the hour repeated when DST
// ends, the clock picks the one its estimate expects.
func TestAFoldIsResolvedByTheEstimate(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	first := time.Date(2026, 10, 25, 2, 30, 0, 0, berlin) // CEST, 00:30 UTC
	second := first.Add(time.Hour)                        // CET, 01:30 UTC, the same wall clock
	c := NewClock(time.Second)
	if got := c.Choose(first, second, second.Add(2*time.Second)); !got.Equal(second) {
		t.Fatalf("chose %v for a frame received at %v", got, second)
	}
	if got := c.Choose(second, first, first.Add(2*time.Second)); !got.Equal(first) {
		t.Fatalf("chose %v for a frame received at %v", got, first)
	}
}

func TestStateSurvivesARestart(t *testing.T) {
	c := NewClock(time.Second)
	live(c, clockStart, 10*time.Minute, 42*time.Second, 10*time.Millisecond)
	reg := NewClocks()
	reg.Restore(map[string]ClockState{"d": c.State()})
	got := reg.Clock("d", time.Second, true).Status()
	if got.State != "tracking" || got.Offset != c.Status().Offset {
		t.Fatalf("restored %+v from %+v", got, c.Status())
	}
}

// A frame dated an hour ahead, then the clock as it was: only the glitched
// frame's own device time was shown twice, so only the genuine reading at
// that device time an hour later is named as a repeat; those between are
// not.
func TestAGlitchedFrameRepeatsOnlyItsOwnTime(t *testing.T) {
	c := NewClock(time.Second)
	reg := &Clocks{m: map[string]*Clock{"d": c}}
	at := live(c, clockStart, 5*time.Minute, 0, 20*time.Millisecond)
	glitch := at.Add(time.Hour)
	rs := []Reading{{Device: "d", DeviceTime: glitch}}
	c.Stamp(rs, glitch, time.Time{}, at, false)
	at = at.Add(time.Second)
	var after []Reading
	for end := at.Add(time.Hour + time.Minute); at.Before(end); at = at.Add(time.Second) {
		r := []Reading{{Device: "d", DeviceTime: at.Add(-20 * time.Millisecond).Truncate(time.Second)}}
		c.Stamp(r, r[0].DeviceTime, time.Time{}, at, false)
		after = append(after, r[0])
	}
	reg.Settle(&rs[0], at)
	if rs[0].ClockRepeat != 0 {
		t.Fatalf("the glitched frame: %+v", rs[0])
	}
	for _, r := range after {
		want := 0
		if r.DeviceTime.Equal(glitch.Truncate(time.Second)) {
			want = 1
		}
		if r.ClockRepeat != want {
			t.Fatalf("the frame of device time %v: repeat %d, want %d", r.DeviceTime.Format(time.TimeOnly), r.ClockRepeat, want)
		}
	}
}

// On a live link (RS-232, a polled monitor) a frame is received as it is
// sent: before the estimate forms, a frame's receipt is its time, whatever
// the device's clock says, and a measurement of an earlier time that came
// with it (an NIBP) keeps its age; once the estimate forms, the same.
func TestOnALiveLinkTheFirstFramesAreAtTheirReceipt(t *testing.T) {
	for _, skew := range []time.Duration{-3 * time.Minute, 3 * time.Minute, -7 * 24 * time.Hour} {
		c := NewClock(time.Second)
		c.SetBuffered(false)
		for i := range 200 {
			recv := clockStart.Add(time.Duration(i) * time.Second)
			dev := recv.Add(skew)
			rs := []Reading{{DeviceTime: dev}, {DeviceTime: dev.Add(-40 * time.Second)}}
			c.Stamp(rs, dev, time.Time{}, recv, false)
			for j, r := range rs {
				r.Received = recv
				if r.ClockPending {
					t.Fatalf("skew %v, frame %d: pending", skew, i)
				}
				want := recv.Add(-time.Duration(j) * 40 * time.Second)
				if got := r.Effective(); got.Sub(want).Abs() > time.Millisecond {
					t.Fatalf("skew %v, frame %d, reading %d: effective %v, want %v (estimate: %+v)", skew, i, j, got, want, c.Status())
				}
			}
		}
	}
}
