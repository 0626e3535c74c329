// Package intellivuesim plays a Philips IntelliVue monitor's side of the
// Data Export protocol, for tests, the demo and commissioning: it answers
// an association, sends its MDS Create Event Report, answers single and
// extended polls for numerics with values that change and its own clock,
// and keeps or drops the association as a monitor does. It speaks over
// UDP (Serve on a socket bound to port 24105, optionally broadcasting a
// Connect Indication to port 24005) or over a byte stream with the
// MIB/RS232 framing (ServeStream, on a pseudo-terminal or a pipe).
//
// Faults for tests: Silence (stop answering), ResetMidPoll (the monitor
// restarts in the middle of an answer and the client must associate
// again), Garbage (bytes between frames, junk datagrams) and
// OverlongNext (a poll answer whose lengths claim more than it holds).
//
// It is written from the protocol's public description, not from the
// client package, so that the two check each other.
package intellivuesim

import (
	"log/slog"
	"math"
	"sync"
	"time"
)

// Physiological ids and unit codes of the numerics it sends (MDC terms).
const (
	PhysioHR       = 0x4182 // NOM_ECG_CARD_BEAT_RATE
	PhysioSpO2     = 0x4BB8 // NOM_PULS_OXIM_SAT_O2
	PhysioPulse    = 0x4822 // NOM_PLETH_PULS_RATE
	PhysioRR       = 0x500A // NOM_RESP_RATE
	PhysioNIBP     = 0x4A04 // NOM_PRESS_BLD_NONINV (the compound)
	PhysioNIBPSys  = 0x4A05
	PhysioNIBPDia  = 0x4A06
	PhysioNIBPMean = 0x4A07
	PhysioTemp     = 0x4B48 // NOM_TEMP_BODY

	UnitPercent = 544  // NOM_DIM_PERCENT
	UnitBPM     = 2720 // NOM_DIM_BEAT_PER_MIN
	UnitRPM     = 2784 // NOM_DIM_RESP_PER_MIN
	UnitMMHg    = 3872 // NOM_DIM_MMHG
	UnitCelsius = 6048 // NOM_DIM_DEGC
)

// Numeric names a numeric the monitor can show.
type Numeric string

// The numerics it knows.
const (
	HR    Numeric = "HR"
	SpO2  Numeric = "SpO2"
	Pulse Numeric = "PR"
	RR    Numeric = "RR"
	NIBP  Numeric = "NIBP"
	Temp  Numeric = "Temp"
)

// AllNumerics is the default set.
var AllNumerics = []Numeric{HR, SpO2, Pulse, RR, NIBP, Temp}

// Config describes the simulated monitor.
type Config struct {
	// Numerics it measures (AllNumerics when empty).
	Numerics []Numeric
	// ClockSkew is how far the monitor's wall clock is off the machine's;
	// Location its time zone (UTC when nil).
	ClockSkew time.Duration
	Location  *time.Location
	// RelStart is its relative time at start (ticks of 125 µs).
	RelStart uint32
	// AbsInPolls sets the absolute time in poll answers' headers; many
	// monitors leave it unset (0xFF), which is the default: the client
	// then dates answers by the MDS's abs/rel pair.
	AbsInPolls bool
	// Interval is how often an extended poll answers (default 1 s, the
	// numerics period the association asks for; tests may shorten it).
	Interval time.Duration
	// NIBPEvery is the cuff's cycle (default 5 min); the first cuff is
	// taken NIBPAge (default 20 s) before the monitor started, so a
	// client sees a stamp older than the answer.
	NIBPEvery, NIBPAge time.Duration
	// Timeout: the monitor drops an association that sent nothing for
	// this long (default 10 s, its value for poll periods up to 3.3 s).
	Timeout time.Duration
	// Refuse makes it refuse associations.
	Refuse bool
	// Model, Manufacturer, Serial and Software identify it.
	Model, Manufacturer, Serial, Software string
	// Logger (slog.Default() when nil).
	Logger *slog.Logger
}

// Stats counts what the monitor did.
type Stats struct {
	Associations, Releases, Aborts int
	Polls, ExtendedPolls, Answers  int
	KeepAlives                     int
	MDSCreateResults               int
}

// Monitor is a simulated IntelliVue. Its methods are safe for concurrent
// use; it serves one client at a time.
type Monitor struct {
	cfg     Config
	started time.Time
	log     *slog.Logger

	mu         sync.Mutex
	stats      Stats
	silent     bool
	resetNext  bool
	garbage    bool
	overlong   int
	states     map[uint16]uint16
	associated bool
	mdsAcked   bool
	mdsSentAt  time.Time
	mdsTries   int
	heard      time.Time
	ext        *extPoll
	nibpSent   time.Time // the cuff time last sent
}

type extPoll struct {
	invoke, pollNo uint16
	class          uint16
	until, next    time.Time
	seq            uint16
}

// New returns a monitor.
func New(cfg Config) *Monitor {
	if len(cfg.Numerics) == 0 {
		cfg.Numerics = AllNumerics
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.NIBPEvery <= 0 {
		cfg.NIBPEvery = 5 * time.Minute
	}
	if cfg.NIBPAge <= 0 {
		cfg.NIBPAge = 20 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.RelStart == 0 {
		cfg.RelStart = 0x01000000
	}
	if cfg.Model == "" {
		cfg.Model = "MX800"
	}
	if cfg.Manufacturer == "" {
		cfg.Manufacturer = "Philips Medical Systems"
	}
	if cfg.Serial == "" {
		cfg.Serial = "DE00000001"
	}
	if cfg.Software == "" {
		cfg.Software = "M.00.03"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Monitor{cfg: cfg, started: time.Now(), log: cfg.Logger, states: map[uint16]uint16{}}
}

// Stats returns the counts so far.
func (m *Monitor) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

// Associated reports whether a client holds an association.
func (m *Monitor) Associated() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.associated
}

// Silence makes the monitor stop answering (and sending) when on, as a
// monitor whose cable was pulled; off, it answers again (a client must
// associate anew if the monitor dropped the association meanwhile).
func (m *Monitor) Silence(on bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.silent = on
}

// ResetMidPoll makes the monitor restart in the middle of its next poll
// answer: it sends the first part of a linked answer, then forgets the
// association; what the client sends next is aborted.
func (m *Monitor) ResetMidPoll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.resetNext = true
}

// Garbage puts junk bytes between frames on a stream (and junk datagrams
// on UDP) while on.
func (m *Monitor) Garbage(on bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.garbage = on
}

// OverlongNext makes the next numerics answer claim more than it holds:
// its last 6 bytes are cut off and every length left as it was.
func (m *Monitor) OverlongNext() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.overlong++
}

// SetState sets the measurement state the monitor sends for a physio id
// (0x8000 invalid: the value is then sent as NaN).
func (m *Monitor) SetState(physio, state uint16) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.states[physio] = state
}

// clock is the monitor's relative and absolute time at now.
func (m *Monitor) clock(now time.Time) (rel uint32, abs time.Time) {
	d := now.Sub(m.started)
	return m.cfg.RelStart + uint32(d/(125*time.Microsecond)), now.Add(m.cfg.ClockSkew).In(m.cfg.Location)
}

// handle takes one message from the client and returns what the monitor
// sends back.
func (m *Monitor) handle(msg []byte, now time.Time) [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.silent || len(msg) == 0 {
		return nil
	}
	switch msg[0] {
	case 0x0D: // association request
		if !validAssocRequest(msg) {
			return nil
		}
		if m.cfg.Refuse {
			return [][]byte{refuseMessage()}
		}
		m.associated, m.mdsAcked, m.mdsTries, m.ext = true, false, 1, nil
		m.heard, m.mdsSentAt = now, now
		m.stats.Associations++
		m.log.Debug("intellivuesim associated")
		return [][]byte{acceptMessage(pollPeriodOf(msg)), m.mdsCreate(now)}
	case 0x09: // release request
		if m.associated {
			m.stats.Releases++
		}
		m.associated, m.ext = false, nil
		return [][]byte{releaseResult()}
	case 0x19: // abort
		m.associated, m.ext = false, nil
		return nil
	case 0xE1:
	default:
		return nil
	}
	if !m.associated {
		// a client that talks outside an association (the monitor
		// restarted under it) is aborted
		m.stats.Aborts++
		return [][]byte{abortMessage()}
	}
	m.heard = now
	if len(msg) < 14 {
		return nil
	}
	roType := be16(msg[4:])
	invoke, cmd := be16(msg[8:]), be16(msg[10:])
	args := msg[14:]
	if n := int(be16(msg[12:])); n <= len(args) {
		args = args[:n]
	}
	switch {
	case roType == rors && cmd == 1: // result of the MDS create
		m.mdsAcked = true
		m.stats.MDSCreateResults++
		return nil
	case roType == roiv && cmd == 7 && len(args) >= 20:
		action := be16(args[10:])
		pollNo, class := be16(args[14:]), be16(args[18:])
		switch action {
		case actPoll:
			if class == classMDS {
				m.stats.KeepAlives++
			} else {
				m.stats.Polls++
			}
			return m.answer(invoke, pollNo, class, false, now)
		case actPollExt:
			m.stats.ExtendedPolls++
			period := 30 * time.Second
			if p, ok := timePdPoll(args[22:]); ok {
				period = time.Duration(p) * 125 * time.Microsecond
			}
			// a new extended poll replaces the running one
			m.ext = &extPoll{invoke: invoke, pollNo: pollNo, class: class, until: now.Add(period), next: now}
			return m.tickLocked(now)
		default:
			return [][]byte{m.roer(invoke, 9)} // no such action type
		}
	}
	return nil
}

// tick returns what the monitor sends by itself at now: extended poll
// answers, a repeated MDS create; and drops a silent association.
func (m *Monitor) tick(now time.Time) [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.silent || !m.associated {
		return nil
	}
	return m.tickLocked(now)
}

func (m *Monitor) tickLocked(now time.Time) [][]byte {
	if now.Sub(m.heard) > m.cfg.Timeout {
		m.log.Debug("intellivuesim association timed out")
		m.associated, m.ext = false, nil
		return nil
	}
	var out [][]byte
	if !m.mdsAcked && now.Sub(m.mdsSentAt) > 2*time.Second && m.mdsTries < 5 {
		m.mdsTries++
		m.mdsSentAt = now
		out = append(out, m.mdsCreate(now))
	}
	e := m.ext
	if e == nil || now.Before(e.next) {
		return out
	}
	if !now.Before(e.until) {
		// the period is over: the final result is a plain RORS
		m.ext = nil
		return append(out, m.reply(e.invoke, e.pollNo, e.class, true, 0, 0, e.seq, now)...)
	}
	e.seq++
	e.next = e.next.Add(m.cfg.Interval)
	if e.next.Before(now) {
		e.next = now.Add(m.cfg.Interval)
	}
	return append(out, m.reply(e.invoke, e.pollNo, e.class, true, rorls, 3, e.seq, now)...)
}

// answer is a single poll's answer.
func (m *Monitor) answer(invoke, pollNo, class uint16, ext bool, now time.Time) [][]byte {
	return m.reply(invoke, pollNo, class, ext, rors, 0, 0, now)
}

// reply builds a poll answer (as a linked result when roType is rorls),
// with the faults due.
func (m *Monitor) reply(invoke, pollNo, class uint16, ext bool, roType uint16, state byte, seq uint16, now time.Time) [][]byte {
	if roType == 0 {
		roType = rors
	}
	objs := m.objects(class, now)
	if class == classNumeric && m.resetNext {
		// restart in the middle: the first part of a linked answer, then
		// nothing of this association
		m.resetNext = false
		half := objs[:len(objs)/2]
		msg := m.pollReply(invoke, pollNo, class, ext, rorls, 1, seq, half, now)
		m.associated, m.ext = false, nil
		m.log.Debug("intellivuesim reset mid-poll")
		return [][]byte{msg}
	}
	msg := m.pollReply(invoke, pollNo, class, ext, roType, state, seq, objs, now)
	if class == classNumeric {
		m.stats.Answers++
		if m.overlong > 0 {
			m.overlong--
			msg = msg[:len(msg)-6]
		}
	}
	return [][]byte{msg}
}

// object is one ObservationPoll: a handle and its attributes.
type object struct {
	handle uint16
	attrs  []attr
}

type attr struct {
	id  uint16
	val []byte
}

// attrList writes an AttributeList: its count and length, then each
// attribute's id, length and value.
func (x *w) attrList(attrs []attr) {
	x.u16(uint16(len(attrs)))
	al := x.mark()
	for _, a := range attrs {
		x.u16(a.id)
		x.u16(uint16(len(a.val)))
		x.raw(a.val)
	}
	x.fill(al)
}

func nuObs(physio, state, unit uint16, value uint32) []byte {
	var x w
	x.u16(physio)
	x.u16(state)
	x.u16(unit)
	x.u32(value)
	return x.b
}

func u32b(v uint32) []byte { var x w; x.u32(v); return x.b }

// objects is what the monitor shows of class at now.
func (m *Monitor) objects(class uint16, now time.Time) []object {
	rel, abs := m.clock(now)
	if class == classMDS {
		return []object{{handle: 0, attrs: m.mdsAttrs(rel, abs)}}
	}
	if class != classNumeric {
		return nil
	}
	t := now.Sub(m.started).Seconds()
	wave := func(period, amp float64) float64 { return amp * math.Sin(2*math.Pi*t/period) }
	var objs []object
	for i, n := range m.cfg.Numerics {
		h := uint16(0x0100 + i)
		num := func(physio, unit uint16, v float64, exp int8) object {
			st := m.states[physio]
			val := float(int32(math.Round(v*math.Pow10(-int(exp)))), exp)
			if st&0x8000 != 0 {
				val = floatNaN
			}
			return object{handle: h, attrs: []attr{
				{attrIDLabel, u32b(0x00020000 | uint32(physio))},
				{attrNuValObs, nuObs(physio, st, unit, val)},
			}}
		}
		switch n {
		case HR:
			objs = append(objs, num(PhysioHR, UnitBPM, 72+wave(60, 6), 0))
		case Pulse:
			objs = append(objs, num(PhysioPulse, UnitBPM, 71+wave(60, 6), 0))
		case SpO2:
			objs = append(objs, num(PhysioSpO2, UnitPercent, 97+wave(90, 2), 0))
		case RR:
			objs = append(objs, num(PhysioRR, UnitRPM, 16+wave(120, 2), 0))
		case Temp:
			objs = append(objs, num(PhysioTemp, UnitCelsius, 37+wave(600, 0.3), -1))
		case NIBP:
			// a cuff taken every NIBPEvery, the first NIBPAge before the
			// start; sent once, in the first answer after it
			cycle := math.Floor((now.Sub(m.started) + m.cfg.NIBPAge).Seconds() / m.cfg.NIBPEvery.Seconds())
			taken := m.started.Add(-m.cfg.NIBPAge).Add(time.Duration(cycle) * m.cfg.NIBPEvery)
			if !taken.After(m.nibpSent) {
				continue
			}
			m.nibpSent = taken
			tRel, tAbs := m.clock(taken)
			k := float64(int(cycle) % 7)
			var cmp w
			cmp.u16(3)
			cmp.u16(30)
			st := m.states[PhysioNIBP]
			cmp.raw(nuObs(PhysioNIBPSys, st, UnitMMHg, float(int32(118+k), 0)))
			cmp.raw(nuObs(PhysioNIBPDia, st, UnitMMHg, float(int32(76+k), 0)))
			cmp.raw(nuObs(PhysioNIBPMean, st, UnitMMHg, float(int32(90+k), 0)))
			objs = append(objs, object{handle: h, attrs: []attr{
				{attrIDLabel, u32b(0x00020000 | PhysioNIBP)},
				{attrNuCmpdValObs, cmp.b},
				{attrTimeStampAbs, absTime(tAbs)},
				{attrTimeStampRel, u32b(tRel)},
			}})
		}
	}
	return objs
}

func (m *Monitor) mdsAttrs(rel uint32, abs time.Time) []attr {
	var model w
	model.u16(uint16(len(m.cfg.Manufacturer)))
	model.raw([]byte(m.cfg.Manufacturer))
	model.u16(uint16(len(m.cfg.Model)))
	model.raw([]byte(m.cfg.Model))
	var spec w
	spec.u16(2)
	at := spec.mark()
	for _, e := range []struct {
		typ uint16
		s   string
	}{{1, m.cfg.Serial}, {4, m.cfg.Software}} {
		spec.u16(e.typ)
		spec.u16(0) // component id
		spec.u16(uint16(len(e.s)))
		spec.raw([]byte(e.s))
	}
	spec.fill(at)
	return []attr{
		{attrTimeAbs, absTime(abs)},
		{attrTimeRel, u32b(rel)},
		{attrIDModel, model.b},
		{attrIDProdSpec, spec.b},
	}
}

// pollReply writes a poll answer: the action result, the reply header
// with the monitor's clock, and PollInfoList → SingleContextPoll →
// ObservationPoll → attributes.
func (m *Monitor) pollReply(invoke, pollNo, class uint16, ext bool, roType uint16, state byte, seq uint16, objs []object, now time.Time) []byte {
	rel, abs := m.clock(now)
	var x w
	ro, cmd := export(&x, roType, state, 1, invoke, 7)
	x.u16(classMDS)
	x.u16(0)
	x.u16(0)
	if ext {
		x.u16(actPollExt)
	} else {
		x.u16(actPoll)
	}
	reply := x.mark()
	x.u16(pollNo)
	if ext {
		x.u16(seq)
	}
	x.u32(rel)
	if m.cfg.AbsInPolls {
		x.raw(absTime(abs))
	} else {
		x.raw(absUnset)
	}
	x.u16(1) // partition: objects
	x.u16(class)
	x.u16(0) // attribute group
	// PollInfoList: one context
	x.u16(1)
	info := x.mark()
	x.u16(0) // context id
	x.u16(uint16(len(objs)))
	obsList := x.mark()
	for _, o := range objs {
		x.u16(o.handle)
		x.attrList(o.attrs)
	}
	x.fill(obsList)
	x.fill(info)
	x.fill(reply)
	x.fill(cmd)
	x.fill(ro)
	return x.b
}

// mdsCreate is the MDS Create Event Report (a confirmed event report).
func (m *Monitor) mdsCreate(now time.Time) []byte {
	rel, abs := m.clock(now)
	var x w
	ro, cmd := export(&x, roiv, 0, 0, 0x0001, 1)
	x.u16(classMDS)
	x.u16(0)
	x.u16(0)
	x.u32(rel) // event time
	x.u16(notiMDSCreate)
	ev := x.mark()
	x.u16(classMDS)
	x.u16(0)
	x.u16(0)
	attrs := m.mdsAttrs(rel, abs)
	x.attrList(attrs)
	x.fill(ev)
	x.fill(cmd)
	x.fill(ro)
	return x.b
}

// connectIndication is the broadcast that tells clients on the LAN a
// monitor is there.
func (m *Monitor) connectIndication(now time.Time) []byte {
	rel, abs := m.clock(now)
	var x w
	// it starts with the nomenclature version (magic 0, major 1, minor 0:
	// the values are a guess) where other messages have the session
	// header, then an unconfirmed event report from the single-bed MDS
	export(&x, roiv, 0, 0, 0, 0)
	copy(x.b[0:4], []byte{0x00, 0x00, 0x01, 0x00})
	ro, cmd := 8, 14
	x.u16(classMDSBed)
	x.u16(0)
	x.u16(0)
	x.u32(rel)
	x.u16(notiConnectInd)
	ev := x.mark()
	attrs := m.mdsAttrs(rel, abs)
	x.attrList(attrs)
	x.fill(ev)
	x.fill(cmd)
	x.fill(ro)
	return x.b
}

// roer is a remote-operation error.
func (m *Monitor) roer(invoke, errValue uint16) []byte {
	var x w
	ro, cmd := export(&x, roer, 0, 0, invoke, errValue)
	x.fill(cmd)
	x.fill(ro)
	return x.b
}

// validAssocRequest checks the request's session header and that it
// carries a user information with the data-export protocol version.
func validAssocRequest(msg []byte) bool {
	if len(msg) < 2 {
		return false
	}
	n, p := int(msg[1]), 2
	if msg[1] == 0xFF {
		if len(msg) < 4 {
			return false
		}
		n, p = int(be16(msg[2:])), 4
	}
	return n == len(msg)-p && userInfo(msg) >= 0
}

// userInfo is where the MDSEUserInfoStd starts: its protocol and
// nomenclature versions.
func userInfo(msg []byte) int {
	for i := 0; i+8 <= len(msg); i++ {
		if msg[i] == 0x80 && string(msg[i+1:i+8]) == "\x00\x00\x00\x40\x00\x00\x00" {
			return i
		}
	}
	return -1
}

// pollPeriodOf is the minimum poll period the client asked for (in
// ticks), or 1 s.
func pollPeriodOf(msg []byte) uint32 {
	i := userInfo(msg)
	// versions, functional units, system type, startup, option list (4),
	// profiles header (4), profile id and length (4), revision (4)
	if i < 0 || i+40 > len(msg) {
		return 8000
	}
	return be32(msg[i+36:])
}

// timePdPoll finds TIME_PD_POLL in an extended poll's attribute list.
func timePdPoll(b []byte) (uint32, bool) {
	if len(b) < 4 {
		return 0, false
	}
	count := int(be16(b))
	b = b[4:]
	for range count {
		if len(b) < 4 {
			return 0, false
		}
		id, n := be16(b), int(be16(b[2:]))
		if len(b) < 4+n {
			return 0, false
		}
		if id == attrTimePdPoll && n == 4 {
			return be32(b[4:]), true
		}
		b = b[4+n:]
	}
	return 0, false
}
