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
//     buckets; until then, on a link that can deliver frames late, the
//     device's time is used as it is (offset zero: ward clocks are usually
//     NTP-synchronised; a backlog keeps its times), never the receipt time;
//     on a live link (RS-232, a monitor that is polled), which delivers a
//     frame as it is sent, each frame's own sample is its offset: its
//     receipt is its time.
//   - The estimate follows the median at most 1 ms per second (a clock that
//     drifts), and a frame is compared with it: one later than the device's
//     usual delay by more than 5 s, or dated more than 2 s ahead of it,
//     disagrees. Its readings are stamped with the estimate but marked
//     ClockPending: their time is not certain until the clock decides, and
//     Settle says what it decided for each.
//   - A run of disagreeing frames (an episode) is decided by what follows.
//     A frame that agrees again: they were late (a backlog, a delay), or,
//     for one that was ahead, a glitched time. Frames that keep disagreeing
//     by one same amount for two minutes in at least three buckets: the
//     clock was set, the estimate steps, and the step is counted and shown.
//     A burst (frames received much faster than they were measured: a
//     backlog draining) followed by silence: late. Nothing else decides an
//     episode, however long it lasts.
//   - Which frames of a stepped episode carry the new clock is found in the
//     frames' own order: where the device's time jumps by the step. A clock
//     set while the gateway was down thus splits the backlog where it was
//     set. A frame that the sequence cannot place, and whose own sample does
//     not say, has no known time (TimeUnknown): it is never charted at a
//     guess.
//   - On a link without store and forward (Buffered false: RS-232), a frame
//     cannot be late: one whose time disagrees and is not a clock that was
//     set is a glitched time, and its receipt is its time.
//   - Frames the transport says are redelivered (MQTT DUP) teach nothing.
//   - In the hour repeated when daylight saving time ends, the instant that
//     follows the device's previous frame is taken (Choose).
//
// The state is kept across restarts (State, Restore), an undecided episode
// included: after a restart a backlog is judged against the estimate from
// before, not learnt from.
type Clock struct {
	mu       sync.Mutex
	interval time.Duration
	buffered bool

	buckets   [clockBuckets]clockBucket
	est       time.Duration
	valid     bool
	usual     time.Duration // typical delay of agreeing frames (moving average)
	lastAt    time.Time     // receipt time of the last agreeing frame
	lastAgree episodeFrame  // the last agreeing frame
	lastDev   time.Time     // device instant of the last frame that was not ahead
	history   []ClockSegment
	decisions []ClockDecision
	repeats   []RepeatWindow
	pending   *clockEpisode
	used      time.Time     // last use, for the registry's bound
	lastRecv  time.Time     // receipt of the last frame
	pace      time.Duration // typical time between frames, as received
	changed   bool          // an episode opened or closed since the last State

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
	// clockPlaceSlack is how far the frames' pace can mislead a placement:
	// a placed frame is taken as in the future only beyond it (and is
	// charted no later than its receipt anyway).
	clockPlaceSlack = 5 * time.Second
	// maxEpisodeFrames bounds the frames an episode remembers in order
	// (a day of a 1 Hz device): past it, the oldest are forgotten, and a
	// step's change point among them can no longer be found.
	maxEpisodeFrames = 86400
)

type clockBucket struct {
	slot int64 // receipt time / clockBucketWidth; 0: empty
	max  time.Duration
}

type episodeFrame struct {
	Device   time.Time `json:"device"`
	Received time.Time `json:"received"`
}

// clockEpisode is a run of disagreeing frames not yet decided.
type clockEpisode struct {
	since, last time.Time
	maxima      map[int64]time.Duration // slot → largest sample
	frames      []episodeFrame          // in arrival order (not kept across a restart)
	before      episodeFrame            // the last agreeing frame before it (zero: not known)
	// partial: frames of the episode were forgotten (a restart, or more
	// than maxEpisodeFrames); those before frames[0] are placed by their
	// own samples.
	partial bool
}

// ClockSegment is an offset in force from a receipt time on.
type ClockSegment struct {
	From   time.Time     `json:"from"`
	Offset time.Duration `json:"offset_ns"`
}

// ClockDecision is how an episode was decided: for the frames received
// from Since to Until, the offset each run of them was on (Segments, in
// order), found when the episode closed. Old and New are the estimates
// before and after it (equal unless it stepped).
type ClockDecision struct {
	Since    time.Time         `json:"since"`
	Until    time.Time         `json:"until"`
	Step     bool              `json:"step,omitempty"`
	Old      time.Duration     `json:"old_ns"`
	New      time.Duration     `json:"new_ns"`
	Segments []DecisionSegment `json:"segments,omitempty"`
	// Known is the receipt of the first frame whose place in the order
	// was known: earlier ones (forgotten in a restart) go by their own
	// samples.
	Known time.Time `json:"known,omitzero"`
	Burst bool      `json:"burst,omitempty"`
}

// DecisionSegment is a run of an episode's frames on one offset, from the
// receipt of its first frame; Unknown when the frames' order could not
// place them (each then goes by its own sample, or has no known time).
type DecisionSegment struct {
	From    time.Time     `json:"from"`
	Offset  time.Duration `json:"offset_ns"`
	Unknown bool          `json:"unknown,omitempty"`
}

// RepeatWindow is a span of device times a clock showed twice: it was set
// back, at Since (a receipt), to From, and showed [From, To) before.
type RepeatWindow struct {
	Since time.Time `json:"since"`
	From  time.Time `json:"from"`
	To    time.Time `json:"to"`
}

// ClockState is what a Clock keeps across restarts.
type ClockState struct {
	Valid      bool            `json:"valid"`
	Offset     time.Duration   `json:"offset_ns"`
	Usual      time.Duration   `json:"usual_delay_ns"`
	History    []ClockSegment  `json:"history,omitempty"`
	Decisions  []ClockDecision `json:"decisions,omitempty"`
	Steps      uint64          `json:"steps,omitempty"`
	LastStep   time.Duration   `json:"last_step_ns,omitempty"`
	LastStepAt time.Time       `json:"last_step_at,omitzero"`
	LastDevice time.Time       `json:"last_device,omitzero"`
	LastAgree  episodeFrame    `json:"last_agree,omitzero"`
	Repeats    []RepeatWindow  `json:"repeats,omitempty"`
	Pace       time.Duration   `json:"pace_ns,omitempty"`
	// Pending is an episode not yet decided: its frames stay pending
	// after the restart.
	Pending *EpisodeState `json:"pending,omitempty"`
}

// EpisodeState is an undecided episode as kept across a restart.
type EpisodeState struct {
	Since  time.Time               `json:"since"`
	Last   time.Time               `json:"last"`
	Maxima map[int64]time.Duration `json:"maxima_ns"`
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

// TimeVerdict is what a device's clock decided of a pending reading's time.
type TimeVerdict uint8

const (
	// TimeSettled: the reading has its offset, or its receipt as its time.
	TimeSettled TimeVerdict = iota
	// TimePending: not decided yet; the clock is being checked.
	TimePending
	// TimeUnknown: decided, but the reading's time cannot be known: it is
	// never charted at a guess.
	TimeUnknown
)

// NewClock returns a Clock for a device that sends a frame about every
// interval (zero: often), over a link that may keep frames and deliver them
// late (MQTT); SetBuffered says otherwise.
func NewClock(interval time.Duration) *Clock {
	return &Clock{interval: interval, buffered: true}
}

// SetBuffered says whether the device's link can deliver frames late.
func (c *Clock) SetBuffered(b bool) {
	c.mu.Lock()
	c.buffered = b
	c.mu.Unlock()
}

// stepWindow is how long a consistent disagreement must last to be a
// clock that was set: two minutes, or three of the device's frames when it
// sends more seldom than its profile says.
func (c *Clock) stepWindow() time.Duration { return max(clockStepAfter, 3*max(c.interval, c.pace)) }

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
	} else {
		if !c.lastRecv.IsZero() {
			// The pace the device's frames come at, as received (a
			// backlog's bursts pull it down a little; it is only used to
			// widen the step window for devices that send seldom).
			gap := min(max(received.Sub(c.lastRecv), 0), time.Hour)
			if c.pace == 0 {
				c.pace = gap
			} else {
				c.pace += (gap - c.pace) / 8
			}
		}
		c.lastRecv = received
	}
	s := device.Sub(received)
	c.expireLocked(received)
	if !c.valid {
		if !redelivered {
			c.learnLocked(s, received)
			c.lastDev, c.lastAgree = device, episodeFrame{device, received}
			if cand, ok := c.candidateLocked(received); ok {
				c.est, c.valid, c.lastAt = cand, true, received
				c.segmentLocked(received)
			}
		}
		if !c.valid && !c.buffered && !redelivered {
			// A live link delivers a frame as it is sent: until the
			// estimate forms, the frame's own sample is its offset (its
			// receipt is its time, and a measurement of an earlier time
			// keeps its age).
			return s, false
		}
		return c.est, false
	}
	d := c.est - s // the frame's delay, by the estimate
	if d > c.usual+clockLateMargin || d < -clockAheadMargin {
		c.disagreed++
		p := c.pending
		if p == nil {
			p = &clockEpisode{since: received, maxima: map[int64]time.Duration{}, before: c.lastAgree}
			c.pending, c.changed = p, true
		}
		p.last = received
		if len(p.frames) == maxEpisodeFrames {
			p.frames, p.partial = p.frames[1:], true
		}
		if !redelivered {
			// A redelivered frame stands outside the order the device
			// measured in; it is placed by its own sample.
			p.frames = append(p.frames, episodeFrame{device, received})
		}
		if d > 0 {
			c.lastDev = device
		}
		if !redelivered {
			slot := slotOf(received)
			if m, ok := p.maxima[slot]; !ok || s > m {
				p.maxima[slot] = s
			}
			if c.stepLocked(device, received) {
				return c.est, false
			}
		}
		return c.est, true
	}
	c.lastDev = device
	if redelivered {
		return c.est, false
	}
	if c.pending != nil {
		// What disagreed before is decided by this frame: the clock is as
		// it was (late frames, or a clock set and set right again).
		end := episodeFrame{device, received}
		c.closeLocked(c.est, &end, c.est, received, false)
	}
	c.lastAgree = episodeFrame{device, received}
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

// burst tells whether an episode's frames came much faster than they were
// measured: a backlog draining.
func (p *clockEpisode) burst() bool {
	if len(p.frames) < 2 {
		return false
	}
	lo, hi := p.frames[0].Device, p.frames[0].Device
	for _, f := range p.frames {
		if f.Device.Before(lo) {
			lo = f.Device
		}
		if f.Device.After(hi) {
			hi = f.Device
		}
	}
	received := p.frames[len(p.frames)-1].Received.Sub(p.frames[0].Received)
	return hi.Sub(lo) > 2*received+10*time.Second
}

// closeLocked decides the pending episode: old is the estimate it was
// judged against; end, when known, the frame that decided it (on offset
// endOff: an agreeing frame, or the frame that stepped the clock); until
// the receipt the decision covers frames up to.
func (c *Clock) closeLocked(old time.Duration, end *episodeFrame, endOff time.Duration, until time.Time, step bool) {
	p := c.pending
	d := ClockDecision{Since: p.since, Until: until, Step: step, Old: old, New: endOff, Burst: p.burst()}
	seq := p.frames
	startKnown := !p.partial && !p.before.Received.IsZero()
	if startKnown {
		seq = append([]episodeFrame{p.before}, seq...)
	}
	if end != nil {
		seq = append(slices.Clone(seq), *end)
	}
	if p.partial && len(p.frames) > 0 {
		d.Known = p.frames[0].Received
	}
	pace := c.pace // as received; the profile's interval until the device has shown its own
	if pace <= 0 {
		pace = c.interval
	}
	offs, unknown, repeats := placeFrames(seq, startKnown, old, end != nil, endOff, pace)
	first, last := 0, len(seq)
	if startKnown {
		first = 1
	}
	if end != nil {
		last--
	}
	for i := first; i < last; i++ {
		f := seq[i]
		u := unknown[i]
		if !u && f.Device.Sub(f.Received)-offs[i] > clockAheadMargin+clockPlaceSlack {
			u = true // placed in the future: that cannot be its clock
		}
		if n := len(d.Segments); n > 0 && d.Segments[n-1].Unknown == u && (u || d.Segments[n-1].Offset == offs[i]) {
			continue
		}
		d.Segments = append(d.Segments, DecisionSegment{From: f.Received, Offset: offs[i], Unknown: u})
	}
	for _, w := range repeats {
		c.repeats = append(c.repeats, w)
	}
	if len(c.repeats) > clockMaxHistory {
		c.repeats = c.repeats[len(c.repeats)-clockMaxHistory:]
	}
	c.addDecisionLocked(d)
	c.pending, c.changed = nil, true
}

func (c *Clock) addDecisionLocked(d ClockDecision) {
	c.decisions = append(c.decisions, d)
	if len(c.decisions) > clockMaxHistory {
		c.decisions = c.decisions[len(c.decisions)-clockMaxHistory:]
	}
}

// placeFrames finds the offset each frame of seq was on, from the device
// times' order: frames come in the order they were measured, so where the
// device's time jumps beyond its usual pace from one frame to the next,
// either the device was off for a while (a gap: no change) or its clock
// was set (a change of the jump's size, less any gap). start and end are
// the offsets of seq's first and last frames when they are known (the
// agreeing frame before an episode, the frame that decided it). The jumps
// are explained only when the arithmetic closes: every jump a change; or
// the backward ones changes and the forward ones gaps; or, for a single
// jump between two known ends, the whole change there (a set during a
// reboot). Frames it cannot place are unknown. It also returns the device
// times shown twice because of a clock set back.
//
// pace is the device's usual time between frames, for a sequence too short
// to tell its own.
func placeFrames(seq []episodeFrame, startKnown bool, start time.Duration, endKnown bool, end time.Duration, pace time.Duration) ([]time.Duration, []bool, []RepeatWindow) {
	n := len(seq)
	offs, unknown := make([]time.Duration, n), make([]bool, n)
	if n == 0 {
		return offs, unknown, nil
	}
	deltas := make([]time.Duration, 0, n)
	for i := 1; i < n; i++ {
		deltas = append(deltas, seq[i].Device.Sub(seq[i-1].Device))
	}
	if len(deltas) >= 5 {
		sorted := slices.Clone(deltas)
		slices.Sort(sorted)
		pace = sorted[len(sorted)/2]
	}
	thr := max(2*time.Minute, 4*pace.Abs())
	if startKnown && endKnown {
		if d := (end - start).Abs(); d > clockAgree && d < 2*thr {
			thr = max(2*clockAgree, d/2) // a small step: look for it
		}
	}
	type jump struct {
		at   int // the first frame after it
		cmax time.Duration
	}
	var jumps []jump
	for i, d := range deltas {
		if (d - pace).Abs() > thr {
			jumps = append(jumps, jump{i + 1, d - pace})
		}
	}
	tol := max(clockAgree, thr/2)
	sum := func(ch []time.Duration) (t time.Duration) {
		for _, c := range ch {
			t += c
		}
		return t
	}
	allChanges := make([]time.Duration, len(jumps))
	backOnly := make([]time.Duration, len(jumps))
	for i, j := range jumps {
		allChanges[i] = j.cmax
		if j.cmax < 0 {
			backOnly[i] = j.cmax
		}
	}
	var changes []time.Duration
	ok := true
	switch {
	case startKnown && endKnown:
		target := end - start
		switch {
		case len(jumps) == 0:
			ok = (target).Abs() <= tol
		case len(jumps) == 1 && jumps[0].cmax-target >= -tol:
			// One jump, and the known ends say by how much: exact, and
			// right also for a clock set while the device was off.
			changes = []time.Duration{target}
		case (sum(allChanges) - target).Abs() <= tol:
			changes = allChanges
		case (sum(backOnly) - target).Abs() <= tol:
			changes = backOnly
		default:
			ok = false
		}
		if ok && len(changes) > 0 {
			// The ends are known exactly; what the pace left over goes
			// to the last change.
			changes = slices.Clone(changes)
			changes[len(changes)-1] += target - sum(changes)
		}
	case startKnown: // a backlog whose device then fell silent
		changes = backOnly
	case endKnown: // the frames before the first listed were forgotten
		changes, start = backOnly, end-sum(backOnly)
	default:
		ok = false
	}
	if !ok {
		// Only the ends are sure: up to the first jump, the start; from
		// the last, the end; between, not known.
		firstJump, lastJump := n, 0
		if len(jumps) > 0 {
			firstJump, lastJump = jumps[0].at, jumps[len(jumps)-1].at
		}
		for i := range n {
			switch {
			case startKnown && i < firstJump:
				offs[i] = start
			case endKnown && i >= lastJump && len(jumps) > 0:
				offs[i] = end
			default:
				unknown[i] = true
			}
		}
		return offs, unknown, nil
	}
	// A clock set back shows again the device times its segment before
	// the jump showed: from where it now is up to where it was, but not
	// before that segment began (a single glitched frame showed only its
	// own time; the first segment continues the live history).
	var repeats []RepeatWindow
	cur, k := start, 0
	var segFrom time.Time // zero: the first segment, which goes back for ever
	for i := range n {
		for k < len(jumps) && jumps[k].at == i {
			if changes[k] < 0 {
				from := seq[i].Device
				if !segFrom.IsZero() && segFrom.After(from) {
					from = segFrom
				}
				to := seq[i-1].Device.Add(max(pace, time.Nanosecond))
				if to.After(from) {
					repeats = append(repeats, RepeatWindow{Since: seq[i].Received, From: from, To: to})
				}
			}
			cur += changes[k]
			segFrom = seq[i].Device
			k++
		}
		offs[i] = cur
	}
	return offs, unknown, repeats
}

// stepLocked steps the estimate when the episode's frames have disagreed by
// one same amount for long enough; it reports whether it did.
func (c *Clock) stepLocked(device, received time.Time) bool {
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
	old := c.est
	c.steps++
	c.lastStep, c.lastStepAt = next-old, received
	c.est = next
	// The samples from before the step describe the old clock.
	c.buckets = [clockBuckets]clockBucket{}
	for slot, m := range p.maxima {
		if slot >= from {
			c.buckets[slot%clockBuckets] = clockBucket{slot: slot, max: m}
		}
	}
	// The frame that stepped it is on the new clock: the episode ends
	// with it.
	if n := len(p.frames); n > 0 && p.frames[n-1].Received.Equal(received) {
		p.frames = p.frames[:n-1]
	}
	end := episodeFrame{device, received}
	c.closeLocked(old, &end, next, received, true)
	c.segmentLocked(c.decisions[len(c.decisions)-1].Since)
	c.lastAt, c.lastAgree = received, end
	return true
}

// expireLocked decides an episode that was a burst and has been quiet for
// the step window: a backlog that drained, whose device then fell silent.
func (c *Clock) expireLocked(now time.Time) {
	if p := c.pending; p != nil && now.Sub(p.last) > c.stepWindow() && p.burst() {
		c.closeLocked(c.est, nil, c.est, p.last, false)
	}
}

// segmentLocked records the estimate as in force from a receipt time on.
func (c *Clock) segmentLocked(from time.Time) {
	c.history = append(c.history, ClockSegment{From: from, Offset: c.est})
	if len(c.history) > clockMaxHistory {
		c.history = c.history[len(c.history)-clockMaxHistory:]
	}
}

// Settle says, for a reading of device time device received at received
// whose time was pending, what the clock decided: its offset (and how
// many times its clock showed that device time before), its receipt as
// its time (atReceipt), or that it is still pending or unknown. sample is
// what the device's clock showed when the frame was sent: the reading's
// own time, unless it is a measurement of an earlier time (Reading's
// ClockSample). now is the gateway's clock.
func (c *Clock) Settle(device, sample, received, now time.Time, redelivered bool) (off time.Duration, repeat int, atReceipt bool, v TimeVerdict) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expireLocked(now)
	if c.pending != nil && !received.Before(c.pending.since) {
		return 0, 0, false, TimePending
	}
	s := sample.Sub(received)
	for i := len(c.decisions) - 1; i >= 0; i-- {
		d := c.decisions[i]
		if received.Before(d.Since) || received.After(d.Until) {
			continue
		}
		off, placed := d.Old, false
		// A redelivered frame stands outside the order the frames were
		// measured in: only its own sample can place it.
		if !received.Before(d.Known) && !redelivered {
			for j := len(d.Segments) - 1; j >= 0; j-- {
				if seg := d.Segments[j]; !received.Before(seg.From) {
					off, placed = seg.Offset, !seg.Unknown
					break
				}
			}
		}
		if !placed {
			// Its place in the order is not known: its own sample may say.
			switch {
			case c.agreesLocked(s, d.New):
				off = d.New
			case c.agreesLocked(s, d.Old):
				off = d.Old
			case !c.buffered:
				return 0, 0, true, TimeSettled // a live link: its receipt is its time
			default:
				return 0, 0, false, TimeUnknown
			}
		}
		switch {
		case s-off > clockAheadMargin: // ahead of its own clock
			if c.buffered && d.Burst {
				return 0, 0, false, TimeUnknown
			}
			return 0, 0, true, TimeSettled // a glitched time on a live link
		case off-s > c.usual+clockLateMargin && !c.buffered:
			return 0, 0, true, TimeSettled // a serial frame cannot be late
		case off-s > c.usual+clockLateMargin+time.Minute && !d.Burst:
			// Late by more than a minute, yet received at the device's
			// pace, not in a burst: not a backlog. Its clock was off, and
			// its receipt is its time.
			return 0, 0, true, TimeSettled
		}
		return off, c.repeatsLocked(device, received), false, TimeSettled
	}
	// No decision covers it: its episode was lost (a crash before the
	// clocks were kept). It goes by its own sample once the clock agrees
	// with it.
	switch at := c.offsetAtLocked(received); {
	case c.agreesLocked(s, at):
		return at, c.repeatsLocked(device, received), false, TimeSettled
	case c.agreesLocked(s, c.est):
		return c.est, c.repeatsLocked(device, received), false, TimeSettled
	}
	return 0, 0, false, TimePending
}

// repeatsLocked is how many times the clock had shown device before, as
// seen at received: the times it was set back over it.
func (c *Clock) repeatsLocked(device, received time.Time) int {
	n := 0
	for _, w := range c.repeats {
		if !received.Before(w.Since) && !device.Before(w.From) && device.Before(w.To) {
			n++
		}
	}
	return n
}

func (c *Clock) agreesLocked(s, off time.Duration) bool {
	d := off - s
	return d <= c.usual+clockLateMargin && d >= -clockAheadMargin
}

func (c *Clock) offsetAtLocked(received time.Time) time.Duration {
	for i := len(c.history) - 1; i >= 0; i-- {
		if !received.Before(c.history[i].From) {
			if i == len(c.history)-1 {
				return c.est
			}
			return c.history[i].Offset
		}
	}
	if len(c.history) > 0 {
		return c.history[0].Offset
	}
	return c.est
}

// Choose picks, of two instants a device's local time may mean (the hour
// repeated when daylight saving time ends), the one that follows the
// device's previous frame (frames come in the order they were measured,
// live or from a backlog); without a recent previous frame, the one the
// clock estimate expects at received.
func (c *Clock) Choose(a, b, received time.Time) time.Time {
	c.mu.Lock()
	est, last := c.est, c.lastDev
	c.mu.Unlock()
	if b.Before(a) {
		a, b = b, a
	}
	if !last.IsZero() && a.Sub(last).Abs() < 3*time.Hour {
		if !a.Before(last.Add(-clockAheadMargin)) {
			return a
		}
		return b
	}
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
	c.changed = false
	st := ClockState{Valid: c.valid, Offset: c.est, Usual: c.usual, History: slices.Clone(c.history),
		Decisions: slices.Clone(c.decisions), Steps: c.steps, LastStep: c.lastStep, LastStepAt: c.lastStepAt,
		LastDevice: c.lastDev, LastAgree: c.lastAgree, Repeats: slices.Clone(c.repeats), Pace: c.pace}
	if p := c.pending; p != nil {
		m := make(map[int64]time.Duration, len(p.maxima))
		for k, v := range p.maxima {
			m[k] = v
		}
		st.Pending = &EpisodeState{Since: p.since, Last: p.last, Maxima: m}
	}
	return st
}

// Restore takes back what State gave.
func (c *Clock) Restore(s ClockState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.valid, c.est, c.usual = s.Valid, s.Offset, max(s.Usual, 0)
	c.history, c.decisions = slices.Clone(s.History), slices.Clone(s.Decisions)
	c.steps, c.lastStep, c.lastStepAt = s.Steps, s.LastStep, s.LastStepAt
	c.lastDev, c.lastAgree = s.LastDevice, s.LastAgree
	c.repeats, c.pace = slices.Clone(s.Repeats), max(s.Pace, 0)
	c.pending = nil
	if p := s.Pending; p != nil {
		m := make(map[int64]time.Duration, len(p.Maxima))
		for k, v := range p.Maxima {
			m[k] = v
		}
		c.pending = &clockEpisode{since: p.Since, last: p.Last, maxima: m, partial: true}
	}
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
// with a device time, the offset, whether it is pending, and how many
// times the device's clock showed that time before (a clock set back). alt,
// when not zero, is the other instant the frame's local time may mean (a
// DST fold): the clock chooses, and the readings carrying the frame's time
// take the choice. It returns the offset used.
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
	c.mu.Lock()
	live := !c.buffered
	c.mu.Unlock()
	for i := range rs {
		rs[i].Received = received
		if rs[i].DeviceTime.IsZero() {
			continue
		}
		if rs[i].DeviceTime.Equal(device) {
			rs[i].DeviceTime = chosen
		} else if !device.IsZero() {
			// A measurement of its own, earlier time (an NIBP taken
			// before the answer that brought it): the clock is read from
			// the frame's time, not from it.
			rs[i].ClockSample = chosen
			if live && rs[i].DeviceTime.After(chosen.Add(clockAheadMargin)) {
				// On a live link (a polled monitor, whose values and
				// answers carry one clock), measured "after" the answer
				// that brings it (beyond the answer time's rounding): on
				// a clock that was set back since. Which offset it was
				// measured on is not known: never charted at a guess. (A
				// message that may carry another clock's times, as an HL7
				// result's OBX-14 beside its MSH-7, is not judged so.)
				rs[i].TimeUnknown, rs[i].ClockOffset, rs[i].Redelivered = true, 0, redelivered
				continue
			}
		}
		rs[i].ClockOffset, rs[i].ClockPending, rs[i].Redelivered = off, pending, redelivered
		if !pending {
			c.mu.Lock()
			rs[i].ClockRepeat = c.repeatsLocked(rs[i].DeviceTime, received)
			c.mu.Unlock()
		}
	}
	return off
}

// steppedAround reports whether a decision that covers received found the
// clock set (a step).
func (c *Clock) steppedAround(received time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range c.decisions {
		if d.Step && !received.Before(d.Since) && !received.After(d.Until) {
			return true
		}
	}
	return false
}

// estimate is the clock's offset estimate, when it has one.
func (c *Clock) estimate() (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.est, c.valid
}

// Changed tells whether an episode opened or closed since State was last
// taken: what a restart must not lose.
func (c *Clock) Changed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
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

// Clock returns the device's Clock, making it when it is new. interval is
// the device's usual time between frames; buffered whether its link can
// deliver frames late.
func (cs *Clocks) Clock(device string, interval time.Duration, buffered bool) *Clock {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	c := cs.m[device]
	if c == nil {
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
		c = NewClock(interval)
		cs.m[device] = c
	}
	c.mu.Lock()
	if interval > 0 {
		c.interval = interval
	}
	c.buffered = buffered
	c.mu.Unlock()
	return c
}

// Settle re-stamps a reading whose time was pending once its device's
// clock has decided: its offset, or its receipt as its time (its device
// time is then dropped). A reading whose time cannot be known is marked
// TimeUnknown. A device the registry does not know (a restart before its
// clock was kept) keeps the offset the reading was stamped with.
func (cs *Clocks) Settle(r *Reading, now time.Time) TimeVerdict {
	if !r.ClockPending {
		if r.TimeUnknown {
			return TimeUnknown
		}
		return TimeSettled
	}
	cs.mu.Lock()
	c := cs.m[r.Device]
	cs.mu.Unlock()
	if c == nil {
		r.ClockPending = false
		return TimeSettled
	}
	sample := r.DeviceTime
	if !r.ClockSample.IsZero() {
		sample = r.ClockSample
	}
	off, repeat, atReceipt, v := c.Settle(r.DeviceTime, sample, r.Received, now, r.Redelivered)
	switch v {
	case TimePending:
		return TimePending
	case TimeUnknown:
		r.ClockPending, r.TimeUnknown = false, true
		return TimeUnknown
	}
	r.ClockPending = false
	if atReceipt && !r.ClockSample.IsZero() {
		// The frame's own time was a glitch (or a late frame on a live
		// link): the frame is charted at its receipt. The measurement of
		// its own time did not glitch with it: it is placed by the
		// clock's estimate; without one, it has no known time.
		est, ok := c.estimate()
		if !ok || r.DeviceTime.Add(-est).After(r.Received) {
			r.DeviceTime, r.ClockOffset, r.ClockRepeat, r.TimeUnknown = time.Time{}, 0, 0, true
			return TimeUnknown
		}
		r.ClockOffset, r.ClockRepeat = est, 0
		return TimeSettled
	}
	if !r.ClockSample.IsZero() {
		// The frame's time placed the frame; a measurement of its own
		// time is placed by the clock it was measured on. When the
		// frame's offset is not the clock's (a glitched frame time), the
		// clock's estimate is that clock, unless the clock was set
		// around the frame: then which clock it was measured on is not
		// known.
		if est, ok := c.estimate(); ok && (off-est).Abs() > clockAgree {
			if c.steppedAround(r.Received) {
				r.DeviceTime, r.ClockOffset, r.ClockRepeat, r.TimeUnknown = time.Time{}, 0, 0, true
				return TimeUnknown
			}
			off, repeat = est, 0
		}
	}
	if atReceipt {
		r.DeviceTime, r.ClockOffset, r.ClockRepeat = time.Time{}, 0, 0
		return TimeSettled
	}
	r.ClockOffset, r.ClockRepeat = off, repeat
	return TimeSettled
}

// Changed tells whether a clock's episode opened or closed since State was
// last taken.
func (cs *Clocks) Changed() bool {
	for _, c := range cs.all() {
		if c.Changed() {
			return true
		}
	}
	return false
}

// Status returns each device's clock status.
func (cs *Clocks) Status() map[string]ClockStatus {
	out := map[string]ClockStatus{}
	for d, c := range cs.all() {
		out[d] = c.Status()
	}
	return out
}

// State returns what to keep of every clock.
func (cs *Clocks) State() map[string]ClockState {
	out := map[string]ClockState{}
	for d, c := range cs.all() {
		out[d] = c.State()
	}
	return out
}

func (cs *Clocks) all() map[string]*Clock {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	clocks := make(map[string]*Clock, len(cs.m))
	for d, c := range cs.m {
		clocks[d] = c
	}
	return clocks
}

// Restore takes back what State gave, before the sources start.
func (cs *Clocks) Restore(states map[string]ClockState) {
	for d, s := range states {
		cs.mu.Lock()
		c := cs.m[d]
		if c == nil {
			c = NewClock(0)
			cs.m[d] = c
		}
		cs.mu.Unlock()
		c.Restore(s)
	}
}
