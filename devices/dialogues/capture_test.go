package dialogues

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/devices/datex"
	"github.com/wardgate/wardgate/devices/intellivue"
	"github.com/wardgate/wardgate/devices/sim/datexsim"
	"github.com/wardgate/wardgate/devices/sim/intellivuesim"
)

var writeCaptures = flag.Bool("write-captures", false, "record the dialogue profiles' captures from the simulators into firmware-profiles/")

// tee is one direction of a byte stream, recorded.
type tee struct {
	mu  sync.Mutex
	rec []byte
}

// duplex joins two pipes into the ReadWriter one side of a serial line
// sees.
type duplex struct {
	io.Reader
	io.Writer
}

// TestWriteCaptures records, from the simulators, the monitor's side of a
// session on a serial line: what the built-in dialogue profiles replay in
// their tests and in `wardgate replay`. No public byte capture of these
// monitors exists; the profiles' comments say so. Run with -write-captures.
func TestWriteCaptures(t *testing.T) {
	if !*writeCaptures {
		t.Skip("records the captures only with -write-captures")
	}
	t0 := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	mon := intellivuesim.New(intellivuesim.Config{
		ClockSkew: t0.Sub(time.Now()), Interval: 200 * time.Millisecond, NIBPAge: 40 * time.Second,
		Model: "MX450", Manufacturer: "Philips", Serial: "DE12345678", Software: "M.00.03",
		Logger: slog.New(slog.DiscardHandler),
	})
	monR, cliW := io.Pipe()
	cliR, monW := io.Pipe()
	var rec tee
	recording := writerFunc(func(b []byte) (int, error) {
		rec.mu.Lock()
		rec.rec = append(rec.rec, b...)
		rec.mu.Unlock()
		return monW.Write(b)
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go mon.ServeStream(ctx, duplex{monR, recording})
	d, err := intellivue.New(intellivue.Options{Transport: intellivue.Serial, Location: time.UTC, Silence: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	answers := 0
	runCtx, stop := context.WithCancel(ctx)
	err = d.Run(runCtx, intellivue.NewSerialLink(duplex{cliR, cliW}, 0), func(df devices.DriverFrame) error {
		if answers++; answers == 6 {
			stop()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if err := os.WriteFile("../../firmware-profiles/philips/intellivue-mx.capture", rec.rec, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("intellivue-mx.capture: %d bytes, %d answers", len(rec.rec), answers)
	writeDatexCapture(t, t0)
}

// writeDatexCapture records a Datex-Ohmeda S/5's side of a session: its
// records at a protocol second of 20 ms.
func writeDatexCapture(t *testing.T, t0 time.Time) {
	const second = 20 * time.Millisecond
	mon := &datexsim.Monitor{Level: datex.Level15, PlugID: 7, Clock: t0, Second: second}
	monR, cliW := io.Pipe()
	cliR, monW := io.Pipe()
	var rec tee
	recording := writerFunc(func(b []byte) (int, error) {
		rec.mu.Lock()
		rec.rec = append(rec.rec, b...)
		rec.mu.Unlock()
		return monW.Write(b)
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go mon.Run(ctx, duplex{monR, recording})
	d := &datex.Dialogue{Second: second, Levels: datex.LevelsFrom(datex.Level15), Log: slog.New(slog.DiscardHandler)}
	records := 0
	runCtx, stop := context.WithCancel(ctx)
	d.Run(runCtx, datex.NewSerialLink(duplex{cliR, cliW}), func(df devices.DriverFrame) error {
		if records++; records == 4 {
			stop()
		}
		return nil
	})
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if err := os.WriteFile("../../firmware-profiles/ge/datex-s5.capture", rec.rec, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("datex-s5.capture: %d bytes, %d records", len(rec.rec), records)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }
