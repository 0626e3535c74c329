package profile

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wardgate/wardgate/devices/mdc"
)

// Chart is a charting policy: how a parameter's readings become
// Observations in the record. It is written as one phrase:
//
//	each                      every measurement (episodic: NIBP, temperature)
//	off                       none
//	every 1m                  one value per minute, aligned to the clock: the median
//	every 15m last            … the interval's last valid reading
//	every 5m mean at end      … charted at the interval's end instead of over it
//	every 1m median and samples   and every sample as valueSampledData
//	samples 1m                only the samples, one Observation per minute
//
// The value of an interval is one of last, median, mean, min, max, or
// nearest (the reading nearest the interval's end).
type Chart struct {
	Mode    ChartMode
	Every   time.Duration // the interval, for Every and Samples
	Value   string        // how an interval's readings become one (Every)
	AtEnd   bool          // charted at the interval's end, not over it
	Samples bool          // every sample too, one Observation per interval
}

// ChartMode is what a policy charts.
type ChartMode uint8

const (
	ChartUnset ChartMode = iota // no policy at this level
	ChartEach
	ChartOff
	ChartEvery   // one value per interval
	ChartSamples // only the samples, per interval
)

// ChartValues are the ways an interval's readings become one value.
var ChartValues = []string{"median", "last", "mean", "min", "max", "nearest"}

// ParseScalar implements yamlstrict.Scalar.
func (c *Chart) ParseScalar(s string) error {
	v, err := ParseChart(s)
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// ParseChart reads a policy phrase (see Chart).
func ParseChart(s string) (Chart, error) {
	w := strings.Fields(strings.ToLower(s))
	bad := func(why string) (Chart, error) {
		return Chart{}, fmt.Errorf("%q is not a charting policy: %s (write each, off, every 1m [median|last|mean|min|max|nearest] [at end] [and samples], or samples 1m)", s, why)
	}
	if len(w) == 0 {
		return bad("it is empty")
	}
	switch w[0] {
	case "each", "off":
		if len(w) > 1 {
			return bad("nothing follows " + w[0])
		}
		if w[0] == "each" {
			return Chart{Mode: ChartEach}, nil
		}
		return Chart{Mode: ChartOff}, nil
	case "every", "samples":
	default:
		return bad("it starts with neither each, off, every nor samples")
	}
	if len(w) < 2 {
		return bad(w[0] + " needs an interval")
	}
	d, err := time.ParseDuration(w[1])
	if err != nil {
		return bad(fmt.Sprintf("%q is not an interval", w[1]))
	}
	if d < time.Second || (24*time.Hour)%d != 0 {
		return bad("an interval is at least 1s and divides a day evenly (1m, 5m, 15m, 1h)")
	}
	if w[0] == "samples" {
		if len(w) > 2 {
			return bad("nothing follows samples' interval")
		}
		return Chart{Mode: ChartSamples, Every: d}, nil
	}
	c := Chart{Mode: ChartEvery, Every: d, Value: "median"}
	rest := w[2:]
	if len(rest) > 0 && isChartValue(rest[0]) {
		c.Value, rest = rest[0], rest[1:]
	}
	if len(rest) >= 2 && rest[0] == "at" && rest[1] == "end" {
		c.AtEnd, rest = true, rest[2:]
	}
	if len(rest) >= 2 && rest[0] == "and" && rest[1] == "samples" {
		c.Samples, rest = true, rest[2:]
	}
	if len(rest) > 0 {
		return bad(fmt.Sprintf("%q is not understood", strings.Join(rest, " ")))
	}
	return c, nil
}

func isChartValue(s string) bool {
	for _, v := range ChartValues {
		if s == v {
			return true
		}
	}
	return false
}

// String writes the policy as a phrase ParseChart reads back.
func (c Chart) String() string {
	switch c.Mode {
	case ChartEach:
		return "each"
	case ChartOff:
		return "off"
	case ChartSamples:
		return "samples " + FormatInterval(c.Every)
	case ChartEvery:
		s := "every " + FormatInterval(c.Every) + " " + c.Value
		if c.AtEnd {
			s += " at end"
		}
		if c.Samples {
			s += " and samples"
		}
		return s
	}
	return ""
}

// FormatInterval writes an interval as a policy does: 1m rather than 1m0s.
func FormatInterval(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Episodic tells whether a parameter is measured now and then rather than
// continuously: a non-invasive blood pressure (or a cuff's), a temperature. Its default
// policy is each; a continuous parameter's is every 1m median.
func Episodic(code uint32) bool {
	t, ok := mdc.ByCode(code)
	if !ok {
		return false
	}
	return strings.HasPrefix(t.RefID, "MDC_PRESS_BLD_NONINV") || strings.HasPrefix(t.RefID, "MDC_PRESS_CUFF") || strings.HasPrefix(t.RefID, "MDC_TEMP")
}

// DefaultChart is the built-in policy of a parameter: each for an episodic
// one, every 1m median for a continuous one.
func DefaultChart(code uint32) Chart {
	if Episodic(code) {
		return Chart{Mode: ChartEach}
	}
	return Chart{Mode: ChartEvery, Every: time.Minute, Value: "median"}
}

// ChartOf is the profile's policy for an MDC code (its vendor's default),
// and whether the profile sets one.
func (p *Profile) ChartOf(code uint32) (Chart, bool) {
	for i := range p.Parameters {
		if prm := &p.Parameters[i]; prm.term.Code == code && prm.Chart != nil {
			return *prm.Chart, true
		}
	}
	return Chart{}, false
}

// Codes are the MDC codes the profile charts, in its order, once each.
func (p *Profile) Codes() []uint32 {
	var out []uint32
	for i := range p.Parameters {
		if c := p.Parameters[i].term.Code; c != 0 && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}
