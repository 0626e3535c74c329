package datex_test

import (
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices/datex"
	"github.com/wardgate/wardgate/devices/sim/datexsim"
)

// BenchmarkDecodeRecord decodes a displayed-values record of the basic
// class (every field: 45 values) as the simulator sends it.
func BenchmarkDecodeRecord(b *testing.B) {
	rec := datexsim.Record(3, time.Unix(1764662400, 0), datex.Level15, 7)
	values := 0
	b.ReportAllocs()
	b.SetBytes(int64(len(rec)))
	for b.Loop() {
		f, err := datex.DecodeRecord(rec)
		if err != nil {
			b.Fatal(err)
		}
		values += len(f.Values)
	}
	s := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N)/s, "records/s")
	b.ReportMetric(float64(values)/s, "values/s")
}

// BenchmarkUnframe unframes a line of such records, each checked by its
// sum.
func BenchmarkUnframe(b *testing.B) {
	var line []byte
	for i := range 16 {
		line = datex.AppendFrame(line, datexsim.Record(i, time.Unix(1764662400, 0), datex.Level15, 7))
	}
	var u datex.Unframer
	records := 0
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		u.Feed(line, func(rec []byte, err error) {
			if err != nil {
				b.Fatal(err)
			}
			records++
		})
	}
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
}
