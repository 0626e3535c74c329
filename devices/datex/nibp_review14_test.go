package datex

import (
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices"
)

// The Dialogue remembers the NIBP it charted across its Runs: after the
// link went down and came back (a new session of the same monitor's
// Dialogue), the NIBP still shown is not charted again, and neither is one
// whose nibp.hr alone is shown with it. A record with an aux sub-record's
// NIBP time is dated by it and left as it is.
func TestReview14DatexNIBPAcrossSessions(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	st := StateOf(0, 0, Valid)
	rec := func(i int, own time.Time) devices.DriverFrame {
		return devices.DriverFrame{DeviceTime: t0.Add(time.Duration(i) * 5 * time.Second), Values: []devices.DriverValue{
			{Field: "nibp.sys", Value: 121, State: st, Time: own}, {Field: "nibp.dia", Value: 79, State: st, Time: own},
			{Field: "nibp.mean", Value: 93, State: st, Time: own}, {Field: "nibp.hr", Value: 70, State: st, Time: own},
		}}
	}
	count := func(d *Dialogue, f devices.DriverFrame) (int, time.Time) {
		d.dateNIBP(&f)
		if len(f.Values) == 0 {
			return 0, time.Time{}
		}
		return len(f.Values), f.Values[0].Time
	}
	d := &Dialogue{}
	// The Dialogue's first record: its NIBP may have been charted by the
	// gateway's run before; its time is not known.
	if n, at := count(d, rec(0, time.Time{})); n != 4 || !at.IsZero() {
		t.Fatalf("the cuff: %d values at %v", n, at)
	}
	// the link was down 30 s; the same Dialogue runs a new session
	if n, _ := count(d, rec(6, time.Time{})); n != 0 {
		t.Fatalf("the same NIBP charted again after a reconnect: %d values", n)
	}
	cuff := t0.Add(-3 * time.Minute)
	if n, at := count(d, rec(7, cuff)); n != 4 || !at.Equal(cuff) {
		t.Fatalf("an NIBP with its aux time: %d values at %v", n, at)
	}
}
