package devices

import (
	"slices"
	"sync"
	"time"
)

// Clock estimates how far one device's clock is from the gateway's: the
// offset, device clock minus gateway clock. Each frame that carries a
// device time gives a sample, device time minus receipt time. A frame is
// never received before it is sent, so a sample falls short of the true
// offset by the frame's delay and never exceeds it.
//
// The rules, so that no single frame and no backlog can move the estimate:
//
//   - Samples are kept per 30 s of receipt time, the largest (least
//     delayed) of each; the estimate is the median of those maxima over the
//     last 30 minutes. One frame dated in the future moves one bucket's
//     maximum, not the median. A first estimate needs samples from three
//     buckets; until then the device's time is used as it is (offset zero:
//     ward clocks are usually NTP-synchronised), never the receipt time.
//   - The estimate follows the median at most 1 ms per second (a clock that
//     drifts), and a frame is compared with it: one later than the device's
//     usual delay by more than 5 s, or dated more than 2 s ahead of it,
//     disagrees. Its readings are stamped with the estimate but marked
//     ClockPending: their time is not certain until the clock decides.
//   - A disagreement is decided by what follows: the next frame that agrees
//     (the disagreeing ones were late: a backlog, a delay), or, when frames
//     keep disagreeing by one same amount for two minutes in at least three
//     buckets, a step (the clock was set): the estimate jumps, the step is
//     counted and shown, and the disagreeing frames take the new offset. A
//     disagreement that neither agrees again nor steps is decided as late
//     after the step window.
//   - Frames the transport says are redelivered (MQTT DUP) teach nothing.
//
// The state is kept across restarts (State, Restore): after a restart a
// backlog is judged against the estimate from before, not learnt from.
type Clock struct {
	mu       sync.Mutex
	interval time.Duration

	buckets [clockBuckets]clockBucket
	est     time.Duration
	valid   bool
	usual   time.Duration // typical delay of agreeing frames (moving average)
	lastAt  time.Time     // receipt time of the last agreeing frame
	history []ClockSegment
	pending *clockEpisode
	used    time.Time // last use, for the registry's bound

	frames, disagreed, redelivered, steps uint64
	lastStep                              time.Duration
	lastStepAt                            time.Time
}

const (
	clockBucketWidth = 30 * time.Second
	clockBuckets     = 60 // 30 minutes
	clockFirstAfter  = 3
	clockLateMargin  = 5 * time.Second
	clockAheadMargin = 2 * time.Second
	clockAgree       = 2 * time.Second
	clockStepAfter   = 2 * time.Minute
	clockMaxSlew     = time.Millisecond // per second of receipt time
	clockMaxHistory  = 32
)

type clockBucket struct {
	slot int64 // receipt time / clockBucket; 0: empty
	max  time.Duration
}

// clockEpisode is a run of disagreeing frames not yet decided.
type clockEpisode struct {
	since, last time.Time
	maxima      map[int64]time.Duration // slot → largest sample
}

// ClockSegment is an offset in force from a receipt time on.
type ClockSegment struct {
	From   time.Time     `json:"from"`
	Offset time.Duration `json:"offset_ns"`
}

// ClockState is what a Clock keeps across restarts.
type ClockState struct {
	Valid      bool           `json:"valid"`
	Offset     time.Duration  `json:"offset_ns"`
	Usual      time.Duration  `json:"usual_delay_ns"`
	History    []ClockSegment `json:"history,omitempty"`
	Steps      uint64         `json:"steps,omitempty"`
	LastStep   time.Duration  `json:"last_step_ns,omitempty"`
	LastStepAt time.Time      `json:"last_step_at,omitzero"`
}

// ClockStatus is a Clock's state for the status page and metrics.
type ClockStatus struct {
	// State: "none" (no estimate yet: the device's time is used as is),
	// "tracking", or "checking" (frames disagree; their readings wait).
	State       string        `json:"state"`
	Offset      time.Duration `json:"offset_ns"`
	UsualDelay  time.Duration `json:"usual_delay_ns"`
	Frames      uint64        `json:"frames"`
	Disagreed   uint64        `json:"disagreed"`   // frames whose time disagreed with the estimate
	Redelivered uint64        `json:"redelivered"` // frames the transport redelivered (not learnt from)
	Steps       uint64        `json:"steps"`       // times the clock was found set (jumped)
	LastStep    time.Duration `json:"last_step_ns,omitempty"`
	LastStepAt  time.Time     `json:"last_step_at,omitzero"`
}

// NewClock returns a Clock for a device that sends a frame about every
// interval (zero: often).
func NewClock(interval time.Duration) *Clock {
	return &Clock{interval: interval}
}

func (c *Clock) stepWindow() time.Duration { return max(clockStepAfter, 3*c.interval) }

// Observe takes one frame's device time and receipt time and returns the
// offset to stamp it with, and whether its time is pending (it disagrees
// with the estimate, and the clock has not decided why).
func (c *Clock) Observe(device, received time.Time, redelivered bool) (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.used = received
	c.frames++
	if redelivered {
		c.redelivered++
	}
	s := device.Sub(received)
	c.expireLocked(received)
	if !c.valid {
		if !redelivered {
			c.learnLocked(s, received)
			if cand, ok := c.candidateLocked(received); ok {
				c.est, c.valid, c.lastAt = cand, true, received
				c.segmentLocked(received)
			}
		}
		return c.est, false
	}
	d := c.est - s // the frame's delay, by the estimate
	if d > c.usual+clockLateMargin || d < -clockAheadMargin {
		c.disagreed++
		if c.pending == nil {
			c.pending = &clockEpisode{since: received, maxima: map[int64]time.Duration{}}
		}
		c.pending.last = received
		if !redelivered {
			slot := slotOf(received)
			if m, ok := c.pending.maxima[slot]; !ok || s > m {
				c.pending.maxima[slot] = s
			}
			if c.stepLocked(received) {
				return c.est, false
			}
		}
		return c.est, true
	}
	if redelivered {
		return c.est, false
	}
	c.pending = nil // what disagreed before was late: decided
	c.learnLocked(s, received)
	c.usual += (max(d, 0) - c.usual) / 16
	if cand, ok := c.candidateLocked(received); ok {
		elapsed := min(received.Sub(c.lastAt), 5*time.Minute)
		limit := time.Duration(float64(clockMaxSlew) * elapsed.Seconds())
		c.est += min(max(cand-c.est, -limit), limit)
	}
	c.lastAt = received
	return c.est, false
}

func slotOf(t time.Time) int64 { return t.UnixNano()/int64(clockBucketWidth) + 1 }

func (c *Clock) learnLocked(s time.Duration, received time.Time) {
	slot := slotOf(received)
	b := &c.buckets[slot%clockBuckets]
	if b.slot != slot {
		*b = clockBucket{slot: slot, max: s}
		return
	}
	b.max = max(b.max, s)
}

// candidateLocked is the median of the buckets' maxima within the window,
// when there are enough.
func (c *Clock) candidateLocked(now time.Time) (time.Duration, bool) {
	cur := slotOf(now)
	var xs []time.Duration
	for _, b := range c.buckets {
		if b.slot != 0 && cur-b.slot < clockBuckets && b.slot <= cur {
			xs = append(xs, b.max)
		}
	}
	if len(xs) < clockFirstAfter {
		return 0, false
	}
	slices.Sort(xs)
	return xs[len(xs)/2], true
}

// stepLocked steps the estimate when the episode's frames have disagreed by
// one same amount for long enough; it reports whether it did.
func (c *Clock) stepLocked(received time.Time) bool {
	p := c.pending
	if received.Sub(p.since) < clockStepAfter || len(p.maxima) < clockFirstAfter {
		return false
	}
	from := slotOf(received.Add(-c.stepWindow()))
	var xs []time.Duration
	for slot, m := range p.maxima {
		if slot >= from {
			xs = append(xs, m)
		}
	}
	if len(xs) < clockFirstAfter {
		return false
	}
	slices.Sort(xs)
	if xs[len(xs)-1]-xs[0] > clockAgree {
		return false // a backlog draining, not a clock that was set
	}
	next := xs[len(xs)/2]
	c.steps++
	c.lastStep, c.lastStepAt = next-c.est, received
	c.est = next
	// The samples from before the step describe the old clock.
	c.buckets = [clockBuckets]clockBucket{}
	for slot, m := range p.maxima {
		if slot >= from {
			c.buckets[slot%clockBuckets] = clockBucket{slot: slot, max: m}
		}
	}
	c.segmentLocked(p.since)
	c.pending, c.lastAt = nil, received
	return true
}

// expireLocked decides an episode that neither agreed again nor stepped
// within the step window: its frames were late.
func (c *Clock) expireLocked(now time.Time) {
	if p := c.pending; p != nil && now.Sub(p.since) > c.stepWindow()+max(30*time.Second, 2*c.interval) {
		c.pending = nil
	}
}

// segmentLocked records the estimate as in force from a receipt time on.
func (c *Clock) segmentLocked(from time.Time) {
	c.history = append(c.history, ClockSegment{From: from, Offset: c.est})
	if len(c.history) > clockMaxHistory {
		c.history = c.history[len(c.history)-clockMaxHistory:]
	}
}

// Settle says, for a frame received at received whose time was pending,
// whether the clock has decided, and the offset it decided on. now is the
// gateway's clock, to decide an episode that has run out.
func (c *Clock) Settle(received, now time.Time) (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expireLocked(now)
	if c.pending != nil && !received.Before(c.pending.since) {
		return 0, false
	}
	for i := len(c.history) - 1; i >= 0; i-- {
		if !received.Before(c.history[i].From) {
			if i == len(c.history)-1 {
				return c.est, true
			}
			return c.history[i].Offset, true
		}
	}
	if len(c.history) > 0 {
		return c.history[0].Offset, true
	}
	return c.est, true
}

// Choose picks, of two instants a device's local time may mean (the hour
// repeated when daylight saving time ends), the one the clock estimate
// expects at received; with no estimate, the one nearer receipt.
func (c *Clock) Choose(a, b, received time.Time) time.Time {
	c.mu.Lock()
	est := c.est
	c.mu.Unlock()
	da := (a.Sub(received) - est).Abs()
	db := (b.Sub(received) - est).Abs()
	if db < da {
		return b
	}
	return a
}

// State is what to keep across a restart.
func (c *Clock) State() ClockState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return ClockState{Valid: c.valid, Offset: c.est, Usual: c.usual, History: slices.Clone(c.history),
		Steps: c.steps, LastStep: c.lastStep, LastStepAt: c.lastStepAt}
}

// Restore takes back what State gave.
func (c *Clock) Restore(s ClockState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.valid, c.est, c.usual = s.Valid, s.Offset, max(s.Usual, 0)
	c.history = slices.Clone(s.History)
	c.steps, c.lastStep, c.lastStepAt = s.Steps, s.LastStep, s.LastStepAt
}

// Status is the clock's state for the status page.
func (c *Clock) Status() ClockStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := ClockStatus{State: "none", Offset: c.est, UsualDelay: c.usual, Frames: c.frames, Disagreed: c.disagreed,
		Redelivered: c.redelivered, Steps: c.steps, LastStep: c.lastStep, LastStepAt: c.lastStepAt}
	switch {
	case c.pending != nil:
		st.State = "checking"
	case c.valid:
		st.State = "tracking"
	}
	return st
}

// Stamp fills in the readings of one frame: receipt time, and for readings
// with a device time, the offset and whether it is pending. alt, when not
// zero, is the other instant the frame's local time may mean (a DST fold):
// the clock chooses, and the readings carrying the frame's time take the
// choice. It returns the offset used.
func (c *Clock) Stamp(rs []Reading, device, alt, received time.Time, redelivered bool) time.Duration {
	var off time.Duration
	var pending bool
	chosen := device
	if !device.IsZero() {
		if !alt.IsZero() {
			chosen = c.Choose(device, alt, received)
		}
		off, pending = c.Observe(chosen, received, redelivered)
	}
	for i := range rs {
		rs[i].Received = received
		if rs[i].DeviceTime.IsZero() {
			continue
		}
		if rs[i].DeviceTime.Equal(device) {
			rs[i].DeviceTime = chosen
		}
		rs[i].ClockOffset, rs[i].ClockPending = off, pending
	}
	return off
}

// Clocks keeps one Clock per device, for the sources that stamp frames and
// for the gateway that settles readings whose time was pending and keeps
// the clocks across restarts. It holds at most maxClocks devices (a
// wildcard topic can name any number): past that, the one unused longest
// is forgotten.
type Clocks struct {
	mu sync.Mutex
	m  map[string]*Clock
}

const maxClocks = 4096

// NewClocks returns an empty registry.
func NewClocks() *Clocks { return &Clocks{m: map[string]*Clock{}} }

// Clock returns the device's Clock, making it when it is new.
func (cs *Clocks) Clock(device string, interval time.Duration) *Clock {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if c := cs.m[device]; c != nil {
		if interval > 0 {
			c.mu.Lock()
			c.interval = interval
			c.mu.Unlock()
		}
		return c
	}
	if len(cs.m) >= maxClocks {
		var oldest string
		var at time.Time
		for d, c := range cs.m {
			c.mu.Lock()
			u := c.used
			c.mu.Unlock()
			if oldest == "" || u.Before(at) {
				oldest, at = d, u
			}
		}
		delete(cs.m, oldest)
	}
	c := NewClock(interval)
	cs.m[device] = c
	return c
}

// Settle re-stamps a reading whose time was pending once its device's
// clock has decided; it reports whether the reading is settled (a reading
// that was not pending is). A device the registry does not know (a restart
// before its clock was kept) keeps the offset the reading was stamped with.
func (cs *Clocks) Settle(r *Reading, now time.Time) bool {
	if !r.ClockPending {
		return true
	}
	cs.mu.Lock()
	c := cs.m[r.Device]
	cs.mu.Unlock()
	if c == nil {
		r.ClockPending = false
		return true
	}
	off, ok := c.Settle(r.Received, now)
	if !ok {
		return false
	}
	r.ClockOffset, r.ClockPending = off, false
	return true
}

// Status returns each device's clock status.
func (cs *Clocks) Status() map[string]ClockStatus {
	cs.mu.Lock()
	clocks := make(map[string]*Clock, len(cs.m))
	for d, c := range cs.m {
		clocks[d] = c
	}
	cs.mu.Unlock()
	out := make(map[string]ClockStatus, len(clocks))
	for d, c := range clocks {
		out[d] = c.Status()
	}
	return out
}

// State returns what to keep of every clock.
func (cs *Clocks) State() map[string]ClockState {
	cs.mu.Lock()
	clocks := make(map[string]*Clock, len(cs.m))
	for d, c := range cs.m {
		clocks[d] = c
	}
	cs.mu.Unlock()
	out := make(map[string]ClockState, len(clocks))
	for d, c := range clocks {
		out[d] = c.State()
	}
	return out
}

// Restore takes back what State gave, before the sources start.
func (cs *Clocks) Restore(states map[string]ClockState) {
	for d, s := range states {
		cs.Clock(d, 0).Restore(s)
	}
}
