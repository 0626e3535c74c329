package profile

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices/yamlstrict"
)

const minimalText = `
vendor: Acme
model: M1
format: text
text:
  tokens: {}
parameters:
  - {field: HR, mdc: MDC_ECG_HEART_RATE, unit: /min}
`

// A profile with mistakes gets every one of them, each with its line and
// key, like the config.
func TestCheckReportsEveryProblem(t *testing.T) {
	bad := `vendor: Acme
model: M1
transport:
  serial: {baud: 9600, parity: evn}
format: text
text:
  match: '^(?P<hr>\d+'
  terminator: crlf
  ignroe: []
time: {value: "{date}", layout: "banana"}
status:
  - field: EXC
    bits:
      - {mask: 0x01, name: off, action: dorp, params: [SPO2]}
parameters:
  - {field: HR, mdc: MDC_ECG_HART_RATE, unit: /min}
  - {field: SPO2, mdc: MDC_PULS_OXIM_SAT_O2, unit: furlongs}
  - {field: T, mdc: MDC_TEMP_BODY, unit: "mm[Hg]", range: [42, 30]}
`
	_, err := Parse("acme/m1.yaml", "acme/m1", []byte(bad))
	var ps *yamlstrict.Problems
	if !errors.As(err, &ps) {
		t.Fatalf("want *yamlstrict.Problems, got %v", err)
	}
	msg := err.Error()
	for _, want := range []string{
		`acme/m1.yaml:4: transport.serial.parity: "evn" is not one of`,
		`acme/m1.yaml:7: text.match: bad regular expression`,
		`acme/m1.yaml:9: text.ignroe: unknown key (did you mean "ignore"?)`,
		`time.layout: "banana" is not a Go time layout`,
		`status[0].bits[0].action: "dorp" is not an action`,
		`parameters[0].mdc: "MDC_ECG_HART_RATE" is not an MDC code`,
		`parameters[1].unit: "furlongs" is neither a UCUM unit`,
		`parameters[2].unit: MDC_TEMP_BODY is charted in Cel; "mm[Hg]" cannot be converted`,
		`parameters[2].range: must be [low, high]`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
}

func TestCheckFormats(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"no format", "vendor: A\nmodel: B\nparameters: []\n", "format: is missing"},
		{"unknown dialogue", "vendor: A\nmodel: B\nformat: nosuchdialogue\n", `"nosuchdialogue" is neither text, json nor a dialogue built into wardgate`},
		{"text without section", "vendor: A\nmodel: B\nformat: text\n", "text: is missing"},
		{"json parameter without path", "vendor: A\nmodel: B\nformat: json\njson: {}\nparameters: [{mdc: MDC_RESP_RATE, unit: /min}]\n", "parameters[0].path: is missing"},
		{"bad jsonpath", "vendor: A\nmodel: B\nformat: json\njson: {device_id: '$..[?'}\nparameters: [{path: $.rr, mdc: MDC_RESP_RATE, unit: /min}]\n", "json.device_id: bad JSONPath query"},
		{"field not a group", "vendor: A\nmodel: B\nformat: text\ntext: {match: '^(?P<a>x)$'}\nparameters: [{field: b, mdc: MDC_RESP_RATE, unit: /min}]\n", `"b" is not a named group`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("x.yaml", "a/b", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want %q, got %v", tc.want, err)
			}
		})
	}
	if _, err := Parse("x.yaml", "acme/m1", []byte(minimalText)); err != nil {
		t.Fatal(err)
	}
}

func TestLinesFraming(t *testing.T) {
	p := MustParse("acme/m1", minimalText)
	for _, tc := range []struct {
		name   string
		pieces []string
		want   []string
	}{
		{"crlf", []string{"a=1\r\nb=2\r\n"}, []string{"a=1", "b=2"}},
		{"crlf split across reads", []string{"a=1\r", "\nb=2\r", "\n"}, []string{"a=1", "b=2"}},
		{"bare cr and lf", []string{"a=1\rb=2\nc=3\r\n"}, []string{"a=1", "b=2", "c=3"}},
		{"byte by byte", strings.Split("a=1\r\nb=22\n", ""), []string{"a=1", "b=22"}},
		{"empty lines skipped", []string{"\r\n\r\na=1\n\n"}, []string{"a=1"}},
		{"no terminator yet", []string{"a=1"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := p.NewLines()
			var got []string
			for _, piece := range tc.pieces {
				l.Feed([]byte(piece), func(line []byte, tooLong bool) {
					if tooLong {
						t.Fatal("too long")
					}
					got = append(got, string(line))
				})
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// A stream of garbage without terminators costs at most max_line bytes and
// is reported once per over-long line.
func TestLinesBoundsMemory(t *testing.T) {
	p := MustParse("acme/m1", minimalText+"\n")
	p.Text.MaxLine = 64
	l := p.NewLines()
	long, good := 0, 0
	emit := func(line []byte, tooLong bool) {
		if tooLong {
			long++
		} else {
			good++
		}
	}
	for range 1000 {
		l.Feed([]byte(strings.Repeat("x", 100)), emit)
		if cap(l.buf) > 128 {
			t.Fatalf("buffer grew to %d", cap(l.buf))
		}
	}
	l.Feed([]byte("\nHR=60\n"), emit)
	if long != 1 || good != 1 {
		t.Fatalf("long=%d good=%d, want 1 and 1", long, good)
	}
}

// Errors never quote the frame: lines can carry patient data.
func TestDecodeErrorsDoNotQuoteTheFrame(t *testing.T) {
	p := MustParse("acme/m1", `
vendor: Acme
model: M1
format: text
text: {match: '^HR=(?P<HR>\S+) EXC=(?P<EXC>\S+)$'}
status: [{field: EXC, bits: [{mask: 1, name: off, action: drop}]}]
parameters: [{field: HR, mdc: MDC_ECG_HEART_RATE, unit: /min}]
`)
	for _, line := range []string{"PATIENT SMITH JOHN", "HR=12 EXC=SMITH"} {
		_, err := p.Decode([]byte(line))
		if !errors.Is(err, ErrBadFrame) {
			t.Fatalf("%q: want ErrBadFrame, got %v", line, err)
		}
		if strings.Contains(err.Error(), "SMITH") {
			t.Fatalf("the error quotes the line: %v", err)
		}
	}
}

// A local time in the hour repeated when daylight saving time ends is read
// with the other instant it may mean; the clock estimate chooses.
func TestALocalTimeInAFoldHasTwoInstants(t *testing.T) {
	p := builtin(t, "masimo/radical-7")
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	p = p.InZone(berlin)
	line := "10/25/26 02:30:00 SN=0000056661 SPO2=097% BPM=072 PI=03.60% SPCO=--.-% SPMET=--.-% DESAT=-- PIDELTA=+-- ALARM=0000 EXC=000800"
	f, err := p.Decode([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	a, b := f.DeviceTime.UTC(), f.DeviceTimeAlt.UTC()
	if a.After(b) {
		a, b = b, a
	}
	if !a.Equal(time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC)) || !b.Equal(time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC)) {
		t.Fatalf("instants %v and %v", f.DeviceTime, f.DeviceTimeAlt)
	}
	f, _ = p.Decode([]byte(strings.Replace(line, "02:30:00", "03:30:00", 1)))
	if !f.DeviceTimeAlt.IsZero() {
		t.Fatalf("an hour that is not repeated has a second instant: %v", f.DeviceTimeAlt)
	}
}
