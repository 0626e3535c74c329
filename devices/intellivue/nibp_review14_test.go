package intellivue

import (
	"testing"
	"time"
)

// monitorClock is a monitor's two clocks: the relative time counts ticks of
// 125 µs from start, the absolute time is the wall clock as the monitor
// writes it (BCD, to the hundredth of a second).
type monitorClock struct {
	start time.Time
	rel0  uint32
}

func (c monitorClock) rel(t time.Time) uint32 { return c.rel0 + RelativeTime(t.Sub(c.start)) }

func (c monitorClock) abs(t time.Time) time.Time {
	a, ok := AbsoluteTime(AppendAbsoluteTime(nil, t), time.UTC)
	if !ok {
		panic("abs")
	}
	return a
}

// anchorAt is the abs/rel pair an MDS object shows at t.
func (c monitorClock) anchorAt(t time.Time) Anchor { return Anchor{Abs: c.abs(t), Rel: c.rel(t)} }

func nibpNumerics(stampRel uint32) []Numeric {
	mk := func(physio uint16, v int32) Numeric {
		return Numeric{Physio: physio, Unit: 3872, Raw: EncodeFloat(v, 0), StampRel: stampRel, HasStampRel: true}
	}
	return []Numeric{mk(0x4A05, 121), mk(0x4A06, 79), mk(0x4A07, 93)}
}

func newReviewSession(t *testing.T) *session {
	d, err := New(Options{Location: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	return &session{o: &d.opts}
}

// The frame's own time and a value's relative stamp are dated with the
// anchor the session holds: a value stamped at the answer's own relative
// time is dated at the answer's time, and the frame's DeviceTime is the
// anchor's abs plus the ticks since.
func TestReview14FrameDatedByTheAnchor(t *testing.T) {
	start := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	mc := monitorClock{start: start, rel0: 1000}
	s := newReviewSession(t)
	s.anchor = mc.anchorAt(start.Add(3 * time.Second))
	at := start.Add(63 * time.Second)
	r := &PollReply{RelTime: mc.rel(at), Numerics: nibpNumerics(mc.rel(at.Add(-40 * time.Second)))}
	f := s.frame(r)
	if !f.DeviceTime.Equal(at) {
		t.Fatalf("frame dated %v, want %v", f.DeviceTime, at)
	}
	for _, v := range f.Values {
		if want := at.Add(-40 * time.Second); !v.Time.Equal(want) {
			t.Fatalf("%s dated %v, want %v", v.Field, v.Time, want)
		}
	}
}

// A stamp before the anchor (an NIBP taken before the MDS last told its
// clock) is dated before it, and a relative time that wrapped after the
// anchor is dated after it.
func TestReview14AnchorAcrossTheWrap(t *testing.T) {
	a := Anchor{Abs: time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC), Rel: 1000 + RelativeTime(time.Minute)}
	if got := a.Time(1000); !got.Equal(a.Abs.Add(-time.Minute)) {
		t.Fatalf("a stamp a minute before the anchor dated %v", got)
	}
	a = Anchor{Abs: a.Abs, Rel: 0xFFFFFF00}
	if got := a.Time(0x00000100); got.Sub(a.Abs) != 0x200*RelativeTick {
		t.Fatalf("across the wrap: %v after the anchor", got.Sub(a.Abs))
	}
}
