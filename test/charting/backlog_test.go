package charting

import (
	"fmt"
	"testing"
	"time"

	"github.com/wardgate/wardgate/test"
)

// A backlog: three minutes of messages, measured a second apart ten
// minutes ago, published while the gateway is down and delivered at once
// when it starts (QoS 1, a persistent session). They are charted by the
// minutes they were measured in, one Observation per parameter per minute
// with that minute's median, not as one interval of their arrival.
func TestBacklogIsChartedByTheMinutesItWasMeasuredIn(t *testing.T) {
	t.Parallel()
	mq := startBroker(t)
	record, cfg, _ := chartingGateway(t, fmt.Sprintf(`monitors:
  - id: bed-14-monitor
    location: bed-14
    profile: generic/json
    mqtt: {broker: "tcp://127.0.0.1:%d", topic: ward4b/bed-14/vitals, client_id: wg-charting-backlog}
patients:
  static: {bed-14: Patient/backlog}
`, mq.port))
	// The gateway subscribes once (the broker keeps its session), then is
	// down while the monitor's bridge publishes.
	gw := test.Start(t, "run", "-config", cfg)
	gw.WaitLog(t, `subscribed; waiting for messages`, 30*time.Second)
	stop(t, gw)

	params := map[string]sent{"MDC_ECG_HEART_RATE": {}, "MDC_PULS_OXIM_SAT_O2": {}}
	first := minuteOf(time.Now()).Add(-10 * time.Minute)
	end := first.Add(3 * time.Minute)
	pub := mq.publisher(t, "ward4b/bed-14/vitals")
	for i, at := 0, first; at.Before(end); i, at = i+1, at.Add(time.Second) {
		// Each minute its own level, so that one interval of arrival
		// could not give these values.
		m := int(at.Sub(first) / time.Minute)
		hr, spo2 := 60+20*m+i%13, 90+m+(i%5)
		params["MDC_ECG_HEART_RATE"].add(at, float64(hr))
		params["MDC_PULS_OXIM_SAT_O2"].add(at, float64(spo2))
		pub.send(t, jsonVitals("MX450-backlog", at, hr, spo2, nil))
	}
	if err := pub.close(); err != nil {
		t.Fatalf("mosquitto_pub: %v", err)
	}

	gw = test.Start(t, "run", "-config", cfg)
	const want = 2 * 3
	test.Eventually(t, 60*time.Second, func() bool { return record.Count("Observation") >= want },
		func() string {
			return fmt.Sprintf("%d of %d Observations\n%s", record.Count("Observation"), want, gw.Log())
		})
	time.Sleep(2 * time.Second) // anything charted twice would come now
	obs := observations(record)
	if len(obs) != want {
		t.Errorf("the record holds %d Observations, want %d (3 minutes × heart rate, SpO2)", len(obs), want)
	}
	// Each minute's method counts its 60 readings: every reading of the
	// backlog went to the minute it was measured in, none is left for an
	// interval of its arrival.
	checkMinutes(t, obs, "Patient/backlog", params, nil, first, end)
	stop(t, gw)
}
