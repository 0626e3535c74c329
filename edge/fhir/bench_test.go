package fhir

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wardgate/wardgate/buffer"
	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/edge/fhir/fhirserver"
)

// BenchmarkDelivery measures Observations delivered per second from a full
// outbox to the project's FHIR server (which validates every resource) over
// loopback HTTP, with Bundles of 1, 50 and 200 entries.
func BenchmarkDelivery(b *testing.B) {
	for _, size := range []int{1, 50, 200} {
		b.Run(fmt.Sprintf("bundle=%d", size), func(b *testing.B) {
			ob, err := buffer.OpenOutbox(filepath.Join(b.TempDir(), "outbox.db"), buffer.OutboxOptions{Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			defer ob.Close()
			m := testMapper()
			for i := 0; i < b.N; i++ {
				rd := reading(150456, "MDC_PULS_OXIM_SAT_O2", 97, "%")
				rd.DeviceTime = deviceTime.Add(time.Duration(i) * time.Second)
				entries, _ := m.MapReadings(charted(rd))
				m.ConfirmDevices(entries)
				var items []buffer.Item
				for _, e := range entries {
					p, _ := json.Marshal(e)
					items = append(items, buffer.Item{Key: rd.Device, Payload: p})
				}
				ob.Append(context.Background(), items...)
			}
			ob.Waiting(1) // moves everything into bbolt before the clock starts
			srv := fhirserver.New()
			hs := httptest.NewServer(srv)
			defer hs.Close()
			d := &Deliverer{Outbox: ob, Client: &Client{BaseURL: hs.URL, HTTP: &http.Client{Timeout: 30 * time.Second}}, BatchSize: size, Log: quiet}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error)
			b.ResetTimer()
			go func() { done <- d.Run(ctx) }()
			for ob.Stats().Waiting > 0 {
				time.Sleep(time.Millisecond)
			}
			b.StopTimer()
			cancel()
			<-done
			if srv.Count("Observation") != b.N {
				b.Fatalf("%d delivered of %d", srv.Count("Observation"), b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "observations/s")
			b.ReportMetric(float64(srv.Requests())/b.Elapsed().Seconds(), "bundles/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkLatency measures, with an idle server, the time from Append of a
// reading's entries to the server's 2xx for the Bundle that carried them.
func BenchmarkLatency(b *testing.B) {
	ob, err := buffer.OpenOutbox(filepath.Join(b.TempDir(), "outbox.db"), buffer.OutboxOptions{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer ob.Close()
	srv := fhirserver.New()
	var mu sync.Mutex
	answered := map[string]time.Time{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		srv.ServeHTTP(w, r)
		var bundle struct {
			Entry []struct {
				Resource struct {
					Identifier []Identifier `json:"identifier"`
				} `json:"resource"`
			} `json:"entry"`
		}
		json.Unmarshal(body, &bundle)
		now := time.Now()
		mu.Lock()
		for _, e := range bundle.Entry {
			answered[e.Resource.Identifier[0].Value] = now
		}
		mu.Unlock()
	}))
	defer hs.Close()
	d := &Deliverer{Outbox: ob, Client: &Client{BaseURL: hs.URL, HTTP: &http.Client{Timeout: 30 * time.Second}}, BatchSize: 100, Log: quiet}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go d.Run(ctx)
	m := testMapper()
	sent := map[string]time.Time{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rd := reading(150456, "MDC_PULS_OXIM_SAT_O2", 97, "%")
		rd.DeviceTime = deviceTime.Add(time.Duration(i) * time.Second)
		entries, _ := m.MapReadings(charted(rd))
		m.ConfirmDevices(entries)
		var items []buffer.Item
		for _, e := range entries {
			p, _ := json.Marshal(e)
			items = append(items, buffer.Item{Key: rd.Device, Payload: p})
		}
		var o Observation
		json.Unmarshal(entries[len(entries)-1].Resource, &o)
		start := time.Now()
		ob.Append(context.Background(), items...)
		sent[o.Identifier[0].Value] = start
		// An idle server: the next reading comes after this one is charted.
		for {
			mu.Lock()
			_, ok := answered[o.Identifier[0].Value]
			mu.Unlock()
			if ok {
				break
			}
			time.Sleep(200 * time.Microsecond)
		}
	}
	b.StopTimer()
	var lat []time.Duration
	for id, start := range sent {
		lat = append(lat, answered[id].Sub(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkMapReadings is the cost of turning one frame of five readings
// into validated Observation entries.
func BenchmarkMapReadings(b *testing.B) {
	m := &Mapper{Site: "ward-4b"}
	at := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	codes := []devices.MDC{{Code: 147842, RefID: "MDC_ECG_HEART_RATE"}, {Code: 150456, RefID: "MDC_PULS_OXIM_SAT_O2"},
		{Code: 149530, RefID: "MDC_PULS_OXIM_PULS_RATE"}, {Code: 151578, RefID: "MDC_TTHOR_RESP_RATE"}, {Code: 150364, RefID: "MDC_TEMP_BODY"}}
	units := []string{"/min", "%", "/min", "/min", "Cel"}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		frame := make([]PatientReading, len(codes))
		for j := range codes {
			frame[j] = PatientReading{Reading: devices.Reading{Device: "d", Location: "bed", Code: codes[j], Value: 70, Unit: units[j],
				DeviceTime: at.Add(time.Duration(i) * time.Second), Received: at}, Patient: "Patient/1"}
		}
		entries, rej := m.MapReadings(frame)
		if len(rej) > 0 {
			b.Fatal(rej)
		}
		m.ConfirmDevices(entries)
	}
	b.ReportMetric(float64(b.N*len(codes))/b.Elapsed().Seconds(), "readings/s")
}
