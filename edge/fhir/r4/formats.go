package r4

import (
	"math"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// The formats of R4's primitive types (datatypes.html, "Primitive Types"),
// as regular expressions on the JSON value. The date and time types are
// also checked against the calendar (no 30 February), and the integer
// types against their range.
var (
	year           = `([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)`
	zone           = `(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))`
	clock          = `([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?`
	dateRE         = regexp.MustCompile(`^` + year + `(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?$`)
	dateTimeRE     = regexp.MustCompile(`^` + year + `(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T` + clock + zone + `)?)?)?$`)
	instantRE      = regexp.MustCompile(`^` + year + `-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T` + clock + zone + `$`)
	decimalRE      = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)
	unsignedIntRE  = regexp.MustCompile(`^(0|[1-9][0-9]*)$`)
	positiveIntRE  = regexp.MustCompile(`^\+?[1-9][0-9]*$`)
	codeRE         = regexp.MustCompile(`^[^\s]+(\s[^\s]+)*$`)
	idRE           = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)
	oidRE          = regexp.MustCompile(`^urn:oid:[0-2](\.(0|[1-9][0-9]*))+$`)
	uuidRE         = regexp.MustCompile(`^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	maxStringBytes = 1 << 20 // R4: strings SHALL NOT exceed 1 MB

	// samplesRE is R4's format of SampledData.data. Its sample allows what
	// the definition's text would not call a decimal ("", "+", "e5", so
	// also two spaces in a row): R4's expression is followed as written.
	sample    = `([-+]?[0-9]*(\.[0-9]+)?([eE][-+]?[0-9]+)?|E|U|L)`
	samplesRE = regexp.MustCompile(`^` + sample + `( ` + sample + `)*$`)
)

// primitive checks the JSON value of a primitive element; bad says whether
// there is a problem, k and msg what it is.
func primitive(e *element, raw []byte) (k kind, msg string, bad bool) {
	if raw[0] == '{' {
		// google/fhir reads an object there as the primitive's extensions.
		return r4Only, "a primitive value as an object", true
	}
	switch e.typ {
	case tDecimal:
		if !decimalRE.Match(raw) {
			return broken, "not a decimal: " + clip(raw), true
		}
		if _, err := strconv.ParseFloat(string(raw), 64); err != nil {
			return broken, "a decimal out of the range of a 64-bit float: " + clip(raw), true
		}
		return 0, "", false
	case tUnsignedInt, tPositiveInt:
		re, low := unsignedIntRE, uint64(0)
		if e.typ == tPositiveInt {
			re, low = positiveIntRE, 1
		}
		if !re.Match(raw) {
			return broken, "not an integer of its type: " + clip(raw), true
		}
		n, err := strconv.ParseUint(strings.TrimPrefix(string(raw), "+"), 10, 64)
		if err != nil || n < low || n > math.MaxInt32 {
			return broken, "out of range: " + clip(raw), true
		}
		return 0, "", false
	}
	s, ok := stringValue(raw)
	if !ok {
		return broken, "expected a string: " + clip(raw), true
	}
	if s == "" {
		return r4Only, "an empty string", true
	}
	if e.codes != nil {
		return bound(s, e.codes)
	}
	switch e.typ {
	case tString:
		return text(s, broken)
	case tMarkdown:
		return text(s, r4Only)
	case tCode:
		if !codeRE.MatchString(s) {
			return broken, "not a code: " + strconv.Quote(s), true
		}
		return text(s, r4Only)
	case tID:
		if !idRE.MatchString(s) {
			return broken, "not an id: " + strconv.Quote(s), true
		}
	case tOID:
		if !oidRE.MatchString(s) {
			return broken, "not an oid: " + strconv.Quote(s), true
		}
	case tUUID:
		if !uuidRE.MatchString(s) {
			return broken, "not a uuid: " + strconv.Quote(s), true
		}
	case tURI, tURL, tCanonical:
		if _, err := url.Parse(s); err != nil {
			return broken, "not a URI: " + strconv.Quote(s), true
		}
		if strings.IndexFunc(s, unicode.IsSpace) >= 0 {
			return r4Only, "white space in a URI", true
		}
		return text(s, r4Only)
	case tDate:
		return when(s, dateRE, "2006-01-02", "2006-01", "2006")
	case tDateTime:
		return when(s, dateTimeRE, time.RFC3339Nano, "2006-01-02", "2006-01", "2006")
	case tInstant:
		return when(s, instantRE, time.RFC3339Nano)
	case tLiteral:
		return literal(s)
	case tSamples:
		if k, msg, bad := text(s, broken); bad {
			return k, msg, bad
		}
		// google/fhir reads SampledData.data as any string.
		if !samplesRE.MatchString(s) {
			return r4Only, "not decimals, E, U or L separated by single spaces: " + clip([]byte(strconv.Quote(s))), true
		}
	}
	return 0, "", false
}

// text checks what R4 asks of every string: at most 1 MB, no control
// characters but tab, carriage return and line feed, not only white space.
// k is the kind of a control character: google/fhir checks them in strings
// only, not in markdown, codes or URIs.
func text(s string, k kind) (kind, string, bool) {
	if len(s) > maxStringBytes {
		return k, "longer than 1 MB", true
	}
	for _, r := range s {
		if r < 0x20 && r != '\t' && r != '\r' && r != '\n' {
			return k, "a control character " + strconv.QuoteRune(r), true
		}
	}
	if strings.TrimSpace(s) == "" {
		return r4Only, "only white space", true
	}
	return 0, "", false
}

// bound checks a code of a required binding.
func bound(s string, codes []string) (kind, string, bool) {
	for _, c := range codes {
		if s == c {
			return 0, "", false
		}
	}
	// google/fhir reads codes as the names of its enums: without case,
	// "_" for "-", and the comparators by name.
	fold := strings.ReplaceAll(strings.ToUpper(s), "-", "_")
	for _, c := range codes {
		if fold == strings.ReplaceAll(strings.ToUpper(c), "-", "_") || fold == comparatorNames[c] {
			return r4Only, "codes are case-sensitive: " + strconv.Quote(s) + " is not one of " + strings.Join(codes, ", "), true
		}
	}
	return broken, strconv.Quote(s) + " is not one of " + strings.Join(codes, ", "), true
}

// comparatorNames are the names google/fhir gives Quantity.comparator's codes.
var comparatorNames = map[string]string{"<": "LESS_THAN", "<=": "LESS_THAN_OR_EQUAL_TO", ">=": "GREATER_THAN_OR_EQUAL_TO", ">": "GREATER_THAN"}

// when checks a date, dateTime or instant: its format, then that it is a
// day of the calendar. R4 allows a leap second (:60), which no clock
// wardgate reads shows, and which Go's time (like google/fhir) refuses.
func when(s string, re *regexp.Regexp, layouts ...string) (kind, string, bool) {
	if !re.MatchString(s) {
		// R4's year has no 0000; google/fhir's has.
		if strings.HasPrefix(s, "0000") && re.MatchString("2000"+s[4:]) && parses(s, layouts) {
			return r4Only, "year 0000", true
		}
		return broken, "not a date or time of its type: " + strconv.Quote(s), true
	}
	if !parses(s, layouts) {
		return broken, "not a day of the calendar or a time of day: " + strconv.Quote(s), true
	}
	return 0, "", false
}

func parses(s string, layouts []string) bool {
	for _, l := range layouts {
		if _, err := time.Parse(l, s); err == nil {
			return true
		}
	}
	return false
}

// literal checks Reference.reference: a literal reference "Type/id" (or
// "Type/id/_history/version"), or a URL (absolute, or a conditional
// reference "Type?search"). R4 types it as a string; google/fhir checks it
// as one, except a literal reference, which it splits into type and id.
func literal(s string) (kind, string, bool) {
	if _, id, ok := literalParts(s); ok {
		if !idRE.MatchString(id) {
			return r4Only, "not an id: " + strconv.Quote(id), true
		}
		return text(s, r4Only)
	}
	if k, msg, bad := text(s, broken); bad {
		return k, msg, bad
	}
	if strings.HasPrefix(s, "#") {
		return notWritten, "references to contained resources are not written by wardgate", true
	}
	if rt, _, ok := strings.Cut(s, "/"); ok && rt != "" && isResourceType(strings.ToUpper(rt[:1])+rt[1:]) && !isResourceType(rt) {
		return r4Only, "resource types are case-sensitive", true
	}
	if _, err := url.Parse(s); err != nil {
		return r4Only, "not a URL: " + strconv.Quote(s), true
	}
	return 0, "", false
}

// literalParts splits a literal reference to an R4 resource type into the
// type and the id.
func literalParts(s string) (resourceType, id string, ok bool) {
	parts := strings.Split(s, "/")
	if !(len(parts) == 2 || len(parts) == 4 && parts[2] == "_history") || !isResourceType(parts[0]) {
		return "", "", false
	}
	return parts[0], parts[1], true
}

// target checks that a reference points at a resource type its element
// allows: a literal reference by its type (as google/fhir does), a
// conditional reference by the type it searches.
func target(s string, allowed []string) (kind, string, bool) {
	k, rt := broken, ""
	if t, _, ok := literalParts(s); ok {
		rt = t
	} else if t, _, ok := strings.Cut(s, "?"); ok && isResourceType(t) {
		k, rt = r4Only, t
	}
	if rt == "" || len(allowed) == 0 {
		return 0, "", false
	}
	for _, a := range allowed {
		if rt == a {
			return 0, "", false
		}
	}
	return k, "a reference to a " + rt + " where " + strings.Join(allowed, " or ") + " is allowed", true
}

func clip(raw []byte) string {
	if len(raw) > 40 {
		return string(raw[:40]) + "…"
	}
	return string(raw)
}
