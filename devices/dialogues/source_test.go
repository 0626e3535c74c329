package dialogues

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/devices/profile"
)

type sink struct {
	mu sync.Mutex
	rs []devices.Reading
}

func (s *sink) Ingest(ctx context.Context, frames ...[]devices.Reading) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range frames {
		s.rs = append(s.rs, f...)
	}
	return nil
}

func (s *sink) Reject(ctx context.Context, device string, raw []byte, reason string) error {
	return nil
}

func (s *sink) readings() []devices.Reading {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]devices.Reading(nil), s.rs...)
}

// scripted is a dialogue that, in each session, emits its answers and then
// says the monitor went silent.
type scripted struct {
	mu       sync.Mutex
	sessions int
	answers  int
}

func (d *scripted) Run(ctx context.Context, link devices.Link, emit func(devices.DriverFrame) error) error {
	d.mu.Lock()
	d.sessions++
	d.mu.Unlock()
	for i := 0; i < d.answers; i++ {
		at := time.Now().Truncate(time.Second).Add(time.Duration(i) * time.Millisecond)
		if err := emit(devices.DriverFrame{DeviceTime: at, Values: []devices.DriverValue{{Field: "hr", Value: 60 + float64(i)}}, Bad: 1}); err != nil {
			return err
		}
	}
	return fmt.Errorf("no answer for 10s: %w", devices.ErrSilent)
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// A session that ends in silence is opened again; every answer's readings
// reach the sink, stamped with the monitor and its bed; the page shows the
// silence with its reason and counts the answers' bad parts.
func TestSourceReopensASilentSession(t *testing.T) {
	profile.Decoders["scripted"] = true
	defer delete(profile.Decoders, "scripted")
	p, err := profile.Parse("s.yaml", "acme/scripted", []byte("vendor: Acme\nmodel: S\nformat: scripted\nparameters:\n  - {field: hr, mdc: MDC_ECG_HEART_RATE, unit: /min}\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := &scripted{answers: 3}
	out := &sink{}
	opens := 0
	mon := devices.NewMonitor("bed-9-monitor", "bed-9", p.Name, "udp")
	s := &Source{Monitor: mon, ID: "bed-9-monitor", Location: "bed-9", Profile: p, Dialogue: d, Transport: "udp", Address: "127.0.0.1:24105",
		Sink: out, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxBackoff: 50 * time.Millisecond,
		Open: func(ctx context.Context) (devices.Link, io.Closer, error) {
			opens++
			if opens == 2 {
				return nil, nil, fmt.Errorf("no route to host")
			}
			return nil, nopCloser{}, nil
		}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	var silent devices.Status // the page once the monitor went silent again
	for {
		d.mu.Lock()
		n := d.sessions
		d.mu.Unlock()
		if st := mon.Status(); n >= 3 && st.State == devices.Silent {
			silent = st
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rs := out.readings()
	if len(rs) < 6 {
		t.Fatalf("%d readings, want 3 per session", len(rs))
	}
	for _, r := range rs {
		if r.Device != "bed-9-monitor" || r.Location != "bed-9" || r.Code.RefID != "MDC_ECG_HEART_RATE" || r.DeviceTime.IsZero() {
			t.Fatalf("reading %+v", r)
		}
	}
	if st := silent; st.LastError == "" || st.BadFrames < 6 || st.Transport != "udp" {
		t.Fatalf("status %+v", st)
	}
}
