// Package r4 checks the FHIR R4 resources that wardgate writes — Observation,
// Device, ImagingStudy and Endpoint, with the elements wardgate fills in —
// before they leave the mapper, and in the FHIR server of the tests and the
// demo. It is written from the R4 specification (4.0.1): each resource's and
// datatype's elements with their cardinalities (definitions.go), the formats
// of the primitive types (formats.go), the codes of the required bindings,
// and the resource types a reference may point at.
//
// What it rejects:
//   - what R4 forbids: an element that R4 does not define, a required
//     element missing, an array where R4 allows one value (or one value where
//     it asks for an array), a primitive outside its type's format, a code
//     outside a required binding, a literal reference to a resource type the
//     element does not allow, an unknown resourceType; also what R4's JSON
//     format forbids: empty strings, arrays and objects, null, strings of
//     white space only;
//   - elements and resource types R4 has but wardgate does not write
//     (extensions, narrative, contained resources, Observation.note …): they
//     are refused as "not written by wardgate", so that a change to the
//     mapper that writes one is noticed here and the definitions grow with it.
//
// Tests hold it against google/fhir's validating unmarshaller (package
// r4google, imported by tests only): both agree on every resource wardgate
// writes, and a fuzz test checks that whatever google/fhir rejects this
// package rejects too (Disagreement says exactly where they may differ).
package r4

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Issue is one problem found in a resource.
type Issue struct {
	Path    string // FHIRPath-like location, when known
	Message string

	kind kind
}

// kind sorts issues by who else would see them: see Disagreement.
type kind uint8

const (
	// broken: R4 forbids it, and google/fhir's reading of R4 does too.
	broken kind = iota
	// notWritten: an R4 element or resource type that wardgate does not
	// write.
	notWritten
	// r4Only: an R4 rule that google/fhir does not check (listed in
	// agree.go).
	r4Only
)

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

// Models reports whether resources of resourceType are among those this
// package checks (the ones wardgate writes).
func Models(resourceType string) bool { return resources[resourceType] != nil }

// Validate checks one resource, given as JSON. It returns nil or an
// *InvalidError.
func Validate(resource []byte) error {
	if !utf8.Valid(resource) {
		return &InvalidError{ResourceType: "resource", Issues: []Issue{{Message: "not UTF-8"}}, Resource: resource}
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(resource, &fields); err != nil {
		return &InvalidError{ResourceType: "resource", Issues: []Issue{{Message: "not a JSON object: " + err.Error()}}, Resource: resource}
	}
	rt, ok := fields["resourceType"]
	if !ok {
		return &InvalidError{ResourceType: "resource", Issues: []Issue{{Message: "no resourceType"}}, Resource: resource}
	}
	var name string
	if err := json.Unmarshal(rt, &name); err != nil || name == "" {
		return &InvalidError{ResourceType: "resource", Issues: []Issue{{Path: "resourceType", Message: "not a resource type: " + string(rt)}}, Resource: resource}
	}
	def := resources[name]
	if def == nil {
		is := Issue{Path: "resourceType", Message: strconv.Quote(name) + " is not an R4 resource type"}
		if isResourceType(name) {
			is = Issue{Path: "resourceType", Message: name + " is not written by wardgate", kind: notWritten}
		}
		return &InvalidError{ResourceType: name, Issues: []Issue{is}, Resource: resource}
	}
	delete(fields, "resourceType")
	var c checker
	c.fields(name, def, fields)
	if len(c.issues) > 0 {
		return &InvalidError{ResourceType: name, Issues: c.issues, Resource: resource}
	}
	return nil
}

// checker gathers the issues of one resource.
type checker struct {
	issues []Issue
}

func (c *checker) add(path string, k kind, msg string) {
	c.issues = append(c.issues, Issue{Path: path, Message: msg, kind: k})
}

// object checks a JSON object against a datatype's or backbone element's
// definition and returns its fields.
func (c *checker) object(path string, def *structure, raw json.RawMessage) map[string]json.RawMessage {
	if len(raw) == 0 || raw[0] != '{' {
		c.add(path, broken, "expected an object ("+def.name+")")
		return nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		c.add(path, broken, "expected an object ("+def.name+")")
		return nil
	}
	c.fields(path, def, fields)
	return fields
}

// fields checks the names and values of an object, and that the elements
// its definition requires are there.
func (c *checker) fields(path string, def *structure, fields map[string]json.RawMessage) {
	if len(fields) == 0 {
		c.add(path, r4Only, "an empty object")
		return
	}
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		at := path + "." + k
		e := def.byName[k]
		switch {
		case e != nil && e.typ == tOther:
			c.add(at, notWritten, "not written by wardgate")
		case e != nil:
			c.value(at, e, fields[k])
		case strings.HasPrefix(k, "_") && def.byName[k[1:]] != nil && def.byName[k[1:]].primitive():
			c.add(at, notWritten, "extensions of primitive elements are not written by wardgate")
		case k != "" && def.byName[strings.ToLower(k[:1])+k[1:]] != nil:
			c.add(at, r4Only, "element names are case-sensitive")
		default:
			c.add(at, broken, "not an element of "+def.name)
		}
	}
	for _, e := range def.required {
		if !present(fields, e.name) {
			c.add(path+"."+e.name, broken, "missing required element")
		}
	}
}

// value checks the value of one element: an array or a single value, as its
// cardinality asks.
func (c *checker) value(path string, e *element, raw json.RawMessage) {
	raw = bytes.TrimSpace(raw)
	if string(raw) == "null" {
		c.add(path, broken, "null")
		return
	}
	if !e.many {
		if len(raw) > 0 && raw[0] == '[' {
			c.add(path, broken, "an array where one value is allowed")
			return
		}
		c.single(path, e, raw)
		return
	}
	var items []json.RawMessage
	if len(raw) == 0 || raw[0] != '[' || json.Unmarshal(raw, &items) != nil {
		c.add(path, broken, "expected an array")
		return
	}
	if len(items) == 0 {
		c.add(path, r4Only, "an empty array")
		return
	}
	for i, item := range items {
		at := path + "[" + strconv.Itoa(i) + "]"
		item = bytes.TrimSpace(item)
		if string(item) == "null" {
			c.add(at, broken, "null")
			continue
		}
		c.single(at, e, item)
	}
}

func (c *checker) single(path string, e *element, raw json.RawMessage) {
	switch e.typ {
	case tObject:
		c.object(path, e.def, raw)
	case tReference:
		fields := c.object(path, reference, raw)
		if ref, ok := fields["reference"]; ok {
			var s string
			if json.Unmarshal(ref, &s) == nil {
				if k, msg, bad := target(s, e.targets); bad {
					c.add(path+".reference", k, msg)
				}
			}
		}
	default:
		if k, msg, bad := primitive(e, raw); bad {
			c.add(path, k, msg)
		}
	}
}

// present says whether an element is in an object, under its name or in
// other letter case (refused above, and not missing as well).
func present(fields map[string]json.RawMessage, name string) bool {
	if _, ok := fields[name]; ok {
		return true
	}
	for k := range fields {
		if k != "" && strings.ToLower(k[:1])+k[1:] == name {
			return true
		}
	}
	return false
}
