package intellivue

import (
	"bytes"
	"testing"
	"time"
)

// The deframer never panics, keeps its bound, and every message it hands
// over framed again comes back the same.
func FuzzDeframer(f *testing.F) {
	f.Add(AppendFrame(nil, samplePoll(false)))
	f.Add(append(append([]byte{0x7D, 0xC1, 0xC0, 0x11}, AppendFrame(nil, []byte{0xC0, 0x7D})...), 0xC1))
	f.Add([]byte{0xC0, 0x3A, 0x91, 0x95, 0x7D, 0xE1, 0xC1})
	f.Fuzz(func(t *testing.T, line []byte) {
		d := NewDeframer(512)
		var got [][]byte
		d.Push(line, func(m []byte) {
			if len(m) > 512 {
				t.Fatalf("a %d-byte message through a 512-byte bound", len(m))
			}
			got = append(got, append([]byte(nil), m...))
		})
		if cap(d.buf) > 2*(512+frameHeader+2)+64 {
			t.Fatalf("the deframer holds %d bytes", cap(d.buf))
		}
		st := d.Stats()
		if st.Frames != uint64(len(got)) {
			t.Fatalf("stats %+v for %d messages", st, len(got))
		}
		for _, m := range got {
			back, err := DecodeFrame(AppendFrame(nil, m))
			if err != nil || !bytes.Equal(back, m) {
				t.Fatalf("% X framed again: % X, %v", m, back, err)
			}
		}
	})
}

// The poll-result decoder never panics, never reads past what it is
// given and never makes more values than the bytes could hold.
func FuzzDecodePollResult(f *testing.F) {
	f.Add(samplePoll(false))
	f.Add(samplePoll(true))
	full := samplePoll(false)
	f.Add(full[:len(full)-6])
	f.Fuzz(func(t *testing.T, msg []byte) {
		r, err := DecodePollResult(msg, time.UTC)
		if err != nil {
			return
		}
		// a value takes at least 10 bytes
		if len(r.Numerics) > len(msg)/10 {
			t.Fatalf("%d numerics out of %d bytes", len(r.Numerics), len(msg))
		}
		for _, n := range r.Numerics {
			_ = n.Value()
			_ = n.Time(Anchor{Abs: time.Unix(0, 0), Rel: 1})
		}
		if op, err := ParseOperation(msg); err == nil {
			ParseMDSCreate(op, time.UTC)
		}
		ParseConnectIndication(msg, time.UTC)
		ParseAssociationResult(msg)
	})
}
