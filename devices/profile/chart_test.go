package profile

import (
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices/mdc"
)

func TestParseChart(t *testing.T) {
	good := []struct {
		in   string
		want Chart
		back string
	}{
		{"each", Chart{Mode: ChartEach}, "each"},
		{"OFF", Chart{Mode: ChartOff}, "off"},
		{"every 1m", Chart{Mode: ChartEvery, Every: time.Minute, Value: "median"}, "every 1m median"},
		{"every 15m last", Chart{Mode: ChartEvery, Every: 15 * time.Minute, Value: "last"}, "every 15m last"},
		{"every 5m mean at end", Chart{Mode: ChartEvery, Every: 5 * time.Minute, Value: "mean", AtEnd: true}, "every 5m mean at end"},
		{"every 1h nearest at end and samples", Chart{Mode: ChartEvery, Every: time.Hour, Value: "nearest", AtEnd: true, Samples: true}, "every 1h nearest at end and samples"},
		{"every 30s max and samples", Chart{Mode: ChartEvery, Every: 30 * time.Second, Value: "max", Samples: true}, "every 30s max and samples"},
		{"samples 1m", Chart{Mode: ChartSamples, Every: time.Minute}, "samples 1m"},
	}
	for _, g := range good {
		got, err := ParseChart(g.in)
		if err != nil || got != g.want || got.String() != g.back {
			t.Errorf("ParseChart(%q) = %+v, %v (%q); want %+v (%q)", g.in, got, err, got.String(), g.want, g.back)
		}
		if again, err := ParseChart(got.String()); err != nil || again != got {
			t.Errorf("%q does not read back: %+v, %v", got.String(), again, err)
		}
	}
	bad := map[string]string{
		"":                       "empty",
		"sometimes":              "starts with neither",
		"each 1m":                "nothing follows each",
		"every":                  "needs an interval",
		"every soon":             "not an interval",
		"every 7m":               "divides a day",
		"every 500ms":            "at least 1s",
		"every 1m average":       `"average" is not understood`,
		"every 1m median at":     `"at" is not understood`,
		"every 1m and samples x": `"x" is not understood`,
		"samples 1m median":      "nothing follows",
	}
	for in, why := range bad {
		_, err := ParseChart(in)
		if err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("ParseChart(%q): %v, want an error saying %q", in, err, why)
		}
	}
}

// NIBP and temperatures are charted each time they are measured; the
// continuous parameters once a minute.
func TestDefaultChart(t *testing.T) {
	for ref, want := range map[string]string{
		"MDC_PRESS_BLD_NONINV_SYS":  "each",
		"MDC_PRESS_BLD_NONINV_MEAN": "each",
		"MDC_TEMP_BODY":             "each",
		"MDC_PRESS_CUFF_SYS":        "each",
		"MDC_PULS_OXIM_SAT_O2":      "every 1m median",
		"MDC_ECG_HEART_RATE":        "every 1m median",
		"MDC_PRESS_BLD_ART_ABP_SYS": "every 1m median",
	} {
		term, ok := mdc.Lookup(ref)
		if !ok {
			t.Fatalf("%s is not in the MDC table", ref)
		}
		if got := DefaultChart(term.Code).String(); got != want {
			t.Errorf("%s: %s, want %s", ref, got, want)
		}
	}
}
