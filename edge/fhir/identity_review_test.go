package fhir

import (
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices"
)

// Tests from a second round of a second reader: an Observation's identity
// (once named by a rounded "/clock<offset>"), and the Device bookkeeping of
// ConfirmDevices; each failed before its fix.

// obsKey is the ifNoneExist of the one Observation entry of a reading.
func obsKey(t *testing.T, m *Mapper, r devices.Reading) string {
	t.Helper()
	entries, rejected := m.MapReadings(charted(r))
	if len(rejected) > 0 {
		t.Fatalf("rejected: %v", rejected[0].Reason)
	}
	for _, e := range entries {
		if e.Request.URL == "Observation" {
			return e.Request.IfNoneExist
		}
	}
	t.Fatal("no Observation entry")
	return ""
}

// feed runs a device one frame a second through c, its clock off by
// offset, each frame delayed by delay, from at for d; it returns each
// frame's reading as stamped and settled, and the time after.
func feed(c *devices.Clock, reg *devices.Clocks, at time.Time, d, offset, delay time.Duration) ([]devices.Reading, time.Time) {
	var out []devices.Reading
	for end := at.Add(d); at.Before(end); at = at.Add(time.Second) {
		dev := at.Add(-delay).Add(offset)
		rs := []devices.Reading{{Device: "bed-12-monitor", Location: "bed-12", Profile: "masimo/radical-7",
			Code: devices.MDC{Code: 150456, RefID: "MDC_PULS_OXIM_SAT_O2"}, Value: 97, Unit: "%", DeviceTime: dev}}
		c.Stamp(rs, dev, time.Time{}, at, false)
		out = append(out, rs[0])
	}
	return out, at
}

// A monitor's clock runs 5 minutes fast; a nurse sets it right. The step
// (−5 min) is detected, and each reading gets its right time. But both
// offsets round to 0 at the quarter hour, so no suffix tells apart the
// readings of the 5 minutes before the correction from those of the 5
// minutes after, which show the same device times: device/code/time is one
// identity for two measurements, and ifNoneExist keeps the first. Five
// minutes of readings are dropped without a trace (the record answers 200).
func TestAClockCorrectedByMinutesDoesNotReuseIdentities(t *testing.T) {
	start := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	reg := devices.NewClocks()
	c := reg.Clock("bed-12-monitor", time.Second, true)
	before, at := feed(c, reg, start, 20*time.Minute, 5*time.Minute, 30*time.Millisecond)
	after, at := feed(c, reg, at, 10*time.Minute, 0, 30*time.Millisecond)
	if st := c.Status(); st.Steps != 1 {
		t.Fatalf("precondition: the correction is a step: %+v", st)
	}
	settle := func(r *devices.Reading) {
		if v := reg.Settle(r, at); v != devices.TimeSettled {
			t.Fatalf("precondition: every reading settled, not %v", v)
		}
	}
	m := testMapper()
	ids := map[string]time.Time{}
	collisions := 0
	var ex string
	for _, set := range [][]devices.Reading{before, after} {
		for i := range set {
			r := set[i]
			settle(&r)
			k := obsKey(t, m, r)
			if first, dup := ids[k]; dup && !first.Equal(r.Effective()) {
				if collisions == 0 {
					ex = k + ": measured " + first.Format(time.TimeOnly) + " and " + r.Effective().Format(time.TimeOnly)
				}
				collisions++
			}
			ids[k] = r.Effective()
		}
	}
	if collisions > 0 {
		t.Fatalf("%d readings share an identity with another measurement after a 5-minute clock correction (e.g. %s)", collisions, ex)
	}
}

// Two gateways (or one, before and after a redelivery) read the same frame
// of a device whose clock is 7 min 30.015 s fast. Their estimates differ by
// the least delay each has seen (20 ms and 10 ms): 7:29.995 and 7:30.005,
// which round to 0 and to 15 min. The same measurement gets two identities,
// and the record two Observations. Before the suffix, the identity was the
// device time alone, the same for every gateway.
func TestTheSameFrameHasOneIdentityWhateverTheEstimate(t *testing.T) {
	start := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	truth := 7*time.Minute + 30*time.Second + 15*time.Millisecond
	a, b := devices.NewClock(time.Second), devices.NewClock(time.Second)
	_, at := feed(a, nil, start, 10*time.Minute, truth, 20*time.Millisecond)
	feed(b, nil, start, 10*time.Minute, truth, 10*time.Millisecond)
	dev := at.Add(truth).Add(-40 * time.Millisecond)
	ra := []devices.Reading{{Device: "bed-12-monitor", Location: "bed-12", Profile: "masimo/radical-7",
		Code: devices.MDC{Code: 150456, RefID: "MDC_PULS_OXIM_SAT_O2"}, Value: 97, Unit: "%", DeviceTime: dev}}
	rb := []devices.Reading{ra[0]}
	a.Stamp(ra, dev, time.Time{}, at, false)
	b.Stamp(rb, dev, time.Time{}, at.Add(10*time.Millisecond), false)
	ka, kb := obsKey(t, testMapper(), ra[0]), obsKey(t, testMapper(), rb[0])
	if ka != kb {
		t.Fatalf("one measurement, two identities (offsets %v and %v):\n  %s\n  %s", ra[0].ClockOffset, rb[0].ClockOffset, ka, kb)
	}
}

// A Device the record refused is forgotten (OnRefused → Forget) so that
// the next reading writes it again. A store that mapped its readings just
// before (without a Device entry: it was confirmed) commits just after, and
// its ConfirmDevices marks the Device as in the outbox again, though that
// store carried none. Every later Observation of the device refers to a
// Device the record does not have (a conditional reference to nothing: 404,
// dead-lettered), until a restart.
func TestAConfirmAfterAForgetDoesNotHideARefusedDevice(t *testing.T) {
	m := testMapper()
	r := reading(150456, "MDC_PULS_OXIM_SAT_O2", 97, "%")
	first, _ := m.MapReadings(charted(r))
	m.ConfirmDevices(first) // its Append committed; the Device is in the outbox

	r2 := r
	r2.DeviceTime = r.DeviceTime.Add(time.Second)
	entries, _ := m.MapReadings(charted(r2)) // a source maps: no Device entry (confirmed)
	for _, e := range entries {
		if e.Request.URL != "Observation" {
			t.Fatalf("precondition: the second mapping carries only its Observation, not %s", e.Request.URL)
		}
	}
	m.Forget(r.Device)        // the deliverer: the record refused the Device
	m.ConfirmDevices(entries) // the source's Append commits

	r3 := r
	r3.DeviceTime = r.DeviceTime.Add(2 * time.Second)
	entries, _ = m.MapReadings(charted(r3))
	for _, e := range entries {
		if e.Request.URL != "Observation" && e.Request.URL != "" {
			return // a Device entry again
		}
	}
	t.Fatalf("after the record refused the Device, no later mapping writes it again: %d entries, none a Device", len(entries))
}
