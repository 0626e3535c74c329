package hl7

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// oru20 is an ORU^R01 with 20 OBX rows.
func oru20() []byte {
	head, _, _ := strings.Cut(oru, "OBX|")
	var b strings.Builder
	b.WriteString(head)
	for i := 0; i < 20; i++ {
		b.WriteString("OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.3.1.150456|98|262688^MDC_DIM_PERCENT^MDC|||||R|||20240305101458+0800||||0019A1FFFE000001^^0019A1FFFE000001^EUI-64\r")
	}
	return []byte(b.String())
}

func BenchmarkParse(b *testing.B) {
	data := oru20()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadMessage(b *testing.B) {
	msg := oru20()
	var stream []byte
	for range 100 {
		stream = AppendFrame(stream, msg)
	}
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		r := NewReader(bytes.NewReader(stream), 1<<20)
		for range 100 {
			if _, err := r.ReadMessage(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkAcks(b *testing.B) {
	m, err := Parse(oru20(), Limits{})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		_ = Acks(m, Reply{}, AckOptions{ControlID: "A1", Time: now})
	}
}
