package devices

import (
	"testing"
	"time"
)

// An NIBP that comes again in later frames (an answer that shows it each
// time) keeps one identity (its own device time, no repeat) and, once the
// clock has its estimate, is charted at its own time less the estimate:
// the frame that brought it is the clock's sample, not the NIBP.
func TestReview14NIBPInSeveralFramesKeepsOneIdentity(t *testing.T) {
	c := NewClock(time.Second)
	c.SetBuffered(false)
	t0 := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	off := -3 * time.Minute // the monitor is 3 min slow
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
	cuffTrue := at(0).Add(-40 * time.Second)
	var nibps []Reading
	for i := 0; i < 200; i++ {
		rs := []Reading{{DeviceTime: at(i).Add(off)}, {DeviceTime: cuffTrue.Add(off)}}
		c.Stamp(rs, at(i).Add(off), time.Time{}, at(i), false)
		if rs[1].ClockPending || !rs[1].ClockSample.Equal(at(i).Add(off)) {
			t.Fatalf("frame %d: NIBP %+v", i, rs[1])
		}
		nibps = append(nibps, rs[1])
	}
	if st := c.Status(); st.State != "tracking" {
		t.Fatalf("clock %+v", st)
	}
	for i, r := range nibps {
		if !r.DeviceTime.Equal(nibps[0].DeviceTime) || r.ClockRepeat != 0 {
			t.Fatalf("frame %d: the NIBP at %v repeat %d", i, r.DeviceTime, r.ClockRepeat)
		}
		if got := r.Effective(); got.Sub(cuffTrue).Abs() > time.Millisecond {
			t.Fatalf("frame %d: the NIBP charted at %v, measured at %v", i, got, cuffTrue)
		}
	}
}
