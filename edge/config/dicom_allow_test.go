package config

import (
	"testing"
)

// A DICOM node is closed by default: an empty allow list is refused unless
// allow_any says so, both at once are refused, and allow_any on every
// interface is warned about.
func TestDICOMIsClosedByDefault(t *testing.T) {
	base := "site: ward-4b\ndata_dir: data\nfhir: {base_url: https://fhir.example.org/R4, patient_identifier_system: urn:oid:1.2.3.4}\n"
	for _, tc := range []struct {
		name, dicom   string
		problem, warn string
	}{
		{"no allow", "dicom: {ae_title: WARDGATE}\n", "dicom.allow: is empty: every host on the network could send studies", ""},
		{"allow and allow_any", "dicom: {ae_title: WARDGATE, allow_any: true, allow: [{ae_title: CT01}]}\n", "dicom.allow_any: is true and dicom.allow lists modalities", ""},
		{"allow_any on every interface", "dicom: {ae_title: WARDGATE, allow_any: true}\n", "", "dicom.allow_any: accepts every calling AE title while dicom.listen :11112 listens on every interface"},
		{"allow_any on one address", "dicom: {ae_title: WARDGATE, allow_any: true, listen: \"10.20.0.9:11112\"}\n", "", ""},
		{"allow", "dicom: {ae_title: WARDGATE, allow: [{ae_title: CT01, host: 10.0.0.5}]}\n", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) { loadCase(t, base+tc.dicom, nil, tc.problem, tc.warn, "dicom.") })
	}
}
