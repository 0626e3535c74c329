package profile

import (
	"strings"
	"testing"
	"unicode/utf8"

	firmwareprofiles "github.com/wardgate/wardgate/firmware-profiles"
)

func builtin(t testing.TB, name string) *Profile {
	set, err := Load(firmwareprofiles.FS, "")
	if err != nil {
		t.Fatal(err)
	}
	p, ok := set.Get(name)
	if !ok {
		t.Fatalf("no built-in profile %s", name)
	}
	return p
}

// FuzzDecodeText feeds the Masimo and Nonin profiles arbitrary bytes in
// arbitrary pieces: no panic, no reading outside its declared range, no
// error that quotes the input.
func FuzzDecodeText(f *testing.F) {
	for _, c := range []string{"masimo/radical-7.capture", "nonin/avant.capture"} {
		b, err := firmwareprofiles.FS.ReadFile(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint8(7))
	}
	f.Add([]byte("02/22/16 22:47:45 SPO2=1e308% BPM=NaN PI=-0% EXC=ffffffffffff\r\n"), uint8(1))
	f.Add([]byte("SPO2=0x10 HR=+Inf*\n"), uint8(3))
	masimo, nonin := builtin(f, "masimo/radical-7"), builtin(f, "nonin/avant")
	f.Fuzz(func(t *testing.T, data []byte, cut uint8) {
		for _, p := range []*Profile{masimo, nonin} {
			l := p.NewLines()
			step := int(cut%64) + 1
			for i := 0; i < len(data); i += step {
				l.Feed(data[i:min(i+step, len(data))], func(line []byte, tooLong bool) {
					if tooLong {
						return
					}
					fr, err := p.Decode(line)
					if err != nil {
						if len(line) > 8 && utf8.Valid(line) && strings.Contains(err.Error(), string(line)) {
							t.Fatalf("error quotes the line: %v", err)
						}
						return
					}
					for _, r := range fr.Readings {
						checkInRange(t, p, r.Code.Code, r.Value)
					}
				})
			}
		}
	})
}

// FuzzDecodeJSON does the same for the JSON profiles.
func FuzzDecodeJSON(f *testing.F) {
	for _, c := range []string{"generic/json.capture", "generic/flat-json.capture"} {
		b, err := firmwareprofiles.FS.ReadFile(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"observations":[{"code":1e400,"value":1,"unit":"%"}]}`))
	f.Add([]byte(`{"vitals":{"hr":[1,2]},"ts":-1e300}`))
	generic, flat := builtin(f, "generic/json"), builtin(f, "generic/flat-json")
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, p := range []*Profile{generic, flat} {
			fr, err := p.Decode(data)
			if err != nil {
				continue
			}
			for _, r := range fr.Readings {
				checkInRange(t, p, r.Code.Code, r.Value)
			}
		}
	})
}

func checkInRange(t *testing.T, p *Profile, code uint32, v float64) {
	for _, prm := range p.Parameters {
		if prm.term.Code == code && len(prm.Range) == 2 && (v < prm.Range[0] || v > prm.Range[1]) {
			t.Fatalf("%s: %v outside %v", prm.term.RefID, v, prm.Range)
		}
	}
	if v != v {
		t.Fatal("NaN reading")
	}
}
