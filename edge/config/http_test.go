package config

import (
	"testing"
	"time"
)

// check refuses an admin token with less than 128 bits of randomness,
// judged by length and alphabet, and says the rule.
func TestAdminTokenStrength(t *testing.T) {
	base := "site: ward-4b\ndata_dir: data\nfhir: {base_url: https://fhir.example.org/R4, patient_identifier_system: urn:oid:1.2.3.4}\nhttp: {listen: 127.0.0.1:8080, admin_token_file: tok}\n"
	for _, tc := range []struct{ name, token, problem string }{
		{"32 hex", "0123456789abcdef0123456789ABCDEF", ""},
		{"31 hex", "0123456789abcdef0123456789abcde", "the token has 31 hex characters, at most 124 bits; it needs at least 128 bits of randomness: 32 hex characters or 22 base64url characters"},
		{"22 base64url", "Zm9vYmFyLWJhei1xdXV4LX", ""},
		{"21 base64url", "Zm9vYmFyLWJhei1xdXV4L", "21 base64 characters, at most 126 bits"},
		{"base64 padding does not count", "Zm9vYmFyLWJhei1xdXV4L=", "21 base64 characters"},
		{"one character repeated", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "one character repeated"},
		{"a short password", "s3cret!", "7 printable characters"},
		{"20 printable", "s3cret!s3cret!s3cre#", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			loadCase(t, base, map[string]string{"tok": tc.token + "\n"}, tc.problem, "", "admin_token_file")
		})
	}
}

// http.tls is checked like dicom.tls; a listener reachable from another
// machine warns without it, and about public_values.
func TestHTTPTLSAndReach(t *testing.T) {
	now := time.Now()
	cert, key := pemPair(t, "wardgate", now.Add(-time.Hour), now.Add(365*24*time.Hour))
	oldCert, oldKey := pemPair(t, "old", now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	files := map[string]string{"c.crt": cert, "c.key": key, "old.crt": oldCert, "old.key": oldKey}
	base := "site: ward-4b\ndata_dir: data\nfhir: {base_url: https://fhir.example.org/R4, patient_identifier_system: urn:oid:1.2.3.4}\n"
	for _, tc := range []struct{ name, http, problem, warn string }{
		{"loopback without TLS", "{listen: 127.0.0.1:8080}", "", ""},
		{"ward address without TLS", "{listen: 10.1.2.3:8080}", "", "http.listen: the status page and the admin token travel unencrypted"},
		{"127.0.0.2 counts as reachable", "{listen: 127.0.0.2:8080}", "", "travel unencrypted"},
		{"ward address with TLS", "{listen: 10.1.2.3:8443, tls: {cert_file: c.crt, key_file: c.key}}", "", ""},
		{"TLS without a key", "{listen: 10.1.2.3:8443, tls: {cert_file: c.crt}}", "http.tls: cert_file and key_file are required", ""},
		{"expired certificate", "{listen: 10.1.2.3:8443, tls: {cert_file: old.crt, key_file: old.key}}", "http.tls.cert_file: the certificate expired", ""},
		{"public values on the ward network", "{listen: 10.1.2.3:8443, public_values: true, tls: {cert_file: c.crt, key_file: c.key}}", "", "http.public_values: anyone who can reach"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			loadCase(t, base+"http: "+tc.http+"\n", files, tc.problem, tc.warn, "http.")
		})
	}
}

func TestValuesNeedToken(t *testing.T) {
	for _, tc := range []struct {
		h    HTTP
		want bool
	}{
		{HTTP{Listen: "127.0.0.1:8080"}, false},
		{HTTP{Listen: "[::1]:8080"}, false},
		{HTTP{Listen: "localhost:8080"}, false},
		{HTTP{Listen: "127.0.0.2:8080"}, true},
		{HTTP{Listen: ":8080"}, true},
		{HTTP{Listen: "10.0.0.5:8080"}, true},
		{HTTP{Listen: "10.0.0.5:8080", PublicValues: true}, false},
	} {
		if got := tc.h.ValuesNeedToken(); got != tc.want {
			t.Errorf("%+v: ValuesNeedToken %v, want %v", tc.h, got, tc.want)
		}
	}
}
