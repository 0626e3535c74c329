package intellivue

import (
	"encoding/binary"
	"time"
)

// RelativeTick is the unit of the monitor's relative time (a u32 that
// counts from the monitor's start and wraps after about 6.2 days).
const RelativeTick = 125 * time.Microsecond

// RelativeTime converts a duration to relative-time ticks.
func RelativeTime(d time.Duration) uint32 { return uint32(d / RelativeTick) }

// absTimeUnset is an AbsoluteTime field the monitor did not set.
const absTimeUnset = 0xFF

// bcd decodes one binary-coded-decimal byte; ok is false for 0xFF (unset)
// or a digit above 9.
func bcd(b byte) (int, bool) {
	hi, lo := int(b>>4), int(b&0x0F)
	if hi > 9 || lo > 9 {
		return 0, false
	}
	return hi*10 + lo, true
}

// AbsoluteTime decodes the 8 BCD bytes (century, year, month, day, hour,
// minute, second, hundredths) of the monitor's wall clock in loc. ok is
// false when the monitor left it unset (0xFF, as it often does) or it is
// not a date.
func AbsoluteTime(b []byte, loc *time.Location) (time.Time, bool) {
	if len(b) < 8 {
		return time.Time{}, false
	}
	var v [8]int
	for i := range 7 {
		d, ok := bcd(b[i])
		if !ok {
			return time.Time{}, false
		}
		v[i] = d
	}
	frac, ok := bcd(b[7])
	if !ok {
		frac = 0 // the fraction is often unset while the rest is set
	}
	year, month, day := v[0]*100+v[1], v[2], v[3]
	if month < 1 || month > 12 || day < 1 || day > 31 || v[4] > 23 || v[5] > 59 || v[6] > 60 {
		return time.Time{}, false
	}
	if loc == nil {
		loc = time.Local
	}
	return time.Date(year, time.Month(month), day, v[4], v[5], v[6], frac*int(10*time.Millisecond), loc), true
}

// AppendAbsoluteTime appends t as the monitor writes its clock: 8 BCD
// bytes in t's own location.
func AppendAbsoluteTime(dst []byte, t time.Time) []byte {
	enc := func(n int) byte { return byte(n/10)<<4 | byte(n%10) }
	return append(dst, enc(t.Year()/100), enc(t.Year()%100), enc(int(t.Month())), enc(t.Day()),
		enc(t.Hour()), enc(t.Minute()), enc(t.Second()), enc(t.Nanosecond()/int(10*time.Millisecond)))
}

// UnsetAbsoluteTime is an AbsoluteTime the monitor did not set.
var UnsetAbsoluteTime = [8]byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}

// Anchor ties the monitor's relative time to its wall clock: the pair of
// TIME_ABS and TIME_REL the MDS gave at one moment. The zero Anchor knows
// nothing.
type Anchor struct {
	Abs time.Time
	Rel uint32
}

// Valid is whether the anchor can date a relative time.
func (a Anchor) Valid() bool { return !a.Abs.IsZero() }

// Time is the wall-clock time of relative time rel: the tick difference
// is read as signed, so a stamp up to about 3 days before the anchor (an
// NIBP taken before the MDS last told its clock) is dated correctly.
func (a Anchor) Time(rel uint32) time.Time {
	if !a.Valid() {
		return time.Time{}
	}
	return a.Abs.Add(time.Duration(int32(rel-a.Rel)) * RelativeTick)
}

func be16(b []byte) uint16 { return binary.BigEndian.Uint16(b) }
func be32(b []byte) uint32 { return binary.BigEndian.Uint32(b) }
