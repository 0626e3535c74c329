package edge

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardgate/wardgate/edge/config"
)

// An ADT feed places patients by the record numbers of
// fhir.patient_identifier_system: without it every event is refused at
// run time (AE), while `wardgate check` passed the file. It is an error
// of the file now, as with dicom.
func TestReview12ADTFeedNeedsThePatientIdentifierSystem(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wardgate.yaml")
	os.WriteFile(path, []byte("site: ward-4b\ndata_dir: data\nhttp: {listen: \"127.0.0.1:0\"}\nfhir:\n  base_url: http://127.0.0.1:1/\n"+
		"patients:\n  adt: {listen: \"127.0.0.1:0\", allow_any: true, time_zone: UTC}\n"), 0o600)
	_, _, err := config.Load(path)
	if err == nil || !strings.Contains(err.Error(), "fhir.patient_identifier_system") {
		t.Fatalf("a config with patients.adt and no fhir.patient_identifier_system: %v", err)
	}
}

// A bed template with two parts side by side makes one bed id of two
// beds (ICU1^^2 and ICU^^12 are both ICU12): refused, naming the key.
func TestReview12BedTemplateWithPartsSideBySideIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wardgate.yaml")
	os.WriteFile(path, []byte("site: ward-4b\ndata_dir: data\nhttp: {listen: \"127.0.0.1:0\"}\nfhir:\n  base_url: http://127.0.0.1:1/\n"+
		"hl7: {listen: \"127.0.0.1:0\", allow_any: true, bed: \"{point_of_care}{bed}\"}\n"), 0o600)
	_, _, err := config.Load(path)
	if err == nil || !strings.Contains(err.Error(), "hl7.bed") {
		t.Fatalf("a bed template {point_of_care}{bed}: %v", err)
	}
}
