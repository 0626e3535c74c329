// Package r4google is the independent check used by tests: it validates
// FHIR R4 JSON with google/fhir/go's validating unmarshaller (required
// elements, cardinalities, primitive formats, reference types, codes of
// required bindings), so that tests can hold package r4's own validator
// against a second reading of the specification. Only tests import it: the
// library's generated protos and their descriptors cost the binary some
// 35 MB and every process that links them 15 MB at start.
package r4google

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
)

var (
	once  sync.Once
	um    *jsonformat.Unmarshaller
	umErr error
)

func unmarshaller() (*jsonformat.Unmarshaller, error) {
	once.Do(func() {
		um, umErr = jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	})
	return um, umErr
}

// InvalidError lists what google/fhir finds wrong with a resource.
type InvalidError struct {
	ResourceType string
	Problems     []string
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("invalid %s (google/fhir): %s", e.ResourceType, strings.Join(e.Problems, "; "))
}

// Validate checks one resource, given as JSON. It returns nil or an
// *InvalidError.
func Validate(resource []byte) error {
	u, err := unmarshaller()
	if err != nil {
		return err
	}
	var head struct {
		ResourceType string `json:"resourceType"`
	}
	if err := json.Unmarshal(resource, &head); err != nil {
		return &InvalidError{ResourceType: "resource", Problems: []string{"not JSON: " + err.Error()}}
	}
	if head.ResourceType == "" {
		return &InvalidError{ResourceType: "resource", Problems: []string{"no resourceType"}}
	}
	if _, err := u.Unmarshal(resource); err != nil {
		return &InvalidError{ResourceType: head.ResourceType, Problems: problems(err)}
	}
	return nil
}

// problems splits the library's error (often a list) into lines.
func problems(err error) []string {
	var list interface{ Unwrap() []error }
	if errors.As(err, &list) {
		var out []string
		for _, e := range list.Unwrap() {
			out = append(out, e.Error())
		}
		if len(out) > 0 {
			return out
		}
	}
	var out []string
	for _, line := range strings.Split(err.Error(), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out
}
