package edge

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/devices/profile"
	"github.com/wardgate/wardgate/edge/config"
	"github.com/wardgate/wardgate/edge/fhir"
	"github.com/wardgate/wardgate/edge/fhir/fhirserver"
)

// Second adversarial review of issue 16 (charting policies), after the
// fixes of c05e40c: each defect it found is a test of the correct
// behaviour, now fixed, and what held is tested too.

// review16bEvery are the interval lengths that divide a day.
var review16bEvery = []time.Duration{time.Second, 5 * time.Second, 15 * time.Second, 30 * time.Second,
	time.Minute, 5 * time.Minute, 15 * time.Minute, 30 * time.Minute, 45 * time.Minute,
	time.Hour, 90 * time.Minute, 2 * time.Hour, 3 * time.Hour, 4 * time.Hour, 6 * time.Hour, 8 * time.Hour, 12 * time.Hour, 24 * time.Hour}

// review16bWalk walks a whole local day interval by interval: each
// interval must begin where the previous one ended, hold its own start,
// middle and last instant (the interval of a reading is the same whichever
// instant of it is asked), and the last must end at the next midnight.
func review16bWalk(zone string, y int, m time.Month, d int, every time.Duration) error {
	midnight := time.Date(y, m, d, 0, 0, 0, 0, time.Local)
	next := time.Date(y, m, d+1, 0, 0, 0, 0, time.Local)
	at := midnight
	for n := 0; at.Before(next); n++ {
		s, e := interval(at, every)
		if !s.Equal(at) {
			return fmt.Errorf("%s %d-%02d-%02d every %s: after the interval ending %s comes [%s, %s): not a partition",
				zone, y, m, d, every, at.Format(time.RFC3339), s.Format(time.RFC3339), e.Format(time.RFC3339))
		}
		if !e.After(s) {
			return fmt.Errorf("%s every %s: empty interval at %s", zone, every, s.Format(time.RFC3339))
		}
		for _, in := range []time.Time{s.Add(e.Sub(s) / 2), e.Add(-time.Nanosecond)} {
			if s2, e2 := interval(in, every); !s2.Equal(s) || !e2.Equal(e) {
				return fmt.Errorf("%s %d-%02d-%02d every %s: %s is in [%s, %s) but its interval is [%s, %s)",
					zone, y, m, d, every, in.Format(time.RFC3339Nano), s.Format(time.RFC3339), e.Format(time.RFC3339), s2.Format(time.RFC3339), e2.Format(time.RFC3339))
			}
		}
		at = e
	}
	if !at.Equal(next) {
		return fmt.Errorf("%s every %s: the day's intervals end at %s, not at midnight %s", zone, every, at, next)
	}
	return nil
}

type review16bDay struct {
	zone string
	y    int
	m    time.Month
	d    int
}

func review16bWalkDays(t *testing.T, days []review16bDay, every []time.Duration) {
	t.Helper()
	for _, day := range days {
		review16Local(t, day.zone, func() {
			for _, e := range every {
				if err := review16bWalk(day.zone, day.y, day.m, day.d, e); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// Held: on ordinary days, in zones of whole, half and three-quarter hour
// offsets, every interval length that divides a day cuts the day into
// intervals that partition it, and a reading's interval is the same from
// any instant of it (a rebuild after a restart finds the same window).
func TestReview16bIntervalsPartitionOrdinaryDays(t *testing.T) {
	review16bWalkDays(t, []review16bDay{
		{"Europe/Amsterdam", 2026, 1, 10}, {"Asia/Kolkata", 2026, 3, 29}, {"Asia/Kathmandu", 2026, 7, 1},
		{"Australia/Lord_Howe", 2026, 1, 10}, {"Australia/Lord_Howe", 2026, 7, 10}, {"America/St_Johns", 2026, 1, 10}, {"UTC", 2026, 6, 1},
	}, review16bEvery)
}

// Held: on a DST day of a whole-hour shift, intervals of up to an hour
// (which divide the shift) partition the whole day.
func TestReview16bShortIntervalsPartitionWholeHourDSTDays(t *testing.T) {
	var short []time.Duration
	for _, e := range review16bEvery {
		if e <= time.Hour && time.Hour%e == 0 {
			short = append(short, e)
		}
	}
	review16bWalkDays(t, []review16bDay{
		{"Europe/Amsterdam", 2026, 3, 29}, {"Europe/Amsterdam", 2026, 10, 25},
		{"America/New_York", 2026, 3, 8}, {"America/New_York", 2026, 11, 1},
	}, short)
}

// Defect 1. interval() lengthens the interval before the last of a DST
// day to the next midnight ("next.Sub(end) < every"), yet a reading in the
// day's last stretch still computes its own start, k*every from midnight:
// two intervals overlap at the end of every DST day, for each length that
// does not divide the day (2h, 3h, 4h, … on a 23 h or 25 h day; 1h, 90m,
// … on Lord Howe's 23.5 h and 24.5 h days, whose clocks move half an
// hour). On 25 October in Amsterdam, every 4h: a reading at 22:00 local
// (elapsed 23 h) charts [20:00, 24:00) and one at 23:30 local charts
// [23:00, 24:00); two Observations cover the same half hour, and the
// review's partition test looked only at the hours around the change, not
// at the day's end.
func TestReview16bLongIntervalsPartitionTheWholeDSTDay(t *testing.T) {
	// Defect 1 of the second review, fixed: the day's last intervals overlap on DST days.
	review16bWalkDays(t, []review16bDay{
		{"Europe/Amsterdam", 2026, 3, 29}, {"Europe/Amsterdam", 2026, 10, 25},
		{"Australia/Lord_Howe", 2026, 4, 5}, {"Australia/Lord_Howe", 2026, 10, 4},
		{"America/Santiago", 2026, 4, 5},
	}, review16bEvery)
	// Chile moves its clocks at midnight: 6 September 2026 begins at
	// 01:00 -03, and time.Date(…, 6 Sep, 0:00) is 23:00 -04 of the 5th. A
	// reading in the 5th's last hour gets an interval that ends (at that
	// "midnight") before it begins, and before the reading.
	review16Local(t, "America/Santiago", func() {
		from := time.Date(2026, 9, 5, 20, 0, 0, 0, time.Local)
		for at := from; at.Before(from.Add(6 * time.Hour)); at = at.Add(time.Minute) {
			for _, every := range []time.Duration{time.Minute, time.Hour, 4 * time.Hour} {
				if s, e := interval(at, every); at.Before(s) || !at.Before(e) {
					t.Errorf("America/Santiago every %s: %s is outside its interval [%s, %s)", every, at.Format(time.RFC3339), s.Format(time.RFC3339), e.Format(time.RFC3339))
					return
				}
			}
		}
	})
}

// Defect 2. With charting.amend, a late reading of one member of a
// blood-pressure panel reopens that member's window alone (the other
// members stay in ch.charted, out of dueLocked's panel grouping): the
// member is charted by itself, as amended, under the member's identifier
// (a conditional update that matches nothing, so it creates), while the
// panel charted before keeps the old value under the panel's identifier.
// The record then holds two systolic values for one minute, the panel's
// stale one and a lone "amended" one. The panel should be charted again,
// whole, as amended (all its members' windows reopened together).
func TestReview16bALateMemberAmendsItsWholePanel(t *testing.T) {
	// Defect 2 of the second review, fixed: an amended panel member is charted alone beside the stale panel.
	g, record := chartingGateway(t, "charting: {close_after: 1h, amend: true, chart: {MDC_PRESS_BLD_NONINV_SYS: every 1m median, MDC_PRESS_BLD_NONINV_DIA: every 1m median}}\n")
	ctx := context.Background()
	start := pastMinute(5)
	var frames [][]devices.Reading
	for i, sys := range []float64{120, 122, 124} {
		at := start.Add(time.Duration(i) * 10 * time.Second)
		frames = append(frames, []devices.Reading{masimoReading(t, "MDC_PRESS_BLD_NONINV_SYS", at, sys, "mm[Hg]"), masimoReading(t, "MDC_PRESS_BLD_NONINV_DIA", at, 80, "mm[Hg]")})
	}
	if err := g.Ingest(ctx, frames...); err != nil {
		t.Fatal(err)
	}
	review16Close(t, g)
	waitFor(t, "the panel charted", func() bool { return record.Count("Observation") == 1 })
	if o := observations(record)[0]; len(o.Component) != 2 {
		t.Fatalf("the minute's blood pressure: %+v", o)
	}
	// A late systolic of the same minute.
	if err := g.Ingest(ctx, []devices.Reading{masimoReading(t, "MDC_PRESS_BLD_NONINV_SYS", start.Add(40*time.Second), 140, "mm[Hg]")}); err != nil {
		t.Fatal(err)
	}
	review16Close(t, g)
	waitFor(t, "the outbox delivered", func() bool { return g.outbox.Stats().Waiting == 0 })
	time.Sleep(2 * chartTick)
	obs := observations(record)
	var got []string
	for _, o := range obs {
		got = append(got, fmt.Sprintf("%s %s (%d components, value %v)", o.Identifier[0].Value, o.Status, len(o.Component), o.ValueQuantity))
	}
	if len(obs) != 1 || obs[0].Status != "amended" || len(obs[0].Component) != 2 || obs[0].Component[0].ValueQuantity.Value != 123 {
		t.Fatalf("after a late systolic of a charted panel the record holds %v; want the one panel, amended, systolic 123 (median of 120, 122, 124, 140)", got)
	}
}

// review16bRestarts runs a gateway on one data directory as many times as
// it is given bodies, as a restart would.
func review16bRestarts(t *testing.T, charting string, bodies ...func(g *Gateway)) *fhirserver.Server {
	t.Helper()
	record := fhirserver.New()
	hs := httptest.NewServer(record)
	t.Cleanup(hs.Close)
	path := filepath.Join(t.TempDir(), "wardgate.yaml")
	os.WriteFile(path, []byte(`site: ward-4b
data_dir: data
http: {listen: "127.0.0.1:0"}
fhir: {base_url: `+hs.URL+`, patient_identifier_system: urn:oid:1.2.3.4}
patients: {static: {bed-12: Patient/123}}
`+charting), 0o600)
	for _, body := range bodies {
		cfg, _, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		g := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), "test")
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- g.Run(ctx) }()
		waitFor(t, "the gateway ready", g.isReady)
		body(g)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	return record
}

// Defect 3. With charting.amend, a charted interval's readings stay in
// the window for amendWithin so that a late reading can amend it; but
// whether it was charted (marks, ch.charted, wrote) lives only in memory.
// After a restart the window is rebuilt as an open interval that was never
// written: a late reading that joins it (a source that reconnects after
// the restart and sends what it held is the common case) is charted with
// the rest as "final", a conditional create the record ignores. The late
// reading is lost though amend is on and the interval well within
// amendWithin; the page counts the interval charted.
func TestReview16bAfterARestartALateReadingStillAmends(t *testing.T) {
	// Defect 3 of the second review, fixed: after a restart, a late reading of an interval charted before it is lost, not amended.
	ctx := context.Background()
	start := pastMinute(5)
	record := review16bRestarts(t, "charting: {close_after: 1h, amend: true, chart: {continuous: every 1m mean}}\n",
		func(g *Gateway) {
			var frame []devices.Reading
			for i := range 30 {
				frame = append(frame, masimoReading(t, "MDC_PULS_OXIM_PULS_RATE", start.Add(time.Duration(i)*time.Second), 60, "/min"))
			}
			if err := g.Ingest(ctx, frame); err != nil {
				t.Fatal(err)
			}
			if err := g.chart.closeDue(ctx, time.Now().Add(2*time.Hour)); err != nil {
				t.Fatal(err)
			}
		},
		func(g *Gateway) {
			if err := g.Ingest(ctx, []devices.Reading{masimoReading(t, "MDC_PULS_OXIM_PULS_RATE", start.Add(45*time.Second), 122, "/min")}); err != nil {
				t.Fatal(err)
			}
			if err := g.chart.closeDue(ctx, time.Now().Add(2*time.Hour)); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the outbox delivered", func() bool { return g.outbox.Stats().Waiting == 0 })
		})
	obs := observations(record)
	if len(obs) != 1 || obs[0].Status != "amended" || obs[0].ValueQuantity.Value != 62 || obs[0].Method.Text != "mean of 31 readings over 1m" {
		var got []string
		for _, o := range obs {
			got = append(got, fmt.Sprintf("%s %v (%s)", o.Status, o.ValueQuantity.Value, o.Method.Text))
		}
		t.Fatalf("a late reading after a restart, with amend: the record holds %v; want one amended Observation, mean 62 of 31 readings", got)
	}
}

// Held: a restart with amend off charts each interval once; a reading
// after the restart for an interval whose readings have left the window
// opens a window of its own, charted under the same identifier, which the
// record keeps once (the design says so: marks do not survive a restart).
func TestReview16bAfterARestartALateReadingIsChartedOnceInTheRecord(t *testing.T) {
	ctx := context.Background()
	start := pastMinute(5)
	record := review16bRestarts(t, "charting: {close_after: 1h, chart: {continuous: every 1m mean}}\n",
		func(g *Gateway) {
			var frame []devices.Reading
			for i := range 30 {
				frame = append(frame, masimoReading(t, "MDC_PULS_OXIM_PULS_RATE", start.Add(time.Duration(i)*time.Second), 60, "/min"))
			}
			if err := g.Ingest(ctx, frame); err != nil {
				t.Fatal(err)
			}
			review16Close(t, g)
			waitFor(t, "the window emptied", func() bool { return g.chart.store.Stats().Waiting == 0 })
			waitFor(t, "the outbox delivered", func() bool { return g.outbox.Stats().Waiting == 0 })
		},
		func(g *Gateway) {
			if err := g.Ingest(ctx, []devices.Reading{masimoReading(t, "MDC_PULS_OXIM_PULS_RATE", start.Add(45*time.Second), 122, "/min")}); err != nil {
				t.Fatal(err)
			}
			review16Close(t, g)
			waitFor(t, "the outbox delivered", func() bool { return g.outbox.Stats().Waiting == 0 })
			waitFor(t, "the window emptied", func() bool { return g.chart.store.Stats().Waiting == 0 })
		})
	if obs := observations(record); len(obs) != 1 || obs[0].ValueQuantity.Value != 60 {
		t.Fatalf("%d Observations after a restart and a late reading: %+v", len(obs), obs)
	}
}

// Defect 4. The marks of a parameter keep the last chartedMemory
// intervals charted, in the order they were charted, not the latest by
// time: a backlog of older intervals (held readings released, a device's
// stored trend sent on reconnect) charted after the live ones pushes the
// live intervals' marks out. A late reading of a live interval charted a
// minute ago is then not known as late: it opens a window of its own,
// charted as a first value under the same identifier (the record keeps
// the first), and the page counts an interval charted where a reading was
// late.
func TestReview16bAnOldBacklogDoesNotForgetRecentIntervals(t *testing.T) {
	// Defect 4 of the second review, fixed: an old backlog charted late pushes the recent intervals out of the marks.
	g, _ := chartingGateway(t, "charting: {close_after: 1h, chart: {continuous: every 1m mean}}\n")
	ctx := context.Background()
	live := pastMinute(3)
	if err := g.Ingest(ctx, []devices.Reading{masimoReading(t, "MDC_PULS_OXIM_PULS_RATE", live, 70, "/min")}); err != nil {
		t.Fatal(err)
	}
	review16Close(t, g)
	var backlog [][]devices.Reading
	old := pastMinute(chartedMemory + 100)
	for m := range chartedMemory + 10 {
		backlog = append(backlog, []devices.Reading{masimoReading(t, "MDC_PULS_OXIM_PULS_RATE", old.Add(time.Duration(m)*time.Minute), 65, "/min")})
	}
	if err := g.Ingest(ctx, backlog...); err != nil {
		t.Fatal(err)
	}
	review16Close(t, g)
	before := g.chart.snapshotCounts("bed-12-monitor")
	if err := g.Ingest(ctx, []devices.Reading{masimoReading(t, "MDC_PULS_OXIM_PULS_RATE", live.Add(30*time.Second), 90, "/min")}); err != nil {
		t.Fatal(err)
	}
	review16Close(t, g)
	after := g.chart.snapshotCounts("bed-12-monitor")
	if after.late != before.late+1 || after.charted != before.charted {
		t.Fatalf("a late reading of the minute charted 3 minutes ago, after an old backlog: counts before %+v, after %+v; want it late", before, after)
	}
}

// Defect 5. A samples series has int((end-start)/period) slots, rounded
// down: an interval shorter than the device's sample period (samples 1s
// or 2s for a profile that sends every 5 s) has none, its Samples string
// is empty, and the mapper, which tells a series by Samples != "", maps
// it as an interval value, with the reading's Value never set: a charted
// 0 (a heart rate of 0) under an "every" identifier. A period that does
// not divide the interval (a profile of 7 s) drops the interval's tail.
func TestReview16bASamplesSeriesHoldsEveryReading(t *testing.T) {
	// Defect 5 of the second review, fixed: a samples series shorter than its period charts a value of 0; a tail is dropped.
	start := pastMinute(5)
	if s := series(start, start.Add(time.Minute), 7*time.Second, []sample{{at: start.Add(58 * time.Second).UnixNano(), v: 71}}); !strings.Contains(s, "71") {
		t.Errorf("a reading at 58 s of a minute sampled every 7 s: series %q leaves it out", s)
	}
	w := &window{chart: mustChart(t, "samples 2s"), start: start, end: start.Add(2 * time.Second),
		rep:     fhir.PatientReading{Patient: "Patient/123", Reading: masimoReading(t, "MDC_PULS_OXIM_PULS_RATE", start, 0, "/min")},
		samples: []sample{{at: start.UnixNano(), v: 72}}}
	w.rep.Value = 0
	rs, why := charted(w, 5*time.Second)
	g, _ := chartingGateway(t, "charting: {close_after: 1h}\n")
	entries, _ := g.mapper.MapReadings(rs)
	for _, e := range entries {
		b, _ := json.Marshal(e)
		if strings.Contains(string(b), `"valueQuantity"`) {
			t.Errorf("a 2 s interval sampled every 5 s (why %q) is mapped as a value: %s", why, b)
		}
	}
}

func mustChart(t *testing.T, s string) profile.Chart {
	t.Helper()
	c, err := profile.ParseChart(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Held: with amend, readings that join an interval while it is being
// charted (closeDue racing Ingest) and after: the interval ends charted
// once in the record, amended, of every reading; a window item that holds
// readings of two intervals (one charted and amendable, one still open)
// stays until both let go of it, and then every item leaves the window
// (refs, orphans and the windows in memory all empty).
func TestReview16bAmendRacingTheCloseChartsEveryReadingAndReleasesEachItemOnce(t *testing.T) {
	g, record := chartingGateway(t, "charting: {close_after: 1h, amend: true, chart: {continuous: every 1m mean}}\n")
	ctx := context.Background()
	start := pastMinute(5)
	frame := func(i int) []devices.Reading {
		// Pulse rate in the first minute; SpO2 a minute on, in the second:
		// one window item, two intervals.
		return []devices.Reading{masimoReading(t, "MDC_PULS_OXIM_PULS_RATE", start.Add(time.Duration(i)*time.Second), float64(60+i%2*2), "/min"),
			masimoReading(t, "MDC_PULS_OXIM_SAT_O2", start.Add(time.Minute+time.Duration(i)*time.Second), 95, "%")}
	}
	for i := range 20 {
		if err := g.Ingest(ctx, frame(i)); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() {
		for i := 20; i < 60; i++ {
			if err := g.Ingest(ctx, frame(i)); err != nil {
				done <- err
				return
			}
			time.Sleep(time.Millisecond)
		}
		done <- nil
	}()
	later := time.Now().Add(2 * time.Hour)
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			running = false
		default:
		}
		if err := g.chart.closeDue(ctx, later); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.chart.closeDue(ctx, later); err != nil {
		t.Fatal(err)
	}
	// Each item holds an amendable reading of each minute; each minute
	// has its "charted" item too (the latest only).
	if err := g.chart.expireCharted(ctx, later); err != nil {
		t.Fatal(err)
	}
	if w := g.chart.store.Stats().Waiting; w != 60+2 {
		t.Fatalf("%d window items while both minutes are amendable, want 60 and two charted marks", w)
	}
	// Then both are let go of.
	if err := g.chart.closeDue(ctx, later.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := g.chart.expireCharted(ctx, later.Add(4*time.Hour)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the outbox delivered", func() bool { return g.outbox.Stats().Waiting == 0 })
	pr := byCode(t, observations(record), "MDC_PULS_OXIM_PULS_RATE")
	spo2 := byCode(t, observations(record), "MDC_PULS_OXIM_SAT_O2")
	if len(pr) != 1 || pr[0].ValueQuantity.Value != 61 || pr[0].Method.Text != "mean of 60 readings over 1m" {
		t.Fatalf("pulse rate: %+v", pr)
	}
	if len(spo2) != 1 || spo2[0].Method.Text != "mean of 60 readings over 1m" {
		t.Fatalf("SpO2: %+v", spo2)
	}
	g.chart.mu.Lock()
	refs, orphans, open, chartedN := len(g.chart.refs), len(g.chart.orphans), len(g.chart.open), len(g.chart.charted)
	g.chart.mu.Unlock()
	if w := g.chart.store.Stats().Waiting; w != 0 || refs != 0 || orphans != 0 || open != 0 || chartedN != 0 {
		t.Fatalf("after both minutes charted and expired: %d window items, %d refs, %d orphans, %d open, %d charted", w, refs, orphans, open, chartedN)
	}
}
