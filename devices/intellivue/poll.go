package intellivue

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Numeric is one numeric observed value of a poll answer (NU_VAL_OBS, or
// one member of NU_CMPD_VAL_OBS), with what its object said beside it.
type Numeric struct {
	// Context and Handle name the numeric object that holds it.
	Context, Handle uint16
	// Physio is the physiological id (an MDC term in partition 2); State
	// the measurement-state bits; Unit the unit code (an MDC term in
	// partition 4).
	Physio, State, Unit uint16
	// Raw is the FLOAT as sent.
	Raw uint32
	// Label is the object's ID_LABEL (a TextId), zero when not sent.
	Label uint32
	// StampAbs is the value's own TIME_STAMP_ABS, zero when not sent or
	// unset; StampRel its TIME_STAMP_REL, when HasStampRel.
	StampAbs    time.Time
	StampRel    uint32
	HasStampRel bool
}

// Time is the value's own measurement time: its absolute stamp, else its
// relative stamp dated with the anchor; zero when it has neither (or the
// anchor is not known).
func (n Numeric) Time(a Anchor) time.Time {
	if !n.StampAbs.IsZero() {
		return n.StampAbs
	}
	if n.HasStampRel {
		return a.Time(n.StampRel)
	}
	return time.Time{}
}

// Value is the decoded FLOAT, NaN for a marker.
func (n Numeric) Value() float64 {
	v, _ := Float(n.Raw)
	return v
}

// MDSInfo is what an MDS object told of itself: its clock and identity.
type MDSInfo struct {
	// Abs is TIME_ABS (zero when unset); Rel is TIME_REL, HasRel when sent.
	Abs    time.Time
	Rel    uint32
	HasRel bool
	// Manufacturer and Model from ID_MODEL; Serial and Firmware from
	// ID_PROD_SPECN.
	Manufacturer, Model, Serial, Firmware string
}

// Anchor is the abs/rel pair, valid when both were sent.
func (m MDSInfo) Anchor() (Anchor, bool) {
	if m.Abs.IsZero() || !m.HasRel {
		return Anchor{}, false
	}
	return Anchor{Abs: m.Abs, Rel: m.Rel}, true
}

// PollReply is a decoded poll answer (RORS or RORLS of a single or
// extended poll).
type PollReply struct {
	InvokeID   uint16
	Linked     bool
	LinkState  byte
	Action     uint16
	PollNumber uint16
	// Sequence is an extended poll's sequence number.
	Sequence uint16
	// RelTime and AbsTime are the monitor's clock at the answer; AbsTime
	// is zero when the monitor left it unset.
	RelTime uint32
	AbsTime time.Time
	// ObjClass is the class polled (ClassNumeric, ClassMDS).
	ObjClass  uint16
	AttrGroup uint16
	Numerics  []Numeric
	// MDS is what an MDS object in the answer said of itself.
	MDS MDSInfo
	// Bad counts the parts that could not be decoded: a list or value
	// whose length or count claims more than is there.
	Bad int
}

// ErrNotPollReply is returned for a message that is not a poll answer.
var ErrNotPollReply = errors.New("not a poll result")

// Header sizes of a poll reply, after the action result's header.
const (
	pollReplyHeader    = 2 + 4 + 8 + 4 + 2 // poll number, rel, abs, type, group
	pollReplyExtHeader = 2 + 2 + 4 + 8 + 4 + 2
	actionResultHeader = 6 + 2 + 2 // object, action type, length
)

// DecodePollResult decodes a poll answer; the monitor's absolute times are
// read in loc (time.Local when nil). What cannot be decoded is counted in
// Bad and the rest is kept; only a message that is not a poll answer at
// all is an error.
func DecodePollResult(msg []byte, loc *time.Location) (PollReply, error) {
	op, err := ParseOperation(msg)
	if err != nil {
		return PollReply{}, err
	}
	return DecodePollOperation(op, loc)
}

// DecodePollOperation is DecodePollResult of a parsed message.
func DecodePollOperation(op Operation, loc *time.Location) (PollReply, error) {
	var r PollReply
	err := r.decode(op, loc)
	return r, err
}

// decode fills r from op, reusing r's Numerics.
func (r *PollReply) decode(op Operation, loc *time.Location) error {
	*r = PollReply{Numerics: r.Numerics[:0]}
	if op.ROType != roResult && op.ROType != roLinkedResult || op.Command != cmdConfirmedAction {
		return ErrNotPollReply
	}
	r.InvokeID, r.Linked, r.LinkState = op.InvokeID, op.ROType == roLinkedResult, op.LinkState
	if op.Short {
		r.Bad++
	}
	a := op.Args
	if len(a) < actionResultHeader {
		return fmt.Errorf("%w: %d bytes of action result", ErrShort, len(a))
	}
	r.Action = be16(a[6:])
	n := int(be16(a[8:]))
	a = a[actionResultHeader:]
	if n > len(a) {
		r.Bad++
	} else {
		a = a[:n]
	}
	switch r.Action {
	case ActionPoll:
		if len(a) < pollReplyHeader {
			return fmt.Errorf("%w: %d bytes of poll reply", ErrShort, len(a))
		}
		r.PollNumber = be16(a)
		a = a[2:]
	case ActionPollExtended:
		if len(a) < pollReplyExtHeader {
			return fmt.Errorf("%w: %d bytes of extended poll reply", ErrShort, len(a))
		}
		r.PollNumber, r.Sequence = be16(a), be16(a[2:])
		a = a[4:]
	default:
		return fmt.Errorf("%w: action 0x%04X", ErrNotPollReply, r.Action)
	}
	r.RelTime = be32(a)
	r.AbsTime, _ = AbsoluteTime(a[4:12], loc)
	r.ObjClass = be16(a[14:]) // after the partition
	r.AttrGroup = be16(a[16:])
	a = a[18:]
	r.decodePollInfo(a, loc)
	return nil
}

// list reads a {count, length} header and returns the count, the region
// the length gives (cut to what is there, counted bad if it claims more)
// and what follows it.
func (r *PollReply) list(b []byte) (count int, region, rest []byte, ok bool) {
	if len(b) < 4 {
		if len(b) > 0 {
			r.Bad++
		}
		return 0, nil, nil, false
	}
	count, n := int(be16(b)), int(be16(b[2:]))
	b = b[4:]
	if n > len(b) {
		r.Bad++
		return count, b, nil, true
	}
	return count, b[:n], b[n:], true
}

func (r *PollReply) decodePollInfo(b []byte, loc *time.Location) {
	count, region, _, ok := r.list(b)
	if !ok {
		return
	}
	for i := 0; i < count; i++ {
		// SingleContextPoll: context id, then a list of ObservationPoll
		if len(region) < 2 {
			r.Bad++ // fewer contexts than claimed
			return
		}
		ctx := be16(region)
		nobs, obs, rest, ok := r.list(region[2:])
		if !ok {
			return
		}
		r.decodeObservations(ctx, nobs, obs, loc)
		region = rest
	}
}

func (r *PollReply) decodeObservations(ctx uint16, count int, b []byte, loc *time.Location) {
	for i := 0; i < count; i++ {
		if len(b) < 2 {
			r.Bad++
			return
		}
		handle := be16(b)
		nattr, attrs, rest, ok := r.list(b[2:])
		if !ok {
			return
		}
		r.decodeObject(ctx, handle, nattr, attrs, loc)
		b = rest
	}
}

// decodeObject reads one object's attributes: its numerics get the
// object's label and time stamp whatever order the attributes come in.
func (r *PollReply) decodeObject(ctx, handle uint16, count int, b []byte, loc *time.Location) {
	first := len(r.Numerics)
	var label uint32
	var stampAbs time.Time
	var stampRel uint32
	hasRel := false
	for i := 0; i < count; i++ {
		if len(b) < 4 {
			r.Bad++
			break
		}
		id, n := be16(b), int(be16(b[2:]))
		if n > len(b)-4 {
			r.Bad++
			break
		}
		v := b[4 : 4+n]
		b = b[4+n:]
		switch id {
		case AttrNuValObs:
			if len(v) < 10 {
				r.Bad++
				continue
			}
			r.Numerics = append(r.Numerics, numeric(ctx, handle, v))
		case AttrNuCmpdValObs:
			r.decodeCompound(ctx, handle, v)
		case AttrIDLabel:
			if len(v) >= 4 {
				label = be32(v)
			}
		case AttrTimeStampAbs:
			stampAbs, _ = AbsoluteTime(v, loc)
		case AttrTimeStampRel:
			if len(v) >= 4 {
				stampRel, hasRel = be32(v), true
			}
		case AttrTimeAbs:
			r.MDS.Abs, _ = AbsoluteTime(v, loc)
		case AttrTimeRel:
			if len(v) >= 4 {
				r.MDS.Rel, r.MDS.HasRel = be32(v), true
			}
		case AttrIDModel:
			r.MDS.Manufacturer, r.MDS.Model = systemModel(v)
		case AttrIDProdSpec:
			r.MDS.Serial, r.MDS.Firmware = productionSpec(v)
		}
		// anything else (PT_ID and the patient's demographics among them)
		// is not read
	}
	for i := first; i < len(r.Numerics); i++ {
		r.Numerics[i].Label = label
		r.Numerics[i].StampAbs = stampAbs
		r.Numerics[i].StampRel, r.Numerics[i].HasStampRel = stampRel, hasRel
	}
}

func (r *PollReply) decodeCompound(ctx, handle uint16, v []byte) {
	if len(v) < 4 {
		r.Bad++
		return
	}
	count, n := int(be16(v)), int(be16(v[2:]))
	v = v[4:]
	if n > len(v) {
		r.Bad++
	} else {
		v = v[:n]
	}
	for i := 0; i < count; i++ {
		if len(v) < 10 {
			r.Bad++
			return
		}
		r.Numerics = append(r.Numerics, numeric(ctx, handle, v))
		v = v[10:]
	}
}

func numeric(ctx, handle uint16, v []byte) Numeric {
	return Numeric{Context: ctx, Handle: handle, Physio: be16(v), State: be16(v[2:]), Unit: be16(v[4:]), Raw: be32(v[6:])}
}

// systemModel reads ID_MODEL: two variable labels, manufacturer and model.
func systemModel(v []byte) (manufacturer, model string) {
	manufacturer, v = variableLabel(v)
	model, _ = variableLabel(v)
	return manufacturer, model
}

// productionSpec reads ID_PROD_SPECN: a list of {spec type, component,
// label}; 1 is the serial number, 4 the software and 5 the firmware
// revision.
func productionSpec(v []byte) (serial, firmware string) {
	if len(v) < 4 {
		return "", ""
	}
	count := int(be16(v))
	v = v[4:]
	var sw, fw string
	for i := 0; i < count && len(v) >= 4; i++ {
		typ := be16(v)
		var s string
		s, v = variableLabel(v[4:])
		switch typ {
		case 1:
			serial = s
		case 4:
			sw = s
		case 5:
			fw = s
		}
	}
	if sw != "" {
		return serial, sw
	}
	return serial, fw
}

// variableLabel reads {length u16, bytes}: printable ASCII is kept, NULs
// and padding trimmed.
func variableLabel(v []byte) (string, []byte) {
	if len(v) < 2 {
		return "", nil
	}
	n := int(be16(v))
	v = v[2:]
	if n > len(v) {
		n = len(v)
	}
	s := strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7E {
			return -1
		}
		return r
	}, string(v[:n]))
	return strings.TrimSpace(s), v[n:]
}

// MDSCreate is the monitor's MDS Create Event Report.
type MDSCreate struct {
	InvokeID  uint16
	MDS       ObjectRef
	EventTime uint32
	Info      MDSInfo
	Bad       int
}

// ParseMDSCreate reads an MDS Create Event Report (ROIV, confirmed event
// report, NOM_NOTI_MDS_CREAT). ok is false for any other message.
func ParseMDSCreate(op Operation, loc *time.Location) (MDSCreate, bool) {
	if op.ROType != roInvoke || op.Command != cmdConfirmedEventReport {
		return MDSCreate{}, false
	}
	a := op.Args
	if len(a) < 14 || be16(a[10:]) != EventMDSCreate {
		return MDSCreate{}, false
	}
	c := MDSCreate{
		InvokeID:  op.InvokeID,
		MDS:       ObjectRef{Class: be16(a), Context: be16(a[2:]), Handle: be16(a[4:])},
		EventTime: be32(a[6:]),
	}
	n := int(be16(a[12:]))
	a = a[14:]
	var r PollReply
	if n > len(a) {
		r.Bad++
	} else {
		a = a[:n]
	}
	// MdsCreateInfo: the MDS object, then its attribute list
	if len(a) >= 6 {
		count, attrs, _, ok := r.list(a[6:])
		if ok {
			r.decodeObject(c.MDS.Context, c.MDS.Handle, count, attrs, loc)
		}
	} else {
		r.Bad++
	}
	c.Info, c.Bad = r.MDS, r.Bad
	return c, true
}

// ParseConnectIndication reads the Connect Indication a monitor
// broadcasts on the LAN to port 24005 and what it tells of the monitor;
// the monitor's address is the datagram's sender. The message starts with
// the nomenclature version instead of the session header, then an
// unconfirmed event report (NOM_NOTI_MDS_CONNECT_INDIC) whose information
// is an attribute list. ok is false for any other message.
func ParseConnectIndication(msg []byte, loc *time.Location) (MDSInfo, bool) {
	if len(msg) < 14 || be16(msg[4:]) != roInvoke || be16(msg[10:]) != cmdEventReport {
		return MDSInfo{}, false
	}
	a := msg[14:]
	if n := int(be16(msg[12:])); n < len(a) {
		a = a[:n]
	}
	if len(a) < 14 || be16(a[10:]) != EventConnectIndication {
		return MDSInfo{}, false
	}
	n := int(be16(a[12:]))
	a = a[14:]
	if n < len(a) {
		a = a[:n]
	}
	var r PollReply
	if count, attrs, _, ok := r.list(a); ok {
		r.decodeObject(0, 0, count, attrs, loc)
	}
	return r.MDS, true
}
