package dialogues

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/devices/datex"
	"github.com/wardgate/wardgate/devices/sim/datexsim"
)

// Two channels of one record that the profile maps to one MDC code (the
// temperatures T1 and T2 with their default labels T1 and T2, both charted
// as MDC_TEMP; or two pressure channels both labelled ART) give two readings
// of one device, code and device time: the Observation's identity. The
// delivery keeps the first of two entries with one identity and
// acknowledges the other (edge/fhir/deliver.go dedupe), and the mapper's
// blood-pressure panel key overwrites one channel with the other
// (edge/fhir/observation.go, panels[k]): a measurement is lost, uncounted.
func TestReview14DatexTwoChannelsOfOneCodeCollide(t *testing.T) {
	p := loadReview14Profile(t, "ge/datex-s5")
	t0 := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	const labelT1, labelT2, art = 11, 12, 1
	f := devices.DriverFrame{DeviceTime: t0, Values: []devices.DriverValue{
		{Field: "t1.temp", Value: 38.2, State: datex.StateOf(0, labelT1, datex.Valid)},
		{Field: "t2.temp", Value: 35.9, State: datex.StateOf(0, labelT2, datex.Valid)},
		{Field: "p1.sys", Value: 120, State: datex.StateOf(0, art, datex.Valid)},
		{Field: "p2.sys", Value: 95, State: datex.StateOf(0, art, datex.Valid)},
	}}
	rs, dropped := review14Readings(p.DecodeDriver(f))
	type key struct {
		code uint32
		at   time.Time
	}
	seen := map[key]float64{}
	for _, r := range rs {
		k := key{r.Code.Code, r.DeviceTime}
		if v, dup := seen[k]; dup {
			t.Errorf("%s %v and %v at one time: one Observation identity for two measurements (%d dropped counted)", r.Code.RefID, v, r.Value, len(dropped))
		}
		seen[k] = r.Value
	}
}

// closeBoth closes the pipes, then the link (a pipe's Read blocks until
// closed, see datex.SerialLink.Close).
type closeBoth struct {
	pipes []io.Closer
	link  io.Closer
}

func (c closeBoth) Close() error {
	for _, p := range c.pipes {
		p.Close()
	}
	return c.link.Close()
}

// Frames refused by the link's framing (a Datex frame whose checksum does
// not hold: noise, a wrong cable) are counted by the link
// (datex.SerialLink.BadFrames; the IntelliVue SerialLink's Stats, which
// also counts the messages it drops when the dialogue falls behind), but
// nothing reads those counts: the status page and /metrics show no bad
// frame. Contract 3: whatever is dropped or rejected is counted and shown.
func TestReview14LinkBadFramesReachThePage(t *testing.T) {
	p := loadReview14Profile(t, "ge/datex-s5")
	sec := 100 * time.Millisecond
	sim := &datexsim.Monitor{Second: sec, PlugID: 7}
	sim.BadChecksum(3)
	pr, _ := Lookup("datex")
	d := &datex.Dialogue{Second: sec, Log: slog.New(slog.DiscardHandler)}
	out := &sink{}
	mon := devices.NewMonitor("bed-3-monitor", "bed-3", p.Name, "serial")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &Source{ID: "bed-3-monitor", Location: "bed-3", Profile: p, Dialogue: d, Transport: "serial", Address: "pipe",
		Sink: out, Monitor: mon, Log: slog.New(slog.DiscardHandler), MaxBackoff: 100 * time.Millisecond,
		Open: func(ctx context.Context) (devices.Link, io.Closer, error) {
			monR, cliW := io.Pipe()
			cliR, monW := io.Pipe()
			go sim.Run(ctx, duplex{monR, monW})
			l := pr.SerialLink(duplex{cliR, cliW})
			return l, closeBoth{pipes: []io.Closer{monR, cliR, monW, cliW}, link: l.(io.Closer)}, nil
		}}
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	deadline := time.Now().Add(20 * time.Second)
	for sim.Sent() < 6 || len(out.readings()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the simulator sent %d records, %d readings arrived", sim.Sent(), len(out.readings()))
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if st := mon.Status(); st.BadFrames < 3 {
		t.Errorf("3 frames with a bad checksum, the page shows %d bad frames", st.BadFrames)
	}
}

// The IntelliVue decoder reads each numeric's ID_LABEL (Numeric.Label) but
// the dialogue does not pass it on (DriverValue has no label, its State is
// the measurement state only): two numerics of one physiological id in one
// answer (two temperature channels both sent as NOM_TEMP, a second SpO2
// module) cannot be told apart by the profile, and give two readings of
// one device, code and time: one Observation identity for two
// measurements, the second lost at delivery.
func TestReview14IntelliVueTwoNumericsOfOneIDCollide(t *testing.T) {
	p := loadReview14Profile(t, "philips/intellivue-mx")
	t0 := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	rs, _ := review14Readings(p.DecodeDriver(devices.DriverFrame{DeviceTime: t0, Values: []devices.DriverValue{
		{Field: "0x4B48", Value: 38.2, Unit: "6048"},
		{Field: "0x4B48", Value: 35.9, Unit: "6048"},
	}}))
	if len(rs) == 2 && rs[0].Code == rs[1].Code && rs[0].DeviceTime.Equal(rs[1].DeviceTime) {
		t.Errorf("%s %v and %v at one time: one identity", rs[0].Code.RefID, rs[0].Value, rs[1].Value)
	}
}
