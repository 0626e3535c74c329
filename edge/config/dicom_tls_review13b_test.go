package config

import (
	"strings"
	"testing"
	"time"
)

// An AE title bound to a certificate by one allow entry and listed again
// without tls_subject is let in by the second entry over the plain
// listener, or over TLS with any certificate (edge allowList takes the
// first entry that matches): the binding is void, and check said nothing.
// Two entries with two subjects (a certificate being renewed) stay fine.
func TestReview13bAETitleBoundAndUnbound(t *testing.T) {
	now := time.Now()
	cert, key := pemPair(t, "wardgate", now.Add(-time.Hour), now.Add(365*24*time.Hour))
	files := map[string]string{"c.crt": cert, "c.key": key, "ca.crt": cert}
	base := "site: ward-4b\ndata_dir: data\nfhir: {base_url: https://fhir.example.org/R4, patient_identifier_system: urn:oid:1.2.3.4}\n" +
		"dicom:\n  ae_title: WARDGATE\n  tls: {listen: \"127.0.0.1:2762\", cert_file: c.crt, key_file: c.key, client_ca_file: ca.crt}\n"
	for _, tc := range []struct{ name, allow, problem string }{
		{"bound, then unbound", "  allow: [{ae_title: CT01, tls_subject: \"CN=ct01\"}, {ae_title: CT01, host: 127.0.0.1}]\n", "dicom.allow[1]"},
		{"unbound, then bound", "  allow: [{ae_title: CT01, host: 127.0.0.1}, {ae_title: \"CT01 \", tls_subject: \"CN=ct01\"}]\n", "dicom.allow[0]"},
		{"two subjects", "  allow: [{ae_title: CT01, tls_subject: \"CN=ct01\"}, {ae_title: CT01, tls_subject: \"CN=ct01-new\"}]\n", ""},
		{"two hosts, no subject", "  allow: [{ae_title: CT01, host: 127.0.0.1}, {ae_title: CT01, host: 127.0.0.2}]\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Load(write(t, base+tc.allow, files))
			switch {
			case tc.problem == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.problem != "" && (err == nil || !strings.Contains(err.Error(), tc.problem+":") || !strings.Contains(err.Error(), "tls_subject")):
				t.Fatalf("error %v, want one at %s saying that the entry without tls_subject voids the binding", err, tc.problem)
			}
		})
	}
}
