package dataset

// InstanceHeader is what wardgate keeps of one received instance's data set
// (pixel data skipped): enough to index it, forward it and describe its study
// in FHIR. Strings are as in the data set, with padding trimmed; dates are
// DICOM DA (YYYYMMDD) and times TM (HHMMSS.FFFFFF).
type InstanceHeader struct {
	SOPClassUID       string // (0008,0016)
	SOPInstanceUID    string // (0008,0018)
	StudyInstanceUID  string // (0020,000D)
	SeriesInstanceUID string // (0020,000E)
	TransferSyntaxUID string // from the association

	PatientID         string // (0010,0020)
	IssuerOfPatientID string // (0010,0021)
	AccessionNumber   string // (0008,0050)

	StudyDate          string   // (0008,0020)
	StudyTime          string   // (0008,0030)
	TimezoneOffset     string   // (0008,0201), e.g. +0100
	StudyDescription   string   // (0008,1030)
	ModalitiesInStudy  []string // (0008,0061)
	ReferringPhysician string   // (0008,0090)

	Modality          string // (0008,0060)
	SeriesNumber      int    // (0020,0011); 0 when absent
	SeriesDescription string // (0008,103E)
	SeriesDate        string // (0008,0021)
	SeriesTime        string // (0008,0031)
	BodyPartExamined  string // (0018,0015)
	Laterality        string // (0020,0060)

	InstanceNumber int // (0020,0013); 0 when absent
}
