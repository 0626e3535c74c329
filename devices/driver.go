package devices

import (
	"context"
	"errors"
	"time"
)

// Monitors that must be talked to (Philips IntelliVue Data Export, GE
// Datex-Ohmeda S/5) do not print lines: a client opens a session, asks for
// data, keeps the session alive and decodes binary answers. Each such
// protocol is one package with a Dialogue; the transport (a serial port, a
// UDP or TCP socket) is given to it as a Link, so that the protocol can be
// tested against a byte stream, and what varies by model and firmware
// (which values to chart, their MDC codes, units, scaling, ranges, which
// state bits drop or flag a value) is in the firmware profile that names
// the dialogue.

// Link carries whole protocol messages to and from one device: a datagram
// on UDP, or the bytes between a frame's delimiters on a serial line (the
// protocol package unwraps the framing, escapes and checksum).
type Link interface {
	// ReadMessage returns the next message, waiting at most until
	// deadline; past it the error wraps os.ErrDeadlineExceeded.
	ReadMessage(deadline time.Time) ([]byte, error)
	// WriteMessage sends one message.
	WriteMessage(msg []byte) error
}

// Dialogue is one protocol's client side.
type Dialogue interface {
	// Run holds one session over link: it associates, asks for data,
	// keeps the session alive and hands every decoded answer to emit, until
	// ctx ends (nil), the link fails, or the device stops answering (an
	// error wrapping ErrSilent). The caller then opens the link again and
	// calls Run anew, after a pause. An error from emit (the gateway could
	// not store the values) ends Run with that error.
	Run(ctx context.Context, link Link, emit func(DriverFrame) error) error
}

// ErrSilent is wrapped by a Dialogue's error when the device stopped
// answering within the protocol's time.
var ErrSilent = errors.New("device stopped answering")

// DriverFrame is what one answer of a device held, in the device's own
// terms: the profile that names the dialogue maps each value's Field to an
// MDC code and unit, scales it, checks its range and reads its State.
type DriverFrame struct {
	// DeviceTime is the device's clock at the answer; zero when it gave
	// none (a value's own Time takes precedence for that value).
	DeviceTime time.Time
	// Model, SerialNumber and Firmware, as far as the session learned them.
	Model        string
	SerialNumber string
	Firmware     string
	Values       []DriverValue
	// Bad counts parts of the answer that could not be decoded (a value
	// whose length field lies); the rest of the answer is still used.
	Bad int
}

// DriverValue is one numeric of an answer.
type DriverValue struct {
	// Field names the value as the profile's parameters do: for IntelliVue
	// the physiological id in hex ("0x4BB8"), for Datex the group and
	// value ("nibp.sys").
	Field string
	// Value is the number as decoded, before the profile's scale. NaN for
	// a value the device marked as not available (its State says why).
	Value float64
	// Unit is the device's unit as sent (an IntelliVue unit code in
	// decimal, "544"), empty when the protocol has none.
	Unit string
	// State is the device's measurement-state bits for the value, which
	// the profile's status bits read.
	State uint32
	// Time is the value's own measurement time (an NIBP taken minutes
	// before the answer), zero when it has none.
	Time time.Time
	// TimeUnknown: the value has a time of its own that cannot be known
	// (stamped on a clock the monitor never told, or shown already old):
	// it is never charted at a guess, and is counted as dropped.
	TimeUnknown bool
}
