package hl7

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var ackTime = time.Date(2024, 3, 5, 10, 15, 1, 0, time.FixedZone("", 3600))

func header(version, accept, app string) string {
	return "MSH|^~\\&|CENTRAL^0019A1FFFE000001^EUI-64|WARD4|WARDGATE|HOSP|20240305101500||ORU^R01^ORU_R01|MSG\\F\\7|P|" +
		version + "|||" + accept + "|" + app + "||UNICODE UTF-8\rOBX|1|NM|150456^^MDC||97\r"
}

func acksFor(t *testing.T, msg string, r Reply) []string {
	t.Helper()
	var out []string
	for _, a := range Acks(mustParse(t, msg), r, AckOptions{ControlID: "ACK1", Time: ackTime}) {
		out = append(out, string(a))
	}
	return out
}

func TestAckModes(t *testing.T) {
	cases := []struct {
		name, accept, app string
		outcome           Outcome
		want              []string // MSA-1 of each acknowledgement
	}{
		{"original accepted", "", "", Accepted, []string{"AA"}},
		{"original failed", "", "", Failed, []string{"AE"}},
		{"original rejected", "", "", Rejected, []string{"AR"}},
		{"original busy", "", "", Busy, []string{"AE"}},
		{"GE NE|AL accepted", "NE", "AL", Accepted, []string{"AA"}},
		{"GE NE|AL failed", "NE", "AL", Failed, []string{"AE"}},
		{"Mindray AL|NE accepted: no application ack", "AL", "NE", Accepted, []string{"CA"}},
		{"Mindray AL|NE rejected", "AL", "NE", Rejected, []string{"CR"}},
		{"Mindray AL|NE busy", "AL", "NE", Busy, []string{"CE"}},
		{"AL|AL accepted: both", "AL", "AL", Accepted, []string{"CA", "AA"}},
		{"AL|AL failed: one error report", "AL", "AL", Failed, []string{"CE"}},
		{"NE|NE: nothing", "NE", "NE", Accepted, nil},
		{"NE|NE failed: nothing", "NE", "NE", Failed, nil},
		{"ER|NE accepted: nothing", "ER", "NE", Accepted, nil},
		{"ER|NE failed", "ER", "NE", Failed, []string{"CE"}},
		{"SU|ER accepted", "SU", "ER", Accepted, []string{"CA"}},
		{"SU|ER failed: application error only", "SU", "ER", Failed, []string{"AE"}},
		{"only MSH-16 given: accept ack taken as AL", "", "NE", Accepted, []string{"CA"}},
		{"only MSH-15 given: no application ack", "AL", "", Accepted, []string{"CA"}},
	}
	for _, c := range cases {
		acks := acksFor(t, header("2.6", c.accept, c.app), Reply{Outcome: c.outcome})
		var got []string
		for _, a := range acks {
			m := mustParse(t, a)
			got = append(got, m.Field("MSA", 1, 1).Text())
		}
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestAckAccepted(t *testing.T) {
	got := acksFor(t, header("2.6", "", ""), Reply{})
	want := "MSH|^~\\&|WARDGATE|HOSP|CENTRAL^0019A1FFFE000001^EUI-64|WARD4|20240305101501+0100||ACK^R01^ACK|ACK1|P|2.6||||||UNICODE UTF-8\r" +
		"MSA|AA|MSG\\F\\7\r"
	if len(got) != 1 || got[0] != want {
		t.Errorf("ack\n%q\nwant\n%q", got, want)
	}
	m := mustParse(t, got[0])
	if m.Field("MSA", 1, 2).Text() != "MSG|7" {
		t.Errorf("MSA-2 %q does not echo MSH-10", m.Field("MSA", 1, 2).Text())
	}
}

func TestAckEnhancedMarksNoFurtherAck(t *testing.T) {
	got := acksFor(t, header("2.6", "AL", "NE"), Reply{})
	m := mustParse(t, got[0])
	if m.Field("MSH", 1, 15).Text() != "NE" || m.Field("MSH", 1, 16).Text() != "NE" {
		t.Errorf("enhanced ack asks for acks itself: %q", got[0])
	}
}

func TestAckErrorV25(t *testing.T) {
	r := Reply{Outcome: Failed, Code: ErrDataType, Where: Location{Segment: "OBX", Seq: 3, Index: 7, Field: 5, Comp: 1}, Text: "not a number"}
	got := acksFor(t, header("2.5.1", "", ""), r)
	if len(got) != 1 {
		t.Fatalf("%d acks", len(got))
	}
	m := mustParse(t, got[0])
	checks := map[string]string{
		"MSA-1":   "AE",
		"MSA-2":   "MSG|7",
		"MSA-3":   "not a number",
		"ERR-1":   "",
		"ERR-2":   "OBX^3^5^^1",
		"ERR-3":   "102^Data type error^HL70357",
		"ERR-4":   "E",
		"ERR-8":   "not a number",
		"MSH-9":   "ACK^R01^ACK",
		"MSH-12":  "2.5.1",
		"MSH-3.2": "",
		"MSH-5.2": "0019A1FFFE000001",
	}
	for p, want := range checks {
		f, _ := m.Get(p)
		if f.Raw() != want && f.Text() != want {
			t.Errorf("%s = %q, want %q\n%q", p, f.Raw(), want, got[0])
		}
	}
}

func TestAckErrorBeforeV25(t *testing.T) {
	r := Reply{Outcome: Failed, Code: ErrRequiredFieldMissing, Where: Location{Segment: "PV1", Seq: 1, Index: 2, Field: 3}}
	got := acksFor(t, header("2.3", "", ""), r)
	m := mustParse(t, got[0])
	for p, want := range map[string]string{
		"MSA-1":  "AE",
		"MSA-6":  "101^Required field missing^HL70357",
		"ERR-1":  "PV1^1^3^101&Required field missing&HL70357",
		"ERR-2":  "",
		"MSH-9":  "ACK^R01",
		"MSH-12": "2.3",
	} {
		if f, _ := m.Get(p); f.Raw() != want {
			t.Errorf("%s = %q, want %q\n%q", p, f.Raw(), want, got[0])
		}
	}
}

func TestAckBusyIsRetryable(t *testing.T) {
	for _, v := range []string{"2.6", "2.3.1"} {
		got := acksFor(t, header(v, "", ""), Reply{Outcome: Busy})
		m := mustParse(t, got[0])
		if m.Field("MSA", 1, 1).Text() != "AE" || m.Field("MSA", 1, 3).Text() == "" {
			t.Errorf("%s: %q", v, got[0])
		}
		if v == "2.6" {
			if m.Field("ERR", 1, 5).Comp(1).Text() != RetryCode || m.Field("ERR", 1, 3).Comp(1).Text() != "207" {
				t.Errorf("%s: busy ack without its retry code: %q", v, got[0])
			}
		} else if m.Field("MSH", 1, 9).Raw() != "ACK^R01^ACK" {
			t.Errorf("2.3.1 MSH-9 = %q", m.Field("MSH", 1, 9).Raw())
		}
	}
}

func TestAckRejectedDefaultCode(t *testing.T) {
	got := acksFor(t, header("2.6", "", ""), Reply{Outcome: Rejected})
	m := mustParse(t, got[0])
	if m.Field("MSA", 1, 1).Text() != "AR" || m.Field("ERR", 1, 3).Comp(1).Text() != "200" || m.Field("ERR", 1, 2).Raw() != "" {
		t.Errorf("%q", got[0])
	}
}

func TestAckOwnDelimiters(t *testing.T) {
	msg := "MSH#!*$%~#APP#FAC#RCV#RF#20240101120000##ORU!R01!ORU_R01#ID$F$1#P#2.7\rOBX#1\r"
	a := Acks(mustParse(t, msg), Reply{Outcome: Failed, Text: "bad # here", Where: Location{Segment: "OBX", Seq: 1, Field: 5}}, AckOptions{ControlID: "X", Time: ackTime})
	s := string(a[0])
	if !strings.HasPrefix(s, "MSH#!*$%~#RCV#RF#APP#FAC#") {
		t.Errorf("ack not in the message's delimiters: %q", s)
	}
	m := mustParse(t, s)
	if m.Field("MSA", 1, 2).Text() != "ID#1" || m.Field("MSA", 1, 3).Text() != "bad # here" || m.Field("ERR", 1, 2).Raw() != "OBX!1!5" {
		t.Errorf("%q", s)
	}
}

func TestAckWithoutMessage(t *testing.T) {
	a := Acks(nil, Reply{Outcome: Failed, Text: "no MSH"}, AckOptions{ControlID: "X", Time: ackTime, Application: "WARDGATE", Facility: "W4"})
	m := mustParse(t, string(a[0]))
	if m.Field("MSA", 1, 1).Text() != "AE" || m.Field("MSA", 1, 2).Text() != "" || m.Field("MSH", 1, 3).Text() != "WARDGATE" {
		t.Errorf("%q", a[0])
	}
}

// TestAckForUnparsedMessage: a message whose body does not parse is
// answered from its header, with ERR naming where parsing stopped.
func TestAckForUnparsedMessage(t *testing.T) {
	data := []byte(header("2.6", "", "") + "PID|1\rob|x\r")
	_, err := Parse(data, Limits{})
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v", err)
	}
	h, err := ParseHeader(data)
	if err != nil {
		t.Fatal(err)
	}
	a := Acks(h, pe.Reply(), AckOptions{ControlID: "X", Time: ackTime})
	m := mustParse(t, string(a[0]))
	if m.Field("MSA", 1, 1).Text() != "AE" || m.Field("MSA", 1, 2).Text() != "MSG|7" || m.Field("ERR", 1, 3).Comp(1).Text() != "100" {
		t.Errorf("%q", a[0])
	}
}
