package config

import (
	"testing"
)

// dicom.commitment: what committed means, how long a reference may wait,
// and where reports go (an allow entry's host and port); check says what
// cannot work.
func TestDICOMCommitment(t *testing.T) {
	base := "site: ward-4b\ndata_dir: data\nfhir: {base_url: https://fhir.example.org/R4, patient_identifier_system: urn:oid:1.2.3.4}\n"
	for _, tc := range []struct {
		name, dicom   string
		problem, warn string
	}{
		{"spooled with a report address", "dicom: {ae_title: WARDGATE, allow: [{ae_title: CT01, host: 10.0.0.5, port: 104}], commitment: {}}\n", "", ""},
		{"forwarded", "dicom: {ae_title: WARDGATE, allow: [{ae_title: CT01, host: 10.0.0.5, port: 104}], forward: [{ae_title: PACS, host: 10.0.0.9, port: 104}], commitment: {commit_after: forwarded, timeout: 4h}}\n", "", ""},
		{"forwarded without destinations", "dicom: {ae_title: WARDGATE, allow: [{ae_title: CT01, host: 10.0.0.5, port: 104}], commitment: {commit_after: forwarded}}\n", "dicom.commitment.commit_after: is forwarded, but dicom.forward lists no destination", ""},
		{"unknown commit_after", "dicom: {ae_title: WARDGATE, allow: [{ae_title: CT01, host: 10.0.0.5, port: 104}], commitment: {commit_after: archived}}\n", `dicom.commitment.commit_after: "archived" is not spooled or forwarded`, ""},
		{"timeout too short", "dicom: {ae_title: WARDGATE, allow: [{ae_title: CT01, host: 10.0.0.5, port: 104}], commitment: {timeout: 5s}}\n", "dicom.commitment.timeout: 5s is not from 1m to 720h", ""},
		{"unknown key", "dicom: {ae_title: WARDGATE, allow: [{ae_title: CT01, host: 10.0.0.5, port: 104}], commitment: {commit: spooled}}\n", "commit", ""},
		{"port without host", "dicom: {ae_title: WARDGATE, allow: [{ae_title: CT01, port: 104}], commitment: {}}\n", "dicom.allow[0].port: needs host", ""},
		{"port out of range", "dicom: {ae_title: WARDGATE, allow: [{ae_title: CT01, host: 10.0.0.5, port: 70000}], commitment: {}}\n", "dicom.allow[0].port: 70000 is not from 1 to 65535", ""},
		{"two addresses for one AE", "dicom: {ae_title: WARDGATE, allow: [{ae_title: CT01, host: 10.0.0.5, port: 104}, {ae_title: CT01, host: 10.0.0.6, port: 104}], commitment: {}}\n", "dicom.allow[1].port: CT01 has a port in dicom.allow[0] already", ""},
		{"no port", "dicom: {ae_title: WARDGATE, allow: [{ae_title: CT01, host: 10.0.0.5}], commitment: {}}\n", "", "dicom.allow[0]: (CT01) has no port"},
		{"allow_any", "dicom: {ae_title: WARDGATE, allow_any: true, listen: \"10.0.0.9:11112\", commitment: {}}\n", "", "dicom.commitment: with allow_any, no requester has an address"},
		{"port without commitment", "dicom: {ae_title: WARDGATE, allow: [{ae_title: CT01, host: 10.0.0.5, port: 104}]}\n", "", "dicom.allow[0].port: is used only with dicom.commitment"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := loadCase(t, base+tc.dicom, nil, tc.problem, tc.warn, "dicom.")
			if c != nil && c.DICOM.Commitment != nil && (c.DICOM.Commitment.CommitAfter == "" || c.DICOM.Commitment.Timeout == 0) {
				t.Fatalf("defaults not applied: %+v", c.DICOM.Commitment)
			}
		})
	}
}
