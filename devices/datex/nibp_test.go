package datex

import (
	"math"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices"
)

// The NIBP a monitor shows in every record between cuff cycles is charted
// once, dated by the first record that shows it; a new cuff with other
// values, or with the same values once the label had said "older than
// 60 s", is a new measurement; one first seen already old, or in the
// Dialogue's first record, has no known time and is not charted (it goes
// out marked so, to be counted).
func TestTheNIBPIsDatedByTheFirstRecordThatShowsIt(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	rec := func(i int, sys, dia, mean float64, old bool) devices.DriverFrame {
		var label uint16
		if old {
			label = NIBPOld
		}
		st := StateOf(0, label, Valid)
		return devices.DriverFrame{DeviceTime: t0.Add(time.Duration(i) * 5 * time.Second), Values: []devices.DriverValue{
			{Field: "ecg.hr", Value: 70},
			{Field: "nibp.sys", Value: sys, State: st}, {Field: "nibp.dia", Value: dia, State: st},
			{Field: "nibp.mean", Value: mean, State: st}, {Field: "nibp.hr", Value: 70, State: st},
		}}
	}
	d := &Dialogue{}
	nibpOf := func(f devices.DriverFrame) (time.Time, int) {
		var at time.Time
		n := 0
		for _, v := range f.Values {
			if len(v.Field) > 5 && v.Field[:5] == "nibp." && !v.TimeUnknown {
				at, n = v.Time, n+1
			}
		}
		return at, n
	}
	steps := []struct {
		f      devices.DriverFrame
		charts bool
		at     int // the record whose time dates it
		why    string
	}{
		{rec(0, 118, 76, 90, true), false, 0, "first seen older than 60 s: no known time"},
		{rec(1, 118, 76, 90, true), false, 0, "the same, still old"},
		{rec(2, 121, 79, 93, false), true, 2, "a new cuff"},
		{rec(3, 121, 79, 93, false), false, 0, "shown again"},
		{rec(15, 121, 79, 93, true), false, 0, "shown again, now old"},
		{rec(30, 121, 79, 93, false), true, 30, "a new cuff with the same values"},
		{rec(31, math.NaN(), math.NaN(), math.NaN(), false), false, 0, "no NIBP"},
		{rec(32, 121, 79, 93, false), false, 0, "the same again after a gap"},
	}
	for i, s := range steps {
		f := s.f
		d.dateNIBP(&f)
		at, n := nibpOf(f)
		switch {
		case s.charts && (n != 4 || !at.Equal(t0.Add(time.Duration(s.at)*5*time.Second))):
			t.Fatalf("step %d (%s): %d NIBP values at %v, want 4 at record %d", i, s.why, n, at, s.at)
		case !s.charts && n != 0 && !math.IsNaN(f.Values[1].Value):
			t.Fatalf("step %d (%s): %d NIBP values charted", i, s.why, n)
		}
		if f.Values[0].Field != "ecg.hr" {
			t.Fatalf("step %d: the other values were touched", i)
		}
	}
}
