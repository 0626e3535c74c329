package profile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/devices/mdc"
)

// maxJSON bounds a message: a monitor's frame is a few kilobytes.
const maxJSON = 1 << 20

// decodeJSON decodes one JSON message.
func (p *Profile) decodeJSON(data []byte) (Frame, error) {
	if len(data) > maxJSON {
		return Frame{}, bad(fmt.Sprintf("the message is larger than %d bytes", maxJSON))
	}
	var doc any
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return Frame{}, bad("the message is not JSON")
	}
	if dec.More() {
		return Frame{}, bad("the message holds more than one JSON value")
	}
	j := p.JSON
	var f Frame
	f.DeviceID = str(first(j.DeviceID, doc))
	f.Manufacturer = str(first(j.Manufacturer, doc))
	f.Model = str(first(j.Model, doc))
	f.SerialNumber = str(first(j.SerialNumber, doc))
	f.Firmware = str(first(j.Firmware, doc))
	if p.Time != nil {
		v := firstQ(p.Time, doc)
		if v != nil {
			t, alt, err := p.parseTime(str(v))
			if err != nil {
				return Frame{}, bad("the device time does not read as " + p.Time.Layout)
			}
			f.DeviceTime, f.DeviceTimeAlt = t, alt
		}
	}
	if j.Observations != nil {
		for i, o := range j.Observations.Select(doc) {
			r, why := p.observation(o, f.DeviceTime)
			if why != "" {
				f.Dropped = append(f.Dropped, Dropped{fmt.Sprintf("%s[%d]", j.Observations, i), why})
				continue
			}
			r.SerialNumber, r.Firmware = f.SerialNumber, f.Firmware
			f.Readings = append(f.Readings, r)
		}
	}
	for i := range p.Parameters {
		prm := &p.Parameters[i]
		nodes := prm.Path.Select(doc)
		if len(nodes) == 0 {
			continue
		}
		var r devices.Reading
		var why string
		switch v := nodes[0].(type) {
		case float64:
			r, why = p.reading(prm, v, 0)
		case string:
			r, why = p.value(prm, v, 0)
		case nil:
			why = "no value"
		default:
			why = "not a number"
		}
		if why != "" {
			f.Dropped = append(f.Dropped, Dropped{prm.Path.String(), why})
			continue
		}
		r.DeviceTime, r.SerialNumber, r.Firmware = f.DeviceTime, f.SerialNumber, f.Firmware
		f.Readings = append(f.Readings, r)
	}
	return f, nil
}

// observation reads one element of a list of {code, value, unit}.
func (p *Profile) observation(o any, msgTime time.Time) (devices.Reading, string) {
	j := p.JSON
	code := str(first(j.Code, o))
	term, ok := mdc.Lookup(code)
	if !ok {
		return devices.Reading{}, "unknown MDC code"
	}
	var v float64
	switch x := first(j.Value, o).(type) {
	case float64:
		v = x
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return devices.Reading{}, "no value"
		}
		v = f
	case nil:
		return devices.Reading{}, "no value"
	default:
		return devices.Reading{}, "not a number"
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return devices.Reading{}, "not a number"
	}
	u, ok := mdc.UnitUCUM(str(first(j.Unit, o)))
	if !ok {
		return devices.Reading{}, "unknown unit"
	}
	factor, offset, ok := term.Accepts(u)
	if !ok {
		return devices.Reading{}, "unit does not fit the code"
	}
	t := msgTime
	if j.ObsTime != nil {
		if s := str(first(j.ObsTime, o)); s != "" && p.Time != nil {
			// A per-observation time in a fold is read as Go does (the
			// first of the two): JSON bridges send offsets.
			ot, _, err := p.parseTime(s)
			if err != nil {
				return devices.Reading{}, "bad time"
			}
			t = ot
		}
	}
	return devices.Reading{
		Profile:    p.Name,
		Code:       devices.MDC{Code: term.Code, RefID: term.RefID},
		Value:      convert(v, factor, offset),
		Unit:       term.UCUM,
		DeviceTime: t,
	}, ""
}

func first(p *Path, doc any) any {
	if p == nil || p.Path == nil {
		return nil
	}
	n := p.Select(doc)
	if len(n) == 0 {
		return nil
	}
	return n[0]
}

func firstQ(t *TimeSpec, doc any) any {
	if t.path == nil {
		return nil
	}
	n := t.path.Select(doc)
	if len(n) == 0 {
		return nil
	}
	return n[0]
}

// str renders a scalar node as text: numbers without exponent noise.
func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	return ""
}

func convert(v, factor, offset float64) float64 {
	if factor == 1 && offset == 0 {
		return v
	}
	return math.Round((v*factor+offset)*1e4) / 1e4
}
