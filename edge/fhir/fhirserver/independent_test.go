package fhirserver

import "github.com/wardgate/wardgate/edge/fhir/r4/r4google"

// The servers of these tests check every write with google/fhir as well.
func init() { Independent = r4google.Validate }
