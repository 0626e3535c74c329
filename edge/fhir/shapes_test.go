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
	m := &Mapper{Site: "w"}
	at := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	obs := func(code devices.MDC, unit string, v float64, dt time.Time, dev string) *Observation {
		r := devices.Reading{Device: dev, Location: "bed", Code: code, Value: v, Unit: unit, DeviceTime: dt, Received: dt}
		o, err := m.base(PatientReading{Reading: r, Patient: "Patient/1"}, code.Code)
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

// A reading is named by device, code and time: without a device time,
// by when the gateway first received it, so that two equal readings a few
// seconds apart are two Observations.
func TestReadingsWithoutDeviceTimeAreNamedByTheirReceipt(t *testing.T) {
	m := &Mapper{Site: "w"}
	r := devices.Reading{Device: "d", Code: devices.MDC{Code: 147842}, Value: 72, Received: time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)}
	again := r
	again.Received = r.Received.Add(3 * time.Second)
	if a, b := m.observationID(r, 147842), m.observationID(again, 147842); a == b {
		t.Fatalf("two measurements seconds apart share the identifier %v", a)
	}
	timed := r
	timed.DeviceTime = r.Received.Add(-time.Minute)
	later := timed
	later.Received = r.Received.Add(time.Hour) // read again, much later
	if m.observationID(timed, 147842) != m.observationID(later, 147842) {
		t.Fatal("a device time must decide when there is one")
	}
}

// A clock set back shows device times it showed before: the readings
// measured at their second showing are not the ones measured at the first.
// The name does not depend on the offset estimate.
func TestAClockThatWasSetDoesNotRepeatIdentifiers(t *testing.T) {
	m := &Mapper{Site: "w"}
	before := devices.Reading{Device: "d", Code: devices.MDC{Code: 147842}, DeviceTime: time.Date(2026, 10, 25, 2, 30, 0, 0, time.UTC), ClockOffset: 40 * time.Millisecond}
	after := before
	after.ClockOffset, after.ClockRepeat = -5*time.Minute+35*time.Millisecond, 1 // the same device time, five minutes later
	if m.observationID(before, 147842) == m.observationID(after, 147842) {
		t.Fatal("two measurements at one device time share an identifier")
	}
	estimated := before
	estimated.ClockOffset = 7*time.Minute + 30*time.Second // another gateway's estimate
	if m.observationID(before, 147842) != m.observationID(estimated, 147842) {
		t.Fatal("the offset estimate changed the identifier")
	}
}
