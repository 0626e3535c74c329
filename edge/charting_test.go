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
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/devices/mdc"
	"github.com/wardgate/wardgate/edge/config"
	"github.com/wardgate/wardgate/edge/fhir"
	"github.com/wardgate/wardgate/edge/fhir/fhirserver"
)

// mdcOf is the MDC code of a reference id.
func mdcOf(t testing.TB, ref string) devices.MDC {
	t.Helper()
	term, ok := mdc.Lookup(ref)
	if !ok {
		t.Fatalf("%s is not in the MDC table", ref)
	}
	return devices.MDC{Code: term.Code, RefID: term.RefID}
}

// chartingGateway runs a gateway whose bed-12 monitor (a Masimo) is
// charted by the given charting section.
func chartingGateway(t *testing.T, charting string) (*Gateway, *fhirserver.Server) {
	t.Helper()
	record := fhirserver.New()
	if charting == "" {
		charting = "charting: {}\n" // the defaults
	}
	g, _ := runGateway(t, record, `patients:
  static: {bed-12: Patient/123}
monitors:
  - {id: bed-12-monitor, location: bed-12, profile: masimo/radical-7, serial: {port: /dev/null}}
`+charting)
	return g, record
}

// masimoReading is a reading of bed 12's Masimo measured at `at` (its
// clock agrees with the gateway's), received a second later.
func masimoReading(t testing.TB, ref string, at time.Time, v float64, unit string) devices.Reading {
	return devices.Reading{Device: "bed-12-monitor", Location: "bed-12", Profile: "masimo/radical-7",
		Code: mdcOf(t, ref), Value: v, Unit: unit, DeviceTime: at, Received: at.Add(time.Second)}
}

func observations(record *fhirserver.Server) []fhir.Observation {
	var out []fhir.Observation
	for _, raw := range record.Resources("Observation") {
		var o fhir.Observation
		json.Unmarshal(raw, &o)
		out = append(out, o)
	}
	return out
}

// byCode picks the Observations whose MDC coding is ref's.
func byCode(t testing.TB, obs []fhir.Observation, ref string) []fhir.Observation {
	code := fmt.Sprint(mdcOf(t, ref).Code)
	var out []fhir.Observation
	for _, o := range obs {
		for _, c := range o.Code.Coding {
			if c.System == fhir.MDCSystem && c.Code == code {
				out = append(out, o)
			}
		}
	}
	slices.SortFunc(out, func(a, b fhir.Observation) int { return strings.Compare(a.Identifier[0].Value, b.Identifier[0].Value) })
	return out
}

// pastMinute is the start of a whole minute well in the past: its interval
// is due as soon as readings stop joining it.
func pastMinute(ago int) time.Time {
	return time.Now().Add(-time.Duration(ago) * time.Minute).Truncate(time.Minute)
}

// A minute of SpO2 and pulse rate at 1 Hz becomes one Observation each: the
// median of the readings the device did not flag, over the minute, named
// by device, code and interval; the NIBP taken in that minute is charted
// as it is. A minute whose readings were all flagged charts nothing, and
// the page says so.
func TestAMinuteOfReadingsChartsItsMedianOnce(t *testing.T) {
	g, record := chartingGateway(t, "")
	start := pastMinute(5)
	var frames [][]devices.Reading
	for i := range 60 {
		at := start.Add(time.Duration(i) * time.Second)
		spo2 := masimoReading(t, "MDC_PULS_OXIM_SAT_O2", at, float64(90+i%9), "%") // 90..98: median 94
		pr := masimoReading(t, "MDC_PULS_OXIM_PULS_RATE", at, float64(60+i), "/min")
		if i%10 == 0 {
			// Flagged seconds (low perfusion): far off, and left out.
			spo2.Value, spo2.Quality = 40, devices.Questionable
			pr.Value, pr.Quality = 250, devices.Questionable
		}
		// The next minute: every reading flagged.
		next := masimoReading(t, "MDC_PULS_OXIM_SAT_O2", at.Add(time.Minute), 50, "%")
		next.Quality = devices.Questionable
		frames = append(frames, []devices.Reading{spo2, pr, next})
	}
	nibp := []devices.Reading{
		masimoReading(t, "MDC_PRESS_BLD_NONINV_SYS", start.Add(20*time.Second), 120, "mm[Hg]"),
		masimoReading(t, "MDC_PRESS_BLD_NONINV_DIA", start.Add(20*time.Second), 80, "mm[Hg]"),
	}
	frames = append(frames, nibp)
	if err := g.Ingest(context.Background(), frames...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "three Observations (SpO2, pulse rate, NIBP)", func() bool { return record.Count("Observation") >= 3 })
	waitFor(t, "the flagged minute counted", func() bool { return g.chart.snapshotCounts("bed-12-monitor").empty == 1 })
	obs := observations(record)
	if len(obs) != 3 {
		t.Fatalf("%d Observations, want 3", len(obs))
	}
	spo2 := byCode(t, obs, "MDC_PULS_OXIM_SAT_O2")
	pr := byCode(t, obs, "MDC_PULS_OXIM_PULS_RATE")
	bp := byCode(t, obs, "MDC_PRESS_BLD_NONINV")
	if len(spo2) != 1 || len(pr) != 1 || len(bp) != 1 {
		t.Fatalf("SpO2 %d, pulse rate %d, NIBP %d; want one each", len(spo2), len(pr), len(bp))
	}
	o := spo2[0]
	// 54 valid readings 90..98 (6 each): the median is 94.
	if o.ValueQuantity == nil || o.ValueQuantity.Value != 94 || o.EffectivePeriod == nil ||
		o.EffectivePeriod.Start != start.UTC().Format(time.RFC3339) || o.EffectivePeriod.End != start.Add(time.Minute).UTC().Format(time.RFC3339) ||
		o.EffectiveDateTime != "" || o.Status != "final" {
		t.Fatalf("SpO2: %+v", o)
	}
	if o.Method == nil || o.Method.Text != "median of 54 readings over 1m; 6 flagged by the device left out" {
		t.Fatalf("SpO2 method: %+v", o.Method)
	}
	wantID := fmt.Sprintf("bed-12-monitor/%d/every1m/%s/", mdcOf(t, "MDC_PULS_OXIM_SAT_O2").Code, start.UTC().Format(time.RFC3339))
	if !strings.HasPrefix(o.Identifier[0].Value, wantID) {
		t.Fatalf("SpO2 identifier %q, want it to begin %q", o.Identifier[0].Value, wantID)
	}
	// (The record checked the vital-signs profile it claims as it was
	// written: fhirserver answers 422 otherwise.)
	if o.Subject.Reference != "Patient/123" || len(o.Category) != 1 {
		t.Fatalf("SpO2 subject or category: %+v %+v", o.Subject, o.Category)
	}
	// Pulse rate 61..119 without 70, 80, …, 110: 54 values, the median
	// between the 27th (89) and the 28th (91).
	if v := pr[0].ValueQuantity.Value; v != 90 {
		t.Fatalf("pulse rate median %v, want 90", v)
	}
	// The NIBP is charted each, at its own time.
	if b := bp[0]; b.EffectiveDateTime != start.Add(20*time.Second).UTC().Format(time.RFC3339) || b.EffectivePeriod != nil || len(b.Component) != 2 {
		t.Fatalf("NIBP: %+v", b)
	}
	c := g.chart.snapshotCounts("bed-12-monitor")
	if c.charted != 2 || !strings.Contains(c.lastEmpty, "an interval of SpO2 had no valid reading (60 flagged by the device)") {
		t.Fatalf("counts: %+v", c)
	}
	// Every reading has left the window.
	waitFor(t, "an empty window", func() bool { return g.chart.store.Stats().Waiting == 0 })

	// The page shows the policy in force, where it was set, and what
	// became of the intervals.
	snap := g.snapshot()
	r := snap.Monitors[0].Charting
	if len(r.Policies) != 1 || r.Policies[0].Policy != "every 1m median" || r.Policies[0].From != "built-in" ||
		!slices.Equal(r.Policies[0].Parameters, []string{"SpO2", "Pulse rate (oximeter)", "Perfusion index (oximeter)"}) ||
		r.Charted != 2 || r.Empty != 1 || r.Open != 0 || !r.Next.IsZero() {
		t.Fatalf("page: %+v", r)
	}
	var page strings.Builder
	if err := statusPage.Execute(&page, snap); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(page.String(), "SpO2, Pulse rate (oximeter), Perfusion index (oximeter) every 1m median") || !strings.Contains(page.String(), "1 intervals charted nothing: an interval of SpO2 had no valid reading (60 flagged by the device)") {
		t.Fatalf("the page does not show the charting:\n%s", page.String())
	}
}

// A backlog (a link that was down, a frame that waited for its patient)
// lands in the intervals its readings were measured in, not the one it
// arrived in.
func TestABacklogIsChartedByMeasurementTime(t *testing.T) {
	g, record := chartingGateway(t, "charting: {chart: {continuous: every 1m mean}}\n")
	start := pastMinute(30)
	var frames [][]devices.Reading
	for m := range 3 {
		for s := 0; s < 60; s += 5 {
			at := start.Add(time.Duration(m)*time.Minute + time.Duration(s)*time.Second)
			frames = append(frames, []devices.Reading{masimoReading(t, "MDC_PULS_OXIM_PULS_RATE", at, float64(70+10*m), "/min")})
		}
	}
	if err := g.Ingest(context.Background(), frames...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "three Observations", func() bool { return record.Count("Observation") >= 3 })
	obs := byCode(t, observations(record), "MDC_PULS_OXIM_PULS_RATE")
	if len(obs) != 3 {
		t.Fatalf("%d Observations", len(obs))
	}
	for m, o := range obs {
		if o.ValueQuantity.Value != fhir.Decimal(70+10*m) || o.EffectivePeriod.Start != start.Add(time.Duration(m)*time.Minute).UTC().Format(time.RFC3339) ||
			o.Method.Text != "mean of 12 readings over 1m" {
			t.Fatalf("minute %d: %v over %+v (%s)", m, o.ValueQuantity.Value, o.EffectivePeriod, o.Method.Text)
		}
	}
}

// A reading that arrives after its interval was charted is counted, not
// charted twice; with charting.amend, the interval's Observation is
// replaced by one with the reading in it, status amended.
func TestALateReadingIsCountedOrAmends(t *testing.T) {
	for _, amend := range []bool{false, true} {
		t.Run(fmt.Sprintf("amend=%v", amend), func(t *testing.T) {
			g, record := chartingGateway(t, fmt.Sprintf("charting: {amend: %v, chart: {continuous: every 1m max}}\n", amend))
			start := pastMinute(5)
			var frame []devices.Reading
			for i := range 10 {
				frame = append(frame, masimoReading(t, "MDC_PULS_OXIM_SAT_O2", start.Add(time.Duration(i)*time.Second), 95, "%"))
			}
			if err := g.Ingest(context.Background(), frame); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the interval charted", func() bool { return record.Count("Observation") == 1 })
			late := masimoReading(t, "MDC_PULS_OXIM_SAT_O2", start.Add(30*time.Second), 99, "%")
			if err := g.Ingest(context.Background(), []devices.Reading{late}); err != nil {
				t.Fatal(err)
			}
			if !amend {
				waitFor(t, "the late reading counted", func() bool { return g.chart.snapshotCounts("bed-12-monitor").late == 1 })
				time.Sleep(chartQuiet + 2*chartTick) // nothing more comes: the record keeps one
				if obs := observations(record); len(obs) != 1 || obs[0].ValueQuantity.Value != 95 || obs[0].Status != "final" {
					t.Fatalf("after a late reading: %+v", obs)
				}
				return
			}
			waitFor(t, "the interval amended", func() bool {
				obs := observations(record)
				return len(obs) == 1 && obs[0].Status == "amended"
			})
			obs := observations(record)
			if len(obs) != 1 || obs[0].ValueQuantity.Value != 99 || obs[0].Method.Text != "max of 11 readings over 1m" {
				t.Fatalf("amended: %+v", obs)
			}
			if c := g.chart.snapshotCounts("bed-12-monitor"); c.late != 0 || c.amended != 1 {
				t.Fatalf("counts %+v", c)
			}
		})
	}
}

// samples charts an interval's every reading as valueSampledData: one
// value per second from the interval's start, E where the device flagged
// the reading or sent none.
func TestSamplesRoundTrip(t *testing.T) {
	g, record := chartingGateway(t, "charting: {chart: {MDC_PULS_OXIM_SAT_O2: every 1m last and samples}}\n")
	start := pastMinute(5)
	var frames [][]devices.Reading
	want := make([]string, 60)
	for i := range 60 {
		want[i] = "E"
		if i == 7 {
			continue // no reading that second
		}
		r := masimoReading(t, "MDC_PULS_OXIM_SAT_O2", start.Add(time.Duration(i)*time.Second+300*time.Millisecond), float64(90+i%10), "%")
		if i == 13 {
			r.Quality = devices.Calibrating
		} else {
			want[i] = fmt.Sprint(90 + i%10)
		}
		frames = append(frames, []devices.Reading{r})
	}
	if err := g.Ingest(context.Background(), frames...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two Observations", func() bool { return record.Count("Observation") == 2 })
	var sampled, last *fhir.Observation
	for _, o := range observations(record) {
		if o.ValueSampledData != nil {
			sampled = &o
		} else {
			last = &o
		}
	}
	if sampled == nil || last == nil {
		t.Fatalf("want a sampled and a charted Observation: %+v", observations(record))
	}
	sd := sampled.ValueSampledData
	if sd.Data != strings.Join(want, " ") || sd.Period != 1000 || sd.Dimensions != 1 || sd.Origin.Code != "%" {
		t.Fatalf("samples: %+v (meta %+v)\nwant data %s", sd, sampled.Meta, strings.Join(want, " "))
	}
	if last.ValueQuantity.Value != 99 || sampled.Identifier[0].Value == last.Identifier[0].Value {
		t.Fatalf("last %v; identifiers %s, %s", last.ValueQuantity.Value, sampled.Identifier[0].Value, last.Identifier[0].Value)
	}
}

// One interval of a bed whose patient changed within it charts one value
// per patient, each of their own readings.
func TestATransferWithinAnIntervalChartsEachPatientApart(t *testing.T) {
	g, record := chartingGateway(t, "")
	start := pastMinute(5)
	var rs []fhir.PatientReading
	for i := range 20 {
		r := masimoReading(t, "MDC_PULS_OXIM_PULS_RATE", start.Add(time.Duration(i)*time.Second), 60, "/min")
		who := "Patient/A"
		if i >= 10 {
			who, r.Value = "Patient/B", 100
		}
		rs = append(rs, fhir.PatientReading{Reading: r, Patient: who})
	}
	if err := g.store(context.Background(), [][]fhir.PatientReading{rs}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two Observations", func() bool { return record.Count("Observation") == 2 })
	got := map[string]fhir.Decimal{}
	for _, o := range observations(record) {
		got[o.Subject.Reference] = o.ValueQuantity.Value
	}
	if got["Patient/A"] != 60 || got["Patient/B"] != 100 {
		t.Fatalf("per patient: %v", got)
	}
}

// A blood pressure measured continuously (an arterial line) is charted as
// one panel per interval, each member its own median.
func TestAnArterialPressureIntervalIsOnePanel(t *testing.T) {
	record := fhirserver.New()
	g, _ := runGateway(t, record, `patients:
  static: {bed-20: Patient/123}
monitors:
  - {id: bed-20-monitor, location: bed-20, profile: philips/intellivue-mx, udp: {host: 127.0.0.1}}
charting: {}
`)
	start := pastMinute(5)
	var frames [][]devices.Reading
	for i := range 30 {
		at := start.Add(time.Duration(i) * 2 * time.Second)
		mk := func(ref string, v float64) devices.Reading {
			return devices.Reading{Device: "bed-20-monitor", Location: "bed-20", Profile: "philips/intellivue-mx",
				Code: mdcOf(t, ref), Value: v, Unit: "mm[Hg]", DeviceTime: at, Received: at}
		}
		frames = append(frames, []devices.Reading{mk("MDC_PRESS_BLD_ART_ABP_SYS", float64(110+i)), mk("MDC_PRESS_BLD_ART_ABP_DIA", float64(70+i%3)), mk("MDC_PRESS_BLD_ART_ABP_MEAN", 85)})
	}
	if err := g.Ingest(context.Background(), frames...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "one Observation", func() bool { return record.Count("Observation") == 1 })
	o := observations(record)[0]
	if len(o.Component) != 3 || o.EffectivePeriod == nil || o.Component[0].ValueQuantity.Value != 124.5 || o.Component[1].ValueQuantity.Value != 71 || o.Component[2].ValueQuantity.Value != 85 {
		t.Fatalf("arterial panel: %+v", o)
	}
}

// The open intervals survive a restart: the readings taken before it and
// after it make one value.
func TestOpenIntervalsSurviveARestart(t *testing.T) {
	record := fhirserver.New()
	hs := httptest.NewServer(record)
	t.Cleanup(hs.Close)
	path := filepath.Join(t.TempDir(), "wardgate.yaml")
	os.WriteFile(path, []byte(`site: ward-4b
data_dir: data
http: {listen: "127.0.0.1:0"}
fhir: {base_url: `+hs.URL+`, patient_identifier_system: urn:oid:1.2.3.4}
patients: {static: {bed-12: Patient/123}}
charting: {close_after: 1h}
`), 0o600)
	start := pastMinute(5)
	run := func(from, to int) *Gateway {
		cfg, _, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		g := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), "test")
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- g.Run(ctx) }()
		waitFor(t, "the gateway ready", g.isReady)
		for i := from; i < to; i++ {
			r := masimoReading(t, "MDC_PULS_OXIM_PULS_RATE", start.Add(time.Duration(i)*time.Second), float64(i), "/min")
			if err := g.Ingest(context.Background(), []devices.Reading{r}); err != nil {
				t.Fatal(err)
			}
		}
		if to == 60 {
			// As if an hour had passed.
			if err := g.chart.closeDue(context.Background(), time.Now().Add(2*time.Hour)); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "one Observation", func() bool { return record.Count("Observation") == 1 })
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		return g
	}
	g := run(0, 30)
	// The page said when the interval would be charted.
	if r := g.snapshot().Monitors; len(r) != 0 {
		t.Fatalf("monitors %+v", r)
	}
	if r := g.chart.report("bed-12-monitor", "bed-12", "masimo/radical-7", nil); r.Open != 1 || !r.Next.Equal(start.Add(time.Minute+time.Hour)) {
		t.Fatalf("before the restart: %+v, want one interval open, charted at %s", r, start.Add(time.Minute+time.Hour))
	}
	if n := record.Count("Observation"); n != 0 {
		t.Fatalf("%d Observations of an interval not yet due", n)
	}
	run(30, 60)
	o := observations(record)[0]
	if o.ValueQuantity.Value != 29.5 || o.Method.Text != "median of 60 readings over 1m" {
		t.Fatalf("after a restart: %v (%s)", o.ValueQuantity.Value, o.Method.Text)
	}
}

// A frame given twice (a broker's redelivery, a source's retry) counts once
// in its interval, and its second copy leaves the window.
func TestAFrameGivenTwiceCountsOnce(t *testing.T) {
	g, record := chartingGateway(t, "charting: {amend: true, chart: {continuous: every 1m mean}}\n")
	start := pastMinute(5)
	var frames [][]devices.Reading
	for i := range 6 {
		frames = append(frames, []devices.Reading{masimoReading(t, "MDC_PULS_OXIM_PULS_RATE", start.Add(time.Duration(i)*10*time.Second), float64(60+i), "/min")})
	}
	ctx := context.Background()
	if err := g.Ingest(ctx, append(frames, frames[0], frames[5])...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "one Observation", func() bool { return record.Count("Observation") == 1 })
	if o := observations(record)[0]; o.ValueQuantity.Value != 62.5 || o.Method.Text != "mean of 6 readings over 1m" {
		t.Fatalf("%v (%s)", o.ValueQuantity.Value, o.Method.Text)
	}
	// Given again after it was charted: no amendment, nothing late.
	if err := g.Ingest(ctx, frames[2]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(chartQuiet + 2*chartTick)
	if o := observations(record); len(o) != 1 || o[0].Status != "final" {
		t.Fatalf("after a copy of a charted reading: %+v", o)
	}
	// The six readings stay while the interval can be amended, with the
	// item that says it was charted; the three copies are gone.
	waitFor(t, "the copies gone from the window", func() bool { return g.chart.store.Stats().Waiting == 6+1 })
}

// A reload changes the policies for readings from then on; it needs no
// restart.
func TestAReloadChangesThePoliciesFromThenOn(t *testing.T) {
	dir := t.TempDir()
	record := fhirserver.New()
	g, _, _ := operatorGateway(t, dir, record, "", "patients: {static: {bed-12: Patient/123}}\n")
	start := pastMinute(5)
	pr := func(i int) []devices.Reading {
		return []devices.Reading{masimoReading(t, "MDC_PULS_OXIM_PULS_RATE", start.Add(time.Duration(i)*time.Second), 70, "/min")}
	}
	ctx := context.Background()
	if err := g.Ingest(ctx, pr(0), pr(1)); err != nil { // charted each
		t.Fatal(err)
	}
	waitFor(t, "two Observations", func() bool { return record.Count("Observation") == 2 })
	path := filepath.Join(dir, "wardgate.yaml")
	b, _ := os.ReadFile(path)
	os.WriteFile(path, []byte(strings.Replace(string(b), "charting: {chart: {continuous: each}}", "charting: {chart: {continuous: every 1m mean}}", 1)), 0o600)
	cfg, _, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	changes, err := g.Reload(cfg)
	if err != nil || !slices.ContainsFunc(changes, func(c string) bool { return strings.HasPrefix(c, "charting: ") }) {
		t.Fatalf("reload: %v %v", changes, err)
	}
	if err := g.Ingest(ctx, pr(2), pr(3), pr(4)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the interval charted", func() bool { return record.Count("Observation") == 3 })
	var n int
	for _, o := range observations(record) {
		if o.EffectivePeriod != nil && o.Method.Text == "mean of 3 readings over 1m" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("after the reload: %+v", observations(record))
	}
}

// Readings wait in an interval with the patient they were resolved to; when
// the ADT feed then corrects who lay in the bed at their time (an
// admission to the wrong bed, cancelled, and the right patient admitted),
// they are resolved again before they are charted: the interval goes to
// whom the feed now says lay there, never to the patient of the mistake.
func TestAnADTCorrectionBeforeTheIntervalIsChartedResolvesItsReadingsAgain(t *testing.T) {
	record := fhirserver.New()
	for _, n := range []string{"4711", "4712"} {
		record.Put("Patient", "p"+n, json.RawMessage(`{"resourceType":"Patient","id":"p`+n+`","identifier":[{"system":"urn:oid:1.2.3.4","value":"`+n+`"}]}`))
	}
	g, _ := runGateway(t, record, adtConfig("")+"charting: {close_after: 1h}\n")
	mustAccept(t, g, adtMessage(t, "1", "A01", at(0), party{"4711", "ICU-3", ""}))
	start := pastMinute(5)
	var frames [][]devices.Reading
	for i := range 10 {
		r := masimoReading(t, "MDC_PULS_OXIM_PULS_RATE", start.Add(time.Duration(i)*time.Second), 70, "/min")
		r.Location = "ICU-3"
		frames = append(frames, []devices.Reading{r})
	}
	ctx := context.Background()
	if err := g.Ingest(ctx, frames...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the readings in their interval", func() bool { return g.chart.store.Stats().Waiting == 10 })
	// The admission was a mistake: cancelled, and 4712 admitted instead.
	mustAccept(t, g, adtMessage(t, "2", "A11", at(1), party{"4711", "ICU-3", ""}))
	mustAccept(t, g, adtMessage(t, "3", "A01", at(0), party{"4712", "ICU-3", ""}))
	if err := g.chart.closeDue(ctx, time.Now().Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if c := g.chart.snapshotCounts("bed-12-monitor"); c.resolvedAgain != 1 || c.charted != 0 {
		t.Fatalf("counts %+v: want the interval sent back, not charted", c)
	}
	// Resolved again by the held frames' resolver, into a new interval.
	waitFor(t, "the readings back in an interval", func() bool {
		g.chart.mu.Lock()
		defer g.chart.mu.Unlock()
		return len(g.chart.open) == 1
	})
	if err := g.chart.closeDue(ctx, time.Now().Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "one Observation", func() bool { return record.Count("Observation") == 1 })
	o := observations(record)[0]
	if o.Subject.Reference != "Patient/p4712" || o.Method.Text != "median of 10 readings over 1m" {
		t.Fatalf("charted to %s (%s), want Patient/p4712 with all 10 readings", o.Subject.Reference, o.Method.Text)
	}
}
