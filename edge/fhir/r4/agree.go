package r4

import (
	"errors"
	"fmt"
	"strings"
)

// Disagreement compares Validate's verdict on a resource (ours) with an
// independent validator's (theirs, from google/fhir in tests), and returns
// nil when they agree. They agree when both accept or both reject, and
// also when only Validate rejects and each of its issues is one that the
// independent validator is known not to look for:
//   - an R4 element or resource type that wardgate does not write
//     (extensions, narrative, contained resources, a value of another type,
//     a Patient …);
//   - an R4 rule that google/fhir does not check: an empty string, array or
//     object; a string of white space only; a primitive written as an
//     object; a name given twice in an object; an element name or a code in
//     other letter case than R4's (google/fhir folds them); a control
//     character in markdown, a code, a URI or a literal reference, or more
//     than 1 MB of them; white space in a URI; the year 0000; a literal
//     reference whose id is not an id; a reference that is not a URL, or
//     whose resource type is not capitalised; a conditional reference that
//     searches a resource type the element does not allow; an invariant
//     of a datatype (Period's per-1: start after end), as google/fhir
//     evaluates no FHIRPath; SampledData.data outside R4's format (decimals,
//     E, U or L separated by single spaces), which google/fhir reads as any
//     string.
//
// Whatever the independent validator rejects, Validate must reject.
func Disagreement(ours, theirs error) error {
	switch {
	case (ours == nil) == (theirs == nil):
		return nil
	case ours == nil:
		return fmt.Errorf("r4 accepts what the independent validator rejects: %v", theirs)
	}
	var invalid *InvalidError
	if !errors.As(ours, &invalid) {
		return fmt.Errorf("r4 fails where the independent validator accepts: %v", ours)
	}
	var unexplained []string
	for _, is := range invalid.Issues {
		if is.kind == broken {
			unexplained = append(unexplained, is.Path+": "+is.Message)
		}
	}
	if len(unexplained) > 0 {
		return fmt.Errorf("r4 rejects what the independent validator accepts, for %s", strings.Join(unexplained, "; "))
	}
	return nil
}
