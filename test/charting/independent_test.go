package charting

import (
	"github.com/wardgate/wardgate/edge/fhir/fhirserver"
	"github.com/wardgate/wardgate/edge/fhir/r4/r4google"
)

// The FHIR servers of these tests check every write with google/fhir's
// validator as well as with package r4 (fhirserver.Independent).
func init() { fhirserver.Independent = r4google.Validate }
