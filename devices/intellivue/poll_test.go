package intellivue

import (
	"encoding/binary"
	"math"
	"testing"
	"time"
)

// enc writes the nested lists of a poll answer for the tests, lengths
// filled in as each list closes.
type enc struct{ b []byte }

func (e *enc) u16(v ...uint16) *enc {
	for _, x := range v {
		e.b = binary.BigEndian.AppendUint16(e.b, x)
	}
	return e
}
func (e *enc) u32(v uint32) *enc { e.b = binary.BigEndian.AppendUint32(e.b, v); return e }
func (e *enc) raw(p []byte) *enc { e.b = append(e.b, p...); return e }

// open writes a u16 length to be filled by close.
func (e *enc) open() int { e.u16(0); return len(e.b) }
func (e *enc) close(at int) *enc {
	binary.BigEndian.PutUint16(e.b[at-2:], uint16(len(e.b)-at))
	return e
}

// nu is an NU_VAL_OBS value.
func nu(physio, state, unit uint16, v uint32) []byte {
	e := &enc{}
	return e.u16(physio, state, unit).u32(v).b
}

type testObj struct {
	handle uint16
	attrs  [][2]any // id uint16, value []byte
}

// pollAnswer builds a single poll's RORS (or an extended poll's RORLS)
// answer with one context holding objs.
func pollAnswer(linked, ext bool, invoke uint16, rel uint32, abs []byte, objs []testObj) []byte {
	e := &enc{}
	e.raw([]byte{0xE1, 0, 0, 2})
	if linked {
		e.u16(roLinkedResult)
	} else {
		e.u16(roResult)
	}
	ro := e.open()
	if linked {
		e.raw([]byte{LinkedLast, 1})
	}
	e.u16(invoke, cmdConfirmedAction)
	cmd := e.open()
	e.u16(ClassMDS, 0, 0)
	if ext {
		e.u16(ActionPollExtended)
	} else {
		e.u16(ActionPoll)
	}
	act := e.open()
	e.u16(1)
	if ext {
		e.u16(9) // sequence
	}
	e.u32(rel).raw(abs).u16(partitionObject, ClassNumeric, 0)
	e.u16(1)
	pil := e.open()
	e.u16(0, uint16(len(objs)))
	scp := e.open()
	for _, o := range objs {
		e.u16(o.handle, uint16(len(o.attrs)))
		al := e.open()
		for _, a := range o.attrs {
			v := a[1].([]byte)
			e.u16(a[0].(uint16), uint16(len(v))).raw(v)
		}
		e.close(al)
	}
	e.close(scp).close(pil).close(act).close(cmd).close(ro)
	return e.b
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// samplePoll: HR 72 bpm with its label, SpO2 invalid (NaN, state 0x8000),
// an NIBP compound stamped with relative and unset absolute time, a
// temperature 37.00 °C, and the patient's id (which is not read).
func samplePoll(ext bool) []byte {
	cmpd := (&enc{}).u16(3, 30).raw(nu(0x4A05, 0, 3872, 120)).raw(nu(0x4A06, 0, 3872, 78)).raw(nu(0x4A07, 0, 3872, 92)).b
	return pollAnswer(ext, ext, 5, 0x00100000, UnsetAbsoluteTime[:], []testObj{
		{0x10, [][2]any{{uint16(AttrIDLabel), u32(0x00024182)}, {uint16(AttrNuValObs), nu(0x4182, 0, 2720, 0x00000048)}}},
		{0x11, [][2]any{{uint16(AttrNuValObs), nu(0x4BB8, 0x8000, 544, 0x007FFFFF)}}},
		{0x12, [][2]any{{uint16(AttrNuCmpdValObs), cmpd}, {uint16(AttrTimeStampRel), u32(0x00100000 - 8000*40)}, {uint16(AttrTimeStampAbs), UnsetAbsoluteTime[:]}}},
		{0x13, [][2]any{{uint16(AttrPatientID), []byte("never read")}, {uint16(AttrNuValObs), nu(0x4B48, 0, 6048, 0xFE000E74)}}},
	})
}

func TestDecodePollResult(t *testing.T) {
	for _, ext := range []bool{false, true} {
		r, err := DecodePollResult(samplePoll(ext), time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		if r.Bad != 0 || r.InvokeID != 5 || r.Linked != ext || r.ObjClass != ClassNumeric || r.RelTime != 0x00100000 || !r.AbsTime.IsZero() {
			t.Fatalf("ext %v: header %+v", ext, r)
		}
		if ext && r.Sequence != 9 {
			t.Fatalf("sequence %d", r.Sequence)
		}
		if len(r.Numerics) != 6 {
			t.Fatalf("%d numerics: %+v", len(r.Numerics), r.Numerics)
		}
		hr, spo2, sys, mean, temp := r.Numerics[0], r.Numerics[1], r.Numerics[2], r.Numerics[4], r.Numerics[5]
		if hr.Physio != 0x4182 || hr.Unit != 2720 || hr.Value() != 72 || hr.Label != 0x00024182 || hr.Handle != 0x10 {
			t.Errorf("HR %+v", hr)
		}
		if spo2.State != 0x8000 || !math.IsNaN(spo2.Value()) {
			t.Errorf("SpO2 %+v", spo2)
		}
		if sys.Physio != 0x4A05 || sys.Value() != 120 || mean.Physio != 0x4A07 || mean.Value() != 92 || !sys.HasStampRel || !sys.StampAbs.IsZero() {
			t.Errorf("NIBP %+v %+v", sys, mean)
		}
		if temp.Value() != 37 || temp.Unit != 6048 {
			t.Errorf("temperature %+v", temp)
		}
		anchor := Anchor{Abs: time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC), Rel: 0x00100000}
		if got := sys.Time(anchor); !got.Equal(anchor.Abs.Add(-40 * time.Second)) {
			t.Errorf("NIBP time %v", got)
		}
		if !hr.Time(anchor).IsZero() {
			t.Errorf("HR has a time of its own: %v", hr.Time(anchor))
		}
	}
}

// A poll answer whose lengths claim more than it holds: whatever is whole
// is decoded, the rest counted.
func TestDecodePollResultOverlongClaims(t *testing.T) {
	full := samplePoll(false)
	for cut := 1; cut < len(full)-20; cut++ {
		r, err := DecodePollResult(full[:len(full)-cut], time.UTC)
		if err != nil {
			continue // the headers themselves are cut
		}
		if r.Bad == 0 {
			t.Fatalf("cut %d: no bad part counted", cut)
		}
		if len(r.Numerics) > 6 {
			t.Fatalf("cut %d: %d numerics", cut, len(r.Numerics))
		}
	}
	// the last 6 bytes gone: the temperature is lost, the rest is there
	r, err := DecodePollResult(full[:len(full)-6], time.UTC)
	if err != nil || len(r.Numerics) != 5 || r.Bad == 0 {
		t.Fatalf("%d numerics, bad %d, %v", len(r.Numerics), r.Bad, err)
	}
	// a count that claims 60000 observations allocates nothing for them
	lying := samplePoll(false)
	binary.BigEndian.PutUint16(lying[pollInfoAt+6:], 60000)
	allocs := testing.AllocsPerRun(10, func() { DecodePollResult(lying, time.UTC) })
	if allocs > 12 {
		t.Fatalf("%v allocations for a lying count", allocs)
	}
	r, _ = DecodePollResult(lying, time.UTC)
	if len(r.Numerics) != 6 || r.Bad == 0 {
		t.Fatalf("lying count: %d numerics, bad %d", len(r.Numerics), r.Bad)
	}
}

// pollInfoAt is where a single poll answer's PollInfoList starts.
const pollInfoAt = 8 + 6 + actionResultHeader + pollReplyHeader

func TestParseMDSCreate(t *testing.T) {
	e := &enc{}
	e.raw([]byte{0xE1, 0, 0, 2}).u16(roInvoke)
	ro := e.open()
	e.u16(0x0001, cmdConfirmedEventReport)
	cmd := e.open()
	e.u16(ClassMDS, 0, 0).u32(0x00200000).u16(EventMDSCreate)
	ev := e.open()
	e.u16(ClassMDS, 0, 0).u16(4)
	al := e.open()
	e.u16(AttrTimeAbs, 8).raw([]byte{0x20, 0x26, 0x12, 0x02, 0x07, 0x00, 0x00, 0x00})
	e.u16(AttrTimeRel, 4).u32(0x00200000)
	model := (&enc{}).u16(7).raw([]byte("Philips")).u16(6).raw([]byte("MX800\x00")).b
	e.u16(AttrIDModel, uint16(len(model))).raw(model)
	spec := (&enc{}).u16(2, 0)
	sl := len(spec.b)
	spec.u16(1, 0, 4).raw([]byte("SN42")).u16(4, 0, 3).raw([]byte("A.1"))
	binary.BigEndian.PutUint16(spec.b[2:], uint16(len(spec.b)-sl))
	e.u16(AttrIDProdSpec, uint16(len(spec.b))).raw(spec.b)
	e.close(al).close(ev).close(cmd).close(ro)
	op, err := ParseOperation(e.b)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := ParseMDSCreate(op, time.UTC)
	if !ok || c.Bad != 0 || c.EventTime != 0x00200000 || c.MDS.Class != ClassMDS {
		t.Fatalf("%+v %v", c, ok)
	}
	a, ok := c.Info.Anchor()
	if !ok || !a.Abs.Equal(time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)) || a.Rel != 0x00200000 {
		t.Fatalf("anchor %+v", a)
	}
	if c.Info.Model != "MX800" || c.Info.Manufacturer != "Philips" || c.Info.Serial != "SN42" || c.Info.Firmware != "A.1" {
		t.Fatalf("identity %+v", c.Info)
	}
}
