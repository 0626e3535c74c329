package devices

import (
	"testing"
	"time"
)

// A measurement of its own, earlier time (an NIBP in an IntelliVue answer
// after a re-association, or in every Datex record with the auxiliary
// sub-record's NIBP time) taken on the monitor's clock BEFORE the clock was
// set back, and delivered in a frame AFTER the clock's step was decided,
// is stamped with the frame's (new) offset and with ClockRepeat from the
// set-back's repeat window. Its device time is the old clock's, so: the new
// offset puts it 9 minutes in the future (Effective then clamps it to its
// receipt, 1 min late), and ClockRepeat 1 gives it a second identity
// (device/code/time/repeat1) beside the one its first showing had: charted
// twice, the second at the wrong time. A reading whose DeviceTime is after
// its ClockSample cannot be on the clock that sent the frame.
func TestReview14OldMeasurementAfterAClockSetBack(t *testing.T) {
	c := NewClock(time.Second)
	c.SetBuffered(false)
	t0 := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	off0 := 2 * time.Second
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
	stamp := func(i int, back time.Duration, rs []Reading) []Reading {
		recv := at(i)
		c.Stamp(rs, recv.Add(off0-back), time.Time{}, recv, false)
		return rs
	}
	// 5 minutes on the right clock, then the clock set back by 10 min; the
	// cuff was taken a minute before the set
	const setAt = 300
	for i := 0; i < setAt; i++ {
		stamp(i, 0, []Reading{{DeviceTime: at(i).Add(off0)}})
	}
	cuffTrue := at(setAt - 60)
	cuffDev := cuffTrue.Add(off0)
	var first []Reading
	for i := setAt; i < setAt+200; i++ {
		rs := stamp(i, 10*time.Minute, []Reading{{DeviceTime: at(i).Add(off0 - 10*time.Minute)}})
		if i == setAt+190 {
			first = rs
		}
	}
	if st := c.Status(); st.Steps != 1 || st.State != "tracking" {
		t.Fatalf("clock %+v: the set-back was not decided", st)
	}
	if first[0].ClockPending {
		t.Fatal("the frame after the step is still pending")
	}
	// now a frame brings the cuff measured before the set
	i := setAt + 200
	rs := stamp(i, 10*time.Minute, []Reading{{DeviceTime: cuffDev}, {DeviceTime: at(i).Add(off0 - 10*time.Minute)}})
	nibp := rs[0]
	// Which clock it was measured on is not known: it is never charted at
	// a guess (no second identity, no time in the future).
	if !nibp.TimeUnknown || nibp.ClockPending {
		t.Errorf("the cuff measured before the set-back: %+v, want its time unknown", nibp)
	}
	_ = cuffTrue
	if rs[1].TimeUnknown || rs[1].ClockPending {
		t.Errorf("the frame's own reading: %+v", rs[1])
	}
}

// A frame whose own time glitched (one answer dated an hour ahead) on a
// live link is charted at its receipt: right for the values measured at
// the frame's time. A value of its own, earlier time in that frame (an
// NIBP, dated by its own stamp, which did not glitch) is then given the
// offset ClockSample - Received, the glitched hour included
// (Clocks.Settle, the atReceipt && ClockSample branch): it is charted an
// hour before it was measured, possibly in the previous patient's chart.
func TestReview14GlitchedFrameDoesNotMoveItsNIBP(t *testing.T) {
	reg := NewClocks()
	c := reg.Clock("m", time.Second, false)
	t0 := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	off := 2 * time.Second
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
	for i := 0; i < 300; i++ {
		c.Stamp([]Reading{{Device: "m", DeviceTime: at(i).Add(off)}}, at(i).Add(off), time.Time{}, at(i), false)
	}
	i := 300
	cuffTrue := at(i).Add(-30 * time.Second)
	frameDev := at(i).Add(off + time.Hour) // the header glitched
	rs := []Reading{{Device: "m", DeviceTime: cuffTrue.Add(off)}, {Device: "m", DeviceTime: frameDev}}
	c.Stamp(rs, frameDev, time.Time{}, at(i), false)
	if !rs[0].ClockPending {
		t.Fatalf("the glitched frame's NIBP is not pending: %+v", rs[0])
	}
	// the monitor goes on at its right time
	for i := 301; i < 320; i++ {
		c.Stamp([]Reading{{Device: "m", DeviceTime: at(i).Add(off)}}, at(i).Add(off), time.Time{}, at(i), false)
	}
	nibp := rs[0]
	if v := reg.Settle(&nibp, at(320)); v != TimeSettled {
		t.Fatalf("verdict %v", v)
	}
	if got := nibp.Effective(); got.Sub(cuffTrue).Abs() > 2*time.Second {
		t.Errorf("the NIBP charted at %v, measured at %v (%v off)", got, cuffTrue, got.Sub(cuffTrue))
	}
}

// A reading stamped a little after its frame's time (an HL7 message whose
// MSH-7 has whole seconds and whose OBX-14 has milliseconds) is on the same
// clock: it is charted at its own time, not taken for a measurement from
// before a clock set back.
func TestAReadingJustAfterItsFrameIsOnItsClock(t *testing.T) {
	c := NewClock(time.Second)
	t0 := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	msh7 := t0
	rs := []Reading{{DeviceTime: t0.Add(700 * time.Millisecond)}}
	c.Stamp(rs, msh7, time.Time{}, t0.Add(time.Second), false)
	if rs[0].TimeUnknown || rs[0].ClockPending {
		t.Fatalf("%+v", rs[0])
	}
}

// A message whose readings may carry another clock's times than its own
// (an HL7 result: OBX-14 from the monitor, MSH-7 from the central station)
// is not judged by them: a reading a minute after its message is placed by
// the message's clock, not taken for a measurement from before a set-back.
func TestABufferedMessageIsNotJudgedByItsReadingsTimes(t *testing.T) {
	c := NewClock(time.Second) // buffered, as the HL7 clocks are
	t0 := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	rs := []Reading{{DeviceTime: t0.Add(time.Minute)}}
	c.Stamp(rs, t0, time.Time{}, t0.Add(time.Second), false)
	if rs[0].TimeUnknown {
		t.Fatalf("%+v", rs[0])
	}
}
