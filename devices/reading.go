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
	// clock minus the gateway's, as measured for this device; the time of
	// the measurement on the gateway's clock is DeviceTime - ClockOffset.
	DeviceTime  time.Time
	ClockOffset time.Duration
	// Received is when the gateway read the frame.
	Received time.Time
	// FrameID identifies the frame by its content when the device sends no
	// time of its own (an MQTT message without one): a frame received
	// twice is then one reading, not two. Empty otherwise.
	FrameID string

	Quality Quality

	// SerialNumber and Firmware describe the device when it reports them.
	SerialNumber string
	Firmware     string
}

// Effective is the best time for when the value was measured, on the
// gateway's clock: the device's time corrected by its measured offset, or
// the time of receipt when the device sends no time.
func (r Reading) Effective() time.Time {
	if r.DeviceTime.IsZero() {
		return r.Received
	}
	return r.DeviceTime.Add(-r.ClockOffset)
}
