package datex_test

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices/datex"
	"github.com/wardgate/wardgate/devices/sim/datexsim"
)

// Fuzzing the frame decoder and the record decoder; CI runs the seeds in
// testdata/fuzz (a line of frames with garbage, escapes, an over-long
// frame; the simulator's records whole, cut short and with lying offsets).

type unframed struct {
	rec []byte
	err error
}

func unframe(line []byte, chunk int) []unframed {
	var u datex.Unframer
	var out []unframed
	for i := 0; i < len(line); i += chunk {
		u.Feed(line[i:min(len(line), i+chunk)], func(rec []byte, err error) {
			out = append(out, unframed{append([]byte(nil), rec...), err})
		})
	}
	return out
}

func FuzzUnframer(f *testing.F) {
	rec := datexsim.Record(0, time.Unix(1764662400, 0), datex.Level15, 7)
	f.Add(datex.AppendFrame(nil, rec))
	f.Add(append(append([]byte{0x55, 0x7D, 0x7E, 0x11}, datex.AppendFrame(nil, []byte{0x7E, 0x7D})...), 0x7E, 0x7E))
	f.Fuzz(func(t *testing.T, line []byte) {
		whole := unframe(line, max(1, len(line)))
		for _, chunk := range []int{1, 7} {
			parts := unframe(line, chunk)
			if len(parts) != len(whole) {
				t.Fatalf("chunks of %d: %d results, whole: %d", chunk, len(parts), len(whole))
			}
			for i := range whole {
				if !bytes.Equal(parts[i].rec, whole[i].rec) || (parts[i].err == nil) != (whole[i].err == nil) {
					t.Fatalf("chunks of %d: result %d differs", chunk, i)
				}
			}
		}
		for _, r := range whole {
			if r.err != nil {
				if r.rec != nil && len(r.rec) > 0 {
					t.Fatalf("a record with an error: %v", r.err)
				}
				continue
			}
			if len(r.rec) > datex.MaxRecord {
				t.Fatalf("a record of %d bytes", len(r.rec))
			}
			// What was unframed frames back to itself.
			again := unframe(datex.AppendFrame(nil, r.rec), 1<<20)
			if len(again) != 1 || again[0].err != nil || !bytes.Equal(again[0].rec, r.rec) {
				t.Fatalf("% X does not survive framing: %v", r.rec, again)
			}
		}
	})
}

func FuzzDecodeRecord(f *testing.F) {
	rec := datexsim.Record(3, time.Unix(1764662400, 0), datex.Level15, 7)
	f.Add(rec)
	f.Add(rec[:datex.HeaderLen+4+100])
	f.Add(datex.Request{Type: datex.SubDisplayed, Interval: 5, Level: datex.Level05}.Marshal())
	fields := map[string]bool{}
	for _, fl := range datex.Fields() {
		fields[fl.Name] = true
	}
	f.Fuzz(func(t *testing.T, rec []byte) {
		// The monitor's side reads requests with the same header.
		if r, err := datex.ParseRequest(rec); err == nil && len(rec) < 49 {
			t.Fatalf("a request %+v from %d bytes", r, len(rec))
		}
		fr, err := datex.DecodeRecord(rec)
		if err != nil {
			if len(fr.Values) != 0 {
				t.Fatalf("values with an error: %v", err)
			}
			return
		}
		if fr.Bad < 0 || len(fr.Values) > 8*len(fields) {
			t.Fatalf("bad %d, %d values", fr.Bad, len(fr.Values))
		}
		for _, v := range fr.Values {
			if !fields[v.Field] || !strings.Contains(v.Field, ".") {
				t.Fatalf("field %q", v.Field)
			}
			if math.IsNaN(v.Value) != (datex.StateMarker(v.State) != datex.Valid) {
				t.Fatalf("%s: value %v with marker %s", v.Field, v.Value, datex.StateMarker(v.State))
			}
			if math.IsInf(v.Value, 0) || !math.IsNaN(v.Value) && math.Abs(v.Value) > 1e5 {
				t.Fatalf("%s: value %v", v.Field, v.Value)
			}
		}
	})
}
