package r4

import (
	"strings"
	"time"
)

// The invariants of the datatypes wardgate writes that relate one element
// to another. google/fhir checks none of them (it evaluates no FHIRPath).

// startNotAfterEnd is Period's per-1: "If present, start SHALL have a lower
// value than end", compared as R4 compares dateTimes of different
// precision: start is the beginning of what it names and end includes all
// of what it names ("2012-02-03T10:00:00 is in a period that has an end
// value of 2012-02-03"). A date without a time has no zone, and may be in
// any zone from -14:00 to +14:00; the invariant fails only where start is
// after end in every reading.
func startNotAfterEnd(members []member) (kind, string, bool) {
	var start, end []byte
	for _, m := range members {
		switch string(m.name) {
		case "start":
			start = m.val
		case "end":
			end = m.val
		}
	}
	from, fromZoned, ok1 := span(start)
	to, toZoned, ok2 := span(end)
	if !ok1 || !ok2 {
		return 0, "", false // one is missing or refused as it is
	}
	earliest, latest := from[0], to[1]
	if fromZoned != toZoned {
		const widest = 14 * time.Hour
		if !fromZoned {
			earliest = earliest.Add(-widest)
		}
		if !toZoned {
			latest = latest.Add(widest)
		}
	}
	if !earliest.Before(latest) {
		return r4Only, "per-1: start " + string(start) + " is after end " + string(end), true
	}
	return 0, "", false
}

// span returns the instants a dateTime names, from the first to just after
// the last (a year names all of its instants, a second or a fraction of
// one those within it), and whether it carries a zone; ok is false when raw
// is not a valid dateTime.
func span(raw []byte) (s [2]time.Time, zoned, ok bool) {
	v, isString := stringValue(raw)
	if !isString || !dateTimeRE.MatchString(v) {
		return s, false, false
	}
	var layout string
	var step func(time.Time) time.Time
	switch len(v) {
	case 4:
		layout, step = "2006", func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }
	case 7:
		layout, step = "2006-01", func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }
	case 10:
		layout, step = "2006-01-02", func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }
	default:
		layout, zoned = time.RFC3339Nano, true
		unit := time.Second
		if dot := strings.IndexByte(v, '.'); dot >= 0 {
			digits := strings.IndexAny(v[dot+1:], "Z+-")
			for i := 0; i < digits && unit > time.Nanosecond; i++ {
				unit /= 10
			}
		}
		step = func(t time.Time) time.Time { return t.Add(unit) }
	}
	t, err := time.Parse(layout, v)
	if err != nil {
		return s, false, false
	}
	return [2]time.Time{t, step(t)}, zoned, true
}
