package devices

import "time"

// MDC is an IEEE 11073-10101 nomenclature code: the numeric code (partition
// × 65536 + term code) and its reference id.
type MDC struct {
	Code  uint32 // e.g. 150456
	RefID string // e.g. MDC_PULS_OXIM_SAT_O2
}

// Quality flags a reading the device marked as less than sound.
type Quality uint8

const (
	// Questionable: the device flagged the value (low perfusion, signal
	// quality, artefact) but still reported it.
	Questionable Quality = 1 << iota
	// Calibrating: the device was calibrating or zeroing.
	Calibrating
	// Alarm: a physiological alarm was active for this parameter.
	Alarm
)

// Reading is one measured value of one parameter from one monitor, as
// decoded from one frame or message. A frame yields the readings it holds.
type Reading struct {
	// Device is the monitor's id in the config; Location the bed it stands at.
	Device   string
	Location string
	// Profile is the firmware profile that decoded it (vendor/model).
	Profile string

	Code  MDC
	Value float64
	// Unit is the UCUM code ("/min", "%", "mm[Hg]", "Cel").
	Unit string

	// DeviceTime is the time the device gave the value, on the device's own
	// clock; zero when the device sends none. ClockOffset is the device
	// clock minus the gateway's, as estimated for this device (Clock); the
	// time of the measurement on the gateway's clock is DeviceTime -
	// ClockOffset.
	DeviceTime  time.Time
	ClockOffset time.Duration
	// ClockPending: the frame's time disagreed with the device's clock
	// estimate (a backlog, or a clock that was just set), so ClockOffset is
	// provisional until the device's Clock decides (Clocks.Settle).
	ClockPending bool `json:",omitempty"`
	// TimeUnknown: when the value was measured cannot be known (its
	// device's clock was set while its frame waited somewhere, or it came
	// without a device time from where messages may have waited): it is
	// never charted at a guess.
	TimeUnknown bool `json:",omitempty"`
	// ClockRepeat is how many times the device's clock showed DeviceTime
	// before (it was set back over it): the same device time then names
	// another measurement.
	ClockRepeat int `json:",omitempty"`
	// ClockSample is what the device's clock showed when it sent the frame,
	// for a reading whose DeviceTime is a measurement of an earlier time
	// (an NIBP taken minutes before the answer or message that brought
	// it): the clock's decisions are read from it, and the reading keeps
	// its own time. Zero when DeviceTime is the frame's time.
	ClockSample time.Time `json:",omitzero"`
	// Redelivered: the transport delivered the frame again (MQTT DUP).
	Redelivered bool `json:",omitempty"`
	// Received is when the gateway read the frame; for a message the
	// transport redelivered, when it first read it.
	Received time.Time

	Quality Quality

	// NamedPatient is the patient the sender named with the reading (an
	// HL7 result's PID-3 record number), as the record's reference. It is
	// compared with who lay in the bed then, never charted against it.
	NamedPatient string `json:",omitempty"`

	// SerialNumber and Firmware describe the device when it reports them.
	SerialNumber string
	Firmware     string
}

// Effective is the best time for when the value was measured, on the
// gateway's clock: the device's time corrected by its clock's offset, or the
// time of receipt when the device sends no time. Nothing is measured after
// it is received: a device time that the offset puts later is taken as the
// time of receipt.
func (r Reading) Effective() time.Time {
	if r.DeviceTime.IsZero() {
		return r.Received
	}
	t := r.DeviceTime.Add(-r.ClockOffset)
	if !r.Received.IsZero() && t.After(r.Received) {
		return r.Received
	}
	return t
}
