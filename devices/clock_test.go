package devices

import (
	"testing"
	"time"
)

// A device 90 s fast whose frames are delayed by 0 to 5 s: the estimate is
// the true offset minus the least delay seen, never more than the truth.
func TestClockKeepsTheLeastDelayedSample(t *testing.T) {
	c := NewClock(10 * time.Minute)
	start := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	const truth = 90 * time.Second
	delays := []time.Duration{5 * time.Second, 2 * time.Second, 20 * time.Millisecond, 4 * time.Second, time.Second}
	var got time.Duration
	for i, d := range delays {
		sent := start.Add(time.Duration(i) * time.Second)
		got = c.Observe(sent.Add(truth), sent.Add(d))
	}
	if got != truth-20*time.Millisecond {
		t.Fatalf("estimate %v, want %v", got, truth-20*time.Millisecond)
	}
	// Messages queued while the gateway was down arrive late together:
	// they do not pull the estimate down.
	late := start.Add(time.Minute)
	for i := range 30 {
		got = c.Observe(late.Add(-time.Duration(30-i)*time.Second).Add(truth), late)
	}
	if got != truth-20*time.Millisecond {
		t.Fatalf("after a backlog: %v", got)
	}
	// The nurse sets the clock right: after the window, the estimate follows.
	later := start.Add(11 * time.Minute)
	got = c.Observe(later, later.Add(10*time.Millisecond))
	if got != -10*time.Millisecond {
		t.Fatalf("after the clock was set: %v", got)
	}
}

func TestStampCorrectsEffectiveTime(t *testing.T) {
	c := NewClock(0)
	recv := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	dev := recv.Add(-3 * time.Minute) // a slow clock
	rs := []Reading{{DeviceTime: dev}, {DeviceTime: dev}}
	c.Stamp(rs, dev, recv)
	for _, r := range rs {
		if !r.Effective().Equal(recv) || !r.Received.Equal(recv) {
			t.Fatalf("effective %v received %v, want %v", r.Effective(), r.Received, recv)
		}
	}
}
