// Package sim simulates bedside monitors for tests, the demo and
// commissioning: a patient whose vitals trend slowly, with the artefacts
// real monitors show (a probe slipping off, low perfusion, motion), short
// dropouts, and a device clock that is off and drifts. It writes each
// frame in the output format of a built-in profile, byte for byte as the
// device would.
package sim

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"time"
)

// Formats lists the profiles the simulator can speak.
func Formats() []string {
	out := make([]string, 0, len(writers))
	for k := range writers {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

var writers = map[string]func(*Monitor, time.Time) []byte{
	"masimo/radical-7":  (*Monitor).masimo,
	"nonin/avant":       (*Monitor).nonin,
	"generic/json":      (*Monitor).genericJSON,
	"generic/flat-json": (*Monitor).flatJSON,
}

// Monitor is one simulated monitor and its patient.
type Monitor struct {
	Profile string
	Serial  string // device serial number
	ID      string // device id in JSON payloads

	rng *rand.Rand
	// Vitals, drifting around their baselines.
	hr, spo2, pi, rr, temp, sys, dia float64
	baseHR, baseSpO2                 float64
	// Clock: the device is offset from true time and drifts (ppm).
	clockOffset time.Duration
	driftPPM    float64
	start       time.Time
	// Artefacts in progress: frames left.
	probeOff, lowPerf, dropout int
	lastNIBP                   time.Time
}

// New returns a simulated monitor speaking profile's format; seed makes it
// repeatable.
func New(profile string, seed uint64) (*Monitor, error) {
	if writers[profile] == nil {
		return nil, fmt.Errorf("no simulator for profile %q (have: %v)", profile, Formats())
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	m := &Monitor{
		Profile: profile, rng: rng,
		Serial: fmt.Sprintf("%010d", rng.IntN(1_000_000_000)),
		ID:     fmt.Sprintf("SIM-%04d", rng.IntN(10000)),
		baseHR: 60 + rng.Float64()*40, baseSpO2: 94 + rng.Float64()*5,
		pi: 1 + rng.Float64()*4, rr: 12 + rng.Float64()*8, temp: 36.4 + rng.Float64()*0.8,
		sys: 105 + rng.Float64()*30, dia: 60 + rng.Float64()*20,
		clockOffset: time.Duration(rng.IntN(240)-120) * time.Second,
		driftPPM:    rng.Float64()*100 - 50,
	}
	m.hr, m.spo2 = m.baseHR, m.baseSpO2
	return m, nil
}

// step moves the patient on by one frame.
func (m *Monitor) step() {
	r := m.rng
	// Mean-reverting random walks: vitals wander but stay plausible.
	m.hr += (m.baseHR-m.hr)*0.05 + r.NormFloat64()*1.2
	m.spo2 += (m.baseSpO2-m.spo2)*0.1 + r.NormFloat64()*0.4
	m.pi = math.Max(0.2, m.pi+r.NormFloat64()*0.05)
	m.rr += (16-m.rr)*0.02 + r.NormFloat64()*0.3
	m.temp += (36.8-m.temp)*0.001 + r.NormFloat64()*0.005
	m.spo2 = math.Min(100, m.spo2)
	// Artefacts start now and then and last a few frames.
	switch {
	case m.probeOff > 0:
		m.probeOff--
	case m.lowPerf > 0:
		m.lowPerf--
	case m.dropout > 0:
		m.dropout--
	default:
		switch x := r.Float64(); {
		case x < 0.004:
			m.probeOff = 3 + r.IntN(8)
		case x < 0.010:
			m.lowPerf = 5 + r.IntN(10)
		case x < 0.012:
			m.dropout = 2 + r.IntN(5)
		}
	}
}

// deviceTime is the device's idea of now: true time plus its offset and
// drift.
func (m *Monitor) deviceTime(now time.Time) time.Time {
	if m.start.IsZero() {
		m.start = now
	}
	drift := time.Duration(float64(now.Sub(m.start)) * m.driftPPM / 1e6)
	return now.Add(m.clockOffset + drift)
}

// Next returns the frame the monitor sends at now (a line with its
// terminator, or one JSON message), or nil while it is in a dropout.
func (m *Monitor) Next(now time.Time) []byte {
	m.step()
	if m.dropout > 0 {
		return nil
	}
	return writers[m.Profile](m, now)
}

func (m *Monitor) masimo(now time.Time) []byte {
	t := m.deviceTime(now)
	exc := 0x000800 // Masimo SET: normal
	spo2 := fmt.Sprintf("%03.0f", m.spo2)
	bpm := fmt.Sprintf("%03.0f", m.hr)
	pi := fmt.Sprintf("%05.2f", m.pi)
	switch {
	case m.probeOff > 0:
		exc |= 0x000020
		spo2, bpm, pi = "---", "---", "--.--"
	case m.lowPerf > 0:
		exc |= 0x000004
		pi = fmt.Sprintf("%05.2f", 0.15)
	}
	alarm := 0
	if m.spo2 < 90 {
		alarm |= 0x0012
	}
	return fmt.Appendf(nil, "%s SN=%s SPO2=%s%% BPM=%s PI=%s%% SPCO=--.-%% SPMET=--.-%% DESAT=-- PIDELTA=+-- ALARM=%04X EXC=%06X\r\n",
		t.Format("01/02/06 15:04:05"), m.Serial, spo2, bpm, pi, alarm, exc)
}

func (m *Monitor) nonin(time.Time) []byte {
	if m.probeOff > 0 {
		return []byte("SPO2=--- HR=---\r\n")
	}
	return fmt.Appendf(nil, "SPO2=%03.0f HR=%03.0f\r\n", m.spo2, m.hr)
}

func (m *Monitor) nibpDue(now time.Time) bool {
	if now.Sub(m.lastNIBP) < 5*time.Minute {
		return false
	}
	m.lastNIBP = now
	m.sys += m.rng.NormFloat64() * 4
	m.dia += m.rng.NormFloat64() * 3
	return true
}

func (m *Monitor) genericJSON(now time.Time) []byte {
	type obs struct {
		Code  string  `json:"code"`
		Value float64 `json:"value"`
		Unit  string  `json:"unit"`
	}
	var o []obs
	if m.probeOff == 0 {
		o = append(o, obs{"MDC_PULS_OXIM_SAT_O2", round(m.spo2, 0), "MDC_DIM_PERCENT"},
			obs{"MDC_PULS_OXIM_PULS_RATE", round(m.hr, 0), "MDC_DIM_BEAT_PER_MIN"})
	}
	o = append(o, obs{"MDC_ECG_HEART_RATE", round(m.hr, 0), "MDC_DIM_BEAT_PER_MIN"},
		obs{"MDC_TTHOR_RESP_RATE", round(m.rr, 0), "MDC_DIM_RESP_PER_MIN"},
		obs{"MDC_TEMP_BODY", round(m.temp, 1), "Cel"})
	if m.nibpDue(now) {
		o = append(o, obs{"MDC_PRESS_BLD_NONINV_SYS", round(m.sys, 0), "MDC_DIM_MMHG"},
			obs{"MDC_PRESS_BLD_NONINV_DIA", round(m.dia, 0), "MDC_DIM_MMHG"},
			obs{"MDC_PRESS_BLD_NONINV_MEAN", round((m.sys+2*m.dia)/3, 0), "MDC_DIM_MMHG"})
	}
	b, _ := json.Marshal(map[string]any{
		"device":       map[string]any{"id": m.ID, "manufacturer": "wardgate", "model": "simulator", "serial": m.Serial},
		"time":         m.deviceTime(now).UTC().Format("2006-01-02T15:04:05.000Z"),
		"observations": o,
	})
	return b
}

func (m *Monitor) flatJSON(now time.Time) []byte {
	v := map[string]any{"hr": round(m.hr, 0), "rr": round(m.rr, 0), "temp": round(m.temp, 1)}
	if m.probeOff == 0 {
		v["spo2"] = round(m.spo2, 0)
	}
	if m.nibpDue(now) {
		v["nibp"] = map[string]any{"sys": round(m.sys, 0), "dia": round(m.dia, 0), "map": round((m.sys+2*m.dia)/3, 0)}
	}
	b, _ := json.Marshal(map[string]any{"device": m.ID, "ts": m.deviceTime(now).UnixMilli(), "vitals": v})
	return b
}

func round(v float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(v*p) / p
}
