package fhir

import "github.com/wardgate/wardgate/devices/mdc"

// Code systems.
const (
	LOINC          = "http://loinc.org"
	MDCSystem      = "urn:iso:std:iso:11073:10101"
	UCUM           = "http://unitsofmeasure.org"
	CategorySystem = "http://terminology.hl7.org/CodeSystem/observation-category"
	DICOMDCM       = "http://dicom.nema.org/resources/ontology/DCM"
	DICOMUIDSystem = "urn:dicom:uid"
	RFC3986        = "urn:ietf:rfc:3986"
	V20203         = "http://terminology.hl7.org/CodeSystem/v2-0203"
	V3Interp       = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
)

// Profiles.
const (
	profileBase = "http://hl7.org/fhir/StructureDefinition/vitalsigns"
	profileHR   = "http://hl7.org/fhir/StructureDefinition/heartrate"
	profileSat  = "http://hl7.org/fhir/StructureDefinition/oxygensat"
	profileResp = "http://hl7.org/fhir/StructureDefinition/resprate"
	profileTemp = "http://hl7.org/fhir/StructureDefinition/bodytemp"
	profileBP   = "http://hl7.org/fhir/StructureDefinition/bp"
)

// Param is how one IEEE 11073 parameter becomes an Observation: its LOINC
// codings (the first is the one its profile requires), its UCUM unit, and the
// vital-signs profile it meets, if any.
type Param struct {
	MDC     uint32
	RefID   string
	Display string
	LOINC   []Coding
	UCUM    string
	Profile string // "" when no vital-signs profile applies
}

var (
	loincHR    = Coding{System: LOINC, Code: "8867-4", Display: "Heart rate"}
	loincSat   = Coding{System: LOINC, Code: "2708-6", Display: "Oxygen saturation in Arterial blood"}
	loincSatPO = Coding{System: LOINC, Code: "59408-5", Display: "Oxygen saturation in Arterial blood by Pulse oximetry"}
	loincResp  = Coding{System: LOINC, Code: "9279-1", Display: "Respiratory rate"}
	loincTemp  = Coding{System: LOINC, Code: "8310-5", Display: "Body temperature"}
	loincBP    = Coding{System: LOINC, Code: "85354-9", Display: "Blood pressure panel with all children optional"}
	loincSys   = Coding{System: LOINC, Code: "8480-6", Display: "Systolic blood pressure"}
	loincDia   = Coding{System: LOINC, Code: "8462-4", Display: "Diastolic blood pressure"}
	loincMean  = Coding{System: LOINC, Code: "8478-0", Display: "Mean blood pressure"}
	loincISys  = Coding{System: LOINC, Code: "76215-3", Display: "Invasive Systolic blood pressure"}
	loincIDia  = Coding{System: LOINC, Code: "76213-8", Display: "Invasive Diastolic blood pressure"}
	loincIMean = Coding{System: LOINC, Code: "76214-6", Display: "Invasive Mean blood pressure"}
)

// params are the single-value parameters wardgate maps. Codes were checked
// against the FHIR R4 vital-signs profiles, the HL7 PHD and national FHIR
// guides' IEEE value sets, and vendor IHE PCD-01 messages.
var params = map[uint32]Param{
	147842: {147842, "MDC_ECG_HEART_RATE", "Heart rate (ECG)", []Coding{loincHR}, "/min", profileHR},
	149530: {149530, "MDC_PULS_OXIM_PULS_RATE", "Pulse rate (oximeter)", []Coding{loincHR}, "/min", profileHR},
	150456: {150456, "MDC_PULS_OXIM_SAT_O2", "SpO2", []Coding{loincSat, loincSatPO}, "%", profileSat},
	151562: {151562, "MDC_RESP_RATE", "Respiratory rate", []Coding{loincResp}, "/min", profileResp},
	151570: {151570, "MDC_AWAY_RESP_RATE", "Respiratory rate (airway)", []Coding{loincResp}, "/min", profileResp},
	151578: {151578, "MDC_TTHOR_RESP_RATE", "Respiratory rate (impedance)", []Coding{loincResp}, "/min", profileResp},
	151594: {151594, "MDC_CO2_RESP_RATE", "Respiratory rate (CO2)", []Coding{loincResp}, "/min", profileResp},
	150364: {150364, "MDC_TEMP_BODY", "Body temperature", []Coding{loincTemp}, "Cel", profileTemp},
	150344: {150344, "MDC_TEMP", "Temperature", []Coding{loincTemp}, "Cel", profileTemp},
	151708: {151708, "MDC_CONC_AWAY_CO2_ET", "End-tidal CO2", []Coding{{System: LOINC, Code: "19891-1", Display: "Carbon dioxide [Partial pressure] in Exhaled gas --at end expiration"}}, "mm[Hg]", ""},
	151728: {151728, "MDC_AWAY_CO2_ET", "End-tidal CO2", []Coding{{System: LOINC, Code: "19891-1", Display: "Carbon dioxide [Partial pressure] in Exhaled gas --at end expiration"}}, "mm[Hg]", ""},
}

// bpFamily is one kind of blood pressure: the panel code and its
// systolic/diastolic/mean members are panel+1, +2, +3.
type bpFamily struct {
	Panel          uint32
	RefID          string
	Display        string
	Sys, Dia, Mean []Coding // LOINC codings of the components
}

var bpFamilies = []bpFamily{
	{150020, "MDC_PRESS_BLD_NONINV", "Non-invasive blood pressure", []Coding{loincSys}, []Coding{loincDia}, []Coding{loincMean}},
	{150300, "MDC_PRESS_CUFF", "Cuff pressure", []Coding{loincSys}, []Coding{loincDia}, []Coding{loincMean}},
	{150032, "MDC_PRESS_BLD_ART", "Arterial blood pressure", []Coding{loincSys, loincISys}, []Coding{loincDia, loincIDia}, []Coding{loincMean, loincIMean}},
	{150036, "MDC_PRESS_BLD_ART_ABP", "Arterial blood pressure (ABP)", []Coding{loincSys, loincISys}, []Coding{loincDia, loincIDia}, []Coding{loincMean, loincIMean}},
}

var bpMemberRef = [...]string{"", "_SYS", "_DIA", "_MEAN"}

// bpOf returns the family of a blood-pressure member code and which member
// it is (1 systolic, 2 diastolic, 3 mean).
func bpOf(code uint32) (*bpFamily, int) {
	for i := range bpFamilies {
		f := &bpFamilies[i]
		if code > f.Panel && code <= f.Panel+3 {
			return f, int(code - f.Panel)
		}
	}
	return nil, 0
}

// paramOf returns how a code maps: from the table above, which carries the
// vital-signs profiles, or else from the MDC table of devices/mdc, as an
// Observation coded with MDC (and LOINC where the table has one) that
// claims no profile.
func paramOf(code uint32) (Param, bool) {
	if p, ok := params[code]; ok {
		return p, true
	}
	t, ok := mdc.ByCode(code)
	if !ok {
		return Param{}, false
	}
	p := Param{MDC: t.Code, RefID: t.RefID, Display: t.Display, UCUM: t.UCUM}
	if t.LOINC != "" {
		p.LOINC = []Coding{{System: LOINC, Code: t.LOINC}}
	}
	return p, true
}

// Known reports whether wardgate can map readings with this MDC code.
func Known(code uint32) bool {
	if _, ok := paramOf(code); ok {
		return true
	}
	f, _ := bpOf(code)
	return f != nil
}

// PanelOf is the panel a blood-pressure member code is charted in (its
// family's panel code), and whether it is a member: an interval's members
// are charted together, as one panel.
func PanelOf(code uint32) (uint32, bool) {
	f, _ := bpOf(code)
	if f == nil {
		return 0, false
	}
	return f.Panel, true
}
