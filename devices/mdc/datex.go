package mdc

import "strings"

// The GE Datex-Ohmeda S/5 computer interface sends no codes: its values
// are places in fixed structures, which devices/datex names "group.value"
// (ecg.hr, p1.sys, nibp.mean …). This table maps them to the terms above.
// An invasive pressure channel (p1–p6) or a temperature channel (t1–t4)
// measures what the clinician labelled it at the monitor; the label comes
// with the value (in devices/datex's State) and picks the row.
//
// Sources: the fields and their units, devices/datex (VSCapture's
// structures and scaling; GE's DRI specification 8005313 as published in
// KaiWU17TUM/icu_devices); the label numbers of the pressure and
// temperature sites, a public measure table written against the DRI
// specification (pressures: 1 ART, 2 CVP, 3 PA, 4 RAP, 5 RVP, 6 LAP, 7 ICP,
// 8 ABP, 9–14 P1–P6; temperatures: 1 ESO, 2 NASO, 3 TYMP, 4 RECT, 5 BLAD,
// 6 AXIL, 7 SKIN, 8 AIRW, 9 ROOM, 10 MYO, 11–14 T1–T4, 15 CORE, 16 SURF);
// the terms, the rows of table.go with their own sources. A site without
// a term of its own here (RAP, RVP, LAP; nasopharyngeal, bladder,
// axillary …) maps to the general term (MDC_PRESS_BLD_*, MDC_TEMP); ICP,
// airway and room temperatures, ST levels, the ambient pressure and
// end-tidal O2 have no row: they are not charted as vitals unless a
// profile names a code.

// DatexAnyLabel in a DatexRow matches any label.
const DatexAnyLabel = -1

// DatexRow maps one devices/datex field, for one label or any, to a term.
type DatexRow struct {
	Field string // "p1.sys"
	Label int    // the group's label (site), or DatexAnyLabel
	Code  uint32
}

// datexPressureSites: the invasive pressure labels with terms of their
// own, and the codes of sys, dia, mean (0: none, e.g. a CVP has a mean
// only).
var datexPressureSites = []struct {
	label          int
	sys, dia, mean uint32
}{
	{1, 150033, 150034, 150035}, // ART: MDC_PRESS_BLD_ART_{SYS,DIA,MEAN}
	{8, 150037, 150038, 150039}, // ABP: MDC_PRESS_BLD_ART_ABP_{SYS,DIA,MEAN}
	{3, 150045, 150046, 150047}, // PA: MDC_PRESS_BLD_ART_PULM_{SYS,DIA,MEAN}
	{2, 0, 0, 150087},           // CVP: MDC_PRESS_BLD_VEN_CENT_MEAN
}

var datexTempSites = map[int]uint32{
	1:  150372, // ESO: MDC_TEMP_ESOPH
	3:  150392, // TYMP: MDC_TEMP_TYMP
	4:  188420, // RECT: MDC_TEMP_RECT
	7:  150388, // SKIN: MDC_TEMP_SKIN
	15: 150368, // CORE: MDC_TEMP_CORE
}

// datexRows is built once from the sites above and the fixed fields.
var datexRows = func() []DatexRow {
	rows := []DatexRow{
		{"ecg.hr", DatexAnyLabel, 147842},     // MDC_ECG_HEART_RATE (the monitor's HR source)
		{"ecg.imp_rr", DatexAnyLabel, 151578}, // MDC_TTHOR_RESP_RATE (ECG impedance)
		{"nibp.sys", DatexAnyLabel, 150021},   // MDC_PRESS_BLD_NONINV_SYS
		{"nibp.dia", DatexAnyLabel, 150022},
		{"nibp.mean", DatexAnyLabel, 150023},
		{"nibp.hr", DatexAnyLabel, 149546},   // MDC_PULS_RATE_NON_INV
		{"spo2.spo2", DatexAnyLabel, 150456}, // MDC_PULS_OXIM_SAT_O2
		{"spo2.pr", DatexAnyLabel, 149530},   // MDC_PULS_OXIM_PULS_RATE
		{"co2.et", DatexAnyLabel, 151708},    // MDC_CONC_AWAY_CO2_ET, in mmHg
		{"co2.fi", DatexAnyLabel, 151716},    // MDC_CONC_AWAY_CO2_INSP, in mmHg
		{"co2.rr", DatexAnyLabel, 151594},    // MDC_CO2_RESP_RATE
		{"o2.fi", DatexAnyLabel, 152196},     // MDC_CONC_AWAY_O2_INSP
	}
	for _, ch := range []string{"p1", "p2", "p3", "p4", "p5", "p6"} {
		for _, s := range datexPressureSites {
			for _, v := range []struct {
				name string
				code uint32
			}{{"sys", s.sys}, {"dia", s.dia}, {"mean", s.mean}} {
				if v.code != 0 {
					rows = append(rows, DatexRow{ch + "." + v.name, s.label, v.code})
				}
			}
		}
		rows = append(rows,
			DatexRow{ch + ".sys", DatexAnyLabel, 150017}, // MDC_PRESS_BLD_SYS
			DatexRow{ch + ".dia", DatexAnyLabel, 150018},
			DatexRow{ch + ".mean", DatexAnyLabel, 150019},
			DatexRow{ch + ".hr", DatexAnyLabel, 149522}, // MDC_BLD_PULS_RATE_INV
		)
	}
	for _, ch := range []string{"t1", "t2", "t3", "t4"} {
		for _, label := range []int{1, 3, 4, 7, 15} {
			rows = append(rows, DatexRow{ch + ".temp", label, datexTempSites[label]})
		}
		rows = append(rows, DatexRow{ch + ".temp", DatexAnyLabel, 150344}) // MDC_TEMP
	}
	return rows
}()

// DatexRows lists the table's rows: for each field, the rows for a label
// come before the row for any label.
func DatexRows() []DatexRow { return append([]DatexRow(nil), datexRows...) }

// Datex finds the term of a devices/datex field measured at label (the
// group's label bits; pass 0 when unknown): the row for that label, else
// the field's row for any label.
func Datex(field string, label uint16) (Term, bool) {
	group, value, _ := strings.Cut(field, ".")
	// A channel labelled for what is no blood pressure or body
	// temperature: the general term would be wrong.
	if value != "hr" && (channel(group, "p", 6) && label == 7 || // ICP
		channel(group, "t", 4) && (label == 8 || label == 9)) { // airway, room
		return Term{}, false
	}
	for _, r := range datexRows {
		if r.Field == field && (r.Label == int(label) || r.Label == DatexAnyLabel) {
			return ByCode(r.Code)
		}
	}
	return Term{}, false
}

// channel reports whether group is prefix1 … prefixN.
func channel(group, prefix string, n int) bool {
	return len(group) == len(prefix)+1 && strings.HasPrefix(group, prefix) && group[len(prefix)] >= '1' && int(group[len(prefix)]-'0') <= n
}
