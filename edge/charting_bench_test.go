package edge

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/devices/mdc"
	"github.com/wardgate/wardgate/devices/profile"
	"github.com/wardgate/wardgate/edge/fhir"
	"github.com/wardgate/wardgate/edge/fhir/fhirserver"
)

// icuParameters are the 20 continuous parameters an ICU monitor with an
// arterial and a pulmonary artery line, capnography and an oximeter sends.
var icuParameters = []string{"MDC_ECG_HEART_RATE", "MDC_ECG_V_P_C_RATE", "MDC_PULS_OXIM_PULS_RATE", "MDC_PULS_OXIM_SAT_O2",
	"MDC_PULS_OXIM_PERF_REL", "MDC_PRESS_BLD_ART_ABP_SYS", "MDC_PRESS_BLD_ART_ABP_DIA", "MDC_PRESS_BLD_ART_ABP_MEAN",
	"MDC_BLD_PULS_RATE_INV", "MDC_PRESS_BLD_ART_PULM_SYS", "MDC_PRESS_BLD_ART_PULM_DIA", "MDC_PRESS_BLD_ART_PULM_MEAN",
	"MDC_PRESS_BLD_VEN_CENT_MEAN", "MDC_TTHOR_RESP_RATE", "MDC_CO2_RESP_RATE", "MDC_AWAY_RESP_RATE",
	"MDC_PULS_OXIM_PLETH_RESP_RATE", "MDC_CONC_AWAY_CO2_ET", "MDC_CONC_AWAY_CO2_INSP", "MDC_CONC_AWAY_O2_INSP"}

// continuousTerms are icuParameters as readings, with their units.
func continuousTerms(b testing.TB) []devices.Reading {
	var out []devices.Reading
	for _, ref := range icuParameters {
		t, ok := mdc.Lookup(ref)
		if !ok || profile.Episodic(t.Code) {
			b.Fatalf("%s is not a continuous parameter of the MDC table", ref)
		}
		out = append(out, devices.Reading{Code: devices.MDC{Code: t.Code, RefID: t.RefID}, Unit: t.UCUM, Value: 50})
	}
	return out
}

// BenchmarkChartingAWard is 64 beds × 20 continuous parameters at 1 Hz
// (1,280 readings/s live), charted every 1m median: a backlog of minutes
// (what a ward sends in that time, measured in the past) is ingested as
// fast as the gateway takes it — each frame durable in the charting window
// before Ingest returns — then every interval is charted into the outbox.
// It reports the readings/s taken into the window, the intervals/s charted
// into the outbox, and the Go heap one minute of open intervals holds.
func BenchmarkChartingAWard(b *testing.B) {
	const beds, minutes = 64, 2
	terms := continuousTerms(b)
	static := ""
	for i := range beds {
		static += fmt.Sprintf("bed-%d: Patient/p%d, ", i, i)
	}
	record := fhirserver.New()
	record.SetFaults(fhirserver.Faults{Status: 503}) // nothing leaves the outbox: only the gateway's side is measured
	g, _ := runGateway(b, record, "patients: {static: {"+static+"}}\ncharting: {close_after: 1h}\n")
	// What one frame of them charts: the arterial and the pulmonary
	// pressures are a panel each.
	one := make([]fhir.PatientReading, len(terms))
	now := time.Now()
	for i, t := range terms {
		one[i] = fhir.PatientReading{Reading: t, Patient: "Patient/p"}
		one[i].Device, one[i].DeviceTime = "d", now
	}
	entries, _ := (&fhir.Mapper{Site: "x"}).MapReadings(one)
	perFrame := uint64(len(entries) - 1) // less the Device
	ctx := context.Background()
	b.ResetTimer()
	for n := range b.N {
		start := time.Now().Add(-time.Duration(24*(n+1)) * time.Hour).Truncate(time.Hour)
		var ms0, ms1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms0)
		t0 := time.Now()
		readings := 0
		for s := range minutes * 60 {
			at := start.Add(time.Duration(s) * time.Second)
			for bed := range beds {
				frame := make([]devices.Reading, len(terms))
				for j, t := range terms {
					r := t
					r.Device, r.Location, r.Profile = fmt.Sprintf("bed-%d-monitor", bed), fmt.Sprintf("bed-%d", bed), "generic/json"
					r.DeviceTime, r.Received, r.Value = at, at, float64(40+(s+j)%30)
					frame[j] = r
				}
				if err := g.Ingest(ctx, frame); err != nil {
					b.Fatal(err)
				}
				readings += len(frame)
			}
			if s == 59 {
				runtime.GC()
				runtime.ReadMemStats(&ms1)
			}
		}
		ingest := time.Since(t0)
		entries := g.ingest.entries.Load()
		t1 := time.Now()
		if err := g.chart.closeDue(ctx, time.Now().Add(2*time.Hour)); err != nil {
			b.Fatal(err)
		}
		charting := time.Since(t1)
		intervals := g.ingest.entries.Load() - entries - beds*uint64(n+1) // less a Device each bed, each round
		if want := beds * minutes * perFrame; intervals != want {
			b.Fatalf("%d Observations, want %d (%d beds × %d minutes × %d)", intervals, want, beds, minutes, perFrame)
		}
		b.ReportMetric(float64(readings)/ingest.Seconds(), "readings/s")
		b.ReportMetric(float64(intervals)/charting.Seconds(), "observations/s")
		b.ReportMetric(float64(readings)/float64(intervals), "readings/observation")
		b.ReportMetric(float64(ms1.HeapInuse-min(ms0.HeapInuse, ms1.HeapInuse))/(1<<20), "MiB-heap/open-minute")
		b.ReportMetric(float64(g.chart.store.Stats().Bytes)/(1<<20), "MiB-window-left")
	}
	b.ReportMetric(0, "ns/op")
}

// BenchmarkChartingAWardLive is the same ward live: 64 beds × 20
// continuous parameters at 1 Hz (1,280 readings/s), measured now, for a
// minute and until that minute is charted. It reports the share of one
// core the gateway used, the process's RSS and Go heap at the end of the
// minute (its intervals open), and the Observations charted. It takes
// about 80 s: run it with -benchtime 1x.
func BenchmarkChartingAWardLive(b *testing.B) {
	const beds = 64
	terms := continuousTerms(b)
	static := ""
	for i := range beds {
		static += fmt.Sprintf("bed-%d: Patient/p%d, ", i, i)
	}
	record := fhirserver.New()
	record.SetFaults(fhirserver.Faults{Status: 503})
	g, _ := runGateway(b, record, "patients: {static: {"+static+"}}\ncharting: {close_after: 5s}\n")
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		// From the start of the next minute, for one minute.
		time.Sleep(time.Until(time.Now().Truncate(time.Minute).Add(time.Minute)))
		var ru0, ru1 syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
		t0 := time.Now()
		entries := g.ingest.entries.Load()
		tick := time.NewTicker(time.Second)
		for s := range 60 {
			at := time.Now()
			for bed := range beds {
				frame := make([]devices.Reading, len(terms))
				for j, t := range terms {
					r := t
					r.Device, r.Location, r.Profile = fmt.Sprintf("bed-%d-monitor", bed), fmt.Sprintf("bed-%d", bed), "generic/json"
					r.DeviceTime, r.Received, r.Value = at, at, float64(40+(s+j)%30)
					frame[j] = r
				}
				if err := g.Ingest(ctx, frame); err != nil {
					b.Fatal(err)
				}
			}
			if s < 59 {
				<-tick.C
			}
		}
		tick.Stop()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		rss := vmRSS()
		// The minute is charted once close_after has passed.
		for bed := range beds {
			for g.chart.report(fmt.Sprintf("bed-%d-monitor", bed), "", "", nil).Charted == 0 {
				time.Sleep(100 * time.Millisecond)
			}
		}
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
		wall := time.Since(t0)
		cpu := time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) * time.Nanosecond
		b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "%-of-a-core")
		b.ReportMetric(float64(rss)/(1<<20), "MiB-RSS")
		b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "MiB-heap")
		b.ReportMetric(float64(g.ingest.entries.Load()-entries), "outbox-entries")
		b.ReportMetric(float64(g.chart.report("bed-0-monitor", "", "", nil).Charted), "bed-0-intervals")
	}
	b.ReportMetric(0, "ns/op")
}

// vmRSS is the process's resident set, from /proc/self/status.
func vmRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
