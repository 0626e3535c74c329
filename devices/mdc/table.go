package mdc

// Sources (see the bedside-monitors issue's closing note for how each row
// was checked): IEEE 11073-10101 as reproduced in the HL7 Personal Health
// Device IG and the IHE PCD Rosetta (RTMMS) tables, the FHIR R4 vital-signs
// profiles for the LOINC codes, and vendor IHE PCD-01 messages.
// Confidence, from the research behind the bedside-monitors issue: rows
// marked "likely" rest on one vendor's nomenclature; the others on two
// independent sources or an authoritative one. A LOINC code is given only
// where it was checked.
var terms = []Term{
	// Cardiac and pulse rate.
	{147842, "MDC_ECG_HEART_RATE", "Heart rate (ECG)", "/min", "8867-4", bpm},
	{149514, "MDC_PULS_RATE", "Pulse rate", "/min", "8867-4", bpm},
	{149522, "MDC_BLD_PULS_RATE_INV", "Pulse rate (invasive pressure)", "/min", "8867-4", bpm},
	{149530, "MDC_PULS_OXIM_PULS_RATE", "Pulse rate (oximeter)", "/min", "8867-4", bpm},
	{149546, "MDC_PULS_RATE_NON_INV", "Pulse rate (NIBP)", "/min", "8867-4", bpm},
	{148066, "MDC_ECG_V_P_C_RATE", "PVC rate", "/min", "", nil}, // likely

	// Pulse oximetry.
	{150456, "MDC_PULS_OXIM_SAT_O2", "SpO2", "%", "59408-5", nil},
	{150448, "MDC_PULS_OXIM_PERF_REL", "Perfusion index (oximeter)", "%", "", nil}, // likely; OpenICE's code for Masimo PI
	{150488, "MDC_BLD_PERF_INDEX", "Perfusion index", "%", "", nil},                // likely; Mindray's

	// Non-invasive blood pressure: panel, then systolic, diastolic, mean.
	{150020, "MDC_PRESS_BLD_NONINV", "NIBP", "mm[Hg]", "85354-9", kpa},
	{150021, "MDC_PRESS_BLD_NONINV_SYS", "NIBP systolic", "mm[Hg]", "8480-6", kpa},
	{150022, "MDC_PRESS_BLD_NONINV_DIA", "NIBP diastolic", "mm[Hg]", "8462-4", kpa},
	{150023, "MDC_PRESS_BLD_NONINV_MEAN", "NIBP mean", "mm[Hg]", "8478-0", kpa},
	{150300, "MDC_PRESS_CUFF", "Cuff pressure", "mm[Hg]", "85354-9", kpa},
	{150301, "MDC_PRESS_CUFF_SYS", "Cuff systolic", "mm[Hg]", "8480-6", kpa},
	{150302, "MDC_PRESS_CUFF_DIA", "Cuff diastolic", "mm[Hg]", "8462-4", kpa},
	{150303, "MDC_PRESS_CUFF_MEAN", "Cuff mean", "mm[Hg]", "8478-0", kpa},

	// Invasive pressures.
	{150016, "MDC_PRESS_BLD", "Blood pressure (invasive)", "mm[Hg]", "", kpa},
	{150017, "MDC_PRESS_BLD_SYS", "Invasive systolic", "mm[Hg]", "8480-6", kpa},
	{150018, "MDC_PRESS_BLD_DIA", "Invasive diastolic", "mm[Hg]", "8462-4", kpa},
	{150019, "MDC_PRESS_BLD_MEAN", "Invasive mean", "mm[Hg]", "8478-0", kpa},
	{150032, "MDC_PRESS_BLD_ART", "Arterial pressure", "mm[Hg]", "", kpa},
	{150033, "MDC_PRESS_BLD_ART_SYS", "Arterial systolic", "mm[Hg]", "76215-3", kpa},  // likely
	{150034, "MDC_PRESS_BLD_ART_DIA", "Arterial diastolic", "mm[Hg]", "76213-8", kpa}, // likely
	{150035, "MDC_PRESS_BLD_ART_MEAN", "Arterial mean", "mm[Hg]", "76214-6", kpa},     // likely
	{150036, "MDC_PRESS_BLD_ART_ABP", "ABP", "mm[Hg]", "", kpa},
	{150037, "MDC_PRESS_BLD_ART_ABP_SYS", "ABP systolic", "mm[Hg]", "76215-3", kpa},
	{150038, "MDC_PRESS_BLD_ART_ABP_DIA", "ABP diastolic", "mm[Hg]", "76213-8", kpa},
	{150039, "MDC_PRESS_BLD_ART_ABP_MEAN", "ABP mean", "mm[Hg]", "76214-6", kpa},
	{150044, "MDC_PRESS_BLD_ART_PULM", "Pulmonary artery pressure", "mm[Hg]", "", kpa},
	{150045, "MDC_PRESS_BLD_ART_PULM_SYS", "PAP systolic", "mm[Hg]", "", kpa},
	{150046, "MDC_PRESS_BLD_ART_PULM_DIA", "PAP diastolic", "mm[Hg]", "", kpa},
	{150047, "MDC_PRESS_BLD_ART_PULM_MEAN", "PAP mean", "mm[Hg]", "", kpa},
	{150084, "MDC_PRESS_BLD_VEN_CENT", "Central venous pressure", "mm[Hg]", "60985-9", kpa},
	{150087, "MDC_PRESS_BLD_VEN_CENT_MEAN", "CVP mean", "mm[Hg]", "", kpa},

	// Respiration and gases.
	{151562, "MDC_RESP_RATE", "Respiratory rate", "/min", "9279-1", brpm},
	{151570, "MDC_AWAY_RESP_RATE", "Respiratory rate (airway)", "/min", "9279-1", brpm},
	{151578, "MDC_TTHOR_RESP_RATE", "Respiratory rate (impedance)", "/min", "9279-1", brpm},
	{151594, "MDC_CO2_RESP_RATE", "Respiratory rate (CO2)", "/min", "9279-1", brpm},
	{151658, "MDC_PULS_OXIM_PLETH_RESP_RATE", "Respiratory rate (pleth)", "/min", "9279-1", brpm},
	{151708, "MDC_CONC_AWAY_CO2_ET", "End-tidal CO2", "mm[Hg]", "19891-1", kpa},
	{151728, "MDC_AWAY_CO2_ET", "End-tidal CO2", "mm[Hg]", "19891-1", kpa},
	{151716, "MDC_CONC_AWAY_CO2_INSP", "Inspired CO2", "mm[Hg]", "", kpa}, // likely
	{152196, "MDC_CONC_AWAY_O2_INSP", "FiO2", "%", "", nil},

	// Temperature.
	{150344, "MDC_TEMP", "Temperature", "Cel", "8310-5", degF},
	{150364, "MDC_TEMP_BODY", "Body temperature", "Cel", "8310-5", degF},
	{150368, "MDC_TEMP_CORE", "Core temperature", "Cel", "", degF},
	{150372, "MDC_TEMP_ESOPH", "Esophageal temperature", "Cel", "", degF},
	{150388, "MDC_TEMP_SKIN", "Skin temperature", "Cel", "", degF},
	{150392, "MDC_TEMP_TYMP", "Tympanic temperature", "Cel", "", degF},
	{188420, "MDC_TEMP_RECT", "Rectal temperature", "Cel", "", degF},
	{188424, "MDC_TEMP_ORAL", "Oral temperature", "Cel", "", degF},
}

var (
	bpm  = []string{"{beat}/min", "{beats}/min"}
	brpm = []string{"{breath}/min"}
	kpa  = []string{"kPa"}
	degF = []string{"[degF]"}
)

var unitTable = []Unit{
	{262656, "MDC_DIM_DIMLESS", "1"},
	{262688, "MDC_DIM_PERCENT", "%"},
	{264864, "MDC_DIM_BEAT_PER_MIN", "/min"},
	{264928, "MDC_DIM_RESP_PER_MIN", "/min"},
	{266016, "MDC_DIM_MMHG", "mm[Hg]"},
	{268192, "MDC_DIM_DEGC", "Cel"},
	// From Philips' nomenclature only (likely):
	{264672, "MDC_DIM_PER_MIN", "/min"},
	{265987, "MDC_DIM_KILO_PASCAL", "kPa"},
	{266560, "MDC_DIM_FAHR", "[degF]"},
	{264256, "MDC_DIM_X_G_PER_DL", "g/dL"},
	{266866, "MDC_DIM_MILLI_MOLE_PER_L", "mmol/L"},
	{265216, "MDC_DIM_X_L_PER_MIN", "L/min"},
	{263762, "MDC_DIM_MILLI_L", "mL"},
	{264338, "MDC_DIM_MILLI_SEC", "ms"},
	{266048, "MDC_DIM_CM_H2O", "cm[H2O]"},
	{266418, "MDC_DIM_MILLI_VOLT", "mV"},
}

// otherUCUM are UCUM units devices send that have no row above, or are
// converted (see Term.Accepts).
var otherUCUM = []string{"{beat}/min", "{beats}/min", "{breath}/min"}
