package dialogues

import (
	"io"
	"log/slog"
	"math"
	"os"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/devices/datex"
	"github.com/wardgate/wardgate/devices/profile"
)

func loadReview14Profile(t *testing.T, name string) *profile.Profile {
	t.Helper()
	data, err := os.ReadFile("../../firmware-profiles/" + name + ".yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := profile.Parse(name+".yaml", name, data)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func review14Readings(fs []profile.Frame) (rs []devices.Reading, dropped []profile.Dropped) {
	for _, f := range fs {
		rs = append(rs, f.Readings...)
		dropped = append(dropped, f.Dropped...)
	}
	return rs, dropped
}

// A pressure channel relabelled at the monitor (ART, then PA) is charted
// under the code of the label each record carries: a value is never charted
// under the code of the label it had before; a channel labelled ICP is not
// charted, nor counted as dropped; a channel being zeroed is dropped and
// counted.
func TestReview14DatexPressureLabelChangeMidSession(t *testing.T) {
	p := loadReview14Profile(t, "ge/datex-s5")
	t0 := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	const (
		art = 0x01
		pa  = 0x03
		icp = 0x07 // ICP: not a blood pressure, not charted
	)
	rec := func(i int, label uint16, status uint32) devices.DriverFrame {
		st := datex.StateOf(status, label, datex.Valid)
		return devices.DriverFrame{DeviceTime: t0.Add(time.Duration(i) * 5 * time.Second), Values: []devices.DriverValue{
			{Field: "p1.sys", Value: 120, State: st}, {Field: "p1.dia", Value: 80, State: st}, {Field: "p1.mean", Value: 93, State: st},
		}}
	}
	codes := func(f devices.DriverFrame) ([]string, int) {
		rs, dropped := review14Readings(p.DecodeDriver(f))
		var out []string
		for _, r := range rs {
			out = append(out, r.Code.RefID)
			if !r.DeviceTime.Equal(f.DeviceTime) {
				t.Fatalf("%s dated %v, the record %v", r.Code.RefID, r.DeviceTime, f.DeviceTime)
			}
		}
		return out, len(dropped)
	}
	want := func(got []string, w ...string) {
		t.Helper()
		if len(got) != len(w) {
			t.Fatalf("charted %v, want %v", got, w)
		}
		for i := range w {
			if got[i] != w[i] {
				t.Fatalf("charted %v, want %v", got, w)
			}
		}
	}
	got, n := codes(rec(0, art, 0))
	want(got, "MDC_PRESS_BLD_ART_SYS", "MDC_PRESS_BLD_ART_DIA", "MDC_PRESS_BLD_ART_MEAN")
	got, n = codes(rec(1, pa, 0))
	want(got, "MDC_PRESS_BLD_ART_PULM_SYS", "MDC_PRESS_BLD_ART_PULM_DIA", "MDC_PRESS_BLD_ART_PULM_MEAN")
	if got, n = codes(rec(2, icp, 0)); len(got) != 0 || n != 0 {
		t.Fatalf("an ICP channel: charted %v, %d dropped", got, n)
	}
	if got, n = codes(rec(3, art, 0x0004)); len(got) != 0 || n != 3 {
		t.Fatalf("a channel being zeroed: charted %v, %d dropped, want none charted and 3 dropped", got, n)
	}
	got, _ = codes(rec(4, art, 0))
	want(got, "MDC_PRESS_BLD_ART_SYS", "MDC_PRESS_BLD_ART_DIA", "MDC_PRESS_BLD_ART_MEAN")
}

// IntelliVue units: a monitor's °F (its unit code 4416, MDC_DIM_FAHR) is
// charted in Cel; a unit code no table knows, and a unit the parameter
// cannot be charted in, are dropped and counted, never charted as they are.
func TestReview14IntelliVueUnits(t *testing.T) {
	p := loadReview14Profile(t, "philips/intellivue-mx")
	t0 := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	decode := func(v devices.DriverValue) ([]devices.Reading, []profile.Dropped) {
		return review14Readings(p.DecodeDriver(devices.DriverFrame{DeviceTime: t0, Values: []devices.DriverValue{v}}))
	}
	rs, _ := decode(devices.DriverValue{Field: "0x4B48", Value: 98.6, Unit: "4416"})
	if len(rs) != 1 || rs[0].Unit != "Cel" || math.Abs(rs[0].Value-37) > 1e-9 {
		t.Fatalf("98.6 °F: %+v", rs)
	}
	for _, unit := range []string{"65535", "0", "544" /* % for a temperature */, "degrees"} {
		rs, dropped := decode(devices.DriverValue{Field: "0x4B48", Value: 37, Unit: unit})
		if len(rs) != 0 || len(dropped) != 1 {
			t.Fatalf("unit %q: charted %+v, dropped %+v", unit, rs, dropped)
		}
	}
}

// An IntelliVue NIBP that comes in an answer with its own, earlier time
// (its cuff's stamps) is a frame of its own: charted at the cuff's time,
// not the answer's; its ClockSample is the answer's time, so that on a live
// link whose clock has no estimate yet it is dated at the answer's receipt
// less its age, never in the future, never at the receipt.
func TestReview14IntelliVueNIBPAtItsOwnTimeThroughTheIntake(t *testing.T) {
	p := loadReview14Profile(t, "philips/intellivue-mx")
	skew := 3 * time.Minute // the monitor's clock is 3 min slow
	received := time.Now().Truncate(time.Millisecond)
	answer := received.Add(-skew)
	cuff := answer.Add(-40 * time.Second)
	df := devices.DriverFrame{DeviceTime: answer, Values: []devices.DriverValue{
		{Field: "0x4182", Value: 72, Unit: "2720"},
		{Field: "0x4A05", Value: 121, Unit: "3872", Time: cuff},
		{Field: "0x4A06", Value: 79, Unit: "3872", Time: cuff},
		{Field: "0x4A07", Value: 93, Unit: "3872", Time: cuff},
	}}
	frames := p.DecodeDriver(df)
	if len(frames) != 2 || !frames[0].DeviceTime.Equal(cuff) || len(frames[0].Readings) != 3 || !frames[1].DeviceTime.Equal(answer) || len(frames[1].Readings) != 1 {
		t.Fatalf("frames %+v", frames)
	}
	all, _ := review14Readings(frames)
	in := &devices.Intake{Sink: &sink{}, Monitor: devices.NewMonitor("m", "bed-1", p.Name, "udp"), Clocks: devices.NewClocks(),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Interval: time.Second, Buffered: false}
	in.Stamp(devices.Receipt{Device: "m", Location: "bed-1", At: received}, all, df.DeviceTime, time.Time{}, 0)
	for _, r := range all {
		want := received
		if r.Code.RefID != "MDC_ECG_HEART_RATE" {
			want = received.Add(-40 * time.Second)
			if !r.ClockSample.Equal(answer) {
				t.Fatalf("%s: clock sample %v, want the answer's time %v", r.Code.RefID, r.ClockSample, answer)
			}
		}
		if got := r.Effective(); !got.Equal(want) || r.ClockPending {
			t.Fatalf("%s charted at %v (pending %v), want %v", r.Code.RefID, got, r.ClockPending, want)
		}
	}
}
