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
	iv := intellivuesim.New(intellivuesim.Config{
		ClockSkew: t0.Sub(time.Now()), Interval: 200 * time.Millisecond, NIBPAge: 40 * time.Second,
		Model: "MX450", Manufacturer: "Philips", Serial: "DE12345678", Software: "M.00.03",
		Logger: slog.New(slog.DiscardHandler),
	})
	d, err := intellivue.New(intellivue.Options{Transport: intellivue.Serial, Location: time.UTC, Silence: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	recordSession(t, "philips/intellivue-mx.capture", 6,
		func(ctx context.Context, rw io.ReadWriter) { iv.ServeStream(ctx, rw) },
		d, func(rw io.ReadWriter) devices.Link { return intellivue.NewSerialLink(rw, 0) })

	// A Datex-Ohmeda S/5, at a protocol second of 20 ms.
	const second = 20 * time.Millisecond
	dx := &datexsim.Monitor{Level: datex.Level15, PlugID: 7, Clock: t0, Second: second}
	recordSession(t, "ge/datex-s5.capture", 4,
		func(ctx context.Context, rw io.ReadWriter) { dx.Run(ctx, rw) },
		&datex.Dialogue{Second: second, Levels: datex.LevelsFrom(datex.Level15), Log: slog.New(slog.DiscardHandler)},
		func(rw io.ReadWriter) devices.Link { return datex.NewSerialLink(rw) })
}

// recordSession runs a dialogue against a simulated monitor over a pair of
// pipes until it has had answers answers, and writes what the monitor sent
// to firmware-profiles/name.
func recordSession(t *testing.T, name string, answers int, monitor func(context.Context, io.ReadWriter), d devices.Dialogue, link func(io.ReadWriter) devices.Link) {
	t.Helper()
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
	go monitor(ctx, duplex{monR, recording})
	n := 0
	runCtx, stop := context.WithCancel(ctx)
	d.Run(runCtx, link(duplex{cliR, cliW}), func(df devices.DriverFrame) error {
		if n++; n == answers {
			stop()
		}
		return nil
	})
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if err := os.WriteFile("../../firmware-profiles/"+name, rec.rec, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d bytes, %d answers", name, len(rec.rec), n)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }
