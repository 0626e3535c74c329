package pcd01

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices/hl7"
	"github.com/wardgate/wardgate/devices/mdc"
)

// FuzzDecode: no panic on any message; every OBX row is accounted for (a
// reading, a hierarchy row, or a problem naming it: nothing is dropped
// without a word); every reading has a known MDC code, its term's unit, a
// finite value and a device time. The fixtures under testdata are the
// seeds (testdata/fuzz/FuzzDecode), so every go test runs them.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := hl7.Parse(data, hl7.Limits{MaxBytes: 1 << 16, MaxSegments: 500})
		if err != nil {
			return
		}
		for _, d := range []*Decoder{{Zone: time.FixedZone("", 3600)}, {AllowMissingProfile: true}} {
			r, err := d.Decode(m, received)
			if err != nil {
				var e *Error
				if !errors.As(err, &e) || e.Outcome != hl7.Failed && e.Outcome != hl7.Rejected {
					t.Fatalf("error %v is not an *Error with an outcome", err)
				}
				continue
			}
			obx, problemRows := 0, map[int]bool{}
			for i := 0; i < m.Len(); i++ {
				if m.Segment(i).ID() == "OBX" {
					obx++
				}
			}
			for _, p := range r.Problems {
				if p.Where.Segment == "OBX" {
					if problemRows[p.Where.Index] {
						t.Fatalf("two problems for one row: %v", r.Problems)
					}
					problemRows[p.Where.Index] = true
				}
			}
			if got := len(r.Observations) + r.Hierarchy + len(problemRows); got != obx {
				t.Fatalf("%d OBX rows, %d accounted for (%d readings, %d hierarchy, %d problems)",
					obx, got, len(r.Observations), r.Hierarchy, len(problemRows))
			}
			for _, o := range r.Observations {
				term, ok := mdc.ByCode(o.Code.Code)
				if !ok || term.RefID != o.Code.RefID || o.Unit != term.UCUM {
					t.Fatalf("reading %+v: code or unit not from the table", o.Reading)
				}
				if math.IsNaN(o.Value) || math.IsInf(o.Value, 0) {
					t.Fatalf("value %v", o.Value)
				}
				if o.DeviceTime.IsZero() || problemRows[o.Where.Index] {
					t.Fatalf("reading at %v without a time, or with a problem", o.Where)
				}
			}
		}
	})
}
