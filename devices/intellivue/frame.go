package intellivue

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The MIB/RS232 framing: BOF | header (protocol 0x11, message type 0x01,
// length u16 of the data) | data | FCS low, high | EOF. Between BOF and EOF
// the bytes BOF, EOF and ESC are sent as ESC, b^0x20 (the FCS bytes too);
// ESC EOF aborts the frame.
const (
	frameBOF      = 0xC0
	frameEOF      = 0xC1
	frameESC      = 0x7D
	frameXOR      = 0x20
	frameProtocol = 0x11
	frameMsgType  = 0x01
	frameHeader   = 4
)

// DefaultMaxMessage bounds a message on the serial line (the monitor's
// transmit unit is far smaller: a poll answer comes in linked parts).
const DefaultMaxMessage = 16 << 10

// AppendFrame appends msg framed for the serial line to dst.
func AppendFrame(dst, msg []byte) []byte {
	var hdr [frameHeader]byte
	hdr[0], hdr[1] = frameProtocol, frameMsgType
	binary.BigEndian.PutUint16(hdr[2:], uint16(len(msg)))
	return appendFCSFrame(dst, hdr[:], msg)
}

// appendFCSFrame appends BOF, the parts and their FCS (escaped), EOF.
func appendFCSFrame(dst []byte, parts ...[]byte) []byte {
	fcs := uint16(0xFFFF)
	for _, p := range parts {
		for _, c := range p {
			fcs = fcs>>8 ^ fcsTable[byte(fcs)^c]
		}
	}
	fcs = ^fcs
	dst = append(dst, frameBOF)
	for _, p := range parts {
		dst = appendEscaped(dst, p)
	}
	dst = appendEscaped(dst, []byte{byte(fcs), byte(fcs >> 8)})
	return append(dst, frameEOF)
}

func appendEscaped(dst, p []byte) []byte {
	for _, b := range p {
		if b == frameBOF || b == frameEOF || b == frameESC {
			dst = append(dst, frameESC, b^frameXOR)
		} else {
			dst = append(dst, b)
		}
	}
	return dst
}

// Errors of a frame that is not used; the Deframer counts them.
var (
	ErrFrameFCS     = errors.New("frame check sequence does not match")
	ErrFrameHeader  = errors.New("frame header is not a data-export header")
	ErrFrameLength  = errors.New("frame length field does not match its data")
	ErrFrameShort   = errors.New("frame shorter than its header and check sequence")
	ErrFrameTooLong = errors.New("frame longer than the bound")
	ErrFrameAborted = errors.New("frame aborted (ESC EOF)")
)

// checkFrame validates an unescaped frame body (header, data, FCS) and
// returns its data.
func checkFrame(body []byte) ([]byte, error) {
	if len(body) < frameHeader+2 {
		return nil, ErrFrameShort
	}
	n := len(body) - 2
	want := uint16(body[n]) | uint16(body[n+1])<<8
	if FCS16(body[:n]) != want {
		return nil, ErrFrameFCS
	}
	if body[0] != frameProtocol || body[1] != frameMsgType {
		return nil, ErrFrameHeader
	}
	if int(binary.BigEndian.Uint16(body[2:4])) != n-frameHeader {
		return nil, fmt.Errorf("%w: says %d bytes, holds %d", ErrFrameLength, binary.BigEndian.Uint16(body[2:4]), n-frameHeader)
	}
	return body[frameHeader:n], nil
}

// DeframerStats counts what a Deframer saw.
type DeframerStats struct {
	// Frames is how many frames were whole and correct.
	Frames uint64
	// Bad is how many frames were dropped (checksum, header, length,
	// abort, over the bound); LastError says why the last one was.
	Bad       uint64
	LastError error
	// Garbage is how many bytes arrived outside any frame.
	Garbage uint64
}

// Deframer takes the bytes of a serial line as they come and hands over
// each whole, correct frame's data. It resynchronises on the next BOF
// after garbage or a bad frame and keeps at most max bytes of a frame.
type Deframer struct {
	max     int
	buf     []byte
	inFrame bool
	esc     bool
	over    bool
	stats   DeframerStats
}

// NewDeframer returns a Deframer bounding a message's data at max bytes
// (DefaultMaxMessage when max <= 0).
func NewDeframer(max int) *Deframer {
	if max <= 0 {
		max = DefaultMaxMessage
	}
	return &Deframer{max: max}
}

// Stats returns the counts so far.
func (d *Deframer) Stats() DeframerStats { return d.stats }

func (d *Deframer) bad(err error) {
	d.stats.Bad++
	d.stats.LastError = err
}

// Push takes the next bytes of the line and calls out with the data of
// each frame they complete. The slice given to out is valid only during
// the call.
func (d *Deframer) Push(p []byte, out func(msg []byte)) {
	for _, b := range p {
		switch {
		case b == frameBOF:
			if d.inFrame {
				// a BOF inside a frame: the frame before it was cut off
				d.bad(ErrFrameShort)
			}
			d.inFrame, d.esc, d.over = true, false, false
			d.buf = d.buf[:0]
		case !d.inFrame:
			d.stats.Garbage++
		case b == frameEOF:
			d.inFrame = false
			if d.esc {
				d.bad(ErrFrameAborted)
				continue
			}
			if d.over {
				d.bad(ErrFrameTooLong)
				continue
			}
			msg, err := checkFrame(d.buf)
			if err != nil {
				d.bad(err)
				continue
			}
			d.stats.Frames++
			out(msg)
		case d.esc:
			d.esc = false
			d.add(b ^ frameXOR)
		case b == frameESC:
			d.esc = true
		default:
			d.add(b)
		}
	}
}

func (d *Deframer) add(b byte) {
	if d.over {
		return
	}
	if len(d.buf) >= d.max+frameHeader+2 {
		d.over = true
		d.buf = d.buf[:0]
		return
	}
	d.buf = append(d.buf, b)
}

// DecodeFrame returns the data of one whole frame, BOF to EOF.
func DecodeFrame(frame []byte) ([]byte, error) {
	d := NewDeframer(len(frame))
	var msg []byte
	got := false
	d.Push(frame, func(m []byte) {
		if !got {
			msg, got = append([]byte(nil), m...), true
		}
	})
	if got {
		return msg, nil
	}
	if err := d.stats.LastError; err != nil {
		return nil, err
	}
	return nil, ErrFrameShort
}
