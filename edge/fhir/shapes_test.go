package fhir

import (
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices"
)

// The shape cache skips validation only where the skipped parts are ones
// wardgate makes valid by construction: anything else about a resource
// still changes its shape, and odd variable parts force a full validation.
func TestObservationShape(t *testing.T) {
	m := &Mapper{Site: "w", Patient: func(string, time.Time) (string, bool) { return "Patient/1", true }}
	at := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	obs := func(code devices.MDC, unit string, v float64, dt time.Time, dev string) *Observation {
		r := devices.Reading{Device: dev, Location: "bed", Code: code, Value: v, Unit: unit, DeviceTime: dt, Received: at}
		o, err := m.base(r, code.Code)
		if err != nil {
			t.Fatal(err)
		}
		o.ValueQuantity = quantity(v, unit)
		return o
	}
	hr := devices.MDC{Code: 147842, RefID: "MDC_ECG_HEART_RATE"}
	spo2 := devices.MDC{Code: 150456, RefID: "MDC_PULS_OXIM_SAT_O2"}
	a, okA := observationShape(obs(hr, "/min", 70, at, "d"))
	b, okB := observationShape(obs(hr, "/min", 71, at.Add(time.Second), "d"))
	if !okA || !okB || a != b {
		t.Fatal("two heart rates of one device differ in shape")
	}
	if c, _ := observationShape(obs(spo2, "%", 97, at, "d")); c == a {
		t.Fatal("a different code has the same shape")
	}
	if c, _ := observationShape(obs(hr, "/min", 70, at, "other")); c == a {
		t.Fatal("a different device has the same shape")
	}
	if _, ok := observationShape(obs(hr, "/min", 70, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), "d")); ok {
		t.Fatal("a year past 9999 is taken as valid")
	}
	if _, ok := observationShape(obs(hr, "/min", 70, at, "bad\x01device")); ok {
		t.Fatal("a control character is taken as valid")
	}
}

// A reading without a device time that comes again in the same frame (an
// MQTT message redelivered) is the same Observation, whenever it arrived.
func TestFrameIDIdentifiesReadingsWithoutDeviceTime(t *testing.T) {
	m := &Mapper{Site: "w"}
	r := devices.Reading{Device: "d", Code: devices.MDC{Code: 147842}, FrameID: "abc123", Received: time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)}
	again := r
	again.Received = r.Received.Add(time.Minute)
	if a, b := m.observationID(r, 147842), m.observationID(again, 147842); a != b {
		t.Fatalf("%v and %v differ", a, b)
	}
	timed := r
	timed.DeviceTime = r.Received
	if m.observationID(timed, 147842).Value == m.observationID(r, 147842).Value {
		t.Fatal("a device time must still decide when there is one")
	}
}
