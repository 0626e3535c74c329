package adt

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices/hl7"
)

var cet = time.FixedZone("CET", 3600)

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

func parse(t testing.TB, s string) *hl7.Message {
	t.Helper()
	m, err := hl7.Parse([]byte(strings.ReplaceAll(s, "\n", "\r")), hl7.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func values(ids []hl7.CX) string {
	var v []string
	for _, id := range ids {
		v = append(v, id.Value+"@"+id.Authority.Namespace)
	}
	return strings.Join(v, ",")
}

func bed(p hl7.PL) string {
	if p.IsZero() {
		return ""
	}
	return p.PointOfCare + "/" + p.Room + "/" + p.Bed
}

// Each trigger's fixture: what the event says of trigger, time, patient
// and beds, read the way HL7 v2.5 lays each one out.
func TestDecodeEachTrigger(t *testing.T) {
	for _, c := range []struct {
		file, trigger, at, patient, bed, prior string
	}{
		// EVN-6 (occurred) wins over EVN-2 and MSH-7.
		{"a01.hl7", "A01", "2024-03-05T09:00:00+01:00", "4711@HOSP,998877@NHS", "ICU/01/7", ""},
		// PV1-3 the new bed, PV1-6 the one left.
		{"a02.hl7", "A02", "2024-03-05T12:00:00+01:00", "4711@HOSP", "ICU/02/8", "ICU/01/7"},
		// No EVN-6: MSH-7, read in the sender's zone.
		{"a03.hl7", "A03", "2024-03-05T18:00:00+01:00", "4711@HOSP", "ICU/02/8", ""},
		// Registration without a bed (an outpatient).
		{"a04.hl7", "A04", "2024-03-05T09:15:00+01:00", "4712@HOSP", "", ""},
		{"a08.hl7", "A08", "2024-03-05T12:55:00+01:00", "4711@HOSP", "ICU/03/9", ""},
		{"a11.hl7", "A11", "2024-03-05T09:30:00+01:00", "4711@HOSP", "ICU/01/7", ""},
		// PV1-3 where the patient returns to, PV1-6 the cancelled transfer's bed.
		{"a12.hl7", "A12", "2024-03-05T12:10:00+01:00", "4711@HOSP", "ICU/01/7", "ICU/02/8"},
		{"a13.hl7", "A13", "2024-03-05T18:10:00+01:00", "4711@HOSP", "ICU/02/8", ""},
		{"a17.hl7", "A17", "2024-03-05T14:00:00+01:00", "4711@HOSP", "ICU/02/8", "ICU/01/7"},
		{"a40.hl7", "A40", "2024-03-05T15:00:00+01:00", "4711@HOSP", "", ""},
		// A v2.1 sender: MSH-9 without its trigger, EVN-1 names it.
		{"evn1-trigger.hl7", "A03", "1999-03-05T09:15:00+01:00", "4711@HOSP", "ICU/01/7", ""},
	} {
		t.Run(c.file, func(t *testing.T) {
			e, err := Decode(load(t, c.file), cet)
			if err != nil {
				t.Fatal(err)
			}
			if e.Trigger != c.trigger || !e.At.Equal(at(c.at)) || values(e.Patient) != c.patient || bed(e.Bed) != c.bed || bed(e.PriorBed) != c.prior {
				t.Fatalf("got %s at %v patient %s bed %q prior %q", e.Trigger, e.At, values(e.Patient), bed(e.Bed), bed(e.PriorBed))
			}
			if e.ControlID == "" || e.SendingApplication.Namespace == "" || e.Recorded.IsZero() {
				t.Fatalf("control id %q, sender %+v, recorded %v", e.ControlID, e.SendingApplication, e.Recorded)
			}
		})
	}
}

func TestDecodeDetails(t *testing.T) {
	e, err := Decode(load(t, "a01.hl7"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if e.ControlID != "MSG0001" || e.SendingApplication.Namespace != "EPICADT" || e.SendingFacility != (hl7.HD{Namespace: "GENHOSP", UniversalID: "1.2.3.9", UniversalIDType: "ISO"}) {
		t.Fatalf("header %+v", e)
	}
	if !e.Recorded.Equal(at("2024-03-05T09:14:55+01:00")) {
		t.Fatalf("recorded %v, want EVN-2", e.Recorded)
	}
	if e.Bed.Facility.Namespace != "GENHOSP" || e.Patient[0].Type != "MR" {
		t.Fatalf("bed %+v patient %+v", e.Bed, e.Patient)
	}

	// A17: the second PID/PV1 pair, each PV1-3 the patient's new bed.
	e, err = Decode(load(t, "a17.hl7"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if e.Other == nil || values(e.Other.Patient) != "4712@HOSP" || bed(e.Other.Bed) != "ICU/01/7" || e.Other.BedAt.String() != "PV1(2)-3 (segment 6)" {
		t.Fatalf("second party %+v", e.Other)
	}

	// A40: every PID/MRG pair.
	e, err = Decode(load(t, "a40.hl7"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Merges) != 2 || values(e.Merges[0].MergedAway) != "5555@HOSP" || values(e.Merges[1].Patient) != "4713@HOSP" || values(e.Merges[1].MergedAway) != "6666@HOSP,7777@HOSP" {
		t.Fatalf("merges %+v", e.Merges)
	}
	if e.Merges[1].MergedAt.String() != "MRG(2)-1 (segment 6)" {
		t.Fatalf("merged at %v", e.Merges[1].MergedAt)
	}
}

// A message's own encoding characters and escapes are used.
func TestDecodeCustomEncodingCharacters(t *testing.T) {
	e, err := Decode(load(t, "custom-delimiters.hl7"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if e.Trigger != "A01" || e.ControlID != "CUST-1" || bed(e.Bed) != "ICU/01/7" || !e.At.Equal(at("2024-03-05T09:10:00+01:00")) {
		t.Fatalf("event %+v", e)
	}
	if len(e.Patient) != 1 || e.Patient[0].Value != "47$11" || e.Patient[0].Authority != (hl7.HD{Namespace: "HOSP", UniversalID: "1.2.3", UniversalIDType: "ISO"}) {
		t.Fatalf("patient %+v", e.Patient)
	}
}

func TestDecodeRefusals(t *testing.T) {
	const head = "MSH|^~\\&|ADT|HOSP|||20240305091500+0100||"
	for _, c := range []struct {
		name, msg string
		zone      *time.Location
		outcome   hl7.Outcome
		code      int
		where     string
	}{
		{"not ADT", head + "ORU^R01|1|P|2.5\nPID|||1", nil, hl7.Rejected, hl7.ErrUnsupportedMessageType, "MSH-9"},
		{"version 3", head + "ADT^A01|1|P|3.0\nPID|||1", nil, hl7.Rejected, hl7.ErrUnsupportedVersion, "MSH-12"},
		{"A05 preadmit", head + "ADT^A05|1|P|2.5\nEVN|A05\nPID|||1\nPV1||I|ICU^^1", nil, hl7.Rejected, hl7.ErrUnsupportedEvent, "MSH-9"},
		{"no trigger", head + "ADT|1|P|2.5\nEVN\nPID|||1", nil, hl7.Failed, hl7.ErrRequiredFieldMissing, "MSH-9"},
		{"no control id", head + "ADT^A01||P|2.5\nPID|||1\nPV1||I|ICU^^1", nil, hl7.Failed, hl7.ErrRequiredFieldMissing, "MSH-10"},
		{"no PID", head + "ADT^A01|1|P|2.5\nEVN|A01\nPV1||I|ICU^^1", nil, hl7.Failed, hl7.ErrRequiredFieldMissing, "PID-3"},
		{"empty PID-3", head + "ADT^A01|1|P|2.5\nEVN|A01\nPID|1||^^^HOSP\nPV1||I|ICU^^1", nil, hl7.Failed, hl7.ErrRequiredFieldMissing, "PID-3"},
		{"admit without bed", head + "ADT^A01|1|P|2.5\nEVN|A01\nPID|||1\nPV1||I", nil, hl7.Failed, hl7.ErrRequiredFieldMissing, "PV1-3"},
		{"transfer without PV1", head + "ADT^A02|1|P|2.5\nEVN|A02\nPID|||1", nil, hl7.Failed, hl7.ErrRequiredFieldMissing, "PV1-3"},
		{"swap with one patient", head + "ADT^A17|1|P|2.5\nEVN|A17\nPID|||1\nPV1||I|ICU^^1", nil, hl7.Failed, hl7.ErrRequiredFieldMissing, "PID(2)-3"},
		{"swap without second bed", head + "ADT^A17|1|P|2.5\nEVN|A17\nPID|||1\nPV1||I|ICU^^1\nPID|||2\nPV1||I", nil, hl7.Failed, hl7.ErrRequiredFieldMissing, "PV1(2)-3"},
		{"merge without MRG", head + "ADT^A40|1|P|2.5\nEVN|A40\nPID|||1", nil, hl7.Failed, hl7.ErrRequiredFieldMissing, "MRG-1"},
		{"merge with empty MRG-1", head + "ADT^A40|1|P|2.5\nEVN|A40\nPID|||1\nMRG|", nil, hl7.Failed, hl7.ErrRequiredFieldMissing, "MRG-1"},
		{"no time", "MSH|^~\\&|ADT|HOSP|||||ADT^A01|1|P|2.5\nEVN|A01\nPID|||1\nPV1||I|ICU^^1", nil, hl7.Failed, hl7.ErrRequiredFieldMissing, "MSH-7"},
		// Never guessed: no offset and no zone.
		{"local time, no zone", "MSH|^~\\&|ADT|HOSP|||20240305091500||ADT^A01|1|P|2.5\nEVN|A01\nPID|||1\nPV1||I|ICU^^1", nil, hl7.Failed, hl7.ErrDataType, "MSH-7"},
		{"EVN-6 unreadable", head + "ADT^A01|1|P|2.5\nEVN|A01||||op|yesterday\nPID|||1\nPV1||I|ICU^^1", cet, hl7.Failed, hl7.ErrDataType, "EVN-6"},
		{"EVN-6 to the hour", head + "ADT^A01|1|P|2.5\nEVN|A01||||op|2024030509\nPID|||1\nPV1||I|ICU^^1", cet, hl7.Failed, hl7.ErrDataType, "EVN-6"},
		// MSH-7 says +0100; a zone of +0200 then contradicts it.
		{"zone contradicted", head + "ADT^A01|1|P|2.5\nEVN|A01||||op|202403050900\nPID|||1\nPV1||I|ICU^^1", time.FixedZone("", 7200), hl7.Failed, hl7.ErrDataType, "EVN-6"},
		// The hour the clocks go forward in Europe.
		{"skipped local time", "MSH|^~\\&|ADT|HOSP|||20240331023000||ADT^A01|1|P|2.5\nPID|||1\nPV1||I|ICU^^1", berlin(t), hl7.Failed, hl7.ErrDataType, "MSH-7"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := parse(t, c.msg+"\n")
			_, err := Decode(m, c.zone)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v, want *Error", err)
			}
			if e.Outcome != c.outcome || e.Code != c.code || !strings.HasPrefix(e.Where.String(), c.where+" ") {
				t.Fatalf("got %v %d at %v (%s), want %v %d at %s", e.Outcome, e.Code, e.Where, e.Reason, c.outcome, c.code, c.where)
			}
			r := e.Reply()
			if r.Outcome != c.outcome || r.Code != c.code || r.Text == "" {
				t.Fatalf("reply %+v", r)
			}
			for _, content := range []string{"yesterday", "ICU", "HOSP"} {
				if strings.Contains(err.Error(), content) {
					t.Fatalf("error %q quotes the message", err)
				}
			}
		})
	}
}

func berlin(t *testing.T) *time.Location {
	z, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no zone database: ", err)
	}
	return z
}

// FuzzDecode: no panic on any message; an error is always an *Error with
// an outcome and a location; an event has a control id, a known trigger,
// a time and a patient, and the bed its trigger needs.
func FuzzDecode(f *testing.F) {
	names, _ := os.ReadDir("testdata")
	for _, n := range names {
		if b, err := os.ReadFile("testdata/" + n.Name()); err == nil && !n.IsDir() {
			f.Add(b)
		}
	}
	f.Add([]byte("MSH|^~\\&|A|B|||20240305091500+0100||ADT^A17|1|P|2.5\rPID|||1\rPV1||I|X^^1\rPID|||2\rPV1||I|X^^2\r"))
	f.Add([]byte("MSH|^~\\&|A|B|||20240305091500||ADT^A40|1|P|2.5\rMRG|1\rPID|||2\r"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := hl7.Parse(data, hl7.Limits{MaxBytes: 1 << 16, MaxSegments: 500})
		if err != nil {
			return
		}
		for _, zone := range []*time.Location{nil, cet} {
			e, err := Decode(m, zone)
			if err != nil {
				var de *Error
				if !errors.As(err, &de) || de.Outcome != hl7.Failed && de.Outcome != hl7.Rejected || de.Where.Segment == "" || de.Code == 0 {
					t.Fatalf("error %v is not an *Error with an outcome, a code and a place", err)
				}
				continue
			}
			if e.ControlID == "" || !Supported(e.Trigger) || e.At.IsZero() || len(e.Patient) == 0 {
				t.Fatalf("event without control id, trigger, time or patient: %+v", e)
			}
			if needsBed[e.Trigger] && e.Bed.IsZero() {
				t.Fatalf("%s without a bed", e.Trigger)
			}
			if e.Trigger == "A17" && (e.Other == nil || e.Other.Bed.IsZero() || len(e.Other.Patient) == 0) {
				t.Fatal("a swap without its second party")
			}
			if e.Trigger == "A40" && len(e.Merges) == 0 {
				t.Fatal("a merge without merges")
			}
		}
	})
}
