package charting

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/wardgate/wardgate/edge/fhir"
	"github.com/wardgate/wardgate/test"
)

// masimoNow is a Masimo Radical-7 ASCII 1 line measured at `at`, written
// in the monitor's local time (its clock agrees with the gateway's); a
// flagged line carries EXC bit 0x000004 (low perfusion: questionable).
func masimoNow(at time.Time, spo2, bpm int, pi float64, flagged bool) string {
	exc := 0x000800 // Masimo SET: the normal state
	if flagged {
		exc |= 0x000004
	}
	return fmt.Sprintf("%s SN=0000056661 SPO2=%03d%% BPM=%03d PI=%05.2f%% SPCO=--.-%% SPMET=--.-%% DESAT=-- PIDELTA=+-- ALARM=0000 EXC=%06X\r\n",
		at.Local().Format("01/02/06 15:04:05"), spo2, bpm, pi, exc)
}

// A Masimo on a serial line and a JSON monitor on Mosquitto, both at 1 Hz
// for two to three minutes, charted by the built-in policies (every 1m
// median; NIBP each): every minute with readings is charted once per
// parameter and patient, over that minute, as the median of the values the
// device did not flag (the Masimo's low-perfusion seconds carry outliers
// and are left out, and the method says how many); every NIBP is charted
// once at its own time.
func TestLiveMonitorsChartOneMedianPerMinute(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	socatPair(t, dir)
	mq := startBroker(t)
	record, cfg, _ := chartingGateway(t, fmt.Sprintf(`monitors:
  - id: bed-12-monitor
    location: bed-12
    profile: masimo/radical-7
    serial: {port: %s}
  - id: bed-14-monitor
    location: bed-14
    profile: generic/json
    mqtt: {broker: "tcp://127.0.0.1:%d", topic: ward4b/bed-14/vitals, client_id: wg-charting-live}
patients:
  static: {bed-12: Patient/masimo, bed-14: Patient/json}
`, filepath.Join(dir, "gateway"), mq.port))
	gw := test.Start(t, "run", "-config", cfg)
	gw.WaitLog(t, `port open; waiting for the monitor`, 30*time.Second)
	gw.WaitLog(t, `subscribed; waiting for messages`, 30*time.Second)
	port, err := os.OpenFile(filepath.Join(dir, "monitor"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer port.Close()
	pub := mq.publisher(t, "ward4b/bed-14/vitals")

	// Masimo: SpO2, pulse rate, PI; JSON: heart rate, SpO2, and NIBP.
	masimo := map[string]sent{"MDC_PULS_OXIM_SAT_O2": {}, "MDC_PULS_OXIM_PULS_RATE": {}, "MDC_PULS_OXIM_PERF_REL": {}}
	flaggedIn := map[time.Time]int{} // Masimo flagged seconds per minute
	monitor := map[string]sent{"MDC_ECG_HEART_RATE": {}, "MDC_PULS_OXIM_SAT_O2": {}}
	var bps []nibp

	first := time.Now().Truncate(time.Second).Add(time.Second)
	// Until the first minute boundary two minutes on: the first minute is
	// partial, the two after it whole.
	end := minuteOf(first.Add(2*time.Minute - time.Nanosecond)).Add(time.Minute)
	t.Logf("sending at 1 Hz from %s to %s", first.Format(time.TimeOnly), end.Format(time.TimeOnly))
	for i, at := 0, first; at.Before(end); i, at = i+1, at.Add(time.Second) {
		// A little after the second: the line is received in the second
		// it was measured in.
		sleepUntil(at.Add(300 * time.Millisecond))
		spo2, bpm, pi := 90+i%9, 60+i%37, 3.0+float64(i%11)/10
		flagged := i%7 == 3
		if flagged {
			// Low perfusion: values far off, which the median must not see.
			spo2, bpm, pi = 50, 250, 0.1
			flaggedIn[minuteOf(at)]++
		} else {
			masimo["MDC_PULS_OXIM_SAT_O2"].add(at, float64(spo2))
			masimo["MDC_PULS_OXIM_PULS_RATE"].add(at, float64(bpm))
			masimo["MDC_PULS_OXIM_PERF_REL"].add(at, pi)
		}
		if _, err := port.WriteString(masimoNow(at, spo2, bpm, pi, flagged)); err != nil {
			t.Fatal(err)
		}
		hr, jspo2 := 70+i%23, 95+i%5
		monitor["MDC_ECG_HEART_RATE"].add(at, float64(hr))
		monitor["MDC_PULS_OXIM_SAT_O2"].add(at, float64(jspo2))
		var bp *nibp
		if i%30 == 15 {
			k := float64(len(bps))
			bps = append(bps, nibp{at: at, sys: 110 + k, dia: 70 + k, mean: 85 + k})
			bp = &bps[len(bps)-1]
		}
		pub.send(t, jsonVitals("MX450-live", at, hr, jspo2, bp))
	}
	if err := pub.close(); err != nil {
		t.Fatalf("mosquitto_pub: %v", err)
	}

	want := 0
	for _, s := range masimo {
		want += len(s)
	}
	for _, s := range monitor {
		want += len(s)
	}
	want += len(bps)
	// The last minute is charted close_after (5 s) after its end, once no
	// reading has joined it for 3 s.
	test.Eventually(t, 40*time.Second, func() bool { return record.Count("Observation") >= want },
		func() string {
			return fmt.Sprintf("%d of %d Observations\n%s", record.Count("Observation"), want, gw.Log())
		})
	obs := observations(record)
	if len(obs) != want {
		t.Errorf("the record holds %d Observations, want %d", len(obs), want)
	}
	checkMinutes(t, obs, "Patient/masimo", masimo, flaggedIn, first, end)
	checkMinutes(t, obs, "Patient/json", monitor, nil, first, end)

	got := of(t, obs, "Patient/json", "MDC_PRESS_BLD_NONINV")
	if len(got) != len(bps) {
		t.Fatalf("%d NIBP Observations, want %d (one per measurement)", len(got), len(bps))
	}
	for _, bp := range bps {
		// Its own time: the device's, corrected by the device clock's
		// offset (the message arrives 0.3 s after the second it names, so
		// the corrected time may fall up to that much later).
		when := bp.at.UTC().Format(time.RFC3339)
		i := slices.IndexFunc(got, func(o fhir.Observation) bool {
			at, err := time.Parse(time.RFC3339Nano, o.EffectiveDateTime)
			return err == nil && !at.Before(bp.at) && at.Before(bp.at.Add(time.Second))
		})
		if i < 0 {
			var times []string
			for _, o := range got {
				times = append(times, o.EffectiveDateTime)
			}
			t.Errorf("no NIBP charted within the second %s, when it was measured: NIBPs at %v", when, times)
			continue
		}
		o := got[i]
		if o.EffectivePeriod != nil || o.Method != nil {
			t.Errorf("NIBP at %s charted as an interval: %+v %+v", when, o.EffectivePeriod, o.Method)
		}
		for ref, v := range map[string]float64{"MDC_PRESS_BLD_NONINV_SYS": bp.sys, "MDC_PRESS_BLD_NONINV_DIA": bp.dia, "MDC_PRESS_BLD_NONINV_MEAN": bp.mean} {
			code := mdcCode(t, ref)
			j := slices.IndexFunc(o.Component, func(c fhir.ObservationComponent) bool {
				return slices.ContainsFunc(c.Code.Coding, func(cd fhir.Coding) bool { return cd.Code == code })
			})
			if j < 0 || o.Component[j].ValueQuantity == nil || float64(o.Component[j].ValueQuantity.Value) != v {
				t.Errorf("NIBP at %s: %s is not %v: %+v", when, ref, v, o.Component)
			}
		}
	}
	stop(t, gw)
}
