package profile

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/devices/mdc"
	"github.com/wardgate/wardgate/devices/yamlstrict"
)

// Profiles of monitors that must be talked to (format: the name of a
// dialogue built into wardgate, such as intellivue or datex) map what the
// dialogue decoded, in the device's own terms (devices.DriverFrame), to
// readings. Each parameter's field is a DriverValue's Field ("0x4BB8",
// "nibp.sys"), and with when, a condition on the value's state (a pressure
// channel's site label): a field's parameters are tried in order, the first
// that applies charts the value. A value no parameter applies to is not
// charted (a monitor reports far more than a ward charts) and not counted
// as dropped.
// Status bits with field "state" read each value's State: which bits drop
// a value or flag it. A value's unit, when the dialogue gives one (an MDC
// unit code, or UCUM), is converted to the parameter's charted unit, and a
// value in a unit that cannot be converted is dropped; without one, the
// parameter's unit is the value's. A value with a time of its own (an NIBP
// measured before the answer) is a frame of its own at that time.

// stateField is the status field of a dialogue's values.
const stateField = "state"

// DecodeDriver maps one answer of a dialogue to frames: one at the
// answer's time, and one per other time a value carries.
func (p *Profile) DecodeDriver(df devices.DriverFrame) []Frame {
	byTime := map[time.Time]*Frame{}
	var order []time.Time
	frameAt := func(t time.Time) *Frame {
		if f, ok := byTime[t]; ok {
			return f
		}
		f := &Frame{DeviceTime: t, SerialNumber: df.SerialNumber, Firmware: df.Firmware, Model: df.Model}
		byTime[t] = f
		order = append(order, t)
		return f
	}
	base := frameAt(df.DeviceTime)
	// A code charted once per frame: a reading is named by its device,
	// code and time, so a second channel charted as the same code at the
	// same time (two temperatures both generic) would be the same
	// Observation, and one of them lost without a word. The first is
	// charted; the others are counted as dropped, with the reason.
	charted := map[*Frame]map[uint32]string{}
	for _, v := range df.Values {
		prms := p.byField[v.Field]
		if len(prms) == 0 {
			continue
		}
		f := base
		if !v.Time.IsZero() && !v.Time.Equal(df.DeviceTime) {
			f = frameAt(v.Time)
		}
		var prm *Param
		for _, c := range prms {
			if c.When == nil || v.State&c.When.Mask == c.When.Value {
				prm = c
				break
			}
		}
		if prm == nil {
			continue // a label no parameter charts (an ICP channel)
		}
		q, why := p.stateOf(v)
		switch {
		case v.TimeUnknown:
			f.Dropped = append(f.Dropped, Dropped{Param: v.Field, Reason: "its own time is not known"})
		case why != "":
			f.Dropped = append(f.Dropped, Dropped{Param: v.Field, Reason: why})
		case math.IsNaN(v.Value) || math.IsInf(v.Value, 0):
			f.Dropped = append(f.Dropped, Dropped{Param: v.Field, Reason: "no value"})
		default:
			r, why := p.driverReading(prm, v, q)
			if why != "" {
				f.Dropped = append(f.Dropped, Dropped{Param: v.Field, Reason: why})
				continue
			}
			if charted[f] == nil {
				charted[f] = map[uint32]string{}
			}
			if first, dup := charted[f][r.Code.Code]; dup {
				f.Dropped = append(f.Dropped, Dropped{Param: v.Field, Reason: r.Code.RefID + " is charted from " + first + " at this time"})
				continue
			}
			charted[f][r.Code.Code] = v.Field
			r.DeviceTime = f.DeviceTime
			f.Readings = append(f.Readings, r)
		}
	}
	sort.SliceStable(order, func(i, j int) bool { return order[i].Before(order[j]) })
	out := make([]Frame, 0, len(order))
	for _, t := range order {
		if f := byTime[t]; len(f.Readings) > 0 || len(f.Dropped) > 0 || t.Equal(df.DeviceTime) {
			out = append(out, *f)
		}
	}
	return out
}

// stateOf reads a value's State through the profile's status bits: the
// quality flags it sets, or why it is dropped.
func (p *Profile) stateOf(v devices.DriverValue) (devices.Quality, string) {
	var q devices.Quality
	for _, st := range p.Status {
		if st.Field != stateField {
			continue
		}
		for i := range st.Bits {
			b := &st.Bits[i]
			if v.State&b.Mask == 0 || (len(b.Params) > 0 && !contains(b.Params, v.Field)) {
				continue
			}
			switch b.Action {
			case "drop":
				return 0, b.Name
			case "questionable":
				q |= devices.Questionable
			case "alarm":
				q |= devices.Alarm
			case "calibrating":
				q |= devices.Calibrating
			}
		}
	}
	return q, ""
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// driverReading is reading for a dialogue's value, in the unit it came in.
func (p *Profile) driverReading(prm *Param, v devices.DriverValue, q devices.Quality) (devices.Reading, string) {
	if v.Unit == "" || v.Unit == prm.Unit {
		return p.reading(prm, v.Value, q)
	}
	u, ok := mdc.UnitUCUM(v.Unit)
	if !ok {
		// An IntelliVue unit code is the MDC unit term without its
		// partition (4): 544 is 262688, %.
		if n, err := strconv.ParseUint(v.Unit, 10, 16); err == nil {
			u, ok = mdc.UnitUCUM(strconv.FormatUint(4<<16|n, 10))
		}
	}
	if !ok {
		return devices.Reading{}, "unit " + v.Unit + " unknown"
	}
	f, o, ok := prm.term.Accepts(u)
	if !ok {
		return devices.Reading{}, "unit " + u + " cannot be charted as " + prm.term.UCUM
	}
	alt := *prm
	alt.factor, alt.offset = f, o
	return p.reading(&alt, v.Value, q)
}

// DialogueOptions checks a dialogue profile's options; devices/dialogues
// sets it.
var DialogueOptions func(format string, opts map[string]string) error

// checkDriver checks a dialogue's profile: parameters by field, and status
// bits that read each value's state.
func (p *Profile) checkDriver(ps *yamlstrict.Problems) {
	if p.Text != nil || p.JSON != nil || p.Time != nil || p.SerialNumber != "" {
		ps.At("format", "%s is a dialogue: text, json, time and serial_number do not apply (the protocol gives them)", p.Format)
	}
	if DialogueOptions != nil {
		if err := DialogueOptions(p.Format, p.Options); err != nil {
			ps.At("options", "%v", err)
		}
	}
	p.checkParams(ps)
	p.byField = map[string][]*Param{}
	for i := range p.Parameters {
		prm := &p.Parameters[i]
		if prm.Field == "" {
			ps.At(fmt.Sprintf("parameters[%d].field", i), "is missing (the dialogue's name for the value)")
		}
		if prm.When != nil && prm.When.Value&^prm.When.Mask != 0 {
			ps.At(fmt.Sprintf("parameters[%d].when", i), "value has bits outside mask: it can never match")
		}
		if prm.Path != nil || len(prm.NoValue) > 0 || prm.Trim != "" || len(prm.Markers) > 0 {
			ps.At(fmt.Sprintf("parameters[%d]", i), "path, no_value, trim and markers are for text and json profiles")
		}
		p.byField[prm.Field] = append(p.byField[prm.Field], prm)
	}
	for i, st := range p.Status {
		if st.Field != stateField {
			ps.At(fmt.Sprintf("status[%d].field", i), "a dialogue's status bits read each value's %q", stateField)
		}
	}
	p.checkStatus(ps)
}
