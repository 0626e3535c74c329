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
//     white space only; two types of one choice element (effectiveDateTime
//     and effectivePeriod); the invariants of the datatypes it describes
//     (Period's per-1: start <= end) and the format R4 gives SampledData.data;
//   - elements and resource types R4 has but wardgate does not write
//     (extensions, narrative, contained resources, Observation.bodySite …):
//     they are refused as "not written by wardgate", so that a change to the
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
	if !json.Valid(resource) {
		var v any
		msg := "not JSON"
		if err := json.Unmarshal(resource, &v); err != nil {
			msg += ": " + err.Error()
		}
		return &InvalidError{ResourceType: "resource", Issues: []Issue{{Message: msg}}, Resource: resource}
	}
	body := bytes.TrimSpace(resource)
	if body[0] != '{' {
		return &InvalidError{ResourceType: "resource", Issues: []Issue{{Message: "not a JSON object"}}, Resource: resource}
	}
	c := checker{path: make([]byte, 0, 64)}
	start, end := c.members(body)
	var rt []byte
	for _, m := range c.mem[start:end] {
		if string(m.name) == "resourceType" {
			rt = m.val
		}
	}
	if rt == nil {
		return &InvalidError{ResourceType: "resource", Issues: []Issue{{Message: "no resourceType"}}, Resource: resource}
	}
	name, ok := stringValue(rt)
	if !ok || name == "" {
		return &InvalidError{ResourceType: "resource", Issues: []Issue{{Path: "resourceType", Message: "not a resource type: " + clip(rt)}}, Resource: resource}
	}
	def := resources[name]
	if def == nil {
		is := Issue{Path: "resourceType", Message: strconv.Quote(name) + " is not an R4 resource type"}
		if isResourceType(name) {
			is = Issue{Path: "resourceType", Message: name + " is not written by wardgate", kind: notWritten}
		}
		return &InvalidError{ResourceType: name, Issues: []Issue{is}, Resource: resource}
	}
	c.path = append(c.path, name...)
	c.fields(def, start, end, true)
	if len(c.issues) > 0 {
		return &InvalidError{ResourceType: name, Issues: c.issues, Resource: resource}
	}
	return nil
}

// checker walks one resource and gathers its issues. The resource is valid
// JSON (json.Valid) before the walk starts, so the walk only finds where
// values begin and end. The path of the element at hand and the names and
// values of the objects being walked are kept in buffers that grow and
// shrink with the walk, so that a valid resource costs few allocations.
type checker struct {
	issues []Issue
	path   []byte
	mem    []member
	items  [][]byte
}

// member is a name and its value in an object.
type member struct {
	name []byte // unescaped
	val  []byte // the value as it is written, without white space around it
}

func (c *checker) add(k kind, msg string) {
	c.issues = append(c.issues, Issue{Path: string(c.path), Message: msg, kind: k})
}

// push appends a name to the path; the returned length pops it.
func (c *checker) push(name []byte) int {
	n := len(c.path)
	c.path = append(append(c.path, '.'), name...)
	return n
}

// object checks a JSON object against a datatype's or backbone element's
// definition, and returns the value of its element name, if it has one.
func (c *checker) object(def *structure, raw []byte, name string) []byte {
	if raw[0] != '{' {
		c.add(broken, "expected an object ("+def.name+")")
		return nil
	}
	start, end := c.members(raw)
	var v []byte
	for _, m := range c.mem[start:end] {
		if string(m.name) == name {
			v = m.val
		}
	}
	c.fields(def, start, end, false)
	if def.invariant != nil {
		if k, msg, bad := def.invariant(c.mem[start:end]); bad {
			c.add(k, msg)
		}
	}
	c.mem = c.mem[:start]
	return v
}

// fields checks the names and values of an object (c.mem[start:end]), and
// that the elements its definition requires are there.
func (c *checker) fields(def *structure, start, end int, resource bool) {
	if start == end {
		c.add(r4Only, "an empty object")
		return
	}
	for i := start; i < end; i++ {
		m := c.mem[i]
		if resource && string(m.name) == "resourceType" {
			continue
		}
		n := c.push(m.name)
		if duplicate(c.mem[i+1:end], m.name) {
			// Decoders keep the last; so does this check.
			c.add(r4Only, "a name given twice")
			c.path = c.path[:n]
			continue
		}
		e, ext, folded := def.lookup(m.name)
		if other := def.otherChoice(c.mem[start:i], e); other != "" {
			// R4: "only one type of a choice element"; google/fhir refuses
			// the second as well ("cannot accept multiple values").
			c.add(broken, "a second type of "+def.choice(e.name)+"[x]: "+other+" is given too")
		}
		switch {
		case e == nil || ext && !e.primitive():
			c.add(broken, "not an element of "+def.name)
		case ext:
			c.add(notWritten, "extensions of primitive elements are not written by wardgate")
		case folded:
			c.add(r4Only, "element names are case-sensitive")
		case e.typ == tOther || e.typ == tOtherPrimitive:
			c.add(notWritten, "not written by wardgate")
		default:
			c.value(e, m.val)
		}
		c.path = c.path[:n]
	}
	for _, e := range def.required {
		if !present(def, c.mem[start:end], e.name) {
			n := c.push([]byte(e.name))
			c.add(broken, "missing required element")
			c.path = c.path[:n]
		}
	}
}

// otherChoice returns the name of an element among before that is another
// type of the choice element e is a type of ("effectiveDateTime" before
// "effectivePeriod"), or "". A type and its primitive extension
// ("_effectiveDateTime") are one type.
func (s *structure) otherChoice(before []member, e *element) string {
	if e == nil || len(s.choices) == 0 {
		return ""
	}
	c := s.choice(e.name)
	if c == "" {
		return ""
	}
	for _, m := range before {
		if o, _, _ := s.lookup(m.name); o != nil && o != e && s.choice(o.name) == c {
			return o.name
		}
	}
	return ""
}

func duplicate(rest []member, name []byte) bool {
	for _, m := range rest {
		if bytes.Equal(m.name, name) {
			return true
		}
	}
	return false
}

// lookup finds the element a name in an object stands for: ext when the
// name is that of its primitive extension ("_status"), folded when it
// differs from R4's name in the case of its first letter, which google/fhir
// reads without ("Status").
func (s *structure) lookup(name []byte) (e *element, ext, folded bool) {
	if len(name) > 0 && name[0] == '_' {
		name, ext = name[1:], true
	}
	if e = s.byName[string(name)]; e != nil || len(name) == 0 {
		return e, ext, false
	}
	if e = s.byName[lowerFirst(string(name))]; e != nil {
		return e, ext, true
	}
	return nil, ext, false
}

func lowerFirst(s string) string {
	if s[0] >= 'A' && s[0] <= 'Z' {
		return string(s[0]+'a'-'A') + s[1:]
	}
	return s
}

// present says whether an element is in an object, under its name, in other
// letter case or as its extension alone (each refused above, and not missing
// as well).
func present(def *structure, members []member, name string) bool {
	for _, m := range members {
		if e, _, _ := def.lookup(m.name); e != nil && e.name == name {
			return true
		}
	}
	return false
}

// value checks the value of one element: an array or a single value, as its
// cardinality asks.
func (c *checker) value(e *element, raw []byte) {
	if raw[0] == 'n' {
		c.add(broken, "null")
		return
	}
	if !e.many {
		if raw[0] == '[' {
			c.add(broken, "an array where one value is allowed")
			return
		}
		c.single(e, raw)
		return
	}
	if raw[0] != '[' {
		c.add(broken, "expected an array")
		return
	}
	start, end := c.elements(raw)
	if start == end {
		c.add(r4Only, "an empty array")
	}
	for i := start; i < end; i++ {
		item := c.items[i]
		n := len(c.path)
		c.path = append(strconv.AppendInt(append(c.path, '['), int64(i-start), 10), ']')
		if item[0] == 'n' {
			c.add(broken, "null")
		} else {
			c.single(e, item)
		}
		c.path = c.path[:n]
	}
	c.items = c.items[:start]
}

func (c *checker) single(e *element, raw []byte) {
	switch e.typ {
	case tObject:
		c.object(e.def, raw, "")
	case tReference:
		if ref := c.object(reference, raw, "reference"); ref != nil {
			if s, ok := stringValue(ref); ok {
				if k, msg, bad := target(s, e.targets); bad {
					n := c.push([]byte("reference"))
					c.add(k, msg)
					c.path = c.path[:n]
				}
			}
		}
	default:
		if k, msg, bad := primitive(e, raw); bad {
			c.add(k, msg)
		}
	}
}
