package hl7

import (
	"testing"
	"time"
)

// A local time that a daylight-saving change skipped does not exist, and
// one it repeated names two instants: neither is normalised or picked at
// random. A time with its offset, or read in a zone without changes, is
// neither.
func TestParseTimeDaylightSaving_review12(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no zone data:", err)
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no zone data:", err)
	}
	for _, c := range []struct {
		s         string
		zone      *time.Location
		err       bool
		ambiguous bool
		want      string // RFC 3339 when neither
	}{
		{"202403100230", ny, true, false, ""},     // spring forward: 02:00-03:00 skipped
		{"20240310025959.5", ny, true, false, ""}, // still in the gap
		{"202403100300", ny, false, false, "2024-03-10T03:00:00-04:00"},
		{"202403100159", ny, false, false, "2024-03-10T01:59:00-05:00"},
		{"202411030130", ny, false, true, ""}, // fall back: 01:00-02:00 twice
		{"2024110301", ny, false, true, ""},   // to the hour, in the repeated hour
		{"202411030200", ny, false, false, "2024-11-03T02:00:00-05:00"},
		{"202411030059", ny, false, false, "2024-11-03T00:59:00-04:00"},
		{"202410270230", berlin, false, true, ""},
		{"202403310230", berlin, true, false, ""},
		{"202411030130-0400", ny, false, false, "2024-11-03T01:30:00-04:00"}, // offset given: no doubt
		{"202403100230-0500", ny, false, false, "2024-03-10T02:30:00-05:00"},
		{"202411030130", nil, false, false, "2024-11-03T01:30:00Z"},
	} {
		got, err := ParseTime(c.s, c.zone)
		switch {
		case c.err:
			if err == nil {
				t.Errorf("%s in %v: %v, want an error (the time does not exist there)", c.s, c.zone, got.Time)
			}
		case err != nil:
			t.Errorf("%s in %v: %v", c.s, c.zone, err)
		case got.Ambiguous != c.ambiguous:
			t.Errorf("%s in %v: ambiguous %v, want %v", c.s, c.zone, got.Ambiguous, c.ambiguous)
		case !c.ambiguous && got.Format(time.RFC3339) != c.want:
			t.Errorf("%s in %v: %s, want %s", c.s, c.zone, got.Format(time.RFC3339), c.want)
		}
	}
}
