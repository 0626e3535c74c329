package datex

import (
	"errors"
	"fmt"
)

// The serial framing of the S/5 computer interface: a record travels
// between two flag bytes 0x7E, followed by a checksum byte; a 0x7E or 0x7D
// inside (record or checksum) is sent as 0x7D and the byte with bit 5
// flipped (7E → 7D 5E, 7D → 7D 5D).
//
// The checksum is the 8-bit sum of the record's unescaped bytes, as the
// specification says and as VSCapture and icu_devices check what they
// receive. Both of those compute the checksum they send over the escaped
// bytes instead, which differs only when a request holds 0x7D or 0x7E; the
// requests this package sends hold neither in practice (levels, intervals
// and class bits are small), and it sends the specification's sum.
const (
	flag      = 0x7E
	ctrl      = 0x7D
	escapeBit = 0x20
)

// MaxRecord is the longest record the interface carries (header
// included); a frame holding more is refused whole.
const MaxRecord = 1490

// Frame errors, wrapped by what Unframer reports.
var (
	ErrChecksum  = errors.New("datex: frame checksum mismatch")
	ErrTooLong   = errors.New("datex: frame longer than a record can be")
	ErrBadEscape = errors.New("datex: bad escape in frame")
	ErrShort     = errors.New("datex: frame too short")
)

// AppendFrame appends rec framed for the line: flag, escaped record,
// escaped checksum, flag.
func AppendFrame(dst, rec []byte) []byte {
	dst = append(dst, flag)
	var sum byte
	for _, b := range rec {
		sum += b
		dst = appendEscaped(dst, b)
	}
	dst = appendEscaped(dst, sum)
	return append(dst, flag)
}

func appendEscaped(dst []byte, b byte) []byte {
	if b == flag || b == ctrl {
		return append(dst, ctrl, b^escapeBit)
	}
	return append(dst, b)
}

// Checksum is the 8-bit sum of b.
func Checksum(b []byte) byte {
	var s byte
	for _, c := range b {
		s += c
	}
	return s
}

// Unframer takes the bytes of a line as they come and hands back each
// record whose frame is whole and whose checksum holds. Every flag byte is
// a boundary: the bytes between two flags are one candidate, so garbage
// between frames (or a frame cut short) costs that candidate only, and the
// next frame is found at its flag. Two flags in a row (an end flag and the
// next start flag with nothing between, or an idle line's fill) are no
// frame and no error. Bytes before the first flag are garbage too.
//
// Its zero value is ready to use; it keeps at most MaxRecord+1 bytes.
type Unframer struct {
	buf     []byte
	started bool // a flag was seen; buf holds the candidate since it
	escape  bool // the previous byte was 0x7D
	over    bool // the candidate grew past a record and is being skipped
	bad     bool // the candidate held a bad escape
	lead    int  // bytes seen before the first flag
}

// Feed gives the unframer more bytes of the line; for each candidate that
// ends within them, it calls got with the record (checksum removed, valid
// until got returns) or with an error saying why the candidate was not a
// record.
func (u *Unframer) Feed(p []byte, got func(rec []byte, err error)) {
	for _, b := range p {
		if b == flag {
			u.end(got)
			u.started = true
			continue
		}
		if !u.started {
			u.lead++
			continue
		}
		if u.over || u.bad {
			continue
		}
		if u.escape {
			u.escape = false
			if b != flag^escapeBit && b != ctrl^escapeBit {
				u.bad = true
				continue
			}
			b ^= escapeBit
		} else if b == ctrl {
			u.escape = true
			continue
		}
		if len(u.buf) == MaxRecord+1 {
			u.over = true
			continue
		}
		u.buf = append(u.buf, b)
	}
}

// end closes the candidate in hand at a flag.
func (u *Unframer) end(got func([]byte, error)) {
	defer u.reset()
	if !u.started {
		if u.lead > 0 {
			got(nil, fmt.Errorf("%w: %d bytes before the first frame", ErrShort, u.lead))
		}
		return
	}
	switch {
	case u.over:
		got(nil, ErrTooLong)
	case u.bad || u.escape:
		got(nil, ErrBadEscape)
	case len(u.buf) == 0:
		// Two flags in a row: a frame's end and the next one's start.
	case len(u.buf) < 2:
		got(nil, fmt.Errorf("%w: %d bytes", ErrShort, len(u.buf)))
	default:
		n := len(u.buf) - 1
		if Checksum(u.buf[:n]) != u.buf[n] {
			got(nil, ErrChecksum)
			return
		}
		got(u.buf[:n], nil)
	}
}

func (u *Unframer) reset() {
	u.buf = u.buf[:0]
	u.escape, u.over, u.bad = false, false, false
	u.lead = 0
}
