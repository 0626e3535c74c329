package datex

import (
	"encoding/binary"
	"math"
	"time"

	"github.com/wardgate/wardgate/devices"
)

// Field is one value of the basic physiological class as this package
// hands it over: its name ("group.value"), where its raw int16 lies in the
// 270-byte class block, and the protocol's fixed scaling to Unit (UCUM).
type Field struct {
	Name  string
	Group string
	// GroupAt is where the group (status u32, label u16, values) starts in
	// the class block; Offset is where the value lies.
	GroupAt, Offset int
	// Scale turns the raw int16 into Unit; 0 for etCO2 and FiCO2, which
	// are computed from the ambient pressure (raw×amb_press×1e-5 mmHg).
	Scale float64
	Unit  string
}

// group is one group of the basic class: its header (status, label) and
// its values.
type group struct {
	name   string
	at     int
	len    int
	values []value
}

type value struct {
	name string
	off  int     // within the group
	div  float64 // raw / div is the value in unit (0: computed, see co2At)
	unit string
}

// Offsets of the basic class's groups follow from the sizes of the
// structures in the DRI specification as VSCapture and other public
// decoders declare them (ecg 16, p 14, nibp 14, t 8, SpO2 14, CO2 14, O2 10
// bytes …; the class block is 270). Scaling: VSCapture's ShowBasicSubRecord
// and a public measure table written against the specification (HR and
// rates ×1, pressures ×0.01 mmHg, SpO2 and gases ×0.01 %, temperatures
// ×0.01 °C, ST ×0.01 mm, ambient pressure ×0.1 mmHg).
var basicGroups = func() []group {
	press := func(name string, at int) group {
		return group{name, at, 14, []value{
			{"sys", 6, 100, "mm[Hg]"}, {"dia", 8, 100, "mm[Hg]"}, {"mean", 10, 100, "mm[Hg]"}, {"hr", 12, 1, "/min"}}}
	}
	temp := func(name string, at int) group {
		return group{name, at, 8, []value{{"temp", 6, 100, "Cel"}}}
	}
	return []group{
		{"ecg", 0, 16, []value{{"hr", 6, 1, "/min"}, {"st1", 8, 100, "mm"}, {"st2", 10, 100, "mm"}, {"st3", 12, 100, "mm"}, {"imp_rr", 14, 1, "/min"}}},
		press("p1", 16), press("p2", 30), press("p3", 44), press("p4", 58),
		{"nibp", 72, 14, []value{{"sys", 6, 100, "mm[Hg]"}, {"dia", 8, 100, "mm[Hg]"}, {"mean", 10, 100, "mm[Hg]"}, {"hr", 12, 1, "/min"}}},
		temp("t1", 86), temp("t2", 94), temp("t3", 102), temp("t4", 110),
		{"spo2", 118, 14, []value{{"spo2", 6, 100, "%"}, {"pr", 8, 1, "/min"}}},
		// CO2: et and fi are in 1/100 % of the ambient pressure (1/10
		// mmHg); they are handed over in mmHg (et×amb_press×1e-5), the
		// unit they are charted in. See co2At.
		{"co2", 132, 14, []value{{"et", 6, 0, "mm[Hg]"}, {"fi", 8, 0, "mm[Hg]"}, {"rr", 10, 1, "/min"}, {"amb_press", 12, 10, "mm[Hg]"}}},
		{"o2", 146, 10, []value{{"et", 6, 100, "%"}, {"fi", 8, 100, "%"}}},
		press("p5", 240), press("p6", 254),
	}
}()

const co2At, co2AmbOff = 132, 12

func scale(div float64) float64 {
	if div == 0 {
		return 0
	}
	return 1 / div
}

// Fields lists every value the decoder hands over, in the order a frame
// holds them.
func Fields() []Field {
	var out []Field
	for _, g := range basicGroups {
		for _, v := range g.values {
			out = append(out, Field{Name: g.name + "." + v.name, Group: g.name, GroupAt: g.at, Offset: g.at + v.off, Scale: scale(v.div), Unit: v.unit})
		}
	}
	return out
}

var fieldNames = func() map[[2]int]string {
	m := map[[2]int]string{}
	for gi, g := range basicGroups {
		for vi, v := range g.values {
			m[[2]int{gi, vi}] = g.name + "." + v.name
		}
	}
	return m
}()

// Marker is the kind of invalid value a raw int16 stands for: the DRI
// marks a value it has not by numbers at or below −32001.
type Marker uint8

// Markers, as State's bits 28–31 carry them.
const (
	Valid         Marker = 0
	NoData        Marker = 1 // −32767: there is no valid data
	NotUpdated    Marker = 2 // −32766
	Discontinuity Marker = 3 // −32765 (calibration …)
	UnderRange    Marker = 4 // −32764
	OverRange     Marker = 5 // −32763
	NotCalibrated Marker = 6 // −32762
	OtherInvalid  Marker = 7 // any other value ≤ −32001
	// NoAmbient marks an etCO2 or FiCO2 that could not be turned into
	// mmHg because the ambient pressure was a marker or not positive.
	NoAmbient Marker = 8
)

// invalidLimit: any raw value at or below it is a marker (the
// specification's DATA_INVALID_LIMIT; VSCapture tests < and lets −32001
// through as a value).
const invalidLimit = -32001

// MarkerOf says which marker raw is, Valid when it is a value.
func MarkerOf(raw int16) Marker {
	if raw > invalidLimit {
		return Valid
	}
	if raw >= -32767 && raw <= -32762 {
		return Marker(int32(raw) + 32768)
	}
	return OtherInvalid
}

func (m Marker) String() string {
	switch m {
	case Valid:
		return "valid"
	case NoData:
		return "no data"
	case NotUpdated:
		return "not updated"
	case Discontinuity:
		return "discontinuity"
	case UnderRange:
		return "under range"
	case OverRange:
		return "over range"
	case NotCalibrated:
		return "not calibrated"
	case NoAmbient:
		return "no ambient pressure"
	}
	return "invalid"
}

// A DriverValue's State packs what the monitor said of the value:
//
//	bits  0–15  the group's status bits 0–15 as sent (bit 0: the module
//	            exists, bit 1: it measures; the others per group, e.g. ECG
//	            bit 2 asystole, CO2 bit 2 apnoea, P bit 2 zeroing)
//	bits 16–27  the group's label bits 0–11 as sent (the invasive
//	            pressure's site: 1 ART, 2 CVP, 3 PA …; the temperature's
//	            site; NIBP bit 8: the reading is older than 60 s)
//	bits 28–31  the Marker: 0 for a value, else why Value is NaN
const (
	StateStatusMask  = 0x0000FFFF
	StateLabelShift  = 16
	StateLabelMask   = 0x0FFF0000
	StateMarkerShift = 28
)

// StateOf packs status, label and marker as a DriverValue's State.
func StateOf(status uint32, label uint16, m Marker) uint32 {
	return status&StateStatusMask | uint32(label&0x0FFF)<<StateLabelShift | uint32(m&0xF)<<StateMarkerShift
}

// StateMarker is the marker a State carries.
func StateMarker(s uint32) Marker { return Marker(s >> StateMarkerShift) }

// StateLabel is the label bits a State carries.
func StateLabel(s uint32) uint16 { return uint16(s & StateLabelMask >> StateLabelShift) }

// NIBPOld is the NIBP label bit saying the reading is older than 60 s.
const NIBPOld = 1 << 8

// decodeBasic appends the values of one basic class block (blk, which may
// be cut short: only whole groups are read) to f. It returns how many
// groups were cut off.
func decodeBasic(f *devices.DriverFrame, blk []byte, at time.Time) (bad int) {
	for gi, g := range basicGroups {
		if g.at+g.len > len(blk) {
			bad++
			continue
		}
		status := binary.LittleEndian.Uint32(blk[g.at:])
		label := binary.LittleEndian.Uint16(blk[g.at+4:])
		for vi, v := range g.values {
			raw := int16(binary.LittleEndian.Uint16(blk[g.at+v.off:]))
			m := MarkerOf(raw)
			val := math.NaN()
			switch {
			case v.div == 0:
				amb := int16(binary.LittleEndian.Uint16(blk[co2At+co2AmbOff:]))
				if m == Valid {
					if MarkerOf(amb) != Valid || amb <= 0 {
						m = NoAmbient
					} else {
						val = float64(raw) * float64(amb) / 1e5
					}
				}
			case m == Valid:
				val = float64(raw) / v.div
			}
			f.Values = append(f.Values, devices.DriverValue{Field: fieldNames[[2]int{gi, vi}], Value: val, Unit: v.unit,
				State: StateOf(status, label, m), Time: at})
		}
	}
	return bad
}
