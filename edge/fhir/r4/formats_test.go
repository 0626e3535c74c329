package r4

import "testing"

// The formats of the primitive types, some of which no element wardgate
// writes has (date, positiveInt, oid, uuid).
func TestFormats(t *testing.T) {
	for _, tc := range []struct {
		typ      typ
		raw      string
		want     bool // valid
		wantKind kind // when not
	}{
		{tDate, `"2026-11-25"`, true, 0},
		{tDate, `"2026-11"`, true, 0},
		{tDate, `"2026"`, true, 0},
		{tDate, `"2026-02-29"`, false, broken},
		{tDate, `"2026-11-25T10:00:00Z"`, false, broken},
		{tDate, `"0000-01-01"`, false, r4Only},
		{tPositiveInt, `1`, true, 0},
		{tPositiveInt, `0`, false, broken},
		{tPositiveInt, `-1`, false, broken},
		{tPositiveInt, `2147483647`, true, 0},
		{tPositiveInt, `2147483648`, false, broken},
		{tUnsignedInt, `0`, true, 0},
		{tUnsignedInt, `1.0`, false, broken},
		{tOID, `"urn:oid:1.2.840.10008.1.2"`, true, 0},
		{tOID, `"urn:oid:3.1"`, false, broken},
		{tOID, `"urn:oid:1.02"`, false, broken},
		{tOID, `"1.2.3"`, false, broken},
		{tUUID, `"urn:uuid:c757873d-ec9a-4326-a141-556f43239520"`, true, 0},
		{tUUID, `"urn:uuid:C757873D-EC9A-4326-A141-556F43239520"`, false, broken},
		{tUUID, `"c757873d-ec9a-4326-a141-556f43239520"`, false, broken},
		{tID, `"a.b-C9"`, true, 0},
		{tID, `"a_b"`, false, broken},
		{tCanonical, `"http://hl7.org/fhir/StructureDefinition/bp|4.0.1"`, true, 0},
		{tURL, `"https://pacs.example.org/dicomweb"`, true, 0},
		{tURI, `"urn:ietf:rfc:3986"`, true, 0},
		{tURI, `"a b"`, false, r4Only},
		{tString, `""`, false, r4Only},
		{tString, `" \t"`, false, r4Only},
		{tString, `"a\u001fb"`, false, broken},
		{tMarkdown, `"a\u001fb"`, false, r4Only},
		{tCode, `"a b"`, true, 0},
		{tCode, `"a  b"`, false, broken},
		{tDecimal, `1.50`, true, 0},
		{tDecimal, `"1.50"`, false, broken},
		{tDecimal, `1e999`, false, broken},
		{tInstant, `"2026-11-25T10:15:02.123456Z"`, true, 0},
		{tInstant, `"2026-11-25"`, false, broken},
		{tDateTime, `"2026-11-25T10:15:02+14:00"`, true, 0},
		{tDateTime, `"2026-11-25T10:15:02+14:30"`, false, broken},
		{tDateTime, `"2026-11-25T23:59:60Z"`, false, broken},
	} {
		e := &element{name: "x", typ: tc.typ}
		k, msg, bad := primitive(e, []byte(tc.raw))
		if bad == tc.want || bad && k != tc.wantKind {
			t.Errorf("%d %s: bad %v (%d %s), want valid %v (kind %d)", tc.typ, tc.raw, bad, k, msg, tc.want, tc.wantKind)
		}
	}
}
