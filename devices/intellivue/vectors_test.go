package intellivue

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// CRC-16/X-25's standard check value.
func TestFCS16CheckValue(t *testing.T) {
	if got := FCS16([]byte("123456789")); got != 0x906E {
		t.Fatalf("FCS16(123456789) = %#04x, want 0x906e", got)
	}
}

// The public FCS examples (OpenICE's TestFCSOutputStream): the bytes
// between BOF and EOF with their FCS, the FCS escaped where it must be.
func TestFCSFrameVectors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"3A 71", "C0 3A 71 9B 26 C1"},
		{"3A 91", "C0 3A 91 95 7D E1 C1"},
	} {
		got := appendFCSFrame(nil, unhex(t, c.in))
		if !bytes.Equal(got, unhex(t, c.want)) {
			t.Errorf("frame of %s = % X, want %s", c.in, got, c.want)
		}
		// the deframer takes them apart: the check sequence matches and
		// only the missing data-export header is refused
		d := NewDeframer(0)
		d.Push(got, func([]byte) { t.Errorf("%s: a frame without the 11 01 header was taken", c.in) })
		if st := d.Stats(); st.Bad != 1 || !errors.Is(st.LastError, ErrFrameShort) && !errors.Is(st.LastError, ErrFrameHeader) {
			t.Errorf("%s: stats %+v", c.in, st)
		}
	}
	// with a header long enough the FCS is checked before the header
	body := []byte{0x3A, 0x71, 0x00, 0x00, 0x01}
	d := NewDeframer(0)
	d.Push(appendFCSFrame(nil, body), func([]byte) {})
	if st := d.Stats(); !errors.Is(st.LastError, ErrFrameHeader) {
		t.Errorf("a correct FCS over a foreign header: %v, want %v", st.LastError, ErrFrameHeader)
	}
}

func TestFrameRoundTripAndEscapes(t *testing.T) {
	msg := []byte{0xC0, 0xC1, 0x7D, 0x00, 0x11, 0xE1, 0xC0}
	f := AppendFrame(nil, msg)
	if f[0] != 0xC0 || f[len(f)-1] != 0xC1 || bytes.Count(f, []byte{0xC0}) != 1 || bytes.Count(f, []byte{0xC1}) != 1 {
		t.Fatalf("frame % X holds an unescaped BOF/EOF", f)
	}
	got, err := DecodeFrame(f)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("DecodeFrame = % X, %v", got, err)
	}
}

func TestDeframerResynchronises(t *testing.T) {
	a, b := []byte{1, 2, 3}, []byte{4, 5, 6, 7}
	bad := AppendFrame(nil, []byte{9, 9})
	bad[len(bad)-2] ^= 0xFF // break the FCS
	var line []byte
	line = append(line, 0x55, 0x7D, 0xC1, 0xAA) // garbage before anything
	line = append(line, AppendFrame(nil, a)...)
	line = append(line, 0xC0, 0x11, 0x22) // a frame cut off by the next BOF
	line = append(line, bad...)
	line = append(line, 0xC0, 0x11, 0x7D, 0xC1) // aborted
	line = append(line, AppendFrame(nil, b)...)
	d := NewDeframer(0)
	var got [][]byte
	for i := range line { // a byte at a time, as a slow line gives them
		d.Push(line[i:i+1], func(m []byte) { got = append(got, append([]byte(nil), m...)) })
	}
	if len(got) != 2 || !bytes.Equal(got[0], a) || !bytes.Equal(got[1], b) {
		t.Fatalf("got % X, want the two good frames", got)
	}
	st := d.Stats()
	if st.Frames != 2 || st.Bad != 3 || st.Garbage != 4 {
		t.Fatalf("stats %+v, want 2 frames, 3 bad, 4 bytes of garbage", st)
	}
}

func TestDeframerBoundsAFrame(t *testing.T) {
	d := NewDeframer(16)
	var n int
	d.Push(AppendFrame(nil, make([]byte, 100)), func([]byte) { n++ })
	d.Push(AppendFrame(nil, make([]byte, 16)), func([]byte) { n++ })
	if st := d.Stats(); n != 1 || st.Bad != 1 || !errors.Is(st.LastError, ErrFrameTooLong) {
		t.Fatalf("%d frames, stats %+v", n, st)
	}
	if cap(d.buf) > 64 {
		t.Fatalf("the deframer kept %d bytes for a 16-byte bound", cap(d.buf))
	}
}

func TestFloat(t *testing.T) {
	for _, c := range []struct {
		raw     uint32
		want    float64
		special bool
	}{
		{0xFF0003E8, 100, false},
		{0xFE000E74, 37.00, false},
		{0x00000048, 72, false},
		{0xFFFFFFFF, -0.1, false},
		{0x01000005, 50, false},
		{0x007FFFFF, math.NaN(), true},
		{0x00800000, math.NaN(), true},
		{0x007FFFFE, math.NaN(), true},
		{0x00800002, math.NaN(), true},
		{0xFE7FFFFF, math.NaN(), true},
	} {
		got, special := Float(c.raw)
		if special != c.special || (math.IsNaN(c.want) != math.IsNaN(got)) || !math.IsNaN(c.want) && got != c.want {
			t.Errorf("Float(%08X) = %v, %v; want %v, %v", c.raw, got, special, c.want, c.special)
		}
	}
	if v, _ := Float(EncodeFloat(3710, -2)); v != 37.1 {
		t.Errorf("EncodeFloat(3710, -2) = %v", v)
	}
}

func TestRelativeTime(t *testing.T) {
	if got := RelativeTime(600 * time.Second); got != 0x00493E00 {
		t.Fatalf("600 s = %08X ticks, want 00493E00", got)
	}
	if got := RelativeTime(30 * time.Second); got != 0x0003A980 {
		t.Fatalf("30 s = %08X ticks, want 0003A980", got)
	}
	a := Anchor{Abs: time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC), Rel: 0xFFFFFF00}
	// across the wrap of the u32, and before the anchor
	if got := a.Time(0x00000100); !got.Equal(a.Abs.Add(512 * RelativeTick)) {
		t.Errorf("after the wrap: %v", got)
	}
	if got := a.Time(0xFFFFFF00 - 8000*20); !got.Equal(a.Abs.Add(-20 * time.Second)) {
		t.Errorf("20 s before the anchor: %v", got)
	}
}

func TestAbsoluteTime(t *testing.T) {
	got, ok := AbsoluteTime(unhex(t, "20 26 12 02 07 15 30 50"), time.UTC)
	if !ok || !got.Equal(time.Date(2026, 12, 2, 7, 15, 30, 500e6, time.UTC)) {
		t.Fatalf("got %v %v", got, ok)
	}
	if _, ok := AbsoluteTime(UnsetAbsoluteTime[:], time.UTC); ok {
		t.Fatal("an unset time was read")
	}
	if _, ok := AbsoluteTime(unhex(t, "20 26 13 02 07 15 30 00"), time.UTC); ok {
		t.Fatal("month 13 was read")
	}
	// the fraction alone unset
	if got, ok := AbsoluteTime(unhex(t, "20 26 12 02 07 15 30 FF"), time.UTC); !ok || got.Nanosecond() != 0 {
		t.Fatalf("unset fraction: %v %v", got, ok)
	}
	b := AppendAbsoluteTime(nil, time.Date(2026, 12, 2, 7, 15, 30, 500e6, time.UTC))
	if !bytes.Equal(b, unhex(t, "20 26 12 02 07 15 30 50")) {
		t.Fatalf("AppendAbsoluteTime = % X", b)
	}
}

// The client's result of the MDS create, as VSCaptureMP sends it.
func TestMDSCreateResultVector(t *testing.T) {
	got := MDSCreateResult(1, ObjectRef{Class: ClassMDS}, 0x000ABD00)
	want := unhex(t, "E1 00 00 02 00 02 00 14 00 01 00 01 00 0E 00 21 00 00 00 00 00 0A BD 00 0D 06 00 00")
	if !bytes.Equal(got, want) {
		t.Fatalf("got  % X\nwant % X", got, want)
	}
}

func TestPollRequests(t *testing.T) {
	// 36 bytes, action at 24, poll number, partition 1, class, group 0
	p := PollRequest(7, 3, ClassNumeric)
	if len(p) != 36 || be16(p[24:]) != ActionPoll || be16(p[28:]) != 3 || be16(p[30:]) != 1 || be16(p[32:]) != ClassNumeric {
		t.Fatalf("poll request % X", p)
	}
	e := ExtendedPollRequest(7, 3, ClassNumeric, 600*time.Second)
	want := unhex(t, "E1 00 00 02 00 01 00 28 00 07 00 07 00 22 00 21 00 00 00 00 00 00 00 00 F1 3B 00 14 00 03 00 01 00 06 00 00 00 01 00 08 F1 3E 00 04 00 49 3E 00")
	if !bytes.Equal(e, want) {
		t.Fatalf("extended poll\n got % X\nwant % X", e, want)
	}
	op, err := ParseOperation(e)
	if err != nil || op.Short || op.InvokeID != 7 || op.Command != cmdConfirmedAction || len(op.Args) != 0x22 {
		t.Fatalf("ParseOperation: %+v %v", op, err)
	}
}

// The association request is the known 238-byte request with the
// extended poll profile: its lengths add up, and the user information is
// where a monitor looks for it.
func TestAssociationRequest(t *testing.T) {
	a := AssociationRequest(time.Second)
	if a[0] != 0x0D || int(a[1]) != len(a)-2 || len(a) != 238 {
		t.Fatalf("session header %02X %02X, %d bytes", a[0], a[1], len(a))
	}
	if a[16] != 0xC1 || int(a[17]) != len(a)-18 {
		t.Fatalf("presentation header %02X %02X", a[16], a[17])
	}
	i := bytes.Index(a, []byte{0x80, 0, 0, 0, 0x40, 0, 0, 0})
	if i < 0 || a[i-2] != 0x81 || a[i-1] != 72 {
		t.Fatalf("user information at %d", i)
	}
	u := a[i:]
	if be32(u[36:]) != 8000 || be32(u[52:]) != 0x60000000 || be16(u[60:]) != AttrPollProfileExt || be32(u[64:]) != 0x8C000000 {
		t.Fatalf("poll profile % X", u[28:72])
	}
	for _, b := range a[i+72:] {
		if b != 0 {
			t.Fatalf("trailer % X", a[i+72:])
		}
	}
	if KindOf(a) != KindAssociationRequest {
		t.Fatal(KindOf(a))
	}
}

func TestPhysioField(t *testing.T) {
	for id, want := range map[uint16]string{0x4822: "0x4822", 0x4BB8: "0x4BB8", 0x0001: "0x0001", 0xF13E: "0xF13E"} {
		if got := PhysioField(id); got != want {
			t.Errorf("PhysioField(%#x) = %s", id, got)
		}
	}
}
