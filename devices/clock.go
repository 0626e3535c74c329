package devices

import (
	"sync"
	"time"
)

// Clock tracks how far one device's clock is from the gateway's. Each frame
// that carries a device time gives a sample, device time minus receipt
// time. A frame is never received before it is sent, so a sample
// undershoots the true offset by the frame's delay (queueing in a bridge or
// a broker, a slow port) and never overshoots it: the estimate is the
// largest sample of the recent window, as NTP keeps its least-delayed
// sample. The window is short enough to follow a drifting clock and a
// clock the nurse has just set.
type Clock struct {
	mu      sync.Mutex
	window  time.Duration
	samples []clockSample
}

type clockSample struct {
	at     time.Time
	offset time.Duration
}

// NewClock returns a tracker that keeps window's worth of samples (10
// minutes when zero).
func NewClock(window time.Duration) *Clock {
	if window <= 0 {
		window = 10 * time.Minute
	}
	return &Clock{window: window}
}

// Observe records a frame's device time and receipt time and returns the
// current offset estimate (device clock minus gateway clock).
func (c *Clock) Observe(device, received time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := clockSample{received, device.Sub(received)}
	// Drop samples older than the window, and those a newer sample beats
	// (smaller or equal offset, older): what is left decreases, so the
	// first is the largest.
	cut := 0
	for cut < len(c.samples) && received.Sub(c.samples[cut].at) > c.window {
		cut++
	}
	c.samples = c.samples[cut:]
	for len(c.samples) > 0 && c.samples[len(c.samples)-1].offset <= s.offset {
		c.samples = c.samples[:len(c.samples)-1]
	}
	c.samples = append(c.samples, s)
	return c.samples[0].offset
}

// Stamp fills in the readings of one frame: receipt time, and the device's
// clock offset when the frame carried a device time.
func (c *Clock) Stamp(rs []Reading, device, received time.Time) time.Duration {
	var off time.Duration
	if !device.IsZero() {
		off = c.Observe(device, received)
	}
	for i := range rs {
		rs[i].Received = received
		if !rs[i].DeviceTime.IsZero() {
			rs[i].ClockOffset = off
		}
	}
	return off
}
