package charting

import (
	"fmt"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/wardgate/wardgate/test"
)

// SIGKILL of the gateway 30 s into a minute, and a restart on the same
// data folder while the monitor keeps publishing (MQTT QoS 1, a persistent
// session: what the gateway had not acknowledged, and what was published
// while it was down, the broker delivers after the restart, so every
// message published reaches it and the counts are exact): each minute is
// charted exactly once per parameter, by identifier and by (code, period),
// and the killed minute's value is the median of every reading published in
// it, those before the kill (read back from charting.db) and those after.
func TestSIGKILLMidIntervalChartsTheMinuteOnceWithAllItsReadings(t *testing.T) {
	t.Parallel()
	mq := startBroker(t)
	record, cfg, _ := chartingGateway(t, fmt.Sprintf(`monitors:
  - id: bed-14-monitor
    location: bed-14
    profile: generic/json
    mqtt: {broker: "tcp://127.0.0.1:%d", topic: ward4b/bed-14/vitals, client_id: wg-charting-kill}
patients:
  static: {bed-14: Patient/kill}
`, mq.port))
	gw := test.Start(t, "run", "-config", cfg)
	gw.WaitLog(t, `subscribed; waiting for messages`, 30*time.Second)
	pub := mq.publisher(t, "ward4b/bed-14/vitals")

	params := map[string]sent{"MDC_ECG_HEART_RATE": {}, "MDC_PULS_OXIM_SAT_O2": {}}
	first := time.Now().Truncate(time.Second).Add(time.Second)
	kill := minuteOf(first).Add(30 * time.Second)
	if kill.Before(first.Add(10 * time.Second)) {
		kill = kill.Add(time.Minute)
	}
	killed := minuteOf(kill)
	// The killed minute, then a whole minute after the restart.
	end := killed.Add(2 * time.Minute)
	t.Logf("sending at 1 Hz from %s to %s; SIGKILL at %s", first.Format(time.TimeOnly), end.Format(time.TimeOnly), kill.Format(time.TimeOnly))
	for i, at := 0, first; at.Before(end); i, at = i+1, at.Add(time.Second) {
		sleepUntil(at.Add(300 * time.Millisecond))
		if at.Equal(kill) {
			gw.Cmd.Process.Signal(syscall.SIGKILL)
			gw.Wait(t, 10*time.Second)
			gw = test.Start(t, "run", "-config", cfg)
		}
		hr, spo2 := 60+(i*7)%41, 90+(i*3)%10
		params["MDC_ECG_HEART_RATE"].add(at, float64(hr))
		params["MDC_PULS_OXIM_SAT_O2"].add(at, float64(spo2))
		pub.send(t, jsonVitals("MX450-kill", at, hr, spo2, nil))
	}
	if err := pub.close(); err != nil {
		t.Fatalf("mosquitto_pub: %v", err)
	}
	gw.WaitLog(t, `subscribed; waiting for messages`, time.Second)
	// The killed minute's readings acknowledged before the kill came back
	// from charting.db (one item per message), not from the broker.
	n, _ := strconv.Atoi(gw.WaitLog(t, `charting\.db waiting=(\d+)`, time.Second))
	if n < 20 {
		t.Errorf("after the restart charting.db held %d items; want the ~30 messages of the killed minute acknowledged before the kill", n)
	}
	t.Logf("after the restart charting.db held %d items of the killed minute", n)

	want := len(params["MDC_ECG_HEART_RATE"]) + len(params["MDC_PULS_OXIM_SAT_O2"])
	test.Eventually(t, 40*time.Second, func() bool { return record.Count("Observation") >= want },
		func() string {
			return fmt.Sprintf("%d of %d Observations\n%s", record.Count("Observation"), want, gw.Log())
		})
	time.Sleep(2 * time.Second) // a second charting of a minute would come now
	obs := observations(record)
	ids := map[string]int{}
	periods := map[string]int{}
	for _, o := range obs {
		ids[o.Identifier[0].Value]++
		if o.EffectivePeriod != nil {
			periods[fmt.Sprintf("%s %s–%s", o.Code.Coding[0].Code, o.EffectivePeriod.Start, o.EffectivePeriod.End)]++
		}
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("identifier %s: %d Observations, want 1", id, n)
		}
	}
	for p, n := range periods {
		if n != 1 {
			t.Errorf("code and period %s: %d Observations, want 1", p, n)
		}
	}
	if len(obs) != want || len(ids) != want || len(periods) != want {
		t.Errorf("%d Observations, %d identifiers, %d (code, period); want %d each", len(obs), len(ids), len(periods), want)
	}
	// The killed minute, and every other, is the median of every reading
	// published in it.
	checkMinutes(t, obs, "Patient/kill", params, nil, first, end)
	for ref, byMinute := range params {
		t.Logf("%s: the killed minute %s had %d readings", ref, killed.Format(time.TimeOnly), len(byMinute[killed]))
	}
	stop(t, gw)
}
