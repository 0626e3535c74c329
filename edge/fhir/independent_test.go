package fhir

import (
	"fmt"

	"github.com/wardgate/wardgate/edge/fhir/fhirserver"
	"github.com/wardgate/wardgate/edge/fhir/r4"
	"github.com/wardgate/wardgate/edge/fhir/r4/r4google"
)

// Every resource these tests make is checked by google/fhir's validator as
// well as by package r4, and so is every write to their FHIR servers: a
// disagreement fails the test that made the resource.
func init() {
	fhirserver.Independent = r4google.Validate
	validate = func(b []byte) error {
		ours := r4.Validate(b)
		if err := r4.Disagreement(ours, r4google.Validate(b)); err != nil {
			panic(fmt.Sprintf("the mapper's resource: %v\n%s", err, b))
		}
		return ours
	}
}
