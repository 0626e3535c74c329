package hl7

import (
	"errors"
	"time"
)

// Precision is how much of a time value was given.
type Precision uint8

// Precisions of a DTM value, from the year to fractions of a second.
const (
	Year Precision = iota + 1
	Month
	Day
	Hour
	Minute
	Second
	Fraction
)

// Time is a DTM (TS before v2.5) value.
type Time struct {
	time.Time
	Precision Precision
	// Zoned: the value carried its UTC offset. Otherwise it was read in the
	// zone given to ParseTime, which is the receiver's assumption.
	Zoned bool
	// Ambiguous: the value carried no offset and its local time occurs
	// twice in the zone it was read in (the hour the clocks go back);
	// Time is then one of the two instants it may name.
	Ambiguous bool
}

var errTime = errors.New("not a time: want YYYY[MM[DD[HH[MM[SS[.S...]]]]]][+/-ZZZZ]")

// ErrSkippedLocalTime is ParseTime's error for a value without an offset
// whose local time the zone skipped (the hour the clocks go forward): it
// names no instant there.
var ErrSkippedLocalTime = errors.New("a local time that the zone skipped (daylight-saving change)")

// ParseTime reads a DTM value, "YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]",
// in zone when it carries no offset (UTC when zone is nil; Zoned then tells
// it was a guess). Values out of range (month 13, 30 February, 24:00) are
// errors, not normalised. Take the first component of a TS field (ts.Comp(1)):
// its second is the precision of v2.4 and earlier. Read in a zone, a local
// time that the zone skipped is ErrSkippedLocalTime, and one that it
// repeats is Ambiguous.
func ParseTime(s string, zone *time.Location) (Time, error) {
	var t Time
	num := func(i, n int) (int, bool) {
		if i+n > len(s) {
			return 0, false
		}
		v := 0
		for _, c := range []byte(s[i : i+n]) {
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	end := len(s)
	for i := 0; i < len(s); i++ {
		if s[i] == '+' || s[i] == '-' {
			end = i
			break
		}
	}
	date := s[:end]
	var f [6]int
	f[1], f[2] = 1, 1
	widths := [...]int{4, 2, 2, 2, 2, 2}
	i := 0
	for k, w := range widths {
		if i == len(date) || date[i] == '.' {
			break
		}
		v, ok := num(i, w)
		if !ok {
			return t, errTime
		}
		f[k] = v
		i += w
		t.Precision = Precision(k + 1)
	}
	if t.Precision == 0 {
		return t, errTime
	}
	nsec := 0
	if i < len(date) {
		if date[i] != '.' || t.Precision != Second || i+1 == len(date) || len(date)-i-1 > 9 {
			return t, errTime
		}
		scale := 100000000
		for _, c := range []byte(date[i+1:]) {
			if c < '0' || c > '9' {
				return t, errTime
			}
			nsec += int(c-'0') * scale
			scale /= 10
		}
		t.Precision = Fraction
	}
	if f[1] < 1 || f[1] > 12 || f[2] < 1 || f[2] > daysIn(f[0], f[1]) || f[3] > 23 || f[4] > 59 || f[5] > 59 {
		return t, errTime
	}
	loc := zone
	if loc == nil {
		loc = time.UTC
	}
	if end < len(s) {
		if len(s)-end != 5 {
			return t, errTime
		}
		hh, ok1 := num(end+1, 2)
		mm, ok2 := num(end+3, 2)
		if !ok1 || !ok2 || hh > 23 || mm > 59 {
			return t, errTime
		}
		off := hh*3600 + mm*60
		if s[end] == '-' {
			off = -off
		}
		loc = time.FixedZone("", off)
		t.Zoned = true
	}
	t.Time = time.Date(f[0], time.Month(f[1]), f[2], f[3], f[4], f[5], nsec, loc)
	if !t.Zoned && loc != time.UTC {
		// time.Date moves a skipped local time and picks one of a repeated
		// one without saying so: find every instant the wall clock names.
		wall := time.Date(f[0], time.Month(f[1]), f[2], f[3], f[4], f[5], nsec, time.UTC)
		var found [3]time.Time
		n := 0
		for _, probe := range [...]time.Duration{-48 * time.Hour, 0, 48 * time.Hour} {
			_, off := wall.Add(probe).In(loc).Zone()
			u := wall.Add(-time.Duration(off) * time.Second)
			if _, o := u.In(loc).Zone(); o != off {
				continue
			}
			dup := false
			for _, g := range found[:n] {
				dup = dup || g.Equal(u)
			}
			if !dup {
				found[n] = u
				n++
			}
		}
		switch {
		case n == 0:
			return Time{}, ErrSkippedLocalTime
		case n > 1:
			t.Ambiguous = true
		}
	}
	return t, nil
}

func daysIn(year, month int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}
