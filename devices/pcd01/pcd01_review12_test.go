package pcd01

import (
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices/hl7"
)

func parse12(t *testing.T, s string) *hl7.Message {
	t.Helper()
	m, err := hl7.Parse([]byte(s), hl7.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

const head12 = "MSH|^~\\&|APP^0019A1FFFE000001^EUI-64|FAC|||20241103013000-0500||ORU^R01^ORU_R01|ID1|P|2.6|||||||||^^" + ProfileOID + "^ISO"

// A sender without UTC offsets, in a zone with daylight saving: the hour
// the clocks go back happens twice, and a row timed in it could belong to
// either (a transfer at 01:45 the first time decides the patient). The
// hour they go forward does not exist. Neither is charted at a guess.
func TestDaylightSavingTimesAreProblems_review12(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no zone data:", err)
	}
	d := Decoder{Zone: ny}
	row := "OBX|1|NM|150456^^MDC|1|97|262688|||||R|||"
	for _, c := range []struct{ name, msg, problem string }{
		{"OBX-14 in the repeated hour", head12 + "\r" + row + "202411030130",
			"OBX-14 (segment 2): OBX-14 has no UTC offset and falls in the hour that the zone repeats (daylight saving ends)"},
		{"OBR-7 in the repeated hour", head12 + "\rOBR|1|||x|||202411030145\r" + row,
			"OBR-7 (segment 2): OBR-7 has no UTC offset and falls in the hour that the zone repeats (daylight saving ends)\n" +
				"OBX-14 (segment 3): OBR-7 has no UTC offset and falls in the hour that the zone repeats (daylight saving ends)"},
		{"OBX-14 in the skipped hour", head12 + "\r" + row + "202403100230",
			"OBX-14 (segment 2): OBX-14 is a local time that the zone skipped (daylight saving begins)"},
	} {
		r, err := d.Decode(parse12(t, c.msg), received)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if len(r.Observations) != 0 {
			t.Errorf("%s: charted at %v", c.name, r.Observations[0].DeviceTime)
		}
		checkProblems(t, r, strings.Split(c.problem, "\n"))
	}
	// Just outside the repeated hour, and inside it with an offset: charted.
	for _, ts := range []string{"202411030059", "202411030200", "202411030130-0400", "202411030130-0500"} {
		r, err := d.Decode(parse12(t, head12+"\r"+row+ts), received)
		if err != nil || len(r.Observations) != 1 {
			t.Errorf("%s: %v %v", ts, err, r.Problems)
		}
	}
}

// The zone configured for a sender is a promise about its clock. When its
// MSH-7 carries an offset that the zone does not have at that instant,
// the promise is broken (a wrong zone in the config, a station set to
// another zone), and rows without their own offset would be charted hours
// off: they are problems, never read in the wrong zone.
func TestConfiguredZoneContradictedByMSH7_review12(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no zone data:", err)
	}
	head := func(msh7 string) string {
		return "MSH|^~\\&|APP|FAC|||" + msh7 + "||ORU^R01|ID1|P|2.6|||||||||^^" + ProfileOID
	}
	row := "OBX|1|NM|150456^^MDC|1|97|262688|||||R|||"
	// MSH-7 in +0100 while the zone says New York (-0500 in March).
	r, err := (&Decoder{Zone: ny}).Decode(parse12(t, head("20240305101500+0100")+"\r"+row+"202403051014\r"+row+"202403051014+0100"), received)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Observations) != 1 || r.Observations[0].DeviceTime.UTC().Format(time.RFC3339) != "2024-03-05T09:14:00Z" {
		for _, o := range r.Observations {
			t.Logf("charted at %s", o.DeviceTime.UTC().Format(time.RFC3339))
		}
		t.Errorf("%d observations, want only the row with its own offset", len(r.Observations))
	}
	checkProblems(t, r, []string{"OBX-14 (segment 2): OBX-14 has no UTC offset, and the zone configured for the sender disagrees with the offset of MSH-7"})

	// OBR-7 without offset, MSH-7 contradicting: the same.
	r, err = (&Decoder{Zone: ny}).Decode(parse12(t, head("20240305101500+0100")+"\rOBR|1|||x|||202403051014\r"+row), received)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Observations) != 0 {
		t.Errorf("charted at %v", r.Observations[0].DeviceTime)
	}

	// MSH-7 agreeing with the zone (summer and winter), or without an
	// offset: rows are read in the zone.
	for _, msh7 := range []string{"20240305101500-0500", "20240705101500-0400", "20240305101500"} {
		r, err := (&Decoder{Zone: ny}).Decode(parse12(t, head(msh7)+"\r"+row+"202403051014"), received)
		if err != nil || len(r.Observations) != 1 || len(r.Problems) != 0 {
			t.Errorf("MSH-7 %s: %v %v", msh7, err, r.Problems)
		}
	}
}

// OBX-4 numbers the containment tree within its OBR: each OBR group
// begins again at MDS 1 (GE: "the first OBX following the OBR segment is
// always 1.0.0.0"). A row without OBX-18 in the second group must not take
// the equipment that the first group's MDS 1 named: it would be charted
// as another device's (and corrected by that device's clock).
func TestEquipmentDoesNotCrossOBRGroups_review12(t *testing.T) {
	m := parse12(t, head12+
		"\rOBR|1|||x|||20240305101400+0000"+
		"\rOBX|1||69965^^MDC|1.0.0.0|||||||X|||||||1111111111111111^PUMP"+
		"\rOBX|2|NM|150456^^MDC|1.1.1.1|97|262688|||||R"+
		"\rOBR|2|||x|||20240305101400+0000"+
		"\rOBX|3|NM|150456^^MDC|1.1.1.1|98|262688|||||R"+
		"\rOBR|3|||x|||20240305101400+0000"+
		"\rOBX|4||69965^^MDC|1.0.0.0|||||||X|||||||2222222222222222^MON"+
		"\rOBX|5|NM|150456^^MDC|1.1.1.1|99|262688|||||R")
	r, err := (&Decoder{}).Decode(m, received)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"1111111111111111", "0019A1FFFE000001", "2222222222222222"}
	if len(r.Observations) != len(want) {
		t.Fatalf("%d observations, problems %v", len(r.Observations), r.Problems)
	}
	for i, w := range want {
		if got := r.Observations[i].Device; got != w {
			t.Errorf("row %d: device %s, want %s", i, got, w)
		}
	}
}

// OBX-11 C (corrected) and A (amended) replace a result sent before. The
// gateway names an Observation by device, code and time and writes it
// with a conditional create, so a correction charted as a new reading is
// dropped by the FHIR server without a word while the wrong value stays
// in the chart. Until corrections are applied, they are problems that
// someone sees.
func TestCorrectionsAreNotChartedAsNewReadings_review12(t *testing.T) {
	for _, st := range []string{"C", "A", "c"} {
		r, err := (&Decoder{}).Decode(msg("", "OBX|1|NM|150456^^MDC|1|97|262688|||||"+st), received)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Observations) != 0 {
			t.Errorf("status %s: charted as a new reading", st)
		}
		checkProblems(t, r, []string{`OBX-11 (segment 3): result status "` + strings.ToUpper(st) + `" corrects a result sent before; corrections are not applied`})
	}
}

// One bed per message: a second PV1 is refused even when the first named
// no bed.
func TestSecondPV1Refused_review12(t *testing.T) {
	for _, pv1 := range []string{"PV1||I\rPV1||I|ICU^1^2", "PV1||I|ICU^1^1\rPV1||I"} {
		_, err := (&Decoder{}).Decode(parse12(t, head12+"\r"+pv1+"\rOBX|1|NM|150456^^MDC|1|97|262688|||||R|||20240305101400+0000"), received)
		if err == nil || !strings.Contains(err.Error(), "a second PV1") {
			t.Errorf("%q: %v, want a second PV1 refused", pv1, err)
		}
	}
}
