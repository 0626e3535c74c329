package devices

import (
	"testing"
	"time"
)

func TestTrendKeepsOnePointPerStepAndStaysBounded(t *testing.T) {
	var tr trend
	t0 := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	for i := range 3 * 60 * 60 { // three hours, one value a second
		tr.add(TrendPoint{At: t0.Add(time.Duration(i) * time.Second), Value: float64(i)})
	}
	all := tr.since(time.Time{})
	if len(all) != len(tr.pts) {
		t.Fatalf("%d points kept, want the ring's %d", len(all), len(tr.pts))
	}
	last := all[len(all)-1]
	if last.Value != 3*60*60-1 {
		t.Fatalf("last point %v: the newest value of a step must win", last)
	}
	for i := 1; i < len(all); i++ {
		if all[i].At.Sub(all[i-1].At) != TrendStep {
			t.Fatalf("points %d and %d are %v apart, want %v", i-1, i, all[i].At.Sub(all[i-1].At), TrendStep)
		}
	}
	if got := tr.since(last.At.Add(-time.Minute)); len(got) != 7 {
		t.Fatalf("last minute: %d points, want 7", len(got))
	}
}

func TestMonitorTrendsAreBoundedInParameters(t *testing.T) {
	m := NewMonitor("m", "bed-1", "p", "serial x")
	var rs []Reading
	for i := range 100 {
		rs = append(rs, Reading{Code: MDC{Code: uint32(i), RefID: string(rune('A'+i%26)) + string(rune('a'+i/26))}, Value: float64(i)})
	}
	m.Frame(rs, 0, 0)
	tr := m.Trends()
	if len(tr) != maxTrends {
		t.Fatalf("%d parameters trended, want at most %d", len(tr), maxTrends)
	}
}
