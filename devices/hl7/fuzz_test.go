package hl7

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzParse: no panic on any input; a parsed message written out again
// (String) parses to the same segments and fields; every value can be
// narrowed and unescaped; text escaped in the message's own delimiters
// comes back unchanged; an acknowledgement of it parses and echoes MSH-10;
// errors stay short (they never quote the message). The seeds are under
// testdata/fuzz/FuzzParse, so every go test runs them.
func FuzzParse(f *testing.F) {
	f.Add([]byte(oru))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data, Limits{MaxBytes: 1 << 16, MaxSegments: 200})
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not a *ParseError", err)
			}
			if len(err.Error()) > 160 {
				t.Fatalf("error of %d bytes: %q", len(err.Error()), err)
			}
			return
		}
		out := m.String()
		m2, err := Parse([]byte(out), Limits{MaxBytes: 1 << 17, MaxSegments: 200})
		if err != nil {
			t.Fatalf("re-parse of %q: %v", out, err)
		}
		if m2.Len() != m.Len() || m2.String() != out || m2.Delimiters() != m.Delimiters() {
			t.Fatalf("round trip changed the message:\n%q\n%q", out, m2.String())
		}
		for i := 0; i < m.Len(); i++ {
			s, s2 := m.Segment(i), m2.Segment(i)
			if s.ID() != s2.ID() || s.Len() != s2.Len() {
				t.Fatalf("segment %d: %s/%d became %s/%d", i, s.ID(), s.Len(), s2.ID(), s2.Len())
			}
			for n := 1; n <= s.Len(); n++ {
				fl := s.Field(n)
				if fl.Raw() != s2.Field(n).Raw() {
					t.Fatalf("%s-%d changed", s.ID(), n)
				}
				for r := 1; r <= fl.Reps(); r++ {
					rep := fl.Rep(r)
					for c := 1; c <= rep.Comps(); c++ {
						comp := rep.Comp(c)
						_ = comp.Text()
						_ = comp.Sub(2).Text()
					}
				}
			}
		}
		d := m.Delimiters()
		text := string(data)
		if got := Unescape(Escape(text, d), d); got != text && d.Escape != 0 {
			t.Fatalf("Unescape(Escape(x)) != x for the message's delimiters")
		}
		for _, a := range Acks(m, Reply{Outcome: Failed, Text: text, Where: m.Segment(m.Len() - 1).Location(1)}, AckOptions{ControlID: text}) {
			am, err := Parse(a, Limits{MaxBytes: 1 << 20})
			if err != nil {
				t.Fatalf("ack %q does not parse: %v", a, err)
			}
			if am.Field("MSA", 1, 2).Raw() != m.Field("MSH", 1, 10).Raw() {
				t.Fatalf("ack MSA-2 %q, MSH-10 %q", am.Field("MSA", 1, 2).Raw(), m.Field("MSH", 1, 10).Raw())
			}
			if am.Field("MSA", 1, 3).Text() != text && d.Escape != 0 {
				t.Fatalf("ack text changed")
			}
		}
	})
}

// FuzzReader: no panic; frames are never larger than the bound; what the
// reader returns, framed again, reads back the same.
func FuzzReader(f *testing.F) {
	f.Add([]byte(frame("A")+"junk"+frame(oru)), uint8(0))
	f.Add([]byte("\x0b\x0b\x1c\x1c\r\r\x0bcut"), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, cut uint8) {
		const max = 64
		var src io.Reader = bytes.NewReader(data)
		if cut%2 == 1 {
			src = &chunked{data: data, n: int(cut/2) + 1}
		}
		r := NewReader(src, max)
		var frames [][]byte
		for {
			msg, err := r.ReadMessage()
			if err != nil {
				var tl *FrameTooLargeError
				if !errors.Is(err, io.EOF) && !errors.Is(err, ErrTruncatedFrame) && !errors.As(err, &tl) {
					t.Fatalf("unexpected error %v", err)
				}
				break
			}
			if len(msg) > max {
				t.Fatalf("frame of %d bytes over the bound %d", len(msg), max)
			}
			if bytes.IndexByte(msg, StartBlock) >= 0 || bytes.IndexByte(msg, EndBlock) >= 0 {
				t.Fatalf("frame holds framing bytes: %q", msg)
			}
			frames = append(frames, bytes.Clone(msg))
		}
		var again []byte
		for _, fr := range frames {
			again = AppendFrame(again, fr)
		}
		r2 := NewReader(bytes.NewReader(again), max)
		for i, want := range frames {
			got, err := r2.ReadMessage()
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("frame %d: %q, %v; want %q", i, got, err, want)
			}
		}
		if _, err := r2.ReadMessage(); err != io.EOF {
			t.Fatalf("after the frames: %v", err)
		}
		if st := r2.Stats(); st.GarbageBytes != 0 || st.MissingCR != 0 || st.Abandoned != 0 {
			t.Fatalf("clean frames counted as garbage: %+v", st)
		}
	})
}

// chunked hands out data n bytes at a time.
type chunked struct {
	data []byte
	n    int
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.n)], c.data)
	c.data = c.data[n:]
	return n, nil
}
