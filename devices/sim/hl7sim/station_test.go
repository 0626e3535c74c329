package hl7sim

import (
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices/hl7"
	"github.com/wardgate/wardgate/devices/mdc"
	"github.com/wardgate/wardgate/devices/pcd01"
)

var t0 = time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)

// TestResultsDecode: every result of every bed, for many seeds and hours
// of cycles (artefacts, dropouts, NIBP), decodes with pcd01.Decoder and
// no problem, in both unit styles and acknowledgement modes.
func TestResultsDecode(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		berlin = time.FixedZone("CET", 3600)
	}
	ids := map[string]bool{}
	messages, readings := 0, 0
	for seed := uint64(0); seed < 40; seed++ {
		st, err := New(Config{Beds: 3, Seed: seed, UCUM: seed%2 == 1, Enhanced: seed%3 == 0, NoPatient: seed%5 == 0, Zone: berlin, MinOBX: int(seed%4) * 8})
		if err != nil {
			t.Fatal(err)
		}
		st.Occupy()
		for cycle := range 150 {
			now := t0.Add(time.Duration(cycle) * 10 * time.Second)
			for _, m := range st.Results(now) {
				messages++
				if ids[m.ControlID] {
					t.Fatalf("seed %d: control id %s twice", seed, m.ControlID)
				}
				ids[m.ControlID] = true
				hm, err := hl7.Parse(m.Bytes, hl7.Limits{})
				if err != nil {
					t.Fatalf("seed %d: %v", seed, err)
				}
				r, err := (&pcd01.Decoder{}).Decode(hm, now)
				if err != nil {
					t.Fatalf("seed %d: %v\n%s", seed, err, m.Bytes)
				}
				if len(r.Problems) > 0 {
					t.Fatalf("seed %d: problems %v\n%s", seed, r.Problems, strings.ReplaceAll(string(m.Bytes), "\r", "\n"))
				}
				if r.ControlID != m.ControlID || !r.ProfileMatched || r.Bed.PointOfCare != "WARD" || r.Bed.Bed != "BED"+itoa(m.Bed) {
					t.Fatalf("seed %d: report %+v", seed, r)
				}
				if r.HasPatient == (seed%5 == 0) {
					t.Fatalf("seed %d: HasPatient %v", seed, r.HasPatient)
				}
				if r.HasPatient && (len(r.Patient) != 1 || r.Patient[0].Authority.Namespace != "HOSP" || r.Patient[0].Type != "MR") {
					t.Fatalf("seed %d: PID-3 %+v", seed, r.Patient)
				}
				if r.Device.EUI64 != st.EUI64(m.Bed) {
					t.Fatalf("device %+v", r.Device)
				}
				obx := 0
				for i := range hm.Len() {
					if hm.Segment(i).ID() == "OBX" {
						obx++
					}
				}
				if want := int(seed%4) * 8; obx < want || obx != len(r.Observations)+r.Hierarchy {
					t.Fatalf("%d OBX (%d values, %d hierarchy), want at least %d", obx, len(r.Observations), r.Hierarchy, want)
				}
				for _, o := range r.Observations {
					readings++
					if o.Device != st.EUI64(m.Bed) || !o.Chartable() || !nibpCode(o.Code.Code) && !o.DeviceTime.Equal(now) || o.DeviceTime.After(now) {
						t.Fatalf("observation %+v", o)
					}
				}
			}
		}
	}
	if messages < 40*3*140 || readings < messages*5 {
		t.Fatalf("%d messages, %d readings", messages, readings)
	}
}

// nibpCode: NIBP is measured every 5 minutes and repeated with its time.
func nibpCode(c uint32) bool { return c >= 150021 && c <= 150023 }

func itoa(i int) string { return string(rune('0' + i)) }

// TestUnitsAndCodesAreInTheTable: every code and unit the station writes
// is devices/mdc's, under its own reference id.
func TestUnitsAndCodesAreInTheTable(t *testing.T) {
	for name, m := range metrics {
		num, ref, _ := strings.Cut(m.code, "^")
		term, ok := mdc.Lookup(ref)
		if !ok || itoaU(term.Code) != num {
			t.Errorf("%s: %s is not in devices/mdc as %s", name, m.code, ref)
		}
		u := units[m.unit]
		code, dimRef, _ := strings.Cut(u.mdc, "^")
		for _, s := range []string{code, dimRef, u.ucum} {
			if got, ok := mdc.UnitUCUM(s); !ok || got != u.ucum && !strings.HasSuffix(got, u.ucum) {
				t.Errorf("%s: unit %s reads as %q %v", name, s, got, ok)
			}
		}
		if _, _, ok := term.Accepts(u.ucum); !ok {
			t.Errorf("%s does not take %s", ref, u.ucum)
		}
	}
}

func itoaU(n uint32) string {
	b := []byte{}
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// TestADT: admit, transfer and discharge carry the event, its time, the
// record number and the beds where the ADT reader looks for them.
func TestADT(t *testing.T) {
	st, err := New(Config{Beds: 2, RunID: "T1", Authority: "CITY"})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 2, 9, 30, 0, 0, time.UTC)
	a, err := st.Admit(1, at)
	if err != nil {
		t.Fatal(err)
	}
	mrn := st.Patient(1)
	if _, err := st.Admit(1, at); err == nil {
		t.Fatal("a second admit to a taken bed")
	}
	x, err := st.Transfer(1, 2, at.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if st.Patient(1) != "" || st.Patient(2) != mrn {
		t.Fatalf("after the transfer: %q %q", st.Patient(1), st.Patient(2))
	}
	d, err := st.Discharge(2, at.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		m                   Message
		typ, evn6, pv3, pv6 string
	}{
		{a, "ADT^A01^ADT_A01", "20261202093000+0000", "WARD^^BED1", ""},
		{x, "ADT^A02^ADT_A02", "20261202103000+0000", "WARD^^BED2", "WARD^^BED1"},
		{d, "ADT^A03^ADT_A03", "20261202113000+0000", "WARD^^BED2", ""},
	} {
		m, err := hl7.Parse(c.m.Bytes, hl7.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		for path, want := range map[string]string{
			"MSH-9": c.typ, "MSH-12": "2.5", "MSH-10": c.m.ControlID, "EVN-6": c.evn6,
			"PID-3": mrn + "^^^CITY^MR", "PV1-3": c.pv3, "PV1-6": c.pv6,
		} {
			f, err := m.Get(path)
			if err != nil {
				t.Fatal(err)
			}
			if f.Raw() != want {
				t.Errorf("%s %s = %q, want %q", c.typ, path, f.Raw(), want)
			}
		}
	}
	if ev, _ := hl7.Parse(d.Bytes, hl7.Limits{}); ev.Field("PV1", 1, 45).Raw() != "20261202113000+0000" {
		t.Errorf("A03 PV1-45 %q", ev.Field("PV1", 1, 45).Raw())
	}
	// Random events keep the ward consistent: never two patients in a bed.
	for range 200 {
		if _, ok := st.Event(at); !ok {
			t.Fatal("no event possible")
		}
		seen := map[string]bool{}
		for i := 1; i <= st.Beds(); i++ {
			if p := st.Patient(i); p != "" && seen[p] {
				t.Fatalf("patient %s in two beds", p)
			} else {
				seen[p] = true
			}
		}
	}
}

// TestStandby: an empty bed in standby sends nothing until it is admitted.
func TestStandby(t *testing.T) {
	st, err := New(Config{Beds: 3, Standby: true, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	if ms := st.Results(t0); len(ms) != 0 {
		t.Fatalf("%d results from empty beds", len(ms))
	}
	st.Admit(2, t0)
	for cycle := range 20 {
		for _, m := range st.Results(t0.Add(time.Duration(cycle) * time.Second)) {
			if m.Bed != 2 {
				t.Fatalf("a result from empty bed %d", m.Bed)
			}
		}
	}
}

func TestConfigRefusesDelimiters(t *testing.T) {
	for _, c := range []Config{{Ward: "A^B"}, {Authority: "X|Y"}, {RunID: "TOO-LONG-ID"}} {
		if _, err := New(c); err == nil {
			t.Errorf("%+v taken", c)
		}
	}
}
