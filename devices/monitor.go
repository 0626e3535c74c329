package devices

import (
	"sync"
	"sync/atomic"
	"time"
)

// State is what a source's link is doing.
type State string

// The states a monitor is shown in.
const (
	Connecting   State = "connecting"   // opening the port or the broker connection
	Connected    State = "connected"    // frames are arriving
	Silent       State = "silent"       // connected, but nothing for longer than the profile's interval allows
	Disconnected State = "disconnected" // the port vanished or the broker is gone; retrying
	Failed       State = "error"        // the source cannot work as configured
)

// Status is one source's state and counters, for the status page and
// metrics.
type Status struct {
	ID, Location, Profile, Transport string

	State     State
	Since     time.Time // when it entered State
	LastFrame time.Time // last frame that decoded
	LastError string    // never quotes device data

	Bytes, Frames, BadFrames, Readings, Dropped, Lost uint64
	// Skipped are readings not charted on purpose: retained MQTT messages
	// without a device time, which the broker replays.
	Skipped uint64
	// ClockOffset is the device clock minus the gateway's, as measured.
	ClockOffset time.Duration
	// Latest is the last value of each parameter, by MDC reference id.
	Latest map[string]Reading
}

// Monitor keeps a source's live status; safe for concurrent use.
type Monitor struct {
	mu     sync.Mutex
	st     Status
	trends map[string]*trend // by MDC reference id

	bytes, frames, bad, readings, dropped, lost, skipped atomic.Uint64
}

// NewMonitor starts the status of a source.
func NewMonitor(id, location, profile, transport string) *Monitor {
	return &Monitor{st: Status{ID: id, Location: location, Profile: profile, Transport: transport,
		State: Connecting, Since: time.Now(), Latest: map[string]Reading{}}}
}

// Set moves the source to a state; it returns whether that is a change (so
// a source logs transitions, not every retry).
func (m *Monitor) Set(s State, lastErr string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	changed := m.st.State != s
	if changed {
		m.st.State, m.st.Since = s, time.Now()
	}
	if lastErr != "" || s == Connected {
		m.st.LastError = lastErr
	}
	return changed
}

// State is the current state and since when.
func (m *Monitor) State() (State, time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.State, m.st.Since
}

// AddBytes counts bytes read from the link.
func (m *Monitor) AddBytes(n int) { m.bytes.Add(uint64(n)) }

// BadFrame counts a frame that did not decode.
func (m *Monitor) BadFrame() { m.bad.Add(1) }

// Lost counts readings that decoded but could not be stored.
func (m *Monitor) Lost(n int) { m.lost.Add(uint64(n)) }

// Skipped counts readings not charted on purpose.
func (m *Monitor) Skipped(n int) { m.skipped.Add(uint64(n)) }

// Frame records a decoded frame: its readings, and how many values it
// dropped.
func (m *Monitor) Frame(rs []Reading, dropped int, offset time.Duration) {
	m.frame(rs, dropped, offset, false)
}

// frame is Frame; with keepFailed, a monitor shown as failing stays so (the
// source's Intake clears it when the failure is over).
func (m *Monitor) frame(rs []Reading, dropped int, offset time.Duration, keepFailed bool) {
	m.frames.Add(1)
	m.readings.Add(uint64(len(rs)))
	m.dropped.Add(uint64(dropped))
	m.mu.Lock()
	defer m.mu.Unlock()
	m.st.LastFrame = time.Now()
	m.st.ClockOffset = offset
	for _, r := range rs {
		m.st.Latest[r.Code.RefID] = r
		m.addTrendLocked(r, m.st.LastFrame)
	}
	if m.st.State != Connected && !(keepFailed && m.st.State == Failed) {
		m.st.State, m.st.Since, m.st.LastError = Connected, time.Now(), ""
	}
}

// LastFrame is when the last decoded frame arrived (zero if none yet).
func (m *Monitor) LastFrame() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.LastFrame
}

// Status returns a copy of the status.
func (m *Monitor) Status() Status {
	m.mu.Lock()
	st := m.st
	st.Latest = make(map[string]Reading, len(m.st.Latest))
	for k, v := range m.st.Latest {
		st.Latest[k] = v
	}
	m.mu.Unlock()
	st.Bytes, st.Frames, st.BadFrames = m.bytes.Load(), m.frames.Load(), m.bad.Load()
	st.Readings, st.Dropped, st.Lost, st.Skipped = m.readings.Load(), m.dropped.Load(), m.lost.Load(), m.skipped.Load()
	return st
}

// Trends keep, per parameter, the recent values for the status page's
// sparklines: at most one point per TrendStep (the last value in each step
// wins), for TrendSpan, for at most maxTrends parameters. Memory stays
// bounded whatever a device sends.
const (
	TrendSpan = 15 * time.Minute
	TrendStep = 10 * time.Second
	maxTrends = 32
)

// TrendPoint is one point of a parameter's recent trend, on the gateway's
// clock (time of receipt).
type TrendPoint struct {
	At    time.Time `json:"t"`
	Value float64   `json:"v"`
}

// trend is a ring of points, oldest first from start.
type trend struct {
	pts   [int(TrendSpan/TrendStep) + 1]TrendPoint
	start int
	n     int
}

func (t *trend) add(p TrendPoint) {
	size := len(t.pts)
	if t.n > 0 {
		last := &t.pts[(t.start+t.n-1)%size]
		if p.At.Truncate(TrendStep).Equal(last.At.Truncate(TrendStep)) {
			*last = p
			return
		}
	}
	if t.n == size {
		t.start = (t.start + 1) % size
		t.n--
	}
	t.pts[(t.start+t.n)%size] = p
	t.n++
}

func (t *trend) since(from time.Time) []TrendPoint {
	out := make([]TrendPoint, 0, t.n)
	for i := 0; i < t.n; i++ {
		p := t.pts[(t.start+i)%len(t.pts)]
		if !p.At.Before(from) {
			out = append(out, p)
		}
	}
	return out
}

func (m *Monitor) addTrendLocked(r Reading, at time.Time) {
	t := m.trends[r.Code.RefID]
	if t == nil {
		if m.trends == nil {
			m.trends = map[string]*trend{}
		}
		if len(m.trends) >= maxTrends {
			return
		}
		t = &trend{}
		m.trends[r.Code.RefID] = t
	}
	t.add(TrendPoint{At: at, Value: r.Value})
}

// Trends returns the points of the last TrendSpan for each parameter, by
// MDC reference id, oldest first.
func (m *Monitor) Trends() map[string][]TrendPoint {
	from := time.Now().Add(-TrendSpan)
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string][]TrendPoint, len(m.trends))
	for k, t := range m.trends {
		if pts := t.since(from); len(pts) > 0 {
			out[k] = pts
		}
	}
	return out
}
