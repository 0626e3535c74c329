package datex

import (
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices"
)

// The NIBP a Datex monitor shows in every record is charted once per
// Dialogue; the Dialogue's memory of it (nibpSeen) lives in memory only. A
// gateway restarted (or its monitor's Source re-created by a config
// reload) within 60 s of a cuff sees the same NIBP, not yet labelled old,
// and charts it again at the first record it reads: a second Observation
// (its identity has the new record's time) at a time up to 60 s after the
// cuff. The same holds for a cuff first seen after a gap: "dated by the
// first record that shows it" is within one interval of the cuff only when
// the record before it was seen.
func TestReview14DatexNIBPNotChartedAgainAfterARestart(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	rec := func(i int) devices.DriverFrame {
		st := StateOf(0, 0, Valid)
		v := 121.0
		if i < 0 {
			v = 118
		}
		return devices.DriverFrame{DeviceTime: t0.Add(time.Duration(i) * 5 * time.Second), Values: []devices.DriverValue{
			{Field: "nibp.sys", Value: v, State: st}, {Field: "nibp.dia", Value: 79, State: st}, {Field: "nibp.mean", Value: 93, State: st},
		}}
	}
	charted := func(d *Dialogue, f devices.DriverFrame) []time.Time {
		d.dateNIBP(&f)
		var at []time.Time
		for _, v := range f.Values {
			if !v.TimeUnknown {
				at = append(at, v.Time)
			}
		}
		return at
	}
	d := &Dialogue{}
	charted(d, rec(-20)) // the run before: an earlier cuff
	before := charted(d, rec(0))
	if len(before) != 3 || !before[0].Equal(t0) {
		t.Fatalf("the cuff: %v", before)
	}
	after := charted(&Dialogue{}, rec(6)) // the gateway restarted; 30 s after the cuff
	if len(after) != 0 {
		t.Errorf("the same NIBP charted again after a restart, at %v (first at %v): two Observations, the second 30 s late", after[0], before[0])
	}
}

func TestReview14DatexNIBPDatedByAuxIsRemembered(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	st := StateOf(0, 0, Valid)
	rec := func(i int, own time.Time) devices.DriverFrame {
		return devices.DriverFrame{DeviceTime: t0.Add(time.Duration(i) * 5 * time.Second), Values: []devices.DriverValue{
			{Field: "nibp.sys", Value: 121, State: st, Time: own}, {Field: "nibp.dia", Value: 79, State: st, Time: own},
			{Field: "nibp.mean", Value: 93, State: st, Time: own},
		}}
	}
	d := &Dialogue{}
	cuff := t0.Add(-20 * time.Second)
	f := rec(0, cuff)
	d.dateNIBP(&f) // charted at the cuff's own time
	g := rec(1, time.Time{})
	d.dateNIBP(&g)
	if len(g.Values) != 0 {
		t.Errorf("the NIBP charted at %v by its aux time is charted again at %v", cuff, g.Values[0].Time)
	}
}

// An NIBP that dateNIBP leaves out because its time is not known (first
// seen already older than 60 s: after a gateway start, or a record with no
// r_time) is removed from the frame's values before the profile sees them:
// nothing counts it as dropped, the page shows no drop. Contract 3.
func TestReview14DatexNIBPLeftOutIsCounted(t *testing.T) {
	st := StateOf(0, NIBPOld, Valid)
	f := devices.DriverFrame{DeviceTime: time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC), Values: []devices.DriverValue{
		{Field: "nibp.sys", Value: 121, State: st}, {Field: "nibp.dia", Value: 79, State: st}, {Field: "nibp.mean", Value: 93, State: st},
	}}
	d := &Dialogue{}
	d.dateNIBP(&f)
	kept := 0
	for _, v := range f.Values {
		if v.Field == "nibp.sys" {
			kept++
		}
	}
	if kept == 0 && f.Bad == 0 {
		t.Errorf("an NIBP of no known time left out, nothing counts it (values %v, bad %d)", f.Values, f.Bad)
	}
}
