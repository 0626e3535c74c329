package datex

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/wardgate/wardgate/devices"
)

// ErrNotPhysiological is returned by DecodeRecord for a record of another
// main type (a waveform or alarm record the dialogue did not ask for).
var ErrNotPhysiological = errors.New("datex: not a physiological record")

// DecodeRecord decodes one physiological record (as an Unframer hands it
// over) into a frame: every value of each basic-class sub-record, named
// and scaled as Fields lists them, DeviceTime the record's r_time.
//
// Every offset and length is checked against what arrived: a record
// whose r_len claims more than it holds, or a sub-record that lies beyond
// it, is decoded as far as its groups are whole and the rest is counted
// in the frame's Bad. An error is returned only when nothing can be read:
// the header is not whole or the record is of another main type.
func DecodeRecord(rec []byte) (devices.DriverFrame, error) {
	var f devices.DriverFrame
	h, err := ParseHeader(rec)
	if err != nil {
		return f, err
	}
	if h.MainType != MainPhysiological {
		return f, fmt.Errorf("%w: main type %d", ErrNotPhysiological, h.MainType)
	}
	if h.Time != 0 {
		f.DeviceTime = time.Unix(int64(h.Time), 0).UTC()
	}
	f.Firmware = firmware(h.Level)
	end := len(rec)
	if h.Len > end {
		f.Bad++ // the record claims more than arrived
	} else {
		end = h.Len
	}
	data := rec[HeaderLen:end]
	var nibpTime time.Time
	first := len(f.Values)
	f.Values = make([]devices.DriverValue, 0, len(h.Subs)*nFields)
	for i, d := range h.Subs {
		if d.Offset < 0 || d.Offset >= len(data) {
			f.Bad++
			continue
		}
		sub := data[d.Offset:min(len(data), d.Offset+SubrecordLen)]
		switch d.Type {
		case SubDisplayed, SubTrend10s, SubTrend60s:
		case SubAux:
			// aux_phdb_info starts with the time of the latest NIBP
			// measurement, which dates an NIBP shown between cuff cycles.
			if len(sub) < 8 {
				f.Bad++
			} else if t := binary.LittleEndian.Uint32(sub[4:]); t != 0 {
				nibpTime = time.Unix(int64(t), 0).UTC()
			}
			continue
		default:
			continue // a sub-record type this decoder does not read
		}
		if len(sub) < 4 {
			f.Bad++
			continue
		}
		var at time.Time
		if d.Type != SubDisplayed {
			// A trend record holds several sub-records, each of its time.
			if t := binary.LittleEndian.Uint32(sub); t != 0 {
				at = time.Unix(int64(t), 0).UTC()
			}
		}
		blk := sub[4:min(len(sub), 4+ClassLen)]
		class := i // the order VSCapture assumes: basic, ext1, ext2, ext3
		if len(sub) == SubrecordLen {
			// cl_drilvl_subt: the class in bits 8–11.
			if c := int(binary.LittleEndian.Uint16(sub[SubrecordLen-2:]) >> 8 & 0xF); c <= ClassExt3 {
				class = c
			}
		} else {
			f.Bad++ // the sub-record is cut short
		}
		if class != ClassBasic {
			continue // the extended classes are not decoded
		}
		f.Bad += decodeBasic(&f, blk, at)
	}
	if !nibpTime.IsZero() {
		for i := first; i < len(f.Values); i++ {
			if v := &f.Values[i]; len(v.Field) > 5 && v.Field[:5] == "nibp." && v.Time.IsZero() {
				v.Time = nibpTime
			}
		}
	}
	return f, nil
}

var nFields = len(Fields())

var firmwares = func() [256]string {
	var a [256]string
	for i := range a {
		a[i] = "DRI level " + LevelName(uint8(i))
	}
	return a
}()

func firmware(level uint8) string { return firmwares[level] }
