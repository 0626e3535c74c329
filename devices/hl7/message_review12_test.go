package hl7

import (
	"fmt"
	"strings"
	"testing"
)

// ERR and Location name a segment by its occurrence; finding it must not
// cost a walk over the segments before it for every row, or a message of
// many rows costs the square of its length (a 270 kB message with 10,000
// OBX rows took 200 ms to decode). Correctness here; the cost is in
// BenchmarkLocationManySegments_review12.
func TestLocationSeqManySegments_review12(t *testing.T) {
	var b strings.Builder
	b.WriteString("MSH|^~\\&|A|F|||20240305101500||ORU^R01|C1|P|2.6")
	for i := 0; i < 3000; i++ {
		fmt.Fprintf(&b, "\rOBX|%d\rNTE|%d", i+1, i+1)
	}
	m := mustParse(t, b.String())
	obx, nte := 0, 0
	for i := 0; i < m.Len(); i++ {
		s := m.Segment(i)
		want := 1
		switch s.ID() {
		case "OBX":
			obx++
			want = obx
		case "NTE":
			nte++
			want = nte
		}
		if l := s.Location(5); l.Seq != want || l.Index != i || l.Segment != s.ID() || l.Field != 5 {
			t.Fatalf("segment %d: %+v, want seq %d", i, l, want)
		}
	}
	// A parse error still names the occurrence of the segment in error.
	_, err := Parse([]byte(b.String()+"\rOBX^bad"), Limits{})
	if err == nil || !strings.Contains(err.Error(), "OBX(3001)") {
		t.Errorf("error %v does not name OBX(3001)", err)
	}
}

func BenchmarkLocationManySegments_review12(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("MSH|^~\\&|A|F|||20240305101500||ORU^R01|C1|P|2.6")
	for i := 0; i < 9990; i++ {
		sb.WriteString("\rOBX|1|NM|150456||97|262688")
	}
	data := []byte(sb.String())
	b.ReportAllocs()
	for b.Loop() {
		m, err := Parse(data, Limits{})
		if err != nil {
			b.Fatal(err)
		}
		for i := 1; i < m.Len(); i++ {
			_ = m.Segment(i).Location(0)
		}
	}
}
