package intellivue

import (
	"testing"
	"time"
)

// BenchmarkDecodePollResult decodes a poll answer of 6 values (HR, SpO2,
// an NIBP compound of 3, a temperature) into the driver's frame, as the
// dialogue does for each answer (reusing its reply and names); it reports
// frames/s and values/s.
func BenchmarkDecodePollResult(b *testing.B) {
	msg := samplePoll(true)
	anchor := Anchor{Abs: time.Now(), Rel: 0x00100000}
	s := &session{anchor: anchor}
	values := 0
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		op, err := ParseOperation(msg)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.reply.decode(op, time.UTC); err != nil {
			b.Fatal(err)
		}
		f := s.frame(&s.reply)
		values += len(f.Values)
	}
	sec := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N)/sec, "frames/s")
	b.ReportMetric(float64(values)/sec, "values/s")
}

// BenchmarkDeframer takes poll answers apart from a serial byte stream
// with garbage between them; it reports frames/s.
func BenchmarkDeframer(b *testing.B) {
	var line []byte
	for range 16 {
		line = append(line, 0x55, 0xC1)
		line = AppendFrame(line, samplePoll(true))
	}
	d := NewDeframer(0)
	frames := 0
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	for b.Loop() {
		d.Push(line, func([]byte) { frames++ })
	}
	b.ReportMetric(float64(frames)/b.Elapsed().Seconds(), "frames/s")
}
