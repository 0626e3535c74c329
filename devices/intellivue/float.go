package intellivue

import "math"

// The FLOAT type of the data export: the top byte a signed base-10
// exponent, the low 24 bits a signed mantissa. Five mantissas are markers.
const (
	floatNaN     = 0x7FFFFF // not a number
	floatNRes    = 0x800000 // not at this resolution
	floatPosInf  = 0x7FFFFE
	floatNegInf  = 0x800002
	floatMantMax = 0x800000
)

// Float decodes a FLOAT. special is true for the markers (NaN, NRes,
// +INF, -INF), whose value is NaN.
func Float(v uint32) (value float64, special bool) {
	m := v & 0xFFFFFF
	switch m {
	case floatNaN, floatNRes, floatPosInf, floatNegInf:
		return math.NaN(), true
	}
	mant := int32(m<<8) >> 8 // sign-extend 24 bits
	exp := int(int8(v >> 24))
	f := float64(mant)
	switch {
	case exp > 0:
		f *= math.Pow10(exp)
	case exp < 0:
		// dividing keeps 37.00 from being 37.000000000000004
		f /= math.Pow10(-exp)
	}
	return f, false
}

// EncodeFloat is the FLOAT of mantissa × 10^exponent; the mantissa must fit
// in 24 signed bits and not be a marker.
func EncodeFloat(mantissa int32, exponent int8) uint32 {
	return uint32(uint8(exponent))<<24 | uint32(mantissa)&0xFFFFFF
}

// FloatNaN is the FLOAT marker for a value that is not available.
const FloatNaN uint32 = floatNaN

// Measurement-state bits of a value (the profile reads them from
// DriverValue.State).
const (
	StateInvalid      = 0x8000
	StateQuestionable = 0x4000
	StateUnavailable  = 0x2000
	StateTest         = 0x0800
	StateDemo         = 0x0400
)

// StateValid reports whether a measurement state marks a value as valid:
// none of the high byte's bits set.
func StateValid(state uint16) bool { return state&0xFF00 == 0 }
