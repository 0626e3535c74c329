package profile

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wardgate/wardgate/devices"
)

// Frame is what one line or message decodes to: the readings it holds
// (device, bed and receipt time are the source's to fill in) and what was
// left out, and why.
type Frame struct {
	DeviceTime time.Time // zero when the device sent none
	// DeviceTimeAlt is the other instant a local time without an offset
	// may mean, in the hour repeated when daylight saving time ends (zero
	// otherwise): the device's clock estimate chooses (devices.Clock.Stamp).
	DeviceTimeAlt time.Time
	SerialNumber  string
	Firmware      string
	DeviceID      string // json: the id in the message, if any
	Manufacturer  string
	Model         string
	Readings      []devices.Reading
	Dropped       []Dropped
	// Ignored is set for a line the profile says carries no data.
	Ignored bool
}

// Dropped is a value the frame held that is not posted.
type Dropped struct {
	Param  string // field name or path
	Reason string // "no value", "out of range", "sensor off", ...
}

// ErrBadFrame is wrapped by every decoding error. The messages never quote
// the frame: it may hold patient data.
var ErrBadFrame = errors.New("bad frame")

type frameError struct{ msg string }

func (e *frameError) Error() string { return e.msg }
func (e *frameError) Unwrap() error { return ErrBadFrame }

func bad(msg string) error { return &frameError{msg} }

// Decode decodes one frame: a line without its terminator, or one message.
func (p *Profile) Decode(data []byte) (Frame, error) {
	switch p.Format {
	case "text":
		return p.decodeLine(data)
	case "json":
		return p.decodeJSON(data)
	}
	return Frame{}, bad("no decoder for format " + p.Format)
}

// value turns a field's text into a reading of prm, or says why there is
// none. quality starts with what status bits said.
func (p *Profile) value(prm *Param, raw string, q devices.Quality) (devices.Reading, string) {
	s := strings.TrimSpace(raw)
	if prm.Trim != "" {
		s = strings.Trim(s, prm.Trim)
	}
	if prm.noValue[s] || s == "" {
		return devices.Reading{}, "no value"
	}
	if prm.markers != "" {
		for {
			r, n := utf8.DecodeLastRuneInString(s)
			if n == 0 || !strings.ContainsRune(prm.markers, r) {
				break
			}
			s = s[:len(s)-n]
			switch prm.Markers[string(r)] {
			case "drop":
				return devices.Reading{}, "marked " + string(r)
			case "questionable":
				q |= devices.Questionable
			case "alarm":
				q |= devices.Alarm
			case "calibrating":
				q |= devices.Calibrating
			}
		}
		if prm.noValue[s] || s == "" {
			return devices.Reading{}, "no value"
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return devices.Reading{}, "not a number"
	}
	return p.reading(prm, v, q)
}

func (p *Profile) reading(prm *Param, v float64, q devices.Quality) (devices.Reading, string) {
	if prm.Scale != 1 || prm.factor != 1 || prm.offset != 0 {
		// 4.8 kPa is 36.0029556384 mm[Hg]; no monitor is that precise.
		v = math.Round(((v*prm.Scale)*prm.factor+prm.offset)*1e4) / 1e4
	}
	if len(prm.Range) == 2 && (v < prm.Range[0] || v > prm.Range[1]) {
		return devices.Reading{}, "out of range"
	}
	return devices.Reading{
		Profile: p.Name,
		Code:    devices.MDC{Code: prm.term.Code, RefID: prm.term.RefID},
		Value:   v,
		Unit:    prm.term.UCUM,
		Quality: q,
	}, ""
}

// parseTime reads a device time as the profile says. For a local time in
// the hour repeated when daylight saving time ends, alt is the other
// instant it may mean.
func (p *Profile) parseTime(s string) (t, alt time.Time, err error) {
	s = strings.TrimSpace(s)
	switch p.Time.Layout {
	case "rfc3339":
		t, err = time.Parse(time.RFC3339Nano, s)
		return t, alt, err
	case "unix_s", "unix_ms":
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return t, alt, err
		}
		if p.Time.Layout == "unix_ms" {
			return time.UnixMilli(int64(f)), alt, nil
		}
		return time.Unix(0, int64(f*1e9)), alt, nil
	}
	t, err = time.ParseInLocation(p.Time.Layout, s, p.zone)
	if err != nil || !p.zoneless {
		return t, alt, err
	}
	return t, foldAlternative(t), nil
}

// foldAlternative is the other instant with t's wall clock in t's zone, when
// t falls in a fold (zero otherwise).
func foldAlternative(t time.Time) time.Time {
	_, off := t.Zone()
	for _, probe := range []time.Duration{-3 * time.Hour, 3 * time.Hour} {
		_, other := t.Add(probe).Zone()
		if other == off {
			continue
		}
		alt := t.Add(time.Duration(off-other) * time.Second).In(t.Location())
		y1, m1, d1 := t.Date()
		y2, m2, d2 := alt.Date()
		if !alt.Equal(t) && y1 == y2 && m1 == m2 && d1 == d2 && t.Hour() == alt.Hour() &&
			t.Minute() == alt.Minute() && t.Second() == alt.Second() && t.Nanosecond() == alt.Nanosecond() {
			return alt
		}
	}
	return time.Time{}
}

// layoutHasZone reports whether a Go time layout writes a zone or offset:
// the same wall clock in two zones formats alike when it does not.
func layoutHasZone(layout string) bool {
	a := time.Date(2006, 1, 2, 15, 4, 5, 0, time.UTC)
	b := time.Date(2006, 1, 2, 15, 4, 5, 0, time.FixedZone("WGT", 5*3600+1800))
	return a.Format(layout) != b.Format(layout)
}
