package devices

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Sink is where sources hand their readings: Ingest returns once every
// frame's readings are durable (or an error, and then none of them is), so
// a source acknowledges its device (MQTT PUBACK) only after it. Reject
// keeps a frame that could not be decoded, raw, among the dead letters, so
// an engineer can see what the device sent without it ever reaching a log.
type Sink interface {
	Ingest(ctx context.Context, frames ...[]Reading) error
	Reject(ctx context.Context, device string, raw []byte, reason string) error
}

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
	// ClockOffset is the device clock minus the gateway's, as measured.
	ClockOffset time.Duration
	// Latest is the last value of each parameter, by MDC reference id.
	Latest map[string]Reading
}

// Monitor keeps a source's live status; safe for concurrent use.
type Monitor struct {
	mu sync.Mutex
	st Status

	bytes, frames, bad, readings, dropped, lost atomic.Uint64
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

// Frame records a decoded frame: its readings, and how many values it
// dropped.
func (m *Monitor) Frame(rs []Reading, dropped int, offset time.Duration) {
	m.frames.Add(1)
	m.readings.Add(uint64(len(rs)))
	m.dropped.Add(uint64(dropped))
	m.mu.Lock()
	defer m.mu.Unlock()
	m.st.LastFrame = time.Now()
	m.st.ClockOffset = offset
	for _, r := range rs {
		m.st.Latest[r.Code.RefID] = r
	}
	if m.st.State != Connected {
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
	st.Readings, st.Dropped, st.Lost = m.readings.Load(), m.dropped.Load(), m.lost.Load()
	return st
}
