package intellivuesim

import (
	"encoding/binary"
	"time"
)

// The monitor's side of the wire, written from the protocol's public
// description (RESEARCH-DEVICES.md §2) and not from the client package, so
// that a misreading on one side shows in the tests instead of agreeing
// with itself.

// Serial framing: BOF | 11 01 len | data | FCS lo hi | EOF, with BOF, EOF
// and ESC escaped as ESC, b^0x20.
const (
	bof = 0xC0
	eof = 0xC1
	esc = 0x7D
)

// crc16 is RFC 1662's FCS-16, computed bit by bit (the client uses a
// table).
func crc16(p ...[]byte) uint16 {
	crc := uint16(0xFFFF)
	for _, b := range p {
		for _, c := range b {
			crc ^= uint16(c)
			for range 8 {
				if crc&1 == 1 {
					crc = crc>>1 ^ 0x8408
				} else {
					crc >>= 1
				}
			}
		}
	}
	return ^crc
}

func frame(msg []byte) []byte {
	hdr := []byte{0x11, 0x01, byte(len(msg) >> 8), byte(len(msg))}
	fcs := crc16(hdr, msg)
	out := []byte{bof}
	for _, p := range [][]byte{hdr, msg, {byte(fcs), byte(fcs >> 8)}} {
		for _, c := range p {
			if c == bof || c == eof || c == esc {
				out = append(out, esc, c^0x20)
			} else {
				out = append(out, c)
			}
		}
	}
	return append(out, eof)
}

// unframer takes a byte stream apart into checked messages.
type unframer struct {
	buf     []byte
	in, esc bool
}

const maxFrame = 8 << 10

func (u *unframer) push(p []byte, out func([]byte)) {
	for _, c := range p {
		switch {
		case c == bof:
			u.in, u.esc, u.buf = true, false, u.buf[:0]
		case !u.in:
		case c == eof:
			u.in = false
			if u.esc || len(u.buf) < 6 || len(u.buf) > maxFrame {
				continue
			}
			body := u.buf[:len(u.buf)-2]
			fcs := uint16(u.buf[len(u.buf)-2]) | uint16(u.buf[len(u.buf)-1])<<8
			if crc16(body) != fcs || body[0] != 0x11 || body[1] != 0x01 ||
				int(binary.BigEndian.Uint16(body[2:])) != len(body)-4 {
				continue
			}
			out(append([]byte(nil), body[4:]...))
		case u.esc:
			u.esc = false
			u.buf = append(u.buf, c^0x20)
		case c == esc:
			u.esc = true
		default:
			if len(u.buf) <= maxFrame {
				u.buf = append(u.buf, c)
			}
		}
	}
}

// w builds big-endian messages.
type w struct{ b []byte }

func (x *w) u8(v byte)    { x.b = append(x.b, v) }
func (x *w) u16(v uint16) { x.b = binary.BigEndian.AppendUint16(x.b, v) }
func (x *w) u32(v uint32) { x.b = binary.BigEndian.AppendUint32(x.b, v) }
func (x *w) raw(p []byte) { x.b = append(x.b, p...) }

// mark reserves a u16 length at the current place; fill writes there the
// number of bytes after it.
func (x *w) mark() int { x.u16(0); return len(x.b) }
func (x *w) fill(at int) {
	binary.BigEndian.PutUint16(x.b[at-2:], uint16(len(x.b)-at))
}

func be16(b []byte) uint16 { return binary.BigEndian.Uint16(b) }
func be32(b []byte) uint32 { return binary.BigEndian.Uint32(b) }

// float writes mantissa × 10^exp as the FLOAT type.
func float(mantissa int32, exp int8) uint32 {
	return uint32(uint8(exp))<<24 | uint32(mantissa)&0x00FFFFFF
}

const floatNaN = 0x007FFFFF

// absTime writes t as 8 BCD bytes.
func absTime(t time.Time) []byte {
	d := func(n int) byte { return byte(n/10<<4 | n%10) }
	return []byte{d(t.Year() / 100), d(t.Year() % 100), d(int(t.Month())), d(t.Day()),
		d(t.Hour()), d(t.Minute()), d(t.Second()), d(t.Nanosecond() / 1e7)}
}

var absUnset = []byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}

// Nomenclature the monitor uses.
const (
	classMDS     = 0x0021
	classMDSBed  = 0x0023 // NOM_MOC_VMS_MDS_COMPOS_SINGLE_BED
	classNumeric = 0x0006

	actPoll    = 0x0C16
	actPollExt = 0xF13B

	notiMDSCreate  = 0x0D06
	notiConnectInd = 0x0D17 // NOM_NOTI_MDS_CONNECT_INDIC, 3351

	attrIDLabel      = 0x0924
	attrIDModel      = 0x0928
	attrIDProdSpec   = 0x092D
	attrNuCmpdValObs = 0x094B
	attrNuValObs     = 0x0950
	attrTimeAbs      = 0x0987
	attrTimeRel      = 0x098F
	attrTimeStampAbs = 0x0990
	attrTimeStampRel = 0x0991
	attrTimePdPoll   = 0xF13E

	roiv  = 1
	rors  = 2
	roer  = 3
	rorls = 5
)

// acceptMessage is the association result: the session accept, the
// presentation and ACSE answer (AARE), and the monitor's MDSEUserInfoStd
// with its poll profile.
func acceptMessage(minPoll uint32) []byte {
	var u w
	u.u32(0x80000000) // protocol version
	u.u32(0x40000000) // nomenclature version
	u.u32(0)          // functional units
	u.u32(0x00800000) // system type: server
	u.u32(0x20000000) // cold start
	u.u32(0)          // option list: empty
	u.u16(1)          // supported profiles
	at := u.mark()
	u.u16(0x0001) // poll profile support
	at2 := u.mark()
	u.u32(0x80000000) // revision
	u.u32(minPoll)
	u.u32(1000)       // max_mtu_rx
	u.u32(1364)       // max_mtu_tx
	u.u32(0xFFFFFFFF) // max_bw_tx
	u.u32(0x60000000)
	u.u16(1)
	at3 := u.mark()
	u.u16(0xF001)
	u.u16(4)
	u.u32(0x8C000000) // granted: 1 s numerics, RTSA, enumerations
	u.fill(at3)
	u.fill(at2)
	u.fill(at)

	pres := []byte{0x31, 0x80, 0xA0, 0x80, 0x80, 0x01, 0x01, 0x00, 0x00, 0xA2, 0x80, 0xA0, 0x03, 0x00, 0x00, 0x01,
		0xA5, 0x80, 0x30, 0x80, 0x80, 0x01, 0x00, 0x81, 0x02, 0x51, 0x01, 0x00, 0x00, 0x00, 0x00,
		0x61, 0x80, 0x30, 0x80, 0x02, 0x01, 0x01, 0xA0, 0x80, 0x61, 0x80, 0xA1, 0x80, 0x06, 0x0C,
		0x2A, 0x86, 0x48, 0xCE, 0x14, 0x02, 0x01, 0x00, 0x00, 0x00, 0x03, 0x01, 0x00, 0x00,
		0xA2, 0x03, 0x02, 0x01, 0x00, 0xA3, 0x05, 0xA1, 0x03, 0x02, 0x01, 0x00,
		0xBE, 0x80, 0x28, 0x80, 0x02, 0x01, 0x02, 0x81, byte(len(u.b))}
	pres = append(pres, u.b...)
	pres = append(pres, make([]byte, 16)...)
	body := []byte{0x05, 0x08, 0x13, 0x01, 0x00, 0x16, 0x01, 0x02, 0x80, 0x00, 0x14, 0x02, 0x00, 0x02, 0xC1}
	body = appendLen(body, len(pres))
	body = append(body, pres...)
	return appendLen([]byte{0x0E}, len(body), body...)
}

func appendLen(dst []byte, n int, rest ...byte) []byte {
	if n < 255 {
		dst = append(dst, byte(n))
	} else {
		dst = append(dst, 0xFF, byte(n>>8), byte(n))
	}
	return append(dst, rest...)
}

// refuseMessage refuses an association.
func refuseMessage() []byte {
	return []byte{0x0C, 0x03, 0x32, 0x01, 0x00}
}

func releaseResult() []byte {
	return []byte{0x0A, 0x18, 0xC1, 0x16, 0x61, 0x80, 0x30, 0x80, 0x02, 0x01, 0x01, 0xA0, 0x80, 0x63, 0x80,
		0x80, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}
}

func abortMessage() []byte {
	return []byte{0x19, 0x2E, 0x11, 0x01, 0x03, 0xC1, 0x29, 0xA0, 0x80, 0xA0, 0x80, 0x30, 0x80, 0x02, 0x01,
		0x01, 0x06, 0x02, 0x51, 0x01, 0x00, 0x00, 0x00, 0x00, 0x61, 0x80, 0x30, 0x80, 0x02, 0x01, 0x01, 0xA0,
		0x80, 0x64, 0x80, 0x80, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}
}

// export starts a data-export message: session E1 00 00 02, the ROapdus
// header, and for a linked result its state and count. It returns the
// places of the ROapdus and command lengths' ends.
func export(x *w, roType uint16, linkState, linkCount byte, invoke, command uint16) (ro, cmd int) {
	x.raw([]byte{0xE1, 0x00, 0x00, 0x02})
	x.u16(roType)
	ro = x.mark()
	if roType == rorls {
		x.u8(linkState)
		x.u8(linkCount)
	}
	x.u16(invoke)
	x.u16(command)
	cmd = x.mark()
	return ro, cmd
}
