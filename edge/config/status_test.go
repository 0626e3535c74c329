package config

import (
	"strings"
	"testing"
)

// fhir.observation_status is final unless the site says preliminary; any
// other value is refused with its key.
func TestObservationStatus(t *testing.T) {
	head := "site: ward-4b\ndata_dir: data\nfhir: {base_url: https://fhir.example.org/R4"
	c, _, err := Load(write(t, head+"}\n", nil))
	if err != nil || c.FHIR.ObservationStatus != "final" {
		t.Fatalf("default: %q, %v", c.FHIR.ObservationStatus, err)
	}
	c, _, err = Load(write(t, head+", observation_status: preliminary}\n", nil))
	if err != nil || c.FHIR.ObservationStatus != "preliminary" {
		t.Fatalf("preliminary: %v", err)
	}
	_, _, err = Load(write(t, head+", observation_status: amended}\n", nil))
	if err == nil || !strings.Contains(err.Error(), `fhir.observation_status: "amended" is not one of final, preliminary`) {
		t.Fatalf("amended: %v", err)
	}
}
