package devices_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/devices/internal/devicestest"
)

var errFull = errors.New("store is full: outbox holds 10 of its 10 bytes")

func intake(transportKeeps bool) (*devices.Intake, *devicestest.Sink, *devicestest.Log) {
	sink := &devicestest.Sink{}
	log, logger := devicestest.NewLog()
	in := &devices.Intake{Sink: sink, Monitor: devices.NewMonitor("bed-1-monitor", "bed-1", "test/profile", "test"),
		Clocks: devices.NewClocks(), Log: logger, Interval: time.Second, SilentAfter: time.Hour,
		RetryEvery: time.Millisecond}
	if !transportKeeps {
		in.GiveUpAfter = 20 * time.Millisecond
	}
	return in, sink, log
}

func frame(in *devices.Intake, values ...float64) []devices.Reading {
	var rs []devices.Reading
	for _, v := range values {
		rs = append(rs, devices.Reading{Code: devices.MDC{Code: 150456, RefID: "MDC_PULS_OXIM_SAT_O2"}, Value: v, Unit: "%"})
	}
	in.Stamp(devices.Receipt{Device: "bed-1-monitor", Location: "bed-1", At: time.Now()}, rs, time.Time{}, time.Time{}, 0)
	return rs
}

func TestStampGivesReadingsTheirDeviceBedAndReceipt(t *testing.T) {
	in, _, log := intake(true)
	rs := frame(in, 97, 98)
	for _, r := range rs {
		if r.Device != "bed-1-monitor" || r.Location != "bed-1" || r.Received.IsZero() {
			t.Fatalf("reading not stamped: %+v", r)
		}
	}
	st := in.Monitor.Status()
	if st.State != devices.Connected || st.Frames != 1 || st.Readings != 2 {
		t.Fatalf("monitor: %s, %d frames, %d readings; want connected, 1, 2", st.State, st.Frames, st.Readings)
	}
	if log.Count("monitor connected") != 1 {
		t.Fatalf("the first frame is logged once as the monitor connecting:\n%s", log)
	}
	frame(in, 99)
	if log.Count("monitor connected") != 1 {
		t.Fatalf("a second frame logged the monitor connecting again:\n%s", log)
	}
}

// A transport that keeps what is not acknowledged (MQTT): refused readings
// are offered until they are stored, never counted lost.
func TestRefusedReadingsAreOfferedUntilStoredWhenTheTransportKeepsThem(t *testing.T) {
	in, sink, log := intake(true)
	rs := frame(in, 97)
	sink.RefuseIngest(errFull)
	done := make(chan error, 1)
	go func() { done <- in.Ingest(context.Background(), rs) }()
	devicestest.WaitFor(t, "three offers", func() bool { return sink.Ingests() >= 3 }, func() string { return "" })
	if st, _ := in.Monitor.State(); st != devices.Failed {
		t.Fatalf("state %s while the outbox refuses, want %s", st, devices.Failed)
	}
	sink.RefuseIngest(nil)
	if err := <-done; err != nil {
		t.Fatalf("Ingest: %v", err)
	}
	st := in.Monitor.Status()
	if sink.Readings() != 1 || st.Lost != 0 || st.State != devices.Connected || st.LastError != "" {
		t.Fatalf("%d readings stored, %d lost, state %s (%q); want 1, 0, connected", sink.Readings(), st.Lost, st.State, st.LastError)
	}
	if log.Count("the outbox does not take readings") != 1 || log.Count("the outbox takes readings again") != 1 {
		t.Fatalf("a refusal is logged once when it begins and once when it ends:\n%s", log)
	}
}

// A transport that keeps nothing back (serial): refused readings are
// offered for GiveUpAfter, then counted lost; while the refusal lasts,
// later frames are offered once each; when it ends, all is as before.
func TestRefusedReadingsAreCountedLostAfterGiveUpAfter(t *testing.T) {
	in, sink, log := intake(false)
	sink.RefuseIngest(errFull)
	err := in.Ingest(context.Background(), frame(in, 97, 98))
	if !errors.Is(err, errFull) {
		t.Fatalf("Ingest: %v, want the refusal", err)
	}
	if offers := sink.Ingests(); offers < 2 {
		t.Fatalf("%d offers before giving up, want it offered again", offers)
	}
	if st := in.Monitor.Status(); st.Lost != 2 || st.State != devices.Failed {
		t.Fatalf("%d lost, state %s; want 2 lost, %s", st.Lost, st.State, devices.Failed)
	}
	for i := range 5 {
		before := sink.Ingests()
		if err := in.Ingest(context.Background(), frame(in, float64(90+i))); err == nil {
			t.Fatal("a refused frame was taken as stored")
		}
		if n := sink.Ingests() - before; n != 1 {
			t.Fatalf("frame %d offered %d times while the refusal lasts, want once", i, n)
		}
		if st, _ := in.Monitor.State(); st != devices.Failed {
			t.Fatalf("state %s while the outbox refuses, want %s", st, devices.Failed)
		}
	}
	if st := in.Monitor.Status(); st.Lost != 7 {
		t.Fatalf("%d readings counted lost, want 7", st.Lost)
	}
	if n := log.Count("readings lost"); n != 1 {
		t.Fatalf("%d log lines of lost readings within a minute, want 1:\n%s", n, log)
	}
	sink.RefuseIngest(nil)
	if err := in.Ingest(context.Background(), frame(in, 99)); err != nil {
		t.Fatalf("Ingest after the refusal: %v", err)
	}
	st := in.Monitor.Status()
	if sink.Readings() != 1 || st.Lost != 7 || st.State != devices.Connected {
		t.Fatalf("%d stored, %d lost, state %s; want 1, 7, connected", sink.Readings(), st.Lost, st.State)
	}
	if log.Count("readings_lost=7") != 1 {
		t.Fatalf("the end of the refusal is logged with the readings it lost:\n%s", log)
	}
	// The next refusal waits again before it gives up.
	sink.RefuseIngest(errFull)
	before := sink.Ingests()
	in.Ingest(context.Background(), frame(in, 96))
	if n := sink.Ingests() - before; n < 2 {
		t.Fatalf("a new refusal offered the frame %d times, want it offered again", n)
	}
}

func TestIngestEndsWithItsContext(t *testing.T) {
	for _, keeps := range []bool{true, false} {
		t.Run(fmt.Sprintf("transport keeps: %v", keeps), func(t *testing.T) {
			in, sink, log := intake(keeps)
			if !keeps {
				in.GiveUpAfter = time.Hour // longer than the test
			}
			sink.RefuseIngest(errFull)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- in.Ingest(ctx, frame(in, 97)) }()
			devicestest.WaitFor(t, "an offer", func() bool { return sink.Ingests() >= 2 }, func() string { return "" })
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Fatalf("Ingest: %v, want it ended by its context", err)
			}
			lost := in.Monitor.Status().Lost
			if keeps && lost != 0 {
				t.Fatalf("%d readings counted lost that the transport keeps", lost)
			}
			if !keeps && (lost != 1 || log.Count("the gateway stopped before the outbox took them") != 1) {
				t.Fatalf("%d readings counted lost when the source stopped, want 1, logged:\n%s", lost, log)
			}
		})
	}
}

func TestNoticeSilence(t *testing.T) {
	in, _, log := intake(true)
	in.SilentAfter = time.Minute
	in.NoticeSilence(time.Now().Add(-30 * time.Second))
	if st, _ := in.Monitor.State(); st != devices.Connecting {
		t.Fatalf("state %s half a minute after the link came up, want %s", st, devices.Connecting)
	}
	in.NoticeSilence(time.Now().Add(-2 * time.Minute))
	if st, _ := in.Monitor.State(); st != devices.Silent || log.Count("monitor silent") != 1 {
		t.Fatalf("state %s two minutes after the link came up with no frame, want %s, logged once:\n%s", st, devices.Silent, log)
	}
	in.NoticeSilence(time.Now().Add(-3 * time.Minute))
	if log.Count("monitor silent") != 1 {
		t.Fatalf("silence logged again:\n%s", log)
	}
	frame(in, 97)
	if st, _ := in.Monitor.State(); st != devices.Connected {
		t.Fatalf("state %s after a frame, want %s", st, devices.Connected)
	}
	// A frame counts from when it came, not the link.
	in.NoticeSilence(time.Now().Add(-time.Hour))
	if st, _ := in.Monitor.State(); st != devices.Connected {
		t.Fatalf("state %s right after a frame, want %s", st, devices.Connected)
	}
	// A failure the source reported stands.
	in.Monitor.Set(devices.Failed, "the broker refused the subscription")
	in.SilentAfter = 0
	time.Sleep(time.Millisecond)
	in.NoticeSilence(time.Now().Add(-time.Hour))
	if st, _ := in.Monitor.State(); st != devices.Failed {
		t.Fatalf("state %s, want the reported failure to stand", st)
	}
}
