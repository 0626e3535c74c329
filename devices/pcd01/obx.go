package pcd01

import (
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/devices/hl7"
	"github.com/wardgate/wardgate/devices/mdc"
)

// MDC partitions (IEEE 11073-10101): a code is partition × 65536 + term.
const (
	partitionMetric = 2
	partitionDim    = 4
)

// decodeState is what decoding one message carries from row to row.
type decodeState struct {
	d        *Decoder
	r        *Report
	received time.Time
	test     bool // the processing id is not P

	mshTime   time.Time
	mshReason string // why MSH-7 cannot date a row; "" when it can
	obrTime   time.Time
	obrReason string
	// zoneReason: why Decoder.Zone cannot date this message's times
	// without offsets ("" when it can).
	zoneReason string
	// equipment of the rows that named theirs, by MDS (the first part of
	// OBX-4), for the rows of the same MDS that do not.
	equipment []mdsEquipment
}

type mdsEquipment struct {
	mds string
	id  Identity
}

func (st *decodeState) problem(s hl7.Segment, field int, reason string) {
	st.r.Problems = append(st.r.Problems, Problem{s.Location(field), reason})
}

// obr starts an observation group: its OBR-7 dates the rows without their
// own OBX-14. Containment (OBX-4) is numbered within the group, so the
// equipment its MDS rows named does not carry over to the next.
func (st *decodeState) obr(s hl7.Segment) {
	st.equipment = st.equipment[:0]
	f := s.Field(7)
	if f.IsEmpty() {
		st.obrTime, st.obrReason = st.mshTime, st.mshReason
		return
	}
	t, reason := f.TimeIn(st.d.Zone, st.zoneReason)
	st.obrTime, st.obrReason = t, ""
	if reason != "" {
		st.obrReason = "OBR-7 " + reason
		st.problem(s, 7, st.obrReason)
	}
}

func (st *decodeState) obx(s hl7.Segment) {
	status := strings.ToUpper(strings.TrimSpace(s.Field(11).Text()))
	containment := s.Field(4).Text()
	eq, named := equipment(s.Field(18))
	mds, _, _ := strings.Cut(containment, ".")
	if named {
		st.rememberEquipment(mds, eq)
	} else {
		eq = st.equipmentOf(mds)
	}
	if status == "X" {
		st.r.Hierarchy++
		return
	}
	switch status {
	case "", "R", "F", "P", "S", "U":
	case "C", "A":
		// A correction replaces a result sent before; charted as a new
		// reading it would be dropped as a duplicate (same device, code
		// and time) and the wrong value would stay.
		st.problem(s, 11, "result status "+code(status)+" corrects a result sent before; corrections are not applied")
		return
	default:
		st.problem(s, 11, "result status "+code(status)+" carries no value to chart")
		return
	}
	o := Observation{
		Where:       s.Location(0),
		SetID:       s.Field(1).Text(),
		Containment: containment,
		Status:      status,
		Method:      method(s.Field(17)),
		Equipment:   eq,
		Test:        st.test,
	}
	if vt := strings.TrimSpace(s.Field(2).Text()); vt != "NM" {
		if vt == "" {
			st.problem(s, 2, "no value type")
		} else {
			st.problem(s, 2, "value type "+code(vt)+" is not decoded (only NM)")
		}
		return
	}
	term, reason := metric(s.Field(3))
	if reason != "" {
		st.problem(s, 3, reason)
		return
	}
	valueField := s.Field(5)
	if valueField.Reps() > 1 {
		st.problem(s, 5, "more than one value")
		return
	}
	if valueField.Truncated() {
		st.problem(s, 5, "value was truncated by the sender")
		return
	}
	text := strings.TrimSpace(valueField.Text())
	if text == "" || valueField.IsNull() {
		st.problem(s, 5, "no value")
		return
	}
	v, err := strconv.ParseFloat(text, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || !numeric(text) {
		st.problem(s, 5, "value is not a number")
		return
	}
	unit, reason := unitUCUM(s.Field(6))
	if reason != "" {
		st.problem(s, 6, reason)
		return
	}
	factor, offset, ok := term.Accepts(unit)
	if !ok {
		st.problem(s, 6, "unit "+strconv.Quote(unit)+" does not fit "+term.RefID)
		return
	}
	var q devices.Quality
	flags := s.Field(8)
	for i := 1; i <= flags.Reps(); i++ {
		switch flag(flags.Rep(i).Comp(1).Text()) {
		case "DEMO", "DEMO-DATA":
			o.Demo = true
		case "TEST", "TEST-DATA":
			o.Test = true
		case "INVALID", "NOT-AVAILABLE", "UNAVAILABLE":
			st.problem(s, 8, "the device marks the value "+strings.ToLower(flag(flags.Rep(i).Comp(1).Text())))
			return
		case "QUESTIONABLE":
			q |= devices.Questionable
		case "CALIBRATION-ONGOING":
			q |= devices.Calibrating
		case "MSMT-STATE-IN-ALARM":
			q |= devices.Alarm
		}
	}
	t := st.obrTime
	reason = st.obrReason
	if f := s.Field(14); !f.IsEmpty() {
		t, reason = f.TimeIn(st.d.Zone, st.zoneReason)
		if reason != "" {
			reason = "OBX-14 " + reason
		}
	}
	if reason != "" {
		st.problem(s, 14, reason)
		return
	}
	o.Reading = devices.Reading{
		Device:     eq.Key(),
		Profile:    ProfileName,
		Code:       devices.MDC{Code: term.Code, RefID: term.RefID},
		Value:      v*factor + offset,
		Unit:       term.UCUM,
		DeviceTime: t,
		Received:   st.received,
		Quality:    q,
	}
	st.r.Observations = append(st.r.Observations, o)
}

// method is OBX-17's code, or its text when the code is empty (Mindray
// writes "^APERIODIC").
func method(f hl7.Field) string {
	if c := f.Comp(1).Text(); c != "" {
		return c
	}
	return f.Comp(2).Text()
}

// code quotes a short code from the message (a status, a value type) for
// a problem; anything longer or stranger is not repeated, since it might
// be patient data in the wrong field.
func code(s string) string {
	if len(s) > 4 {
		return "(unreadable)"
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return "(unreadable)"
		}
	}
	return strconv.Quote(s)
}

// flag normalises a measurement status flag: upper case, '_' as '-'.
func flag(s string) string {
	return strings.ReplaceAll(strings.ToUpper(strings.TrimSpace(s)), "_", "-")
}

// numeric reports whether s is a plain decimal number (ParseFloat also
// takes hex, underscores and "Inf", which no NM value is).
func numeric(s string) bool {
	digits := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '+' || c == '-':
			if i != 0 {
				return false
			}
		case c == '.':
		default:
			return false
		}
	}
	return digits > 0
}

func (st *decodeState) rememberEquipment(mds string, id Identity) {
	for i := range st.equipment {
		if st.equipment[i].mds == mds {
			st.equipment[i].id = id
			return
		}
	}
	st.equipment = append(st.equipment, mdsEquipment{mds, id})
}

func (st *decodeState) equipmentOf(mds string) Identity {
	for _, e := range st.equipment {
		if e.mds == mds {
			return e.id
		}
	}
	return st.r.Device
}

// equipment reads OBX-18 (EI, repeating): the first repetition with an
// EUI-64, as GE's "080019FFFE0B4020^B40_GE" (in the entity identifier) or
// "x^name^0019A1FFFE000001^EUI-64" (in the universal id); else the first
// that names anything.
func equipment(f hl7.Field) (Identity, bool) {
	var first Identity
	for i := 1; i <= f.Reps(); i++ {
		rep := f.Rep(i)
		entity, ns, uid := rep.Comp(1).Text(), rep.Comp(2).Text(), rep.Comp(3).Text()
		id := Identity{Name: ns}
		if strings.EqualFold(rep.Comp(4).Text(), "EUI-64") {
			id.EUI64 = eui64(uid)
		}
		entityEUI := eui64(entity)
		if id.EUI64 == "" {
			id.EUI64 = entityEUI
		}
		if id.Name == "" && entityEUI == "" {
			id.Name = entity
		}
		if id.EUI64 != "" {
			return id, true
		}
		if first == (Identity{}) {
			first = id
		}
	}
	return first, first != (Identity{})
}

// metric resolves OBX-3 to a term of devices/mdc; a reason when it cannot.
func metric(f hl7.Field) (mdc.Term, string) {
	id, ref, system := f.Comp(1).Text(), f.Comp(2).Text(), f.Comp(3).Text()
	if !isMDC(system) {
		// The alternate coding (CWE components 4 to 6) may be MDC.
		if alt := f.Comp(6).Text(); alt == "" || !isMDC(alt) {
			return mdc.Term{}, "observation identifier is not coded in MDC"
		}
		id, ref = f.Comp(4).Text(), f.Comp(5).Text()
	}
	id, ref = strings.TrimSpace(id), strings.TrimSpace(ref)
	hasRef := len(ref) > 4 && strings.EqualFold(ref[:4], "MDC_")
	if id == "" {
		if t, ok := mdc.Lookup(ref); ok && hasRef {
			return t, ""
		}
		return mdc.Term{}, "no MDC code this gateway knows"
	}
	code, ok := mdcCode(id, partitionMetric)
	if !ok {
		return mdc.Term{}, "MDC code is not a number or MDIL hex"
	}
	t, ok := mdc.ByCode(code)
	if ok && (!hasRef || strings.EqualFold(ref, t.RefID)) {
		return t, "" // the usual case: a number and its own reference id
	}
	n := strconv.FormatUint(uint64(code), 10)
	byRef, refOK := mdc.Lookup(ref)
	switch {
	case !ok && hasRef && refOK:
		return mdc.Term{}, "MDC code " + n + " is not the code of " + byRef.RefID
	case !ok:
		return mdc.Term{}, "MDC code " + n + " is not in the gateway's table"
	case refOK && byRef.Code != t.Code:
		return mdc.Term{}, "MDC code " + n + " and reference id " + byRef.RefID + " disagree"
	}
	// A reference id unknown to the table beside a known number: the
	// number decides.
	return t, ""
}

func isMDC(system string) bool {
	s := strings.ToUpper(strings.TrimSpace(system))
	return s == "MDC" || s == "" || s == "ISO11073-10101" || s == "URN:ISO:STD:ISO:11073:10101"
}

// mdcCode reads an MDC code: decimal (a term code below 65536 gets the
// partition), or MDIL hex "pppp-tttt".
func mdcCode(s string, partition uint32) (uint32, bool) {
	if len(s) == 9 && s[4] == '-' {
		p, err1 := strconv.ParseUint(s[:4], 16, 16)
		t, err2 := strconv.ParseUint(s[5:], 16, 16)
		if err1 != nil || err2 != nil || !hexOnly(s[:4]) || !hexOnly(s[5:]) {
			return 0, false
		}
		return uint32(p)<<16 | uint32(t), true
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, false
	}
	if n < 1<<16 {
		n += uint64(partition) << 16
	}
	return uint32(n), true
}

func hexOnly(s string) bool {
	for i := 0; i < len(s); i++ {
		if unhex := s[i]; !(unhex >= '0' && unhex <= '9' || unhex >= 'a' && unhex <= 'f' || unhex >= 'A' && unhex <= 'F') {
			return false
		}
	}
	return true
}

// dimUCUM is mdc.UnitUCUM for an MDC unit code, remembered: the table is
// keyed by strings, and formatting the number for every row would cost an
// allocation each.
func dimUCUM(code uint32) (string, bool) {
	dimMu.RLock()
	e, ok := dimCache[code]
	dimMu.RUnlock()
	if ok {
		return e.ucum, e.known
	}
	u, known := mdc.UnitUCUM(strconv.FormatUint(uint64(code), 10))
	dimMu.Lock()
	if len(dimCache) < 4096 { // bounded: codes come from the wire
		dimCache[code] = dimEntry{u, known}
	}
	dimMu.Unlock()
	return u, known
}

type dimEntry struct {
	ucum  string
	known bool
}

var (
	dimMu    sync.RWMutex
	dimCache = map[uint32]dimEntry{}
)

// unitUCUM resolves OBX-6 to UCUM: an MDC_DIM code (number, MDIL hex, term
// code without partition, or reference id) or a UCUM code.
func unitUCUM(f hl7.Field) (string, string) {
	id, ref, system := strings.TrimSpace(f.Comp(1).Text()), strings.TrimSpace(f.Comp(2).Text()), strings.ToUpper(strings.TrimSpace(f.Comp(3).Text()))
	if id == "" && ref == "" {
		return "", "no unit"
	}
	if system == "UCUM" {
		if u, ok := mdc.UnitUCUM(id); ok {
			return u, ""
		}
		return "", "UCUM unit is not one this gateway knows"
	}
	if system == "" || system == "MDC" {
		if code, ok := mdcCode(id, partitionDim); ok {
			u, known := dimUCUM(code)
			if !known {
				return "", "MDC unit " + strconv.FormatUint(uint64(code), 10) + " is not in the gateway's table"
			}
			if refU, refOK := mdc.UnitUCUM(ref); refOK && strings.HasPrefix(strings.ToUpper(ref), "MDC_") && refU != u {
				return "", "MDC unit " + strconv.FormatUint(uint64(code), 10) + " and reference id " + strings.ToUpper(ref) + " disagree"
			}
			return u, ""
		}
	}
	// A reference id, or a UCUM code without a coding system.
	for _, s := range []string{id, ref} {
		if u, ok := mdc.UnitUCUM(s); ok && s != "" {
			return u, ""
		}
	}
	return "", "unit is not one this gateway knows"
}
