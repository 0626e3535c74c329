package datex_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/wardgate/wardgate/devices/datex"
)

// The research note's vector: a displayed-values request every 5 s at
// level '05 asking for every extended class.
func TestRequestVector(t *testing.T) {
	got := datex.Request{Type: datex.SubDisplayed, Interval: 5, Classes: datex.WantExt1 | datex.WantExt2 | datex.WantExt3, Level: datex.Level05}.Marshal()
	want := make([]byte, 49)
	want[0], want[3], want[21], want[40], want[41], want[43] = 0x31, 0x09, 0xFF, 0x01, 0x05, 0x0E
	if !bytes.Equal(got, want) {
		t.Fatalf("request\n got % X\nwant % X", got, want)
	}
	if s := datex.Checksum(got); s != 0x4D {
		t.Fatalf("checksum %#02x, want 0x4D", s)
	}
	frame := datex.AppendFrame(nil, got)
	wantFrame := append(append([]byte{0x7E}, want...), 0x4D, 0x7E)
	if !bytes.Equal(frame, wantFrame) {
		t.Fatalf("frame\n got % X\nwant % X", frame, wantFrame)
	}
	r, err := datex.ParseRequest(got)
	if err != nil {
		t.Fatal(err)
	}
	if r != (datex.Request{Type: 1, Interval: 5, Classes: 0x0E, Level: 0x09}) {
		t.Fatalf("parsed %+v", r)
	}
	stop := datex.Request{Type: datex.SubDisplayed, Interval: datex.IntervalStop, Level: datex.Level05}.Marshal()
	once := datex.Request{Type: datex.SubDisplayed, Interval: datex.IntervalOnce}.Marshal()
	if stop[41] != 0 || stop[42] != 0 || once[41] != 0xFF || once[42] != 0xFF {
		t.Fatalf("stop % X, once % X", stop[40:43], once[40:43])
	}
}

// Bytes that are flags or escapes, in the record or in the checksum, are
// escaped, and the checksum is taken over the unescaped bytes.
func TestFrameEscapes(t *testing.T) {
	for _, rec := range [][]byte{
		{0x7E, 0x7D, 0x01},
		{0x01, 0x7D}, // sum 0x7E: the checksum is escaped
		{0x40, 0x3D}, // sum 0x7D
		{0x7E},       // sum 0x7E
		bytes.Repeat([]byte{0x7D}, datex.MaxRecord),
	} {
		frame := datex.AppendFrame(nil, rec)
		if bytes.IndexByte(frame[1:len(frame)-1], 0x7E) >= 0 {
			t.Fatalf("% X: a flag inside the frame % X", rec, frame)
		}
		var u datex.Unframer
		var got [][]byte
		u.Feed(frame, func(r []byte, err error) {
			if err != nil {
				t.Fatalf("% X: %v", rec, err)
			}
			got = append(got, append([]byte(nil), r...))
		})
		if len(got) != 1 || !bytes.Equal(got[0], rec) {
			t.Fatalf("% X: unframed %d records % X", rec, len(got), got)
		}
	}
	if f := datex.AppendFrame(nil, []byte{0x01, 0x7D}); !bytes.Equal(f, []byte{0x7E, 0x01, 0x7D, 0x5D, 0x7D, 0x5E, 0x7E}) {
		t.Fatalf("frame % X", f)
	}
}

// Garbage before, between and inside frames costs only the candidate it
// is in; the next frame is found at its flag.
func TestUnframerResynchronises(t *testing.T) {
	a, b := []byte{1, 2, 3, 4}, []byte{5, 6, 7, 8, 9}
	long := make([]byte, datex.MaxRecord+1)
	var line []byte
	line = append(line, 0x00, 0x13, 0x55) // before the first flag
	line = datex.AppendFrame(line, a)
	line = append(line, 0x55, 0x7D, 0x11, 0x7E, 0xA5, 0x00, 0xFF) // a bad escape, a stray flag, a bad sum
	line = datex.AppendFrame(line, b)
	line = datex.AppendFrame(line, long) // too long
	bad := datex.AppendFrame(nil, a)
	bad[2] ^= 0x10 // checksum fails
	line = append(line, bad...)
	line = append(line, 0x7E, 0x7E, 0x7E) // idle flags
	line = datex.AppendFrame(line, b)

	want := []string{"short", "rec 01020304", "escape", "checksum", "rec 0506070809", "long", "checksum", "rec 0506070809"}
	for _, chunk := range []int{1, 3, 7, len(line)} {
		var got []string
		var u datex.Unframer
		for i := 0; i < len(line); i += chunk {
			u.Feed(line[i:min(len(line), i+chunk)], func(r []byte, err error) {
				switch {
				case err == nil:
					got = append(got, "rec "+hexs(r))
				case errors.Is(err, datex.ErrShort):
					got = append(got, "short")
				case errors.Is(err, datex.ErrBadEscape):
					got = append(got, "escape")
				case errors.Is(err, datex.ErrChecksum):
					got = append(got, "checksum")
				case errors.Is(err, datex.ErrTooLong):
					got = append(got, "long")
				default:
					got = append(got, err.Error())
				}
			})
		}
		if len(got) != len(want) {
			t.Fatalf("chunks of %d: got %q, want %q", chunk, got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("chunks of %d: got %q, want %q", chunk, got, want)
			}
		}
	}
}

func hexs(b []byte) string {
	const digits = "0123456789ABCDEF"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&0xF])
	}
	return string(out)
}
