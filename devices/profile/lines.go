package profile

import "bytes"

// Lines cuts a byte stream into lines as a text profile frames them. Bytes
// arrive in whatever pieces the port delivers; a line longer than the
// profile's maximum is reported as too long and skipped up to its end, so
// a stream of garbage cannot grow memory.
type Lines struct {
	term     string // "any", "crlf", "lf", "cr"
	max      int
	buf      []byte
	skipping bool // inside an over-long line
	lastCR   bool // "any": the piece ended in CR, so a leading LF ends nothing
}

// NewLines returns a framer for a text profile.
func (p *Profile) NewLines() *Lines {
	t := "any"
	max := 1024
	if p.Text != nil {
		if p.Text.Terminator != "" {
			t = p.Text.Terminator
		}
		max = p.Text.MaxLine
	}
	return &Lines{term: t, max: max}
}

// Feed consumes b, calling emit for each complete line (without its
// terminator; empty lines are not emitted) and for each over-long one,
// with tooLong set and line nil.
func (l *Lines) Feed(b []byte, emit func(line []byte, tooLong bool)) {
	for len(b) > 0 {
		if l.lastCR && b[0] == '\n' {
			// The LF of a CRLF split across two pieces.
			b = b[1:]
			l.lastCR = false
			continue
		}
		i, n := l.next(b)
		l.lastCR = l.term == "any" && i >= 0 && n == 1 && b[i] == '\r' && i+1 == len(b)
		if i < 0 {
			l.add(b, emit)
			return
		}
		l.add(b[:i], emit)
		b = b[i+n:]
		if l.skipping {
			l.skipping = false
		} else if len(l.buf) > 0 {
			emit(l.buf, false)
		}
		l.buf = l.buf[:0]
	}
}

// next finds the next terminator in b: its index and length, or -1.
func (l *Lines) next(b []byte) (int, int) {
	switch l.term {
	case "lf":
		return bytes.IndexByte(b, '\n'), 1
	case "cr":
		return bytes.IndexByte(b, '\r'), 1
	case "crlf":
		// A CR at the end of one piece and LF at the start of the next is
		// handled by keeping the CR in buf and trimming it here.
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			if i > 0 && b[i-1] == '\r' {
				return i - 1, 2
			}
			if i == 0 && len(l.buf) > 0 && l.buf[len(l.buf)-1] == '\r' {
				l.buf = l.buf[:len(l.buf)-1]
				return 0, 1
			}
			return i, 1 // a bare LF still ends the line
		}
		return -1, 0
	}
	// any: CR, LF or CRLF.
	for i, c := range b {
		if c == '\r' || c == '\n' {
			if c == '\r' && i+1 < len(b) && b[i+1] == '\n' {
				return i, 2
			}
			return i, 1
		}
	}
	return -1, 0
}

func (l *Lines) add(b []byte, emit func([]byte, bool)) {
	if l.skipping || len(b) == 0 {
		return
	}
	if len(l.buf)+len(b) > l.max {
		l.skipping = true
		l.buf = l.buf[:0]
		emit(nil, true)
		return
	}
	l.buf = append(l.buf, b...)
}
