package pcd01

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/devices/hl7"
)

var (
	received = time.Date(2024, 3, 5, 9, 16, 0, 0, time.UTC)
	berlin   = time.FixedZone("CET", 3600)
)

func load(t testing.TB, name string) *hl7.Message {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	m, err := hl7.Parse(b, hl7.Limits{})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return m
}

func decode(t testing.TB, name string, d Decoder) *Report {
	t.Helper()
	r, err := d.Decode(load(t, name), received)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return r
}

// row is what a test expects of one observation.
type row struct {
	containment string
	code        uint32
	value       float64
	unit        string
	time        string // RFC 3339
	demo        bool
	quality     devices.Quality
}

func checkRows(t *testing.T, r *Report, want []row) {
	t.Helper()
	if len(r.Observations) != len(want) {
		for _, o := range r.Observations {
			t.Logf("got %s %d %v", o.Containment, o.Code.Code, o.Value)
		}
		t.Fatalf("%d observations, want %d", len(r.Observations), len(want))
	}
	for i, w := range want {
		o := r.Observations[i]
		wt, _ := time.Parse(time.RFC3339, w.time)
		if o.Containment != w.containment || o.Code.Code != w.code || math.Abs(o.Value-w.value) > 1e-9 ||
			o.Unit != w.unit || !o.DeviceTime.Equal(wt) || o.Demo != w.demo || o.Quality != w.quality {
			t.Errorf("row %d: %s %d %v %s %s demo=%v q=%d; want %+v", i, o.Containment, o.Code.Code, o.Value, o.Unit,
				o.DeviceTime.Format(time.RFC3339), o.Demo, o.Quality, w)
		}
		if o.Received != received || o.Profile != ProfileName || o.TimeUnknown {
			t.Errorf("row %d: received %v, profile %q, time unknown %v", i, o.Received, o.Profile, o.TimeUnknown)
		}
	}
}

func checkProblems(t *testing.T, r *Report, want []string) {
	t.Helper()
	var got []string
	for _, p := range r.Problems {
		got = append(got, p.String())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestGE(t *testing.T) {
	r := decode(t, "ge-b40.hl7", Decoder{Zone: berlin})
	if r.ControlID != "GE0000123" || r.Version != "2.6" || !r.ProfileMatched || r.Processing != "P" {
		t.Errorf("header: %+v", r)
	}
	if r.SendingApplication != (HD{Namespace: "B40_GE", UniversalID: "080019FFFE0B4020", UniversalIDType: "EUI-64"}) || r.SendingFacility.Namespace != "GE Healthcare" {
		t.Errorf("sender %+v %+v", r.SendingApplication, r.SendingFacility)
	}
	if r.Device != (Identity{EUI64: "080019FFFE0B4020", Name: "B40_GE"}) {
		t.Errorf("device %+v", r.Device)
	}
	if !r.Sent.Equal(time.Date(2024, 3, 5, 9, 15, 0, 0, time.UTC)) {
		t.Errorf("sent %v", r.Sent)
	}
	if !r.HasPatient || len(r.Patient) != 1 || r.Patient[0] != (Identifier{Value: "HED12", Authority: HD{Namespace: "PID"}, Type: "MR"}) {
		t.Errorf("patient %+v", r.Patient)
	}
	if !r.HasBed || r.Bed != (Bed{PointOfCare: "SURGERY", Bed: "V2"}) {
		t.Errorf("bed %+v", r.Bed)
	}
	if r.Hierarchy != 7 {
		t.Errorf("hierarchy rows %d, want 7", r.Hierarchy)
	}
	// GE leaves OBX-14 empty: OBR-7, in the configured zone.
	const obr = "2024-03-05T10:14:55+01:00"
	checkRows(t, r, []row{
		{"1.5.1.1", 147842, 72, "/min", obr, false, 0},
		{"1.5.1.2", 148066, 0, "/min", obr, false, 0},
		{"1.13.1.1", 150033, 118, "mm[Hg]", obr, false, 0},
		{"1.13.1.2", 150034, 71, "mm[Hg]", obr, false, 0},
		{"1.13.1.3", 150035, 88, "mm[Hg]", obr, false, 0},
		{"1.14.1.1", 150021, 124, "mm[Hg]", obr, false, 0},
		{"1.14.1.2", 150022, 79, "mm[Hg]", obr, false, 0},
		{"1.14.1.3", 150023, 94, "mm[Hg]", obr, false, 0},
		{"1.22.1.2", 150456, 96, "%", obr, false, 0},
		{"1.22.1.3", 149530, 73, "/min", obr, false, 0},
		{"1.23.1.1", 151562, 16, "/min", obr, false, 0},
		{"1.24.1.1", 150344, 37.2, "Cel", obr, false, 0},
	})
	checkProblems(t, r, []string{"OBX(20)-5 (segment 24): no value"})
	for _, o := range r.Observations {
		if o.Equipment != (Identity{EUI64: "080019FFFE0B4020", Name: "B40_GE"}) || o.Device != "080019FFFE0B4020" || o.Status != "R" || !o.Chartable() {
			t.Errorf("%s: equipment %+v device %q status %q", o.Containment, o.Equipment, o.Device, o.Status)
		}
	}
	if o := r.Observations[8]; o.SetID != "16" || o.Where != (hl7.Location{Segment: "OBX", Seq: 16, Index: 19}) {
		t.Errorf("SpO2 row at %+v, set id %q", o.Where, o.SetID)
	}
}

func TestGEWithoutZone(t *testing.T) {
	// No offset in the message and no zone configured: the time is not
	// guessed; every row says why.
	r := decode(t, "ge-b40.hl7", Decoder{})
	if len(r.Observations) != 0 {
		t.Errorf("%d observations dated at a guess", len(r.Observations))
	}
	if len(r.Problems) != 15 || !strings.Contains(r.Problems[0].Reason, "no UTC offset and no zone") {
		t.Errorf("%d problems: %v", len(r.Problems), r.Problems)
	}
	if r.Problems[0].Where.Segment != "MSH" || r.Problems[1].Where.Segment != "OBR" {
		t.Errorf("first problems at %v, %v", r.Problems[0].Where, r.Problems[1].Where)
	}
}

func TestMindray(t *testing.T) {
	r := decode(t, "mindray-vs900.hl7", Decoder{})
	if r.ControlID != "MR-77" || r.Device != (Identity{EUI64: "0019A1FFFE000001", Name: "MINDRAY_VS900"}) {
		t.Errorf("header %+v", r)
	}
	if len(r.Patient) != 1 || r.Patient[0] != (Identifier{Value: "0004711", Authority: HD{Namespace: "Hospital"}, Type: "PI"}) {
		t.Errorf("patient %+v", r.Patient)
	}
	if r.Bed != (Bed{PointOfCare: "INTER", Bed: "1", Facility: HD{Namespace: "1"}}) {
		t.Errorf("bed %+v", r.Bed)
	}
	const now, nibp = "2024-03-05T10:14:58+08:00", "2024-03-05T10:09:12+08:00"
	checkRows(t, r, []row{
		{"1.3.1.150456", 150456, 98, "%", now, false, 0},
		{"1.3.1.149530", 149530, 64, "/min", now, false, 0}, // term code without partition, both in OBX-3 and OBX-6
		{"1.5.1.150301", 150301, 121, "mm[Hg]", nibp, false, 0},
		{"1.5.1.150302", 150302, 77, "mm[Hg]", nibp, false, 0},
		{"1.5.1.150303", 150303, 92, "mm[Hg]", nibp, false, 0},
		{"1.5.1.149546", 149546, 66, "/min", nibp, false, 0},
		{"1.7.1.150344", 150344, 37, "Cel", now, false, 0}, // 98.6 °F
		{"1.8.1.151562", 151562, 18, "/min", now, false, 0},
		{"1.3.1.150488", 150488, 2.45, "%", now, false, 0},
		{"1.9.1.151708", 151708, 4.8 * 7.500615758, "mm[Hg]", now, false, 0}, // kPa
	})
	checkProblems(t, r, nil)
	if r.Observations[2].Method != "APERIODIC" || r.Observations[2].Equipment.EUI64 != "0019A1FFFE000001" {
		t.Errorf("NIBP row: method %q, equipment %+v", r.Observations[2].Method, r.Observations[2].Equipment)
	}
}

func TestMindrayDemo(t *testing.T) {
	r := decode(t, "mindray-demo.hl7", Decoder{})
	demo := 0
	for _, o := range r.Observations {
		if o.Demo {
			demo++
			if o.Chartable() {
				t.Errorf("%s: demo data is chartable", o.Containment)
			}
		}
	}
	// The NIBP rows were not marked; the others were.
	if len(r.Observations) != 10 || demo != 6 {
		t.Errorf("%d observations, %d demo", len(r.Observations), demo)
	}
}

func TestMindrayNoPID(t *testing.T) {
	r := decode(t, "mindray-no-pid.hl7", Decoder{})
	if r.HasPatient || r.Patient != nil || !r.HasBed || len(r.Observations) != 10 {
		t.Errorf("patient %v %+v, bed %v, %d observations", r.HasPatient, r.Patient, r.HasBed, len(r.Observations))
	}
}

func TestPhilips(t *testing.T) {
	r := decode(t, "philips-picix.hl7", Decoder{})
	if r.ControlID != "PH|000042" {
		t.Errorf("control id %q", r.ControlID)
	}
	wantIDs := []Identifier{
		{Value: "MRN77&A", Authority: HD{Namespace: "CITYHOSP", UniversalID: "1.2.840.99999.1.1", UniversalIDType: "ISO"}, Type: "MR"},
		{Value: "900111", Authority: HD{Namespace: "NATIONAL", UniversalID: "2.16.840.1.113883.2.4.6.3", UniversalIDType: "ISO"}, Type: "NNNLD"},
	}
	if fmt.Sprint(r.Patient) != fmt.Sprint(wantIDs) {
		t.Errorf("patient %+v", r.Patient)
	}
	wantBed := Bed{PointOfCare: "CCU&EAST", Room: "R07", Bed: "B2", Facility: HD{Namespace: "CITYHOSP", UniversalID: "1.2.840.99999.1", UniversalIDType: "ISO"}, Building: "WEST WING", Floor: "3"}
	if r.Bed != wantBed {
		t.Errorf("bed %+v", r.Bed)
	}
	if !r.Sent.Equal(time.Date(2024, 3, 5, 9, 15, 0, 123e6, time.UTC)) {
		t.Errorf("sent %v", r.Sent)
	}
	const obr, own, nibp = "2024-03-05T10:14:50+01:00", "2024-03-05T10:14:52+01:00", "2024-03-05T10:05:00+01:00"
	checkRows(t, r, []row{
		{"1.1.1.1", 147842, 81, "/min", obr, false, 0},     // MDIL hex, empty OBX-14
		{"1.2.1.1", 150456, 95, "%", own, false, 0},        // MDIL hex 0002-4bb8
		{"1.3.1.1", 150021, 131, "mm[Hg]", nibp, false, 0}, // UCUM unit
		{"1.3.1.2", 150022, 82, "mm[Hg]", nibp, false, 0},
		{"1.3.1.3", 150023, 98, "mm[Hg]", nibp, false, 0},
		{"1.2.1.4", 150456, 93, "%", obr, false, devices.Questionable | devices.Alarm},
	})
	checkProblems(t, r, []string{
		`OBX(7)-2 (segment 11): value type "ST" is not decoded (only NM)`,
		"OBX(8)-14 (segment 12): OBX-14 is not precise to the minute",
		"OBX(9)-5 (segment 13): value is not a number",
		"OBX(10)-3 (segment 14): MDC code 150021 and reference id MDC_PRESS_CUFF_SYS disagree",
		"OBX(12)-8 (segment 16): the device marks the value invalid",
		`OBX(13)-11 (segment 17): result status "D" carries no value to chart`,
	})
	// Rows without OBX-18 take the equipment of their MDS row.
	for _, o := range r.Observations {
		if o.Equipment != (Identity{EUI64: "00A0C9FFFE123456", Name: "MX750"}) {
			t.Errorf("%s: equipment %+v", o.Containment, o.Equipment)
		}
	}
	if r.Observations[2].Method != "AMEAS" {
		t.Errorf("method %q", r.Observations[2].Method)
	}
}

func TestCustomDelimiters(t *testing.T) {
	r := decode(t, "custom-delimiters.hl7", Decoder{})
	if r.ControlID != "CU;9" || r.Version != "2.7" || r.Patient[0].Value != "AB:12" {
		t.Errorf("control id %q, version %q, patient %+v", r.ControlID, r.Version, r.Patient)
	}
	if r.Bed != (Bed{PointOfCare: "ICU&2", Room: "R1", Bed: "B;3"}) {
		t.Errorf("bed %+v", r.Bed)
	}
	checkRows(t, r, []row{{"1.1.1.1", 150456, 97, "%", "2024-03-05T10:14:55Z", false, 0}})
	checkProblems(t, r, []string{"OBX(2)-5 (segment 6): value was truncated by the sender"})
}

// msg builds a PCD-01 message around the given OBX rows.
func msg(header string, rows ...string) *hl7.Message {
	if header == "" {
		header = "MSH|^~\\&|APP^0019A1FFFE000001^EUI-64|FAC|||20240305101500+0000||ORU^R01^ORU_R01|ID1|P|2.6|||||||||^^" + ProfileOID + "^ISO"
	}
	s := header + "\rOBR|1|||x|||20240305101400+0000\r" + strings.Join(rows, "\r")
	m, err := hl7.Parse([]byte(s), hl7.Limits{})
	if err != nil {
		panic(err)
	}
	return m
}

func TestRows(t *testing.T) {
	cases := []struct {
		name, obx string
		code      uint32
		value     float64
		unit      string
		problem   string
	}{
		{"number^REFID^MDC", "OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1|97|262688^MDC_DIM_PERCENT^MDC|||||R", 150456, 97, "%", ""},
		{"number only", "OBX|1|NM|150456|1|97|262688|||||R", 150456, 97, "%", ""},
		{"reference id only", "OBX|1|NM|^MDC_PULS_OXIM_SAT_O2^MDC|1|97|^MDC_DIM_PERCENT^MDC|||||R", 150456, 97, "%", ""},
		{"MDIL hex upper case", "OBX|1|NM|0002-4BB8^^MDC|1|97|0004-0220^^MDC|||||R", 150456, 97, "%", ""},
		{"term code without partition", "OBX|1|NM|19384^MDC_PULS_OXIM_SAT_O2^MDC|1|97|544^MDC_DIM_PERCENT^MDC|||||R", 150456, 97, "%", ""},
		{"alternate coding is MDC", "OBX|1|NM|59408-5^SpO2^LN^150456^MDC_PULS_OXIM_SAT_O2^MDC|1|97|%^%^UCUM|||||R", 150456, 97, "%", ""},
		{"UCUM without system", "OBX|1|NM|150456^^MDC|1|97|%|||||R", 150456, 97, "%", ""},
		{"NIBP cuff (Mindray)", "OBX|1|NM|150301^MDC_PRESS_CUFF_SYS^MDC|1|120|266016^MDC_DIM_MMHG^MDC|||||R", 150301, 120, "mm[Hg]", ""},
		{"NIBP non-invasive (IntelliVue)", "OBX|1|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC|1|120|266016^MDC_DIM_MMHG^MDC|||||R", 150021, 120, "mm[Hg]", ""},
		{"NIBP in kPa", "OBX|1|NM|150022^MDC_PRESS_BLD_NONINV_DIA^MDC|1|10|265987^MDC_DIM_KILO_PASCAL^MDC|||||F", 150022, 75.00615758, "mm[Hg]", ""},
		{"status empty", "OBX|1|NM|150456^^MDC|1|97|262688|||||", 150456, 97, "%", ""},
		{"negative and decimal", "OBX|1|NM|150344^^MDC|1|-0.5|268192|||||R", 150344, -0.5, "Cel", ""},
		{"spaces around", "OBX|1|NM| 150456 ^^MDC|1| 97 | 262688 |||||R", 150456, 97, "%", ""},

		{"LOINC only", "OBX|1|NM|59408-5^SpO2^LN|1|97|%|||||R", 0, 0, "", "OBX-3 (segment 3): observation identifier is not coded in MDC"},
		{"unknown code", "OBX|1|NM|199999^MDC_X^MDC|1|97|%|||||R", 0, 0, "", "OBX-3 (segment 3): MDC code 199999 is not in the gateway's table"},
		{"code and refid disagree", "OBX|1|NM|147842^MDC_PULS_OXIM_SAT_O2^MDC|1|97|%|||||R", 0, 0, "", "OBX-3 (segment 3): MDC code 147842 and reference id MDC_PULS_OXIM_SAT_O2 disagree"},
		{"unknown code with known refid", "OBX|1|NM|150999^MDC_PULS_OXIM_SAT_O2^MDC|1|97|%|||||R", 0, 0, "", "OBX-3 (segment 3): MDC code 150999 is not the code of MDC_PULS_OXIM_SAT_O2"},
		{"bad hex", "OBX|1|NM|0002-4bxz^^MDC|1|97|%|||||R", 0, 0, "", "OBX-3 (segment 3): MDC code is not a number or MDIL hex"},
		{"no code", "OBX|1|NM|^^MDC|1|97|%|||||R", 0, 0, "", "OBX-3 (segment 3): no MDC code this gateway knows"},
		{"no unit", "OBX|1|NM|150456^^MDC|1|97||||||R", 0, 0, "", "OBX-6 (segment 3): no unit"},
		{"unknown unit", "OBX|1|NM|150456^^MDC|1|97|262999^^MDC|||||R", 0, 0, "", "OBX-6 (segment 3): MDC unit 262999 is not in the gateway's table"},
		{"wrong unit for the term", "OBX|1|NM|150456^^MDC|1|97|266016^MDC_DIM_MMHG^MDC|||||R", 0, 0, "", `OBX-6 (segment 3): unit "mm[Hg]" does not fit MDC_PULS_OXIM_SAT_O2`},
		{"unit code and refid disagree", "OBX|1|NM|150456^^MDC|1|97|262688^MDC_DIM_MMHG^MDC|||||R", 0, 0, "", "OBX-6 (segment 3): MDC unit 262688 and reference id MDC_DIM_MMHG disagree"},
		{"null value", `OBX|1|NM|150456^^MDC|1|""|262688|||||R`, 0, 0, "", "OBX-5 (segment 3): no value"},
		{"two values", "OBX|1|NM|150456^^MDC|1|97~98|262688|||||R", 0, 0, "", "OBX-5 (segment 3): more than one value"},
		{"hex value", "OBX|1|NM|150456^^MDC|1|0x61|262688|||||R", 0, 0, "", "OBX-5 (segment 3): value is not a number"},
		{"infinite value", "OBX|1|NM|150456^^MDC|1|1e999|262688|||||R", 0, 0, "", "OBX-5 (segment 3): value is not a number"},
		{"Inf value", "OBX|1|NM|150456^^MDC|1|Inf|262688|||||R", 0, 0, "", "OBX-5 (segment 3): value is not a number"},
		{"no value type", "OBX|1||150456^^MDC|1|97|262688|||||R", 0, 0, "", "OBX-2 (segment 3): no value type"},
		{"long value type not quoted", "OBX|1|Jane Doe|150456^^MDC|1|97|262688|||||R", 0, 0, "", "OBX-2 (segment 3): value type (unreadable) is not decoded (only NM)"},
		{"status W", "OBX|1|NM|150456^^MDC|1|97|262688|||||W", 0, 0, "", `OBX-11 (segment 3): result status "W" carries no value to chart`},
		{"bad OBX-14", "OBX|1|NM|150456^^MDC|1|97|262688|||||R|||20241305101400+0000", 0, 0, "", "OBX-14 (segment 3): OBX-14 is not a time"},
		{"not-available flag", "OBX|1|NM|150456^^MDC|1|97|262688||NOT_AVAILABLE|||R", 0, 0, "", "OBX-8 (segment 3): the device marks the value not-available"},
	}
	for _, c := range cases {
		r, err := (&Decoder{}).Decode(msg("", c.obx), received)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if c.problem != "" {
			if len(r.Observations) != 0 || len(r.Problems) != 1 || r.Problems[0].String() != c.problem {
				t.Errorf("%s: %d observations, problems %v; want %q", c.name, len(r.Observations), r.Problems, c.problem)
			}
			continue
		}
		if len(r.Problems) != 0 || len(r.Observations) != 1 {
			t.Errorf("%s: problems %v", c.name, r.Problems)
			continue
		}
		o := r.Observations[0]
		if o.Code.Code != c.code || math.Abs(o.Value-c.value) > 1e-6 || o.Unit != c.unit {
			t.Errorf("%s: %d %v %s; want %d %v %s", c.name, o.Code.Code, o.Value, o.Unit, c.code, c.value, c.unit)
		}
	}
}

func TestTimeFallback(t *testing.T) {
	row := "OBX|1|NM|150456^^MDC|1|97|262688|||||R"
	head := "MSH|^~\\&|A|F|||20240305101500+0000||ORU^R01|ID|P|2.6|||||||||^^" + ProfileOID
	for name, c := range map[string]struct {
		m    string
		want string
	}{
		"OBX-14":           {head + "\rOBR|1|||x|||20240305101400+0000\r" + row + "|||20240305101300+0000", "2024-03-05T10:13:00Z"},
		"OBR-7":            {head + "\rOBR|1|||x|||20240305101400+0000\r" + row, "2024-03-05T10:14:00Z"},
		"MSH-7, empty OBR": {head + "\rOBR|1|||x\r" + row, "2024-03-05T10:15:00Z"},
		"MSH-7, no OBR":    {head + "\r" + row, "2024-03-05T10:15:00Z"},
		"second OBR":       {head + "\rOBR|1|||x|||20240305101400+0000\rOBR|2|||x|||20240305100000+0000\r" + row, "2024-03-05T10:00:00Z"},
	} {
		m, err := hl7.Parse([]byte(c.m), hl7.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		r, err := (&Decoder{}).Decode(m, received)
		if err != nil || len(r.Observations) != 1 {
			t.Errorf("%s: %v %v", name, err, r.Problems)
			continue
		}
		if got := r.Observations[0].DeviceTime.UTC().Format(time.RFC3339); got != c.want {
			t.Errorf("%s: %s, want %s", name, got, c.want)
		}
	}
}

func TestTrainingMessagesAreNotCharted(t *testing.T) {
	h := "MSH|^~\\&|A|F|||20240305101500+0000||ORU^R01|ID|T|2.6|||||||||^^" + ProfileOID
	r, err := (&Decoder{}).Decode(msg(h, "OBX|1|NM|150456^^MDC|1|97|262688|||||R"), received)
	if err != nil || len(r.Observations) != 1 || r.Observations[0].Chartable() || !r.Observations[0].Test {
		t.Errorf("%v %+v", err, r)
	}
}

func TestMessageErrors(t *testing.T) {
	base := "MSH|^~\\&|A|F|||20240305101500+0000||ORU^R01|ID|P|2.6|||||||||^^" + ProfileOID
	cases := []struct {
		name, m string
		allow   bool
		outcome hl7.Outcome
		code    int
		where   string
	}{
		{"ADT", strings.Replace(base, "ORU^R01", "ADT^A01", 1), false, hl7.Rejected, hl7.ErrUnsupportedMessageType, "MSH-9 (segment 1)"},
		{"ORU^R30", strings.Replace(base, "ORU^R01", "ORU^R30", 1), false, hl7.Rejected, hl7.ErrUnsupportedMessageType, "MSH-9 (segment 1)"},
		{"version 3", strings.Replace(base, "|2.6|", "|3.0|", 1), false, hl7.Rejected, hl7.ErrUnsupportedVersion, "MSH-12 (segment 1)"},
		{"no control id", strings.Replace(base, "|ID|", "||", 1), false, hl7.Failed, hl7.ErrRequiredFieldMissing, "MSH-10 (segment 1)"},
		{"profile by name only", strings.Replace(base, "^^"+ProfileOID, "IHE_PCD_001^IHE PCD", 1), false, hl7.Rejected, hl7.ErrUnsupportedMessageType, "MSH-21 (segment 1)"},
		{"other profile, allowed missing", strings.Replace(base, ProfileOID, "1.2.3", 1), true, hl7.Rejected, hl7.ErrUnsupportedMessageType, "MSH-21 (segment 1)"},
		{"no profile", strings.Replace(base, "|||||||||^^"+ProfileOID, "", 1), false, hl7.Rejected, hl7.ErrUnsupportedMessageType, "MSH-21 (segment 1)"},
		{"two patients", base + "\rPID|||1\rPID|||2", false, hl7.Failed, hl7.ErrSegmentSequence, "PID(2) (segment 3)"},
		{"two beds", base + "\rPV1||I|A^B^C\rPV1||I|A^B^D", false, hl7.Failed, hl7.ErrSegmentSequence, "PV1(2) (segment 3)"},
	}
	for _, c := range cases {
		m, err := hl7.Parse([]byte(c.m), hl7.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = (&Decoder{AllowMissingProfile: c.allow}).Decode(m, received)
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("%s: err = %v", c.name, err)
			continue
		}
		if e.Outcome != c.outcome || e.Code != c.code || e.Where.String() != c.where {
			t.Errorf("%s: %v (outcome %d, code %d, at %s)", c.name, err, e.Outcome, e.Code, e.Where)
		}
		// The error is what the acknowledgement says.
		ack := hl7.Acks(m, e.Reply(), hl7.AckOptions{ControlID: "A"})
		am, err := hl7.Parse(ack[0], hl7.Limits{})
		if err != nil || am.Field("MSA", 1, 1).Text() != c.outcome.Code(false) || am.Field("ERR", 1, 2).Comp(1).Text() != e.Where.Segment {
			t.Errorf("%s: ack %q", c.name, ack[0])
		}
	}
	m, _ := hl7.Parse([]byte(strings.Replace(base, "|||||||||^^"+ProfileOID, "", 1)), hl7.Limits{})
	r, err := (&Decoder{AllowMissingProfile: true}).Decode(m, received)
	if err != nil || r.ProfileMatched {
		t.Errorf("missing profile allowed: %v, matched %v", err, r.ProfileMatched)
	}
}

func TestEUI64(t *testing.T) {
	for in, want := range map[string]string{
		"0019a1fffe000001":        "0019A1FFFE000001",
		"00-19-A1-FF-FE-00-00-01": "0019A1FFFE000001",
		"0019A1FFFE00000":         "",
		"0019A1FFFE0000011":       "",
		"0019A1FFFE00000G":        "",
		"EUI":                     "",
	} {
		if got := eui64(in); got != want {
			t.Errorf("eui64(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHDURI(t *testing.T) {
	for h, want := range map[HD]string{
		{Namespace: "CITYHOSP", UniversalID: "1.2.840.99999.1.1", UniversalIDType: "ISO"}:             "urn:oid:1.2.840.99999.1.1",
		{Namespace: "", UniversalID: "https://hosp.example/mrn", UniversalIDType: "URI"}:              "https://hosp.example/mrn",
		{Namespace: "", UniversalID: "A0B1C2D3-0000-4000-8000-000000000001", UniversalIDType: "UUID"}: "urn:uuid:a0b1c2d3-0000-4000-8000-000000000001",
		{Namespace: "Hospital", UniversalID: "", UniversalIDType: ""}:                                 "",
		{Namespace: "", UniversalID: "", UniversalIDType: "ISO"}:                                      "",
		{Namespace: "X", UniversalID: "0019A1FFFE000001", UniversalIDType: "EUI-64"}:                  "",
	} {
		if got := h.URI(); got != want {
			t.Errorf("%+v.URI() = %q, want %q", h, got, want)
		}
	}
}
