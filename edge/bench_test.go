package edge

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/edge/fhir/fhirserver"
)

// BenchmarkLiveReadingsThroughTheHeldStore is a ward whose patients come
// from the record's Encounters: 32 beds, frames of five readings measured
// now, ingested as fast as the gateway takes them. Every reading measured
// after the last lookup of its bed waits in the held store until the next
// one, so this is the rate of the path most live readings take with
// patients.encounter_lookup: ingest → held.db → lookup → resolver →
// outbox. It reports readings/s from the first Ingest until the last
// reading's entry is in the outbox, and the lookups the record answered.
func BenchmarkLiveReadingsThroughTheHeldStore(b *testing.B) {
	const beds, frames = 32, 4000
	record := fhirserver.New()
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	for i := range beds {
		bed := fmt.Sprintf("bed-%d", i)
		putBed(record, bed, "L"+bed)
		putEncounter(record, "enc-"+bed, "Patient/p"+bed, "L"+bed, "in-progress", start)
	}
	g, _ := runGateway(b, record, `patients:
  encounter_lookup: {location_system: "urn:example:beds", refresh: 1s}
`)
	codes := []devices.MDC{{Code: 147842, RefID: "MDC_ECG_HEART_RATE"}, {Code: 150456, RefID: "MDC_PULS_OXIM_SAT_O2"},
		{Code: 149530, RefID: "MDC_PULS_OXIM_PULS_RATE"}, {Code: 151578, RefID: "MDC_TTHOR_RESP_RATE"}, {Code: 150364, RefID: "MDC_TEMP_BODY"}}
	units := []string{"/min", "%", "/min", "/min", "Cel"}
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		before := g.ingest.entries.Load()
		requests := record.Requests()
		t0 := time.Now()
		for f := range frames {
			bed := fmt.Sprintf("bed-%d", f%beds)
			at := time.Now()
			frame := make([]devices.Reading, len(codes))
			for j := range codes {
				frame[j] = devices.Reading{Device: bed + "-monitor", Location: bed, Profile: "generic/json", Code: codes[j],
					Value: 70, Unit: units[j], DeviceTime: at, Received: at}
			}
			if err := g.Ingest(ctx, frame); err != nil {
				b.Fatal(err)
			}
		}
		want := before + frames*uint64(len(codes))
		for g.ingest.entries.Load() < want {
			time.Sleep(5 * time.Millisecond)
		}
		elapsed := time.Since(t0)
		b.ReportMetric(float64(frames*len(codes))/elapsed.Seconds(), "readings/s")
		b.ReportMetric(float64(record.Requests()-requests), "record-requests")
		b.ReportMetric(float64(g.ingest.held.Load()), "frames-held")
	}
	b.ReportMetric(0, "ns/op")
}
