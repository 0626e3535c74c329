package fhir

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/wardgate/wardgate/devices/profile"
)

// Interval marks a reading as the charted value of a charting interval
// (a minute of heart rates become their median), or, with Samples, as the
// interval's samples at full resolution. The aggregation is the gateway's
// (edge/charting.go); the mapper writes what it made.
type Interval struct {
	Start, End time.Time
	// Every is the policy's interval (End - Start but for a day's last
	// interval when clocks change); it names the interval.
	Every time.Duration
	// Value is how the readings became one: median, last, mean, min, max
	// or nearest.
	Value string
	// AtEnd: charted at the interval's end (effectiveDateTime), not over
	// it (effectivePeriod).
	AtEnd bool
	// At is the time of the reading charted as nearest the interval's end
	// (a spot value at its own time); zero for the other values.
	At time.Time
	// N readings made the value; Flagged ones were left out.
	N, Flagged int
	// Samples, when not empty, is the interval's series (SampledData.data:
	// one value or E per period from Start); the reading's Value is unused.
	Samples      string
	SamplePeriod time.Duration
	// Amended: the interval was charted before, and a late reading changed
	// its value.
	Amended bool
}

// intervalID names a charted interval: device, code, interval, and a
// digest of patient and unit (a transfer within an interval charts two
// values, one per patient; a parameter sent in two units, one per unit; the
// subject says who). Every gateway that saw the same readings names it
// alike, so a restart, a backlog replay or a second gateway charts it once.
func (m *Mapper) intervalID(r PatientReading, code uint32) Identifier {
	iv := r.Interval
	kind := "every"
	if iv.Samples != "" {
		kind = "samples"
	}
	sum := sha256.Sum256([]byte(r.Patient + "|" + r.Unit))
	every := iv.Every
	if every == 0 {
		every = iv.End.Sub(iv.Start)
	}
	v := fmt.Sprintf("%s/%d/%s%s/%s/%s", r.Device, code, kind, profile.FormatInterval(every), fhirTime(iv.Start), hex.EncodeToString(sum[:4]))
	return Identifier{System: m.system("observation"), Value: v}
}

// intervalParts fills what an interval's Observation has instead of a
// reading's: its period (or end), the method, and the amended status.
func intervalParts(o *Observation, iv *Interval) {
	o.EffectiveDateTime = ""
	switch {
	case iv.AtEnd:
		o.EffectiveDateTime = fhirTime(iv.End)
	case !iv.At.IsZero() && iv.Samples == "":
		o.EffectiveDateTime = fhirTime(iv.At)
	default:
		o.EffectivePeriod = &Period{Start: fhirTime(iv.Start), End: fhirTime(iv.End)}
	}
	span := profile.FormatInterval(iv.End.Sub(iv.Start))
	var text string
	if iv.Samples != "" {
		text = fmt.Sprintf("every sample over %s, one each %s", span, iv.SamplePeriod)
	} else {
		text = fmt.Sprintf("%s of %s over %s", iv.Value, readings(iv.N), span)
		if iv.Value == "nearest" {
			text = fmt.Sprintf("the reading nearest the end of %s, of %s", span, readings(iv.N))
		}
	}
	if iv.Flagged > 0 {
		text += fmt.Sprintf("; %d flagged by the device left out", iv.Flagged)
	}
	if iv.Samples == "" && iv.End.Sub(iv.Start) != iv.Every && iv.Every != 0 {
		text += " (the day's last interval, the clocks having changed)"
	}
	o.Method = &CodeableConcept{Text: text}
	if iv.Amended {
		o.Status = "amended"
	}
}

// sampledData is an interval's series as SampledData, in the reading's unit.
func sampledData(r PatientReading) *SampledData {
	iv := r.Interval
	return &SampledData{
		Origin:     Quantity{Value: 0, Unit: r.Unit, System: UCUM, Code: r.Unit},
		Period:     Decimal(float64(iv.SamplePeriod) / float64(time.Millisecond)),
		Dimensions: 1,
		Data:       iv.Samples,
	}
}

func readings(n int) string {
	if n == 1 {
		return "1 reading"
	}
	return fmt.Sprintf("%d readings", n)
}
