package datex

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// HeaderLen is the length of a record's header.
const HeaderLen = 40

// Main types of a record (r_maintype).
const (
	MainPhysiological = 0 // DRI_MT_PHDB: physiological data and its requests
	MainWaveform      = 1 // DRI_MT_WAVE
	MainAlarm         = 4 // DRI_MT_ALARM
)

// Physiological sub-record types (sr_type in a record of MainPhysiological;
// phdb_rcrd_type in a request).
const (
	SubRequest   = 0 // a transmission request
	SubDisplayed = 1 // DRI_PH_DISPL: the values on the monitor's screen
	SubTrend10s  = 2 // DRI_PH_10S_TREND
	SubTrend60s  = 3 // DRI_PH_60S_TREND
	SubAux       = 4 // DRI_PH_AUX_INFO: auxiliary information (NIBP time …)
	subEnd       = 0xFF
)

// Classes of physiological data, as the class field of cl_drilvl_subt
// numbers them (dri_phdb_class).
const (
	ClassBasic = 0
	ClassExt1  = 1
	ClassExt2  = 2
	ClassExt3  = 3
)

// Class bits of a request (phdb_class_bf): the basic class is sent unless
// denied; the extended classes when asked for.
const (
	DenyBasic = 0x1
	WantExt1  = 0x2
	WantExt2  = 0x4
	WantExt3  = 0x8
)

// Interface levels (dri_level) of the monitors met in wards. A request may
// name level 0, which GE's own example requests use.
const (
	Level01 = 0x06 // S/5 '01
	Level02 = 0x07 // S/5 '02 (VSCapture's "2001")
	Level03 = 0x08
	Level05 = 0x09
	Level09 = 0x0A // CARESCAPE B650 answers '09 and '15
	Level15 = 0x0B
)

// Intervals of a request (tx_interval, seconds).
const (
	IntervalStop = 0  // stop sending
	IntervalOnce = -1 // send one record
)

// Lengths of a physiological sub-record: its time (u32), one class block,
// then marker, reserved and cl_drilvl_subt (the class in bits 8–11).
const (
	SubrecordLen = 4 + ClassLen + 4
	ClassLen     = 270
)

const (
	requestLen = HeaderLen + 9
	maxDescs   = 8
)

// Header is a record's header. Offsets of sub-records count from the end
// of the header.
type Header struct {
	Len      int    // r_len: the record's length, header included, as it claims
	Number   uint8  // r_nbr
	Level    uint8  // dri_level
	PlugID   uint16 // plug_id
	Time     uint32 // r_time: Unix seconds, the monitor's clock
	MainType int16  // r_maintype
	Subs     []Desc // the sub-record descriptors before the end marker
}

// Desc describes one sub-record of a record.
type Desc struct {
	Offset int // sr_offset, from the end of the header
	Type   uint8
}

// ErrHeader is wrapped by ParseHeader's errors.
var ErrHeader = errors.New("datex: bad record header")

// ParseHeader reads rec's header. It fails only when the header itself is
// not whole or its length field is below a header's; what the header says
// of the rest is checked by the caller against what arrived.
func ParseHeader(rec []byte) (Header, error) {
	var h Header
	if len(rec) < HeaderLen {
		return h, fmt.Errorf("%w: %d bytes, a header is %d", ErrHeader, len(rec), HeaderLen)
	}
	h.Len = int(int16(binary.LittleEndian.Uint16(rec)))
	if h.Len < HeaderLen {
		return h, fmt.Errorf("%w: r_len %d", ErrHeader, h.Len)
	}
	h.Number = rec[2]
	h.Level = rec[3]
	h.PlugID = binary.LittleEndian.Uint16(rec[4:])
	h.Time = binary.LittleEndian.Uint32(rec[6:])
	h.MainType = int16(binary.LittleEndian.Uint16(rec[14:]))
	h.Subs = make([]Desc, 0, maxDescs)
	for i := range maxDescs {
		d := rec[16+3*i:]
		t := d[2]
		if t == subEnd {
			break
		}
		h.Subs = append(h.Subs, Desc{Offset: int(int16(binary.LittleEndian.Uint16(d))), Type: t})
	}
	return h, nil
}

// Request asks the monitor for physiological records.
type Request struct {
	Type     uint8  // SubDisplayed, SubTrend10s or SubTrend60s
	Interval int16  // seconds between records (≥ 5 for displayed values); IntervalStop, IntervalOnce
	Classes  uint32 // class bits: DenyBasic, WantExt1 …
	Level    uint8  // the interface level the request is written at
}

// Marshal writes the request as the 49-byte record the monitor reads: a
// header with one sub-record (type 0, a request, at offset 0) and the end
// marker, then the request body.
func (r Request) Marshal() []byte {
	b := make([]byte, requestLen)
	binary.LittleEndian.PutUint16(b, requestLen)
	b[3] = r.Level
	binary.LittleEndian.PutUint16(b[14:], MainPhysiological)
	// sr_desc[0] = {0, SubRequest} is all zero; sr_desc[1] ends the list.
	b[16+3+2] = subEnd
	b[HeaderLen] = r.Type
	binary.LittleEndian.PutUint16(b[HeaderLen+1:], uint16(r.Interval))
	binary.LittleEndian.PutUint32(b[HeaderLen+3:], r.Classes)
	return b
}

// ErrNotRequest is wrapped by ParseRequest's errors.
var ErrNotRequest = errors.New("datex: not a physiological data request")

// ParseRequest reads a request record (the monitor's side of the dialogue).
func ParseRequest(rec []byte) (Request, error) {
	h, err := ParseHeader(rec)
	if err != nil {
		return Request{}, err
	}
	if h.MainType != MainPhysiological || len(h.Subs) == 0 || h.Subs[0].Type != SubRequest {
		return Request{}, fmt.Errorf("%w: main type %d, %d sub-records", ErrNotRequest, h.MainType, len(h.Subs))
	}
	at := HeaderLen + h.Subs[0].Offset
	if h.Subs[0].Offset < 0 || at+9 > len(rec) || at+9 > h.Len {
		return Request{}, fmt.Errorf("%w: body at %d beyond the record's %d bytes", ErrNotRequest, at, min(len(rec), h.Len))
	}
	return Request{
		Type:     rec[at],
		Interval: int16(binary.LittleEndian.Uint16(rec[at+1:])),
		Classes:  binary.LittleEndian.Uint32(rec[at+3:]),
		Level:    h.Level,
	}, nil
}

// LevelName names an interface level as GE's documents do ("'15").
func LevelName(l uint8) string {
	switch l {
	case 0:
		return "0"
	case 0x02:
		return "'95"
	case 0x03:
		return "'97"
	case 0x04:
		return "'98"
	case 0x05:
		return "'99"
	case Level01:
		return "'01"
	case Level02:
		return "'02"
	case Level03:
		return "'03"
	case Level05:
		return "'05"
	case Level09:
		return "'09"
	case Level15:
		return "'15"
	case 0x0C:
		return "'19"
	}
	return fmt.Sprintf("0x%02X", l)
}
