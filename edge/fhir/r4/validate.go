// Package r4 is the one place where wardgate uses google/fhir/go: it checks
// FHIR R4 JSON with that library's validating unmarshaller (required
// elements, cardinalities, primitive formats, reference types, value sets
// bound as codes). Keeping the library here keeps the rest of wardgate quick
// to build.
package r4

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

// Issue is one problem found in a resource.
type Issue struct {
	Path    string // FHIRPath-like location, when known
	Message string
}

// InvalidError lists what is wrong with a resource.
type InvalidError struct {
	ResourceType string
	Issues       []Issue
	// Resource is the JSON that failed, for the dead letter that keeps it.
	Resource []byte
}

func (e *InvalidError) Error() string {
	parts := make([]string, len(e.Issues))
	for i, is := range e.Issues {
		if is.Path != "" {
			parts[i] = is.Path + ": " + is.Message
		} else {
			parts[i] = is.Message
		}
	}
	return fmt.Sprintf("invalid %s: %s", e.ResourceType, strings.Join(parts, "; "))
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
		return &InvalidError{ResourceType: "resource", Issues: []Issue{{Message: "not JSON: " + err.Error()}}}
	}
	if head.ResourceType == "" {
		return &InvalidError{ResourceType: "resource", Issues: []Issue{{Message: "no resourceType"}}}
	}
	if _, err := u.Unmarshal(resource); err != nil {
		return &InvalidError{ResourceType: head.ResourceType, Issues: issues(err), Resource: resource}
	}
	return nil
}

// issues splits the library's error (often a list) into issues.
func issues(err error) []Issue {
	var list interface{ Unwrap() []error }
	if errors.As(err, &list) {
		var out []Issue
		for _, e := range list.Unwrap() {
			out = append(out, Issue{Message: e.Error()})
		}
		if len(out) > 0 {
			return out
		}
	}
	var out []Issue
	for _, line := range strings.Split(err.Error(), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, Issue{Message: line})
		}
	}
	return out
}
