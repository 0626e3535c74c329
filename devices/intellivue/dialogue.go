package intellivue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/wardgate/wardgate/devices"
)

// Transport is how the gateway reaches the monitor.
type Transport int

// Transports.
const (
	// LAN: UDP to the monitor's port 24105. Datagrams can be lost, so the
	// association request is sent again until answered.
	LAN Transport = iota
	// Serial: the MIB/RS232 port at 115200 8N1, no flow control, with
	// SerialLink's framing.
	Serial
)

func (t Transport) String() string {
	if t == Serial {
		return "serial"
	}
	return "lan"
}

// PollKind is a kind of data the dialogue asks for.
type PollKind int

// PollNumerics asks for the numeric objects (NOM_MOC_VMO_METRIC_NU). Alarms
// and waves are not asked for.
const PollNumerics PollKind = 1

// Options tune a Dialogue; the zero value is the defaults.
type Options struct {
	// Transport is LAN (the default) or Serial.
	Transport Transport
	// Poll is what to ask for: [PollNumerics], the default and the only
	// kind so far.
	Poll []PollKind
	// PollPeriod is how often numerics come. At 1 s (the default) the
	// client asks an extended poll and the monitor sends the numerics each
	// second by itself; a longer period sends a single poll each period.
	PollPeriod time.Duration
	// ExtendedPeriod is how long an extended poll runs (TIME_PD_POLL,
	// default 10 min); it is asked again when 9/10 of it have passed.
	ExtendedPeriod time.Duration
	// KeepAlive: when nothing was sent to or heard from the monitor for
	// this long (default 4 s), the client polls the MDS, which keeps the
	// association (the monitor drops it after 10 s to 130 s without a
	// message, by the negotiated poll period) and asks for an answer.
	KeepAlive time.Duration
	// Silence: no message from the monitor for this long (default 5 s, at
	// least KeepAlive + 1 s) ends Run with an error wrapping
	// devices.ErrSilent.
	Silence time.Duration
	// AssociateTimeout bounds the association: the result and the MDS
	// Create (default 10 s; past it, ErrSilent). On the LAN the request is
	// sent again every AssociateRetry (default 2 s).
	AssociateTimeout time.Duration
	AssociateRetry   time.Duration
	// ReleaseTimeout is how long the release waits for the monitor's
	// answer when Run's context ends (default 1 s).
	ReleaseTimeout time.Duration
	// Location is the monitor's time zone, in which its clock (which has
	// none) is read; time.Local when nil.
	Location *time.Location
	// Logger gets the dialogue's events, never a value or patient data;
	// slog.Default() when nil.
	Logger *slog.Logger

	// stamps dates a value's relative stamp once, for every answer and
	// session that shows it again (New makes it).
	stamps *stampTimes
}

// stampTimes remembers the time each relative stamp (of a physio id) was
// dated at, the first time it was seen. An anchor's absolute time has
// hundredths of a second (or whole seconds) and the relative time 125 µs
// ticks: dated again under another anchor, one measurement (an NIBP shown
// in several answers, or again after a re-association) would move by a
// few milliseconds, and its Observation's identity with it.
type stampTimes struct {
	mu    sync.Mutex
	times map[[2]uint32]time.Time
	order [][2]uint32
}

// maxStampTimes bounds the memory: the last measurements of a monitor.
const maxStampTimes = 256

func (st *stampTimes) stable(physio uint16, rel uint32, t time.Time) time.Time {
	if st == nil || t.IsZero() {
		return t
	}
	k := [2]uint32{uint32(physio), rel}
	st.mu.Lock()
	defer st.mu.Unlock()
	if first, ok := st.times[k]; ok && first.Sub(t).Abs() < 2*time.Second {
		return first
	}
	if st.times == nil {
		st.times = map[[2]uint32]time.Time{}
	}
	if len(st.order) >= maxStampTimes {
		delete(st.times, st.order[0])
		st.order = st.order[1:]
	}
	st.times[k] = t
	st.order = append(st.order, k)
	return t
}

// Dialogue is the client side of the IntelliVue Data Export protocol: it
// associates, answers the monitor's MDS Create Event Report, polls the
// numerics, keeps the association alive, and hands each poll result over
// as a devices.DriverFrame.
type Dialogue struct {
	opts Options
}

// New returns a Dialogue with opts, checked and with defaults filled in.
func New(opts Options) (*Dialogue, error) {
	if len(opts.Poll) == 0 {
		opts.Poll = []PollKind{PollNumerics}
	}
	for _, k := range opts.Poll {
		if k != PollNumerics {
			return nil, fmt.Errorf("intellivue: poll kind %d is not supported (numerics only)", k)
		}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.PollPeriod, time.Second)
	def(&opts.ExtendedPeriod, 10*time.Minute)
	def(&opts.KeepAlive, 4*time.Second)
	def(&opts.Silence, 5*time.Second)
	def(&opts.AssociateTimeout, 10*time.Second)
	def(&opts.AssociateRetry, 2*time.Second)
	def(&opts.ReleaseTimeout, time.Second)
	if opts.Silence < opts.KeepAlive+time.Second {
		opts.Silence = opts.KeepAlive + time.Second
	}
	if opts.ExtendedPeriod < 2*time.Second {
		return nil, fmt.Errorf("intellivue: an extended poll of %s is too short", opts.ExtendedPeriod)
	}
	if opts.Location == nil {
		opts.Location = time.Local
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	opts.stamps = &stampTimes{}
	return &Dialogue{opts: opts}, nil
}

// Options returns the options in use, defaults filled in.
func (d *Dialogue) Options() Options { return d.opts }

// Errors that end a session other than silence.
var (
	ErrRefused  = errors.New("intellivue: the monitor refused the association")
	ErrAborted  = errors.New("intellivue: the monitor aborted the association")
	ErrReleased = errors.New("intellivue: the monitor released the association")
)

var _ devices.Dialogue = (*Dialogue)(nil)

// session is one Run's state.
type session struct {
	o      *Options
	link   devices.Link
	emit   func(devices.DriverFrame) error
	log    *slog.Logger
	anchor Anchor
	info   MDSInfo
	invoke uint16
	pollNo uint16

	lastSent, lastHeard time.Time

	// the numerics poll: extended (the monitor sends each second) or
	// single (one answer per request)
	extended            bool
	curPoll, prevPoll   uint16
	curSeen             bool
	pollAsked, nextPoll time.Time
	lastNumerics        time.Time

	accepted   bool
	noExtended bool
	// reply is reused from answer to answer; fields and units are the
	// names of the ids met so far
	reply         PollReply
	fields, units names
}

// names keeps the names of the ids an association meets: a monitor sends
// a few dozen, looked up on every value, and a short array is faster to
// search than a map; more than fit go to a map.
type names struct {
	ids   [48]uint16
	names [48]string
	n     int
	more  map[uint16]string
}

func (c *names) name(id uint16, format func(uint16) string) string {
	for i := range c.n {
		if c.ids[i] == id {
			return c.names[i]
		}
	}
	if s, ok := c.more[id]; ok {
		return s
	}
	s := format(id)
	if c.n < len(c.ids) {
		c.ids[c.n], c.names[c.n] = id, s
		c.n++
		return s
	}
	if c.more == nil {
		c.more = map[uint16]string{}
	}
	if len(c.more) < 4096 {
		c.more[id] = s
	}
	return s
}

func unitName(code uint16) string { return strconv.Itoa(int(code)) }

// readSlice bounds one wait on the link so that the context's end is seen.
const readSlice = 200 * time.Millisecond

// Run holds one association over link until ctx ends (nil, after a
// release), the link fails, the monitor goes silent (ErrSilent), aborts
// or refuses, or emit fails.
func (d *Dialogue) Run(ctx context.Context, link devices.Link, emit func(devices.DriverFrame) error) error {
	s := &session{o: &d.opts, link: link, emit: emit, log: d.opts.Logger.With("transport", d.opts.Transport.String())}
	if err := s.associate(ctx); err != nil {
		if ctx.Err() != nil {
			if s.accepted {
				s.release()
			}
			return nil
		}
		return err
	}
	err := s.poll(ctx)
	if ctx.Err() != nil {
		s.release()
		return nil
	}
	if errors.Is(err, errEmit) {
		s.release()
	}
	return err
}

var errEmit = errors.New("emit")

// read waits for the next message until until; (nil, nil) when none came.
func (s *session) read(ctx context.Context, until time.Time) ([]byte, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		now := time.Now()
		if !now.Before(until) {
			return nil, nil
		}
		dl := until
		if dl.Sub(now) > readSlice {
			dl = now.Add(readSlice)
		}
		msg, err := s.link.ReadMessage(dl)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		if err != nil {
			return nil, err
		}
		s.lastHeard = time.Now()
		return msg, nil
	}
}

func (s *session) send(msg []byte) error {
	if err := s.link.WriteMessage(msg); err != nil {
		return err
	}
	s.lastSent = time.Now()
	return nil
}

func (s *session) nextInvoke() uint16 {
	s.invoke++
	return s.invoke
}

// associate sends the association request, waits for the result and the
// MDS Create Event Report, and answers the latter.
func (s *session) associate(ctx context.Context) error {
	start := time.Now()
	end := start.Add(s.o.AssociateTimeout)
	if err := s.send(AssociationRequest(s.o.PollPeriod)); err != nil {
		return fmt.Errorf("intellivue: association request: %w", err)
	}
	accepted := false
	for {
		until := end
		resend := s.lastSent.Add(s.o.AssociateRetry)
		if !accepted && s.o.Transport == LAN && resend.Before(until) {
			until = resend
		}
		msg, err := s.read(ctx, until)
		if err != nil {
			return fmt.Errorf("intellivue: associating: %w", err)
		}
		if msg == nil {
			if !time.Now().Before(end) {
				what := "the association result"
				if accepted {
					what = "the MDS create event report"
				}
				return fmt.Errorf("intellivue: no answer within %s waiting for %s: %w", s.o.AssociateTimeout, what, devices.ErrSilent)
			}
			if err := s.send(AssociationRequest(s.o.PollPeriod)); err != nil {
				return fmt.Errorf("intellivue: association request: %w", err)
			}
			continue
		}
		switch KindOf(msg) {
		case KindAccept:
			res, _ := ParseAssociationResult(msg)
			accepted, s.accepted = true, true
			// a monitor that shows the options it granted without numerics
			// each second gets single polls
			s.noExtended = res.Options != 0 && res.Options&pollExtNumerics1s == 0
			s.log.Debug("intellivue association accepted", "min_poll_period", res.MinPollPeriod, "options", fmt.Sprintf("0x%08X", res.Options))
		case KindRefuse:
			return ErrRefused
		case KindAbort:
			if accepted {
				return ErrAborted
			}
			// an abort of an earlier association; ours is still asked
		case KindReleaseRequest:
			_ = s.send(ReleaseResult())
		case KindData:
			op, err := ParseOperation(msg)
			if err != nil {
				continue
			}
			c, ok := ParseMDSCreate(op, s.o.Location)
			if !ok {
				// a poll result of an earlier association, or the like
				continue
			}
			if err := s.answerMDSCreate(c); err != nil {
				return err
			}
			s.log.Info("intellivue associated", "model", s.info.Model, "serial", s.info.Serial,
				"after", time.Since(start).Round(time.Millisecond))
			return nil
		}
	}
}

func (s *session) answerMDSCreate(c MDSCreate) error {
	s.info = c.Info
	if a, ok := c.Info.Anchor(); ok {
		s.anchor = a
	}
	if err := s.send(MDSCreateResult(c.InvokeID, c.MDS, c.EventTime)); err != nil {
		return fmt.Errorf("intellivue: MDS create result: %w", err)
	}
	return nil
}

// askNumerics sends the numerics poll: extended at 1 s, single otherwise.
func (s *session) askNumerics(now time.Time) error {
	s.pollNo++
	id := s.nextInvoke()
	var msg []byte
	if s.extended {
		msg = ExtendedPollRequest(id, s.pollNo, ClassNumeric, s.o.ExtendedPeriod)
	} else {
		msg = PollRequest(id, s.pollNo, ClassNumeric)
	}
	if s.curPoll != 0 && s.curSeen {
		s.prevPoll = s.curPoll
	}
	s.curPoll, s.curSeen = id, false
	s.pollAsked = now
	s.nextPoll = now.Add(s.o.PollPeriod)
	if s.extended {
		s.nextPoll = now.Add(s.o.ExtendedPeriod * 9 / 10)
	}
	if err := s.send(msg); err != nil {
		return fmt.Errorf("intellivue: poll request: %w", err)
	}
	return nil
}

func (s *session) poll(ctx context.Context) error {
	s.extended = s.o.PollPeriod <= time.Second && !s.noExtended
	if err := s.askNumerics(time.Now()); err != nil {
		return err
	}
	for {
		now := time.Now()
		silentAt := s.lastHeard.Add(s.o.Silence)
		if !now.Before(silentAt) {
			return fmt.Errorf("intellivue: nothing from the monitor for %s: %w", s.o.Silence, devices.ErrSilent)
		}
		if !now.Before(s.nextPoll) || s.numericsStalled(now) {
			if err := s.askNumerics(now); err != nil {
				return err
			}
		}
		if !now.Before(s.keepAliveAt()) {
			if err := s.send(PollRequest(s.nextInvoke(), 0, ClassMDS)); err != nil {
				return fmt.Errorf("intellivue: keep-alive: %w", err)
			}
		}
		keepAt := s.keepAliveAt()
		until := minTime(silentAt, s.nextPoll, keepAt)
		if s.extended {
			last := s.lastNumerics
			if s.pollAsked.After(last) {
				last = s.pollAsked
			}
			until = minTime(until, last.Add(stallAfter*s.o.PollPeriod))
		}
		msg, err := s.read(ctx, until)
		if err != nil {
			return fmt.Errorf("intellivue: %w", err)
		}
		if msg == nil {
			continue
		}
		if err := s.handle(msg); err != nil {
			return err
		}
	}
}

// stallAfter is how many poll periods without numerics make the client
// ask its extended poll again: the monitor may have ended it (its final
// result lost on the LAN) or lost it while the association lives on.
const stallAfter = 3

// numericsStalled reports whether an extended poll stopped answering while
// the monitor still answers keep-alives.
func (s *session) numericsStalled(now time.Time) bool {
	if !s.extended {
		return false
	}
	last := s.lastNumerics
	if s.pollAsked.After(last) {
		last = s.pollAsked
	}
	return now.Sub(last) >= stallAfter*s.o.PollPeriod
}

// keepAliveAt is when the next keep-alive is due: KeepAlive after the
// last message sent, or after the last one heard if nothing was sent
// since that quiet began (one keep-alive per quiet spell).
func (s *session) keepAliveAt() time.Time {
	at := s.lastSent.Add(s.o.KeepAlive)
	if quiet := s.lastHeard.Add(s.o.KeepAlive); quiet.Before(at) && s.lastSent.Before(quiet) {
		at = quiet
	}
	return at
}

func minTime(t time.Time, ts ...time.Time) time.Time {
	for _, u := range ts {
		if u.Before(t) {
			t = u
		}
	}
	return t
}

// handle takes one message of an association.
func (s *session) handle(msg []byte) error {
	switch KindOf(msg) {
	case KindAbort:
		return ErrAborted
	case KindReleaseRequest:
		_ = s.send(ReleaseResult())
		return ErrReleased
	case KindData:
	default:
		return nil
	}
	op, err := ParseOperation(msg)
	if err != nil {
		s.log.Debug("intellivue message not read", "error", err)
		return nil
	}
	switch op.ROType {
	case roInvoke:
		if c, ok := ParseMDSCreate(op, s.o.Location); ok {
			// the monitor did not get our result and sends it again
			return s.answerMDSCreate(c)
		}
		return nil
	case roError:
		if op.InvokeID == s.curPoll && s.extended {
			s.log.Warn("intellivue monitor refused the extended poll; polling once a second instead", "error_value", op.Command)
			s.extended = false
			s.nextPoll = time.Now()
			return nil
		}
		s.log.Debug("intellivue remote operation error", "invoke_id", op.InvokeID, "error_value", op.Command)
		return nil
	case roResult, roLinkedResult:
	default:
		return nil
	}
	r := &s.reply
	err = r.decode(op, s.o.Location)
	if err != nil {
		if !errors.Is(err, ErrNotPollReply) {
			s.log.Debug("intellivue poll result not read", "error", err)
		}
		return nil
	}
	if a, ok := r.MDS.Anchor(); ok {
		s.anchor = a
	}
	if r.MDS.Model != "" {
		s.info.Manufacturer, s.info.Model = r.MDS.Manufacturer, r.MDS.Model
	}
	if r.MDS.Serial != "" {
		s.info.Serial = r.MDS.Serial
	}
	if r.MDS.Firmware != "" {
		s.info.Firmware = r.MDS.Firmware
	}
	if r.ObjClass != ClassNumeric {
		return nil
	}
	switch {
	case r.InvokeID == s.curPoll:
		s.curSeen = true
	case r.InvokeID == s.prevPoll && s.prevPoll != 0 && !s.curSeen:
		// the poll asked before the current one, until the current one
		// answers
	default:
		return nil
	}
	if s.extended && !r.Linked && r.InvokeID == s.curPoll {
		// the final result: the extended poll's period is over
		s.nextPoll = time.Now()
	}
	s.lastNumerics = time.Now()
	err = s.emit(s.frame(r))
	// the time emit took (the gateway storing the values) is not the
	// monitor's silence: what it sent meanwhile waits in the link
	s.lastHeard = s.lastHeard.Add(time.Since(s.lastNumerics))
	if err != nil {
		return fmt.Errorf("%w: %w", errEmit, err)
	}
	return nil
}

// frame turns a poll result into the device's own terms.
func (s *session) frame(r *PollReply) devices.DriverFrame {
	f := devices.DriverFrame{
		Model:        s.info.Model,
		SerialNumber: s.info.Serial,
		Firmware:     s.info.Firmware,
		Bad:          r.Bad,
		Values:       make([]devices.DriverValue, 0, len(r.Numerics)),
	}
	if !r.AbsTime.IsZero() {
		f.DeviceTime = r.AbsTime
	} else {
		f.DeviceTime = s.anchor.Time(r.RelTime)
	}
	for _, n := range r.Numerics {
		field := s.fields.name(n.Physio, PhysioField)
		unit := s.units.name(n.Unit, unitName)
		v := devices.DriverValue{
			Field: field,
			Value: n.Value(),
			Unit:  unit,
			State: uint32(n.State),
			Time:  n.Time(s.anchor),
		}
		if n.StampAbs.IsZero() && n.HasStampRel {
			if s.anchor.Valid() {
				v.Time = s.o.stamps.stable(n.Physio, n.StampRel, v.Time)
			} else {
				// Stamped relative to a clock the monitor never told:
				// when it was measured is not known.
				v.TimeUnknown = true
			}
		}
		f.Values = append(f.Values, v)
	}
	return f
}

// DriverValue is a numeric in the device's own terms: Field the physio id
// as "0x%04X", Unit the unit code in decimal.
func DriverValue(n Numeric, a Anchor) devices.DriverValue {
	return devices.DriverValue{
		Field: PhysioField(n.Physio),
		Value: n.Value(),
		Unit:  strconv.Itoa(int(n.Unit)),
		State: uint32(n.State),
		Time:  n.Time(a),
	}
}

// PhysioField names a physiological id as profiles do: "0x4BB8".
func PhysioField(id uint16) string {
	const hex = "0123456789ABCDEF"
	b := [6]byte{'0', 'x', hex[id>>12], hex[id>>8&0xF], hex[id>>4&0xF], hex[id&0xF]}
	return string(b[:])
}

// release ends the association politely, waiting a little for the answer.
func (s *session) release() {
	if err := s.send(ReleaseRequest()); err != nil {
		return
	}
	end := time.Now().Add(s.o.ReleaseTimeout)
	for time.Now().Before(end) {
		msg, err := s.link.ReadMessage(end)
		if err != nil {
			return
		}
		if KindOf(msg) == KindReleaseResult || KindOf(msg) == KindAbort {
			s.log.Debug("intellivue association released")
			return
		}
	}
}
