package datex_test

import (
	"encoding/binary"
	"math"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/devices/datex"
	"github.com/wardgate/wardgate/devices/sim/datexsim"
)

var at = time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)

func byField(f devices.DriverFrame) map[string]devices.DriverValue {
	m := map[string]devices.DriverValue{}
	for _, v := range f.Values {
		m[v.Field] = v
	}
	return m
}

// The research note's vectors and the simulator's first record, value by
// value: scaling, units, markers, status and label bits.
func TestDecodeRecordValues(t *testing.T) {
	f, err := datex.DecodeRecord(datexsim.Record(0, at, datex.Level15, 7))
	if err != nil {
		t.Fatal(err)
	}
	if f.Bad != 0 || !f.DeviceTime.Equal(at) || f.Firmware != "DRI level '15" {
		t.Fatalf("bad %d, device time %v, firmware %q", f.Bad, f.DeviceTime, f.Firmware)
	}
	if len(f.Values) != len(datex.Fields()) {
		t.Fatalf("%d values, %d fields", len(f.Values), len(datex.Fields()))
	}
	v := byField(f)
	for _, c := range []struct {
		field  string
		value  float64 // NaN: a marker
		unit   string
		marker datex.Marker
	}{
		{"ecg.hr", 60, "/min", datex.Valid},
		{"ecg.imp_rr", 14, "/min", datex.Valid},
		{"p1.sys", 120, "mm[Hg]", datex.Valid},
		{"p1.mean", 93, "mm[Hg]", datex.Valid},
		{"p2.sys", math.NaN(), "mm[Hg]", datex.NoData}, // raw −32767 → none
		{"nibp.sys", 120, "mm[Hg]", datex.Valid},       // raw 12000 → 120 mmHg
		{"nibp.dia", 80, "mm[Hg]", datex.Valid},
		{"nibp.mean", 93, "mm[Hg]", datex.Valid},
		{"nibp.hr", 62, "/min", datex.Valid},
		{"t1.temp", 37.10, "Cel", datex.Valid}, // raw 3710 → 37.10 °C
		{"t2.temp", math.NaN(), "Cel", datex.UnderRange},
		{"t3.temp", math.NaN(), "Cel", datex.NoData},
		{"spo2.spo2", 97, "%", datex.Valid},
		{"spo2.pr", 60, "/min", datex.Valid},
		{"co2.et", 38, "mm[Hg]", datex.Valid}, // 5.00 % of 760.0 mmHg
		{"co2.fi", 0, "mm[Hg]", datex.Valid},
		{"co2.rr", 12, "/min", datex.Valid},
		{"co2.amb_press", 760, "mm[Hg]", datex.Valid},
		{"o2.fi", math.NaN(), "%", datex.NoData},
		{"p6.hr", math.NaN(), "/min", datex.NoData},
	} {
		got, ok := v[c.field]
		if !ok {
			t.Errorf("%s: missing", c.field)
			continue
		}
		if math.IsNaN(c.value) != math.IsNaN(got.Value) || !math.IsNaN(c.value) && got.Value != c.value {
			t.Errorf("%s = %v, want %v", c.field, got.Value, c.value)
		}
		if got.Unit != c.unit {
			t.Errorf("%s: unit %q, want %q", c.field, got.Unit, c.unit)
		}
		if m := datex.StateMarker(got.State); m != c.marker {
			t.Errorf("%s: marker %s, want %s", c.field, m, c.marker)
		}
		if !got.Time.IsZero() {
			t.Errorf("%s: a displayed value has its own time %v", c.field, got.Time)
		}
	}
	if s := v["p1.sys"].State; s&datex.StateStatusMask != 3 || datex.StateLabel(s) != 1 {
		t.Errorf("p1 state %#x: want status 3 (module, measuring), label 1 (ART)", s)
	}
	if s := v["p2.sys"].State; s != datex.StateOf(0, 0, datex.NoData) {
		t.Errorf("p2 state %#x", s)
	}
	old, _ := datex.DecodeRecord(datexsim.Record(12, at, datex.Level15, 7))
	if l := datex.StateLabel(byField(old)["nibp.sys"].State); l&datex.NIBPOld == 0 {
		t.Errorf("NIBP label %#x: the older-than-60-s bit is lost", l)
	}
}

func TestMarkers(t *testing.T) {
	for raw, want := range map[int16]datex.Marker{
		-32767: datex.NoData, -32766: datex.NotUpdated, -32765: datex.Discontinuity,
		-32764: datex.UnderRange, -32763: datex.OverRange, -32762: datex.NotCalibrated,
		-32768: datex.OtherInvalid, -32001: datex.OtherInvalid, -32100: datex.OtherInvalid,
		-32000: datex.Valid, 0: datex.Valid, 32767: datex.Valid,
	} {
		if got := datex.MarkerOf(raw); got != want {
			t.Errorf("MarkerOf(%d) = %s, want %s", raw, got, want)
		}
	}
}

// The ambient pressure missing, etCO2 cannot be turned into mmHg: NaN,
// marked so, not a wrong number.
func TestCO2WithoutAmbientPressure(t *testing.T) {
	rec := datexsim.Record(0, at, datex.Level15, 7)
	binary.LittleEndian.PutUint16(rec[datex.HeaderLen+4+144:], uint16(0x8001)) // −32767
	f, _ := datex.DecodeRecord(rec)
	v := byField(f)["co2.et"]
	if !math.IsNaN(v.Value) || datex.StateMarker(v.State) != datex.NoAmbient {
		t.Fatalf("co2.et %v, marker %s", v.Value, datex.StateMarker(v.State))
	}
}

// A record that claims more than it holds is decoded as far as its groups
// are whole; the rest is counted, nothing panics.
func TestDecodeRecordOverClaim(t *testing.T) {
	full := datexsim.Record(0, at, datex.Level15, 7)
	cut := full[:datex.HeaderLen+4+100] // r_len still claims the whole
	f, err := datex.DecodeRecord(cut)
	if err != nil {
		t.Fatal(err)
	}
	v := byField(f)
	if v["ecg.hr"].Value != 60 || v["p4.hr"].Field == "" || v["nibp.sys"].Value != 120 {
		t.Fatalf("the whole groups before the cut: %v", f.Values)
	}
	if _, ok := v["t2.temp"]; ok || v["t1.temp"].Value != 37.1 {
		t.Fatal("t1 ends before the cut, t2 lies across it")
	}
	if f.Bad < 3 {
		t.Fatalf("bad %d: the claim, the cut sub-record and the groups beyond are counted", f.Bad)
	}

	// A second sub-record beyond the end, a negative offset.
	rec := append([]byte(nil), full...)
	binary.LittleEndian.PutUint16(rec[16+3:], 2000)
	rec[16+5] = datex.SubDisplayed
	binary.LittleEndian.PutUint16(rec[16+6:], 0xFFF0)
	rec[16+8] = datex.SubDisplayed
	rec[16+11] = 0xFF
	f, err = datex.DecodeRecord(rec)
	if err != nil || f.Bad != 2 || len(f.Values) != len(datex.Fields()) {
		t.Fatalf("err %v, bad %d, %d values", err, f.Bad, len(f.Values))
	}

	for _, short := range [][]byte{nil, full[:10], full[:39]} {
		if _, err := datex.DecodeRecord(short); err == nil {
			t.Fatalf("%d bytes decoded", len(short))
		}
	}
	wave := append([]byte(nil), full...)
	wave[14] = datex.MainWaveform
	if _, err := datex.DecodeRecord(wave); err == nil {
		t.Fatal("a waveform record decoded as physiological")
	}
}

// The class is read from cl_drilvl_subt: an ext1 sub-record first is not
// taken for the basic class.
func TestDecodeRecordClass(t *testing.T) {
	rec := datexsim.Record(0, at, datex.Level15, 7)
	binary.LittleEndian.PutUint16(rec[datex.HeaderLen+datex.SubrecordLen-2:], datex.ClassExt1<<8|datex.SubDisplayed)
	f, err := datex.DecodeRecord(rec)
	if err != nil || len(f.Values) != 0 || f.Bad != 0 {
		t.Fatalf("err %v, %d values, bad %d", err, len(f.Values), f.Bad)
	}
}

// An auxiliary sub-record dates the NIBP reading shown between cuff
// cycles.
func TestDecodeRecordNIBPTime(t *testing.T) {
	rec := datexsim.Record(0, at, datex.Level15, 7)
	aux := make([]byte, datex.SubrecordLen)
	binary.LittleEndian.PutUint32(aux, uint32(at.Unix()))
	binary.LittleEndian.PutUint32(aux[4:], uint32(at.Add(-4*time.Minute).Unix()))
	rec = append(rec, aux...)
	binary.LittleEndian.PutUint16(rec, uint16(len(rec)))
	binary.LittleEndian.PutUint16(rec[16+3:], datex.SubrecordLen)
	rec[16+5] = datex.SubAux
	rec[16+8] = 0xFF
	f, err := datex.DecodeRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	v := byField(f)
	if !v["nibp.sys"].Time.Equal(at.Add(-4*time.Minute)) || !v["ecg.hr"].Time.IsZero() {
		t.Fatalf("nibp time %v, ecg time %v", v["nibp.sys"].Time, v["ecg.hr"].Time)
	}
}

// The field list names every value once.
func TestFields(t *testing.T) {
	seen := map[string]bool{}
	for _, f := range datex.Fields() {
		if seen[f.Name] {
			t.Fatalf("%s twice", f.Name)
		}
		seen[f.Name] = true
		if f.Offset+2 > f.GroupAt+14+2 || f.Offset < f.GroupAt+6 || f.Offset+2 > datex.ClassLen {
			t.Fatalf("%s at %d, group at %d", f.Name, f.Offset, f.GroupAt)
		}
	}
	for _, n := range []string{"ecg.hr", "p1.sys", "p4.mean", "nibp.mean", "t1.temp", "t4.temp", "spo2.spo2", "spo2.pr", "co2.et", "co2.rr"} {
		if !seen[n] {
			t.Errorf("%s missing", n)
		}
	}
}
