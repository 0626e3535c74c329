package hl7

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const oru = "MSH|^~\\&|GW^0019A1FFFE000001^EUI-64|WARD4|WARDGATE|HOSP|20240305101500+0100||ORU^R01^ORU_R01|MSG0001|P|2.6|||NE|AL||UNICODE UTF-8|||IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO\r" +
	"PID|||HX1234^^^HOSP&1.2.3.4&ISO^MR~AB99^^^OTHER^PI||Doe^Jane\r" +
	"PV1||I|ICU^R2^B12^WARD4\r" +
	"OBR|1|||182777000^monitoring of patient^SCT|||20240305101455+0100\r" +
	"OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.1|97|262688^MDC_DIM_PERCENT^MDC|||||R\r" +
	"OBX|2|ST|0^Note^L|1.1.1.2|a \\F\\ b \\S\\ c \\T\\ d \\R\\ e \\E\\ f\\.br\\g \\X41420D\\ \\H\\bold\\N\\ \\Zlocal\\||||||R\r"

func mustParse(t testing.TB, s string) *Message {
	t.Helper()
	m, err := Parse([]byte(s), Limits{})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return m
}

func TestParseFields(t *testing.T) {
	m := mustParse(t, oru)
	if m.Len() != 6 {
		t.Fatalf("Len = %d, want 6", m.Len())
	}
	cases := []struct{ path, want string }{
		{"MSH-1", "|"},
		{"MSH-2", "^~\\&"},
		{"MSH-3.2", "0019A1FFFE000001"},
		{"MSH-9", "ORU^R01^ORU_R01"},
		{"MSH-9.2", "R01"},
		{"MSH-10", "MSG0001"},
		{"MSH-12", "2.6"},
		{"MSH-15", "NE"},
		{"MSH-16", "AL"},
		{"MSH-21.3", "1.3.6.1.4.1.19376.1.6.1.1.1"},
		{"PID-3", "HX1234^^^HOSP&1.2.3.4&ISO^MR~AB99^^^OTHER^PI"},
		{"PID-3(1)", "HX1234^^^HOSP&1.2.3.4&ISO^MR"},
		{"PID-3.1", "HX1234"},
		{"PID-3.4", "HOSP&1.2.3.4&ISO"},
		{"PID-3.4.2", "1.2.3.4"},
		{"PID-3(2).1", "AB99"},
		{"PID-3(2).5", "PI"},
		{"PID-3(3).1", ""},
		{"PID-5.2", "Jane"},
		{"PV1-3.1", "ICU"},
		{"PV1.3.3", "B12"},
		{"OBX(2)-5", "a | b ^ c & d ~ e \\ f\ng AB\r bold \\Zlocal\\"},
		{"OBX-5", "97"},
		{"OBX(3)-5", ""},
		{"OBX-99", ""},
		{"ZZZ-1", ""},
	}
	for _, c := range cases {
		f, err := m.Get(c.path)
		if err != nil {
			t.Errorf("Get(%q): %v", c.path, err)
			continue
		}
		if got := f.Text(); got != c.want {
			t.Errorf("%s = %q, want %q", c.path, got, c.want)
		}
	}
	if got := m.Field("OBX", 1, 3).Comp(2).Text(); got != "MDC_PULS_OXIM_SAT_O2" {
		t.Errorf("Field(OBX,1,3).Comp(2) = %q", got)
	}
	if s := m.Segment(4); s.ID() != "OBX" || s.Len() != 11 || s.Index() != 4 {
		t.Errorf("segment 4 = %s with %d fields", s.ID(), s.Len())
	}
	if n := m.Field("PID", 1, 3).Reps(); n != 2 {
		t.Errorf("PID-3 has %d repetitions, want 2", n)
	}
	if n := m.Field("PV1", 1, 3).Comps(); n != 4 {
		t.Errorf("PV1-3 has %d components, want 4", n)
	}
}

func TestParseDelimiters(t *testing.T) {
	// Any encoding characters: here field '#', component '!', repetition
	// '*', escape '$', sub-component '%' and the v2.7 truncation '~'.
	msg := "MSH#!*$%~#APP#FAC#RCV#RF#20240101120000##ORU!R01!ORU_R01#ID$F$1#P#2.7\r" +
		"OBX#1#NM#150456!MDC_PULS_OXIM_SAT_O2!MDC#1.1.1.1#9$S$7#262688#a*b%c!d#long text cut~#x$P$y\r"
	m := mustParse(t, msg)
	d := m.Delimiters()
	if d != (Delimiters{'#', '!', '*', '$', '%', '~'}) {
		t.Fatalf("delimiters %q", []byte{d.Field, d.Component, d.Repetition, d.Escape, d.Subcomponent, d.Truncation})
	}
	cases := []struct {
		path, want string
		trunc      bool
	}{
		{"MSH-1", "#", false},
		{"MSH-2", "!*$%~", false},
		{"MSH-9.2", "R01", false},
		{"MSH-10", "ID#1", false},
		{"OBX-3.2", "MDC_PULS_OXIM_SAT_O2", false},
		{"OBX-5", "9!7", false},
		{"OBX-7(2).1.2", "c", false},
		{"OBX-7(2).2", "d", false},
		{"OBX-8", "long text cut", true},
		{"OBX-9", "x~y", false},
	}
	for _, c := range cases {
		f, err := m.Get(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if f.Text() != c.want || f.Truncated() != c.trunc {
			t.Errorf("%s = %q truncated %v, want %q %v", c.path, f.Text(), f.Truncated(), c.want, c.trunc)
		}
	}
}

func TestParseLineEnds(t *testing.T) {
	want := mustParse(t, oru).String()
	for name, s := range map[string]string{
		"LF":           strings.ReplaceAll(oru, "\r", "\n"),
		"CRLF":         strings.ReplaceAll(oru, "\r", "\r\n"),
		"blank lines":  "\r\n" + strings.ReplaceAll(oru, "\r", "\r\r\n\n"),
		"no final end": strings.TrimSuffix(oru, "\r"),
	} {
		if got := mustParse(t, s).String(); got != want {
			t.Errorf("%s: got %q", name, got)
		}
	}
}

func TestParseErrors(t *testing.T) {
	big := "MSH|^~\\&|" + strings.Repeat("x", 100) + "\r"
	cases := []struct {
		name, msg string
		lim       Limits
		want      string // in the error
		loc       Location
	}{
		{"empty", "", Limits{}, "does not start with an MSH", Location{}},
		{"not MSH", "PID|1\r", Limits{}, "does not start with an MSH", Location{}},
		{"no separator", "MSH", Limits{}, "no field separator", Location{Segment: "MSH", Seq: 1, Field: 1}},
		{"letter separator", "MSHA^~\\&A", Limits{}, "field separator is a letter", Location{Segment: "MSH", Seq: 1, Field: 1}},
		{"no encoding", "MSH||x", Limits{}, "no encoding characters", Location{Segment: "MSH", Seq: 1, Field: 2}},
		{"six encoding", "MSH|^~\\&#@|", Limits{}, "6 encoding characters", Location{Segment: "MSH", Seq: 1, Field: 2}},
		{"repeated encoding", "MSH|^^\\&|", Limits{}, "encoding character 2 repeats", Location{Segment: "MSH", Seq: 1, Field: 2}},
		{"encoding is field separator", "MSH|^|", Limits{}, "", Location{}}, // MSH-2 is "^": fine
		{"bad segment id", "MSH|^~\\&\rPID|1\rob|2\r", Limits{}, "segment id", Location{Index: 2}},
		{"short segment id", "MSH|^~\\&\rPI\r", Limits{}, "segment id", Location{Index: 1}},
		{"id without separator", "MSH|^~\\&\rOBX|1\rOBX:2\r", Limits{}, "not followed by the field separator", Location{Segment: "OBX", Seq: 2, Index: 2}},
		{"second MSH", "MSH|^~\\&\rPID|1\rMSH|^~\\&\r", Limits{}, "second MSH", Location{Segment: "MSH", Seq: 2, Index: 2}},
		{"too big", big, Limits{MaxBytes: 50}, "larger than the limit of 50", Location{}},
		{"too many segments", "MSH|^~\\&\rOBX|1\rOBX|2\rOBX|3\r", Limits{MaxSegments: 3}, "more than 3 segments", Location{Index: 3}},
	}
	for _, c := range cases {
		_, err := Parse([]byte(c.msg), c.lim)
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("%s: err = %v, want a *ParseError", c.name, err)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || pe.Loc != c.loc {
			t.Errorf("%s: err = %v at %+v, want %q at %+v", c.name, err, pe.Loc, c.want, c.loc)
		}
	}
}

func TestParseErrorNamesSegmentAndField(t *testing.T) {
	_, err := Parse([]byte("MSH|^~\\&|A\rPID|1\rOBX|1\rOBX|2\rOBX\x01x\r"), Limits{})
	if err == nil || err.Error() != "hl7: OBX(3) (segment 5): segment id is not followed by the field separator" {
		t.Errorf("err = %v", err)
	}
	m := mustParse(t, oru)
	s, _ := m.Find("OBX", 2)
	if got := s.Location(5).String(); got != "OBX(2)-5 (segment 6)" {
		t.Errorf("Location = %q", got)
	}
}

func TestParseHeader(t *testing.T) {
	m, err := ParseHeader([]byte(oru[:strings.IndexByte(oru, '\r')+1] + "\x00garbage\rOBX"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Len() != 1 || m.Field("MSH", 1, 10).Text() != "MSG0001" {
		t.Errorf("header: %d segments, MSH-10 %q", m.Len(), m.Field("MSH", 1, 10).Text())
	}
}

func TestParsePath(t *testing.T) {
	good := map[string]Path{
		"PV1-3.1":      {Segment: "PV1", Seq: 1, Field: 3, Comp: 1},
		"PID-3(2).4.1": {Segment: "PID", Seq: 1, Field: 3, Rep: 2, Comp: 4, Sub: 1},
		"OBX(12)-5":    {Segment: "OBX", Seq: 12, Field: 5},
		"MSH.9.2":      {Segment: "MSH", Seq: 1, Field: 9, Comp: 2},
	}
	for p, want := range good {
		got, err := ParsePath(p)
		if err != nil || got != want {
			t.Errorf("ParsePath(%q) = %+v, %v; want %+v", p, got, err, want)
		}
	}
	for _, p := range []string{"", "PV1", "PV1-", "PV1-0", "pv1-3", "PV1-3.", "PV1-3.1.2.3", "PV1(-3", "PV1(0)-3", "PV1-3(x)", "PV1-3x"} {
		if _, err := ParsePath(p); err == nil {
			t.Errorf("ParsePath(%q) took it", p)
		}
	}
}

func TestFieldNarrowing(t *testing.T) {
	m := mustParse(t, "MSH|^~\\&\rZZZ|a&b^c~d|\"\"||e\r")
	f := m.Field("ZZZ", 1, 1)
	checks := []struct {
		got  Field
		want string
	}{
		{f.Rep(1), "a&b^c"},
		{f.Rep(2), "d"},
		{f.Rep(3), ""},
		{f.Rep(0), ""},
		{f.Comp(1), "a&b"},
		{f.Comp(1).Sub(2), "b"},
		{f.Sub(1), "a"},
		{f.Rep(2).Comp(1), "d"},
		{f.Rep(2).Comp(2), ""},
		{f.Comp(2).Sub(1), "c"},
		{f.Comp(2).Sub(2), ""},
		{f.Comp(1).Sub(1).Sub(1), "a"},
		{f.Comp(1).Sub(1).Comp(1), "a"},
		{f.Comp(1).Sub(1).Sub(2), ""},
		{m.Field("MSH", 1, 2).Comp(1), "^~\\&"},
		{m.Field("MSH", 1, 2).Rep(2), ""},
	}
	for i, c := range checks {
		if c.got.Raw() != c.want {
			t.Errorf("check %d: %q, want %q", i, c.got.Raw(), c.want)
		}
	}
	if !m.Field("ZZZ", 1, 2).IsNull() || !m.Field("ZZZ", 1, 3).IsEmpty() || m.Field("ZZZ", 1, 4).Text() != "e" {
		t.Error("null, empty, value")
	}
}

func TestEscapeRoundTrip(t *testing.T) {
	for _, d := range []Delimiters{DefaultDelimiters, {'#', '!', '*', '$', '%', '~'}, {'|', '^', '~', '\\', '&', '#'}} {
		for _, s := range []string{"", "plain", "a|b^c~d\\e&f#g", "\r\n", "\\F\\", "\x00", "ends with \\"} {
			e := Escape(s, d)
			if strings.ContainsAny(e, string([]byte{d.Field, d.Component, d.Repetition, d.Subcomponent, '\r', '\n'})) {
				t.Errorf("Escape(%q) = %q holds a delimiter", s, e)
			}
			if got := Unescape(e, d); got != s {
				t.Errorf("Unescape(Escape(%q)) = %q via %q", s, got, e)
			}
		}
	}
}

func TestUnescapeKeepsUnknown(t *testing.T) {
	d := DefaultDelimiters
	cases := map[string]string{
		`\X\`:          `\X\`,
		`\X4\`:         `\X4\`,
		`\XZZ\`:        `\XZZ\`,
		`\x41\`:        `\x41\`,
		`\X4142\`:      "AB",
		`\.sp\`:        `\.sp\`,
		`\Cxxyy\`:      `\Cxxyy\`,
		`open \F`:      `open \F`,
		`\P\`:          `\P\`, // no truncation character declared
		`a\H\b\N\c`:    "abc",
		`\\`:           `\\`,
		`\E\\E\`:       `\\`,
		`x\.br\\.br\y`: "x\n\ny",
	}
	for in, want := range cases {
		if got := Unescape(in, d); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTextDoesNotAllocate(t *testing.T) {
	m := mustParse(t, oru)
	n := testing.AllocsPerRun(100, func() {
		_ = m.Field("OBX", 1, 3).Comp(2).Text()
		_ = m.Field("PID", 1, 3).Rep(2).Comp(4).Sub(1).Text()
		f, _ := m.Get("PV1-3.3")
		_ = f.Text()
	})
	if n != 0 {
		t.Errorf("%v allocations reading fields without escapes", n)
	}
}

func TestParseTime(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	cases := []struct {
		in    string
		want  time.Time
		prec  Precision
		zoned bool
	}{
		{"20240305101500+0100", time.Date(2024, 3, 5, 9, 15, 0, 0, time.UTC), Second, true},
		{"20240305101500-0530", time.Date(2024, 3, 5, 15, 45, 0, 0, time.UTC), Second, true},
		{"20240305101500", time.Date(2024, 3, 5, 9, 15, 0, 0, time.UTC), Second, false},
		{"20240305101500.25+0000", time.Date(2024, 3, 5, 10, 15, 0, 250000000, time.UTC), Fraction, true},
		{"202403051015", time.Date(2024, 3, 5, 9, 15, 0, 0, time.UTC), Minute, false},
		{"2024", time.Date(2024, 1, 1, 0, 0, 0, 0, cet), Year, false},
		{"20240229", time.Date(2024, 2, 29, 0, 0, 0, 0, cet), Day, false},
	}
	for _, c := range cases {
		got, err := ParseTime(c.in, cet)
		if err != nil || !got.Equal(c.want) || got.Precision != c.prec || got.Zoned != c.zoned {
			t.Errorf("ParseTime(%q) = %v %d %v, %v; want %v %d %v", c.in, got.Time, got.Precision, got.Zoned, err, c.want, c.prec, c.zoned)
		}
	}
	for _, bad := range []string{"", "2024030", "20241301", "20230229", "20240305240000", "20240305106000", "20240305101560",
		"2024030510150.", "202403051015.5", "20240305101500+01", "20240305101500+2400", "2024-03-05", "20240305101500.1234567890", "x"} {
		if _, err := ParseTime(bad, cet); err == nil {
			t.Errorf("ParseTime(%q) took it", bad)
		}
	}
}
