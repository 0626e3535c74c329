package charting

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/edge/fhir"
)

// nibp is one blood pressure a JSON monitor sent, at its time.
type nibp struct {
	at             time.Time
	sys, dia, mean float64
}

// jsonVitals is a generic/json message measured at `at`: heart rate and
// SpO2, and a blood pressure when bp is not nil.
func jsonVitals(device string, at time.Time, hr, spo2 int, bp *nibp) string {
	obs := fmt.Sprintf(`{"code":"MDC_ECG_HEART_RATE","value":%d,"unit":"MDC_DIM_BEAT_PER_MIN"},{"code":"MDC_PULS_OXIM_SAT_O2","value":%d,"unit":"%%"}`, hr, spo2)
	if bp != nil {
		obs += fmt.Sprintf(`,{"code":"MDC_PRESS_BLD_NONINV_SYS","value":%v,"unit":"MDC_DIM_MMHG"},{"code":"MDC_PRESS_BLD_NONINV_DIA","value":%v,"unit":"MDC_DIM_MMHG"},{"code":"MDC_PRESS_BLD_NONINV_MEAN","value":%v,"unit":"MDC_DIM_MMHG"}`,
			bp.sys, bp.dia, bp.mean)
	}
	return fmt.Sprintf(`{"device":{"id":%q,"manufacturer":"Philips","model":"MX450"},"time":%q,"observations":[%s]}`,
		device, at.UTC().Format(time.RFC3339Nano), obs)
}

// minuteOf is the start of the clock minute t is in (the gateway aligns
// intervals to the local clock; a minute is a minute in every zone whose
// offset is whole minutes).
func minuteOf(t time.Time) time.Time { return t.Truncate(time.Minute) }

// median is the median of vs, as the gateway computes it.
func median(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// sent is what a test sent of one parameter: its valid values by minute.
type sent map[time.Time][]float64

func (s sent) add(at time.Time, v float64) { m := minuteOf(at); s[m] = append(s[m], v) }

// sleepUntil sleeps until t (a pace, not a wait for a condition: the
// monitor's next second).
func sleepUntil(t time.Time) { time.Sleep(time.Until(t)) }

// checkMinutes checks that each parameter of a patient was charted once
// per minute it was sent in, over that minute, as the median of what was
// sent unflagged; flaggedIn, when not nil, is how many readings of each
// minute the device flagged.
func checkMinutes(t *testing.T, obs []fhir.Observation, patient string, params map[string]sent, flaggedIn map[time.Time]int, first, end time.Time) {
	t.Helper()
	for ref, byMinute := range params {
		got := of(t, obs, patient, ref)
		if len(got) != len(byMinute) {
			t.Errorf("%s %s: %d Observations, want %d (one per minute with readings)", patient, ref, len(got), len(byMinute))
		}
		for m, vs := range byMinute {
			start, stop := m.UTC().Format(time.RFC3339), m.Add(time.Minute).UTC().Format(time.RFC3339)
			var in []fhir.Observation
			for _, o := range got {
				if o.EffectivePeriod != nil && o.EffectivePeriod.Start == start && o.EffectivePeriod.End == stop {
					in = append(in, o)
				}
			}
			whole := !m.Before(first) && !m.Add(time.Minute).After(end)
			if len(in) != 1 {
				t.Errorf("%s %s, minute %s (whole: %v): %d Observations, want 1", patient, ref, start, whole, len(in))
				continue
			}
			o := in[0]
			if o.ValueQuantity == nil || math.Abs(float64(o.ValueQuantity.Value)-median(vs)) > 1e-9 {
				t.Errorf("%s %s, minute %s: charted %v, want the median %v of %v", patient, ref, start, o.ValueQuantity, median(vs), vs)
			}
			method := fmt.Sprintf("median of %d readings over 1m", len(vs))
			if n := flaggedIn[m]; n > 0 {
				method += fmt.Sprintf("; %d flagged by the device left out", n)
			}
			if o.Method == nil || o.Method.Text != method {
				t.Errorf("%s %s, minute %s: method %+v, want %q", patient, ref, start, o.Method, method)
			}
			if o.EffectiveDateTime != "" || o.Status != "final" || !strings.Contains(o.Identifier[0].Value, "/every1m/"+start+"/") {
				t.Errorf("%s %s, minute %s: effectiveDateTime %q, status %q, identifier %q", patient, ref, start, o.EffectiveDateTime, o.Status, o.Identifier[0].Value)
			}
		}
	}
}
