package intellivue

import (
	"testing"
	"time"
)

// An NIBP whose only stamp is TIME_STAMP_REL (its TIME_STAMP_ABS unset, as
// the header's abs often is) is dated through the session's anchor, which
// each association's MDS Create sets and every MDS answer (the keep-alive
// polls) renews; its abs has hundredths (or whole seconds when the fraction
// is unset) while rel has 125 us ticks. The same measurement shown again
// under another anchor (the first answer of a new association after a
// silence or an abort; any later answer that shows it again) is dated a few
// ms (up to 1 s) differently, and the Observation's identity (device + code
// + DeviceTime, to the ns) changes: the NIBP is charted twice.
func TestReview14NIBPDatedAlikeWhateverTheAnchor(t *testing.T) {
	start := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	mc := monitorClock{start: start, rel0: 77}
	cuff := start.Add(30*time.Second + 123456*time.Microsecond)
	stamp := mc.rel(cuff)

	s := newReviewSession(t)
	var times []time.Time
	// the anchor as the MDS told it at three moments (an association's MDS
	// Create, then two keep-alive answers)
	for _, told := range []time.Duration{4*time.Second + 3*time.Millisecond, 8*time.Second + 17*time.Millisecond, 12*time.Second + 9*time.Millisecond} {
		s.anchor = mc.anchorAt(start.Add(40 * time.Second).Add(told))
		at := start.Add(41 * time.Second).Add(told)
		f := s.frame(&PollReply{RelTime: mc.rel(at), Numerics: nibpNumerics(stamp)})
		times = append(times, f.Values[0].Time)
	}
	for i, tm := range times {
		if !tm.Equal(times[0]) {
			t.Errorf("the same NIBP (stamp rel %d) dated %v by anchor %d, %v by the first: two Observations of one measurement", stamp, tm, i, times[0])
		}
	}
}

// A monitor whose clock is unset (TIME_ABS 0xFF in the MDS and in every
// answer) gives no anchor: the answers have no device time, which on a live
// link is right (their receipt is their time). But an NIBP stamped with
// TIME_STAMP_REL minutes before the answer then gets no Time either and is
// charted in the answer's frame, at the answer's receipt: minutes after it
// was measured, a guess. Its age is known (the answer's RelTime minus its
// stamp); it must be dated by it, or left out, never put at the receipt.
func TestReview14NIBPWithoutAnchorIsNotChartedAtTheAnswer(t *testing.T) {
	start := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	mc := monitorClock{start: start, rel0: 5}
	s := newReviewSession(t) // no anchor: the MDS left TIME_ABS unset
	at := start.Add(10 * time.Minute)
	f := s.frame(&PollReply{RelTime: mc.rel(at), Numerics: nibpNumerics(mc.rel(at.Add(-4 * time.Minute)))})
	for _, v := range f.Values {
		if !v.TimeUnknown {
			t.Errorf("%s, measured 4 min before the answer on a clock never told, goes out with a time (%v)", v.Field, v.Time)
		}
	}
}
