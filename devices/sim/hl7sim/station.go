// Package hl7sim simulates a central station (as a Philips PIC iX or a GE
// CARESCAPE Gateway would be) for tests, benchmarks and commissioning: it
// writes IHE PCD-01 ORU^R01 results for a number of beds, and the ADT
// events (admit, transfer, discharge) that say who lies in which bed; and
// a Client sends them over MLLP and waits for each acknowledgement.
//
// The patients' vitals come from devices/sim (one simulated monitor per
// bed, its generic/json output read back), so a bed behaves as a bedside
// monitor does there: values that trend, a probe that slips off, a short
// dropout (no result from that bed for a cycle), an NIBP every five
// minutes. The station's clock is taken as synchronised (NTP): OBX-14 is
// the time of the cycle, with its UTC offset.
//
// Every message a Station writes decodes with pcd01.Decoder without a
// problem (TestResultsDecode); control ids are unique per message (a
// prefix, from Config.RunID, and a counter), so the same message sent
// again is the same bytes with the same control id.
package hl7sim

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/wardgate/wardgate/devices/hl7"
	"github.com/wardgate/wardgate/devices/pcd01"
	"github.com/wardgate/wardgate/devices/sim"
)

// Config describes a simulated central station and its beds.
type Config struct {
	// Beds is the number of beds (default 4), named BED1 … BEDn.
	Beds int
	// Ward is PV1-3.1, the point of care (default WARD). With wardgate's
	// default bed template {point_of_care}-{bed}, bed 3 is WARD-BED3.
	Ward string
	// Application is the station's name in MSH-3.1 (default CENTRAL);
	// Facility MSH-4.1 (default HOSP).
	Application, Facility string
	// Authority is the assigning authority of the record numbers in PID-3
	// (CX-4.1, default HOSP): PID-3 is MRN^^^AUTHORITY^MR.
	Authority string
	// NoPatient leaves PID out of results: the gateway then learns the
	// patient from the bed's stay (ADT, static).
	NoPatient bool
	// Enhanced asks for enhanced-mode acknowledgements (MSH-15 AL, MSH-16
	// NE: one CA per message, as Mindray senders do); otherwise original
	// mode (one AA).
	Enhanced bool
	// Standby: a bed nobody lies in sends no results (its monitor is in
	// standby between patients). Otherwise it sends them without PID, and
	// a gateway holds them as readings of a vacant bed.
	Standby bool
	// UCUM writes OBX-6 as UCUM codes; otherwise as MDC_DIM codes.
	UCUM bool
	// MinOBX pads every result to at least this many OBX rows with empty
	// invasive-pressure channels (hierarchy rows, OBX-11 X), as a monitor
	// with a pressure module and nothing connected reports them: for
	// benchmarks that ask for a given message size.
	MinOBX int
	// Zone is the offset written in times (default UTC).
	Zone *time.Location
	// Seed makes the patients repeatable.
	Seed uint64
	// RunID prefixes every control id and record number (up to 8 letters
	// or digits; default from Seed). Two runs against one gateway need two
	// run ids: the gateway takes a control id it already committed as a
	// resend and charts it once.
	RunID string
}

// Message is one message the station wrote.
type Message struct {
	ControlID string
	Kind      string // "ORU^R01", "ADT^A01", "ADT^A02", "ADT^A03"
	Bed       int    // the bed it is about, from 1 (the new bed of a transfer)
	Bytes     []byte // the ER7 text, segments ended by CR, not framed
}

// Station is a simulated central station. It is not safe for concurrent
// use.
type Station struct {
	c      Config
	rng    *rand.Rand
	beds   []*bed
	seq    uint64
	nextMR uint64
}

type bed struct {
	name    string // BEDn
	eui     string // the bedside monitor's EUI-64: 0019A1FFFE00000n for bed n, stable across runs as a device's is
	monitor *sim.Monitor
	mrn     string // who lies there; "" for nobody
	nibp    *nibp  // the last NIBP measured, repeated with its own time
}

type nibp struct {
	sys, dia, mean float64
	at             time.Time
}

// New returns a station for c.
func New(c Config) (*Station, error) {
	if c.Beds <= 0 {
		c.Beds = 4
	}
	if c.Beds > 9999 {
		return nil, fmt.Errorf("hl7sim: %d beds: at most 9999", c.Beds)
	}
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.Ward, "WARD")
	def(&c.Application, "CENTRAL")
	def(&c.Facility, "HOSP")
	def(&c.Authority, "HOSP")
	if c.Zone == nil {
		c.Zone = time.UTC
	}
	if c.RunID == "" {
		c.RunID = strings.ToUpper(strconv.FormatUint(c.Seed%(36*36*36*36*36*36), 36))
	}
	if len(c.RunID) > 8 || strings.IndexFunc(c.RunID, func(r rune) bool {
		return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
	}) >= 0 {
		return nil, fmt.Errorf("hl7sim: run id %q: up to 8 letters or digits", c.RunID)
	}
	for _, s := range []string{c.Ward, c.Application, c.Facility, c.Authority} {
		if strings.ContainsAny(s, "|^~\\&\r\n") {
			return nil, fmt.Errorf("hl7sim: %q holds an HL7 delimiter", s)
		}
	}
	s := &Station{c: c, rng: rand.New(rand.NewPCG(c.Seed, c.Seed^0xc0ffee))}
	for i := range c.Beds {
		m, err := sim.New("generic/json", c.Seed*7919+uint64(i)+1)
		if err != nil {
			return nil, err
		}
		s.beds = append(s.beds, &bed{
			name:    "BED" + strconv.Itoa(i+1),
			eui:     fmt.Sprintf("0019A1FFFE%06X", i+1),
			monitor: m,
		})
	}
	return s, nil
}

// Beds is the number of beds.
func (s *Station) Beds() int { return len(s.beds) }

// BedName is PV1-3 of bed i (from 1) as the station writes it.
func (s *Station) BedName(i int) string { return s.c.Ward + "^^" + s.beds[i-1].name }

// EUI64 is the EUI-64 of bed i's monitor, as in OBX-18.
func (s *Station) EUI64(i int) string { return s.beds[i-1].eui }

// Patient is the record number of who lies in bed i (from 1); "" when
// nobody does.
func (s *Station) Patient(i int) string { return s.beds[i-1].mrn }

// Occupy puts a new patient in every empty bed without an ADT event (for
// a gateway that learns patients from PID-3 or patients.static, not from
// an ADT feed) and returns nothing to send.
func (s *Station) Occupy() {
	for _, b := range s.beds {
		if b.mrn == "" {
			b.mrn = s.newMRN()
		}
	}
}

func (s *Station) newMRN() string {
	s.nextMR++
	return fmt.Sprintf("%sMR%06d", s.c.RunID, s.nextMR)
}

func (s *Station) controlID() string {
	s.seq++
	return fmt.Sprintf("%s%010d", s.c.RunID, s.seq)
}

// ts writes a time as HL7 DTM to the second with its UTC offset.
func (s *Station) ts(t time.Time) string {
	return t.In(s.c.Zone).Format("20060102150405-0700")
}

// Results are the results of one cycle at now: one ORU^R01 per bed that
// has values (a bed whose monitor is in a dropout sends none, nor does an
// empty bed in Standby).
func (s *Station) Results(now time.Time) []Message {
	out := make([]Message, 0, len(s.beds))
	for i, b := range s.beds {
		if s.c.Standby && b.mrn == "" {
			continue
		}
		if m, ok := s.Result(i+1, now); ok {
			out = append(out, m)
		}
	}
	return out
}

// generic is devices/sim's generic/json frame, read back.
type generic struct {
	Observations []struct {
		Code  string  `json:"code"`
		Value float64 `json:"value"`
	} `json:"observations"`
}

// row is one OBX to write.
type row struct {
	code        string // number^REFID, "" for none
	valueType   string
	containment string
	value       string
	unit        int // index into units, -1 for none
	status      string
	time        string
	method      string
	equipment   bool
}

// The units, as MDC_DIM codes and as UCUM; each was checked against
// devices/mdc (TestUnitsAndCodesAreInTheTable).
var units = [...]struct{ mdc, ucum string }{
	{"264864^MDC_DIM_BEAT_PER_MIN", "/min"},
	{"262688^MDC_DIM_PERCENT", "%"},
	{"264928^MDC_DIM_RESP_PER_MIN", "/min"},
	{"268192^MDC_DIM_DEGC", "Cel"},
	{"266016^MDC_DIM_MMHG", "mm[Hg]"},
}

const (
	unitBPM = iota
	unitPercent
	unitRPM
	unitDegC
	unitMMHg
	noUnit = -1
)

// The metrics written, by the generic/json code of devices/sim that gives
// their value. NIBP is 150020 (the compound) with 150021/150022/150023:
// devices/mdc has 150016–150019 as invasive pressures.
var metrics = map[string]struct {
	code string
	unit int
}{
	"MDC_ECG_HEART_RATE":        {"147842^MDC_ECG_HEART_RATE", unitBPM},
	"MDC_PULS_OXIM_SAT_O2":      {"150456^MDC_PULS_OXIM_SAT_O2", unitPercent},
	"MDC_PULS_OXIM_PULS_RATE":   {"149530^MDC_PULS_OXIM_PULS_RATE", unitBPM},
	"MDC_TTHOR_RESP_RATE":       {"151562^MDC_RESP_RATE", unitRPM},
	"MDC_TEMP_BODY":             {"150344^MDC_TEMP", unitDegC},
	"MDC_PRESS_BLD_NONINV_SYS":  {"150021^MDC_PRESS_BLD_NONINV_SYS", unitMMHg},
	"MDC_PRESS_BLD_NONINV_DIA":  {"150022^MDC_PRESS_BLD_NONINV_DIA", unitMMHg},
	"MDC_PRESS_BLD_NONINV_MEAN": {"150023^MDC_PRESS_BLD_NONINV_MEAN", unitMMHg},
}

// Result is bed i's (from 1) result at now; false when its monitor is in
// a dropout.
func (s *Station) Result(i int, now time.Time) (Message, bool) {
	b := s.beds[i-1]
	frame := b.monitor.Next(now)
	if frame == nil {
		return Message{}, false
	}
	var g generic
	if err := json.Unmarshal(frame, &g); err != nil {
		panic("hl7sim: devices/sim's generic/json frame: " + err.Error())
	}
	v := map[string]float64{}
	for _, o := range g.Observations {
		v[o.Code] = o.Value
	}
	now = now.Truncate(time.Second)
	at := s.ts(now)
	if sys, ok := v["MDC_PRESS_BLD_NONINV_SYS"]; ok {
		b.nibp = &nibp{sys, v["MDC_PRESS_BLD_NONINV_DIA"], v["MDC_PRESS_BLD_NONINV_MEAN"], now}
	}
	num := func(name string, decimals int) string {
		return strconv.FormatFloat(v[name], 'f', decimals, 64)
	}
	value := func(name, containment string, decimals int) row {
		m := metrics[name]
		return row{code: m.code, valueType: "NM", containment: containment, value: num(name, decimals), unit: m.unit, status: "R", equipment: true}
	}
	group := func(code, containment string) row {
		return row{code: code, containment: containment, unit: noUnit, status: "X"}
	}
	rows := []row{
		{code: "69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS", containment: "1.0.0.0", unit: noUnit, status: "X", equipment: true},
		group("69798^MDC_DEV_ECG_VMD", "1.5.0.0"),
		group("69799^MDC_DEV_ECG_CHAN", "1.5.1.0"),
		value("MDC_ECG_HEART_RATE", "1.5.1.1", 0),
	}
	if n := b.nibp; n != nil {
		// The last NIBP goes out in every cycle with the time it was
		// measured, as central stations repeat it: the gateway charts it
		// once (same device, code and time).
		t := s.ts(n.at)
		rows = append(rows,
			group("69854^MDC_DEV_METER_PRESS_BLD_VMD", "1.14.0.0"),
			group("69855^MDC_DEV_METER_PRESS_BLD_CHAN", "1.14.1.0"),
			group("150020^MDC_PRESS_BLD_NONINV", "1.14.1.1"))
		for k, x := range []struct {
			name string
			v    float64
		}{{"MDC_PRESS_BLD_NONINV_SYS", n.sys}, {"MDC_PRESS_BLD_NONINV_DIA", n.dia}, {"MDC_PRESS_BLD_NONINV_MEAN", n.mean}} {
			m := metrics[x.name]
			rows = append(rows, row{code: m.code, valueType: "NM", containment: "1.14.1.1." + strconv.Itoa(k+1),
				value: strconv.FormatFloat(x.v, 'f', 0, 64), unit: m.unit, status: "R", time: t, method: "AMEAS^auto-measurement^MDC", equipment: true})
		}
	}
	if _, ok := v["MDC_PULS_OXIM_SAT_O2"]; ok { // the probe is on
		rows = append(rows,
			group("69642^MDC_DEV_ANALY_SAT_O2_VMD", "1.22.0.0"),
			group("69643^MDC_DEV_ANALY_SAT_O2_CHAN", "1.22.1.0"),
			value("MDC_PULS_OXIM_SAT_O2", "1.22.1.1", 0),
			value("MDC_PULS_OXIM_PULS_RATE", "1.22.1.2", 0))
	}
	rows = append(rows,
		value("MDC_TTHOR_RESP_RATE", "1.23.1.1", 0),
		group("69902^MDC_DEV_METER_TEMP_VMD", "1.26.0.0"),
		group("69903^MDC_DEV_METER_TEMP_CHAN", "1.26.1.0"),
		value("MDC_TEMP_BODY", "1.26.1.1", 1))
	if len(rows) < s.c.MinOBX {
		rows = append(rows, group("69854^MDC_DEV_METER_PRESS_BLD_VMD", "1.13.0.0"))
		for ch := 1; len(rows) < s.c.MinOBX; ch++ {
			rows = append(rows, group("69855^MDC_DEV_METER_PRESS_BLD_CHAN", "1.13."+strconv.Itoa(ch)+".0"))
		}
	}
	for k := range rows {
		if rows[k].valueType != "" && rows[k].time == "" {
			rows[k].time = at
		}
	}

	id := s.controlID()
	hb := hl7.NewBuilder(hl7.DefaultDelimiters)
	s.header(hb, at, "ORU^R01^ORU_R01", id, "2.6", hb.Comps(s.c.Application, b.eui, "EUI-64"))
	if !s.c.NoPatient && b.mrn != "" {
		hb.Segment("PID", "", "", s.pid3(b.mrn))
	}
	hb.Segment("PV1", "", "I", s.BedName(i))
	filler := hb.Comps(id, s.c.Application, b.eui, "EUI-64")
	hb.Segment("OBR", "1", filler, filler, "182777000^monitoring of patient^SCT", "", "", at)
	eq := hb.Comps(b.eui, "", b.eui, "EUI-64")
	for k, r := range rows {
		unit := ""
		if r.unit != noUnit {
			if s.c.UCUM {
				u := units[r.unit].ucum
				unit = hb.Comps(hb.Text(u), hb.Text(u), "UCUM")
			} else {
				unit = units[r.unit].mdc + "^MDC"
			}
		}
		equipment := ""
		if r.equipment {
			equipment = eq
		}
		hb.Segment("OBX", strconv.Itoa(k+1), r.valueType, r.code+"^MDC", r.containment, r.value, unit,
			"", "", "", "", r.status, "", "", r.time, "", "", r.method, equipment)
	}
	return Message{ControlID: id, Kind: "ORU^R01", Bed: i, Bytes: hb.Bytes()}, true
}

// header writes MSH; app is MSH-3.
func (s *Station) header(b *hl7.Builder, at, typ, id, version, app string) {
	accept, application := "", ""
	if s.c.Enhanced {
		accept, application = "AL", "NE"
	}
	profile := ""
	if strings.HasPrefix(typ, "ORU") {
		profile = "IHE_PCD_001^IHE PCD^" + pcd01.ProfileOID + "^ISO"
	}
	b.MSH(app, s.c.Facility, "WARDGATE", s.c.Ward, at, "", typ, id, "P", version,
		"", "", accept, application, "", "UNICODE UTF-8", "", "", profile)
}

func (s *Station) pid3(mrn string) string {
	return mrn + "^^^" + s.c.Authority + "^MR"
}

// The ADT events of the same beds. Version 2.5, MSH-9 with its message
// structure, EVN-6 the time the event happened, PID-3 the record number,
// PV1-3 the bed (PV1-6 the bed left, for a transfer).

// Admit puts a new patient in bed i (from 1), which must be empty: A01.
func (s *Station) Admit(i int, at time.Time) (Message, error) {
	b := s.beds[i-1]
	if b.mrn != "" {
		return Message{}, fmt.Errorf("hl7sim: bed %d is taken", i)
	}
	b.mrn, b.nibp = s.newMRN(), nil // the last patient's NIBP is not this one's
	return s.adt("A01", "ADT_A01", i, 0, b.mrn, at), nil
}

// Transfer moves the patient of bed from to the empty bed to: A02.
func (s *Station) Transfer(from, to int, at time.Time) (Message, error) {
	f, t := s.beds[from-1], s.beds[to-1]
	switch {
	case f.mrn == "":
		return Message{}, fmt.Errorf("hl7sim: bed %d is empty", from)
	case t.mrn != "":
		return Message{}, fmt.Errorf("hl7sim: bed %d is taken", to)
	}
	// The monitor stays at its bed: its last NIBP was not of the patient
	// who comes in (nor, after the move, of the one who left).
	t.mrn, f.mrn, t.nibp, f.nibp = f.mrn, "", nil, nil
	return s.adt("A02", "ADT_A02", to, from, t.mrn, at), nil
}

// Discharge sends the patient of bed i home: A03.
func (s *Station) Discharge(i int, at time.Time) (Message, error) {
	b := s.beds[i-1]
	if b.mrn == "" {
		return Message{}, fmt.Errorf("hl7sim: bed %d is empty", i)
	}
	mrn := b.mrn
	b.mrn, b.nibp = "", nil
	return s.adt("A03", "ADT_A03", i, 0, mrn, at), nil
}

// Event is a random ADT event at at, as a ward has them: a patient of an
// occupied bed is discharged or moved to an empty bed, or an empty bed
// gets a new patient. False when the ward has no bed to act on.
func (s *Station) Event(at time.Time) (Message, bool) {
	var taken, free []int
	for i, b := range s.beds {
		if b.mrn != "" {
			taken = append(taken, i+1)
		} else {
			free = append(free, i+1)
		}
	}
	x := s.rng.Float64()
	var m Message
	var err error
	switch {
	case len(free) > 0 && (len(taken) == 0 || x < 0.4):
		m, err = s.Admit(free[s.rng.IntN(len(free))], at)
	case len(free) > 0 && x < 0.7:
		m, err = s.Transfer(taken[s.rng.IntN(len(taken))], free[s.rng.IntN(len(free))], at)
	case len(taken) > 0:
		m, err = s.Discharge(taken[s.rng.IntN(len(taken))], at)
	default:
		return Message{}, false
	}
	return m, err == nil
}

func (s *Station) adt(event, structure string, to, from int, mrn string, at time.Time) Message {
	id := s.controlID()
	t := s.ts(at.Truncate(time.Second))
	b := hl7.NewBuilder(hl7.DefaultDelimiters)
	s.header(b, t, b.Comps("ADT", event, structure), id, "2.5", s.c.Application+"_ADT")
	b.Segment("EVN", event, t, "", "", "", t)
	b.Segment("PID", "", "", s.pid3(mrn), "", "SIMULATED^PATIENT")
	prior, discharged := "", ""
	if from > 0 {
		prior = s.BedName(from)
	}
	if event == "A03" {
		discharged = t
	}
	pv1 := make([]string, 45)
	pv1[1], pv1[2], pv1[5] = "I", s.BedName(to), prior
	pv1[44] = discharged
	b.Segment("PV1", pv1...)
	return Message{ControlID: id, Kind: "ADT^" + event, Bed: to, Bytes: b.Bytes()}
}
