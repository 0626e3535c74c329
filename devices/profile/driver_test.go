package profile

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices"
)

const dialogueProfile = `
vendor: Acme
model: Talker
format: testdialogue
status:
  - field: state
    bits:
      - {mask: 0x8000, name: invalid, action: drop}
      - {mask: 0x4000, name: questionable, action: questionable}
      - {mask: 0x0400, name: demo data, action: drop}
parameters:
  - {field: "0x4182", mdc: MDC_ECG_HEART_RATE, unit: /min, range: [0, 350]}
  - {field: "0x4BB8", mdc: MDC_PULS_OXIM_SAT_O2, unit: "%", range: [0, 100]}
  - {field: "0x4B60", mdc: MDC_TEMP_BODY, unit: Cel}
  - {field: "0x4A05", mdc: MDC_PRESS_CUFF_SYS, unit: "mm[Hg]"}
`

// A dialogue's answer becomes readings through the profile: fields mapped,
// states read, units converted from the device's code, values of their
// own time in frames of their own, unmapped values ignored.
func TestDecodeDriverMapsAnAnswer(t *testing.T) {
	Decoders["testdialogue"] = true
	defer delete(Decoders, "testdialogue")
	p, err := Parse("test.yaml", "acme/talker", []byte(dialogueProfile))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	nibpAt := at.Add(-3 * time.Minute)
	frames := p.DecodeDriver(devices.DriverFrame{DeviceTime: at, SerialNumber: "SN1", Values: []devices.DriverValue{
		{Field: "0x4182", Value: 72, Unit: "2720"},                // bpm, an IntelliVue unit code
		{Field: "0x4BB8", Value: 97, Unit: "544", State: 0x4000},  // %, questionable
		{Field: "0x4B60", Value: 98.6, Unit: "4416"},              // °F (MDC 266560), charted in Cel
		{Field: "0x4A05", Value: 121, Unit: "3872", Time: nibpAt}, // mmHg, measured before
		{Field: "0x4A05", Value: math.NaN(), State: 0x8000},       // invalid: dropped by its state
		{Field: "0x4182", Value: 60, State: 0x0400},               // demo data
		{Field: "0x0101", Value: 5},                               // not in the profile
		{Field: "0x4BB8", Value: math.NaN()},                      // no value
		{Field: "0x4182", Value: 400},                             // out of range
		{Field: "0x4BB8", Value: 90, Unit: "3872"},                // a unit that cannot be %
	}})
	if len(frames) != 2 {
		t.Fatalf("%d frames, want the NIBP's and the answer's", len(frames))
	}
	nibp, main := frames[0], frames[1]
	if !nibp.DeviceTime.Equal(nibpAt) || len(nibp.Readings) != 1 || nibp.Readings[0].Value != 121 || !nibp.Readings[0].DeviceTime.Equal(nibpAt) || nibp.Readings[0].Unit != "mm[Hg]" {
		t.Fatalf("the NIBP's frame: %+v", nibp)
	}
	if !main.DeviceTime.Equal(at) || main.SerialNumber != "SN1" {
		t.Fatalf("the answer's frame: %+v", main)
	}
	got := map[string]devices.Reading{}
	for _, r := range main.Readings {
		got[r.Code.RefID] = r
	}
	if r := got["MDC_ECG_HEART_RATE"]; r.Value != 72 || r.Unit != "/min" {
		t.Errorf("HR %+v", r)
	}
	if r := got["MDC_PULS_OXIM_SAT_O2"]; r.Value != 97 || r.Quality != devices.Questionable {
		t.Errorf("SpO2 %+v", r)
	}
	if r := got["MDC_TEMP_BODY"]; r.Value != 37 || r.Unit != "Cel" {
		t.Errorf("temperature %+v, want 37 Cel from 98.6 °F", r)
	}
	if len(main.Readings) != 3 {
		t.Errorf("%d readings in the answer's frame, want 3", len(main.Readings))
	}
	var reasons []string
	for _, d := range main.Dropped {
		reasons = append(reasons, d.Param+": "+d.Reason)
	}
	want := []string{"0x4A05: invalid", "0x4182: demo data", "0x4BB8: no value", "0x4182: out of range", "0x4BB8: unit mm[Hg] cannot be charted as %"}
	if strings.Join(reasons, "; ") != strings.Join(want, "; ") {
		t.Errorf("dropped:\n %s\nwant\n %s", strings.Join(reasons, "; "), strings.Join(want, "; "))
	}
}

// A dialogue's profile is checked like the others, with what applies to it.
func TestCheckDialogueProfile(t *testing.T) {
	Decoders["testdialogue"] = true
	defer delete(Decoders, "testdialogue")
	bad := `vendor: Acme
model: Talker
format: testdialogue
time: {value: "{t}", layout: rfc3339}
status:
  - field: EXC
    bits: [{mask: 1, name: off, action: drop}]
parameters:
  - {mdc: MDC_ECG_HEART_RATE, unit: /min}
`
	_, err := Parse("bad.yaml", "acme/talker", []byte(bad))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"time, and serial_number do not apply", `status[0].field: a dialogue's status bits read each value's "state"`, "parameters[0].field: is missing"} {
		if !strings.Contains(err.Error(), strings.Split(want, ",")[0]) {
			t.Errorf("no %q in:\n%v", want, err)
		}
	}
	if _, err := Parse("x.yaml", "acme/x", []byte(strings.Replace(bad, "testdialogue", "nodialogue", 1))); err == nil || !strings.Contains(err.Error(), "nor a dialogue built into wardgate") {
		t.Fatalf("an unknown dialogue: %v", err)
	}
}

// A field's parameters with when are tried in order: a pressure channel
// is charted by the site its label names, one whose label no parameter
// names (an ICP channel) is not charted, and a catch-all after them takes
// the rest.
func TestDecodeDriverChoosesByState(t *testing.T) {
	Decoders["testdialogue"] = true
	defer delete(Decoders, "testdialogue")
	p, err := Parse("w.yaml", "acme/w", []byte(`vendor: Acme
model: W
format: testdialogue
parameters:
  - {field: p1.sys, mdc: MDC_PRESS_BLD_ART_SYS, unit: "mm[Hg]", when: {mask: 0x0FFF0000, value: 0x00010000}}
  - {field: p1.sys, mdc: MDC_PRESS_BLD_ART_PULM_SYS, unit: "mm[Hg]", when: {mask: 0x0FFF0000, value: 0x00030000}}
  - {field: t1.temp, mdc: MDC_TEMP_ESOPH, unit: Cel, when: {mask: 0x0FFF0000, value: 0x00010000}}
  - {field: t1.temp, mdc: MDC_TEMP, unit: Cel}
`))
	if err != nil {
		t.Fatal(err)
	}
	code := func(field string, state uint32) string {
		fs := p.DecodeDriver(devices.DriverFrame{DeviceTime: time.Now(), Values: []devices.DriverValue{{Field: field, Value: 30, State: state}}})
		if len(fs) != 1 || len(fs[0].Readings) > 1 {
			t.Fatalf("%s %#x: %+v", field, state, fs)
		}
		if len(fs[0].Readings) == 0 {
			return ""
		}
		return fs[0].Readings[0].Code.RefID
	}
	for _, c := range []struct {
		field string
		state uint32
		want  string
	}{
		{"p1.sys", 0x00010000, "MDC_PRESS_BLD_ART_SYS"},
		{"p1.sys", 0x00030000, "MDC_PRESS_BLD_ART_PULM_SYS"},
		{"p1.sys", 0x00070000, ""}, // ICP: no parameter
		{"t1.temp", 0x00010000, "MDC_TEMP_ESOPH"},
		{"t1.temp", 0x00090000, "MDC_TEMP"},
	} {
		if got := code(c.field, c.state); got != c.want {
			t.Errorf("%s with state %#x: %q, want %q", c.field, c.state, got, c.want)
		}
	}
}
