package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

// pemPair is a self-signed certificate valid from notBefore to notAfter,
// and its key, as PEM.
func pemPair(t *testing.T, cn string, notBefore, notAfter time.Time) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: notBefore, NotAfter: notAfter, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalPKCS8PrivateKey(k)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}))
}

// check refuses a DICOM TLS setup that cannot work: missing files, a
// certificate that expired or does not go with its key, client
// certificates required with nobody to verify them, tls_subject without
// TLS, TLS keys where they mean nothing; it warns before a certificate
// expires.
func TestDICOMTLSConfig(t *testing.T) {
	now := time.Now()
	cert, key := pemPair(t, "wardgate", now.Add(-time.Hour), now.Add(365*24*time.Hour))
	otherCert, _ := pemPair(t, "other", now.Add(-time.Hour), now.Add(365*24*time.Hour))
	oldCert, oldKey := pemPair(t, "old", now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	soonCert, soonKey := pemPair(t, "soon", now.Add(-time.Hour), now.Add(10*24*time.Hour))
	files := map[string]string{"c.crt": cert, "c.key": key, "other.crt": otherCert, "old.crt": oldCert, "old.key": oldKey,
		"soon.crt": soonCert, "soon.key": soonKey, "ca.crt": cert, "junk.crt": "not a certificate"}
	base := "site: ward-4b\ndata_dir: data\nfhir: {base_url: https://fhir.example.org/R4, patient_identifier_system: urn:oid:1.2.3.4}\n"
	allow := "  allow: [{ae_title: CT01, host: 127.0.0.1}]\n"
	for _, tc := range []struct {
		name, dicom   string
		problem, warn string
	}{
		{"valid", allow + "  tls: {cert_file: c.crt, key_file: c.key, client_ca_file: ca.crt}\n", "", ""},
		{"no client CA", allow + "  tls: {cert_file: c.crt, key_file: c.key}\n", "dicom.tls.client_ca_file: is required", ""},
		{"no client certificate needed", allow + "  tls: {cert_file: c.crt, key_file: c.key, require_client_cert: false}\n", "", ""},
		{"no key", allow + "  tls: {cert_file: c.crt, client_ca_file: ca.crt}\n", "dicom.tls: cert_file and key_file are required", ""},
		{"key of another certificate", allow + "  tls: {cert_file: other.crt, key_file: c.key, client_ca_file: ca.crt}\n", "private key does not match public key", ""},
		{"expired", allow + "  tls: {cert_file: old.crt, key_file: old.key, client_ca_file: ca.crt}\n", "dicom.tls.cert_file: the certificate expired on", ""},
		{"expires soon", allow + "  tls: {cert_file: soon.crt, key_file: soon.key, client_ca_file: ca.crt}\n", "", "dicom.tls.cert_file: the certificate expires on"},
		{"CA file without a certificate", allow + "  tls: {cert_file: c.crt, key_file: c.key, client_ca_file: junk.crt}\n", "junk.crt holds no PEM certificate", ""},
		{"missing file", allow + "  tls: {cert_file: nowhere.crt, key_file: c.key, client_ca_file: ca.crt}\n", "dicom.tls.cert_file: open", ""},
		{"tls.listen is listen", allow + "  listen: \":2762\"\n  tls: {listen: \":2762\", cert_file: c.crt, key_file: c.key, client_ca_file: ca.crt}\n", "dicom.tls.listen: is dicom.listen", ""},
		{"tls_subject without tls", "  allow: [{ae_title: CT01, tls_subject: \"CN=ct01\"}]\n", "dicom.allow[0].tls_subject: binds CT01 to a client certificate, but dicom.tls is not set", ""},
		{"tls_subject with nobody verifying", "  allow: [{ae_title: CT01, tls_subject: \"CN=ct01\"}]\n  tls: {cert_file: c.crt, key_file: c.key, require_client_cert: false}\n", "needs dicom.tls.client_ca_file", ""},
		{"tls_subject", "  allow: [{ae_title: CT01, tls_subject: \"CN=ct01\"}]\n  tls: {cert_file: c.crt, key_file: c.key, client_ca_file: ca.crt}\n", "", ""},
		{"tls on an allow entry", "  allow: [{ae_title: CT01, tls: {ca_file: ca.crt}}]\n", "dicom.allow[0].tls: is not used in allow", ""},
		{"forward over TLS", allow + "  forward: [{ae_title: PACS, host: pacs, port: 2762, tls: {ca_file: ca.crt, cert_file: c.crt, key_file: c.key}}]\n", "", ""},
		{"forward with a certificate and no key", allow + "  forward: [{ae_title: PACS, host: pacs, port: 2762, tls: {cert_file: c.crt}}]\n", "dicom.forward[0].tls: cert_file and key_file go together", ""},
		{"forward with an expired certificate", allow + "  forward: [{ae_title: PACS, host: pacs, port: 2762, tls: {cert_file: old.crt, key_file: old.key}}]\n", "dicom.forward[0].tls.cert_file: the certificate expired", ""},
		{"tls_subject on a forward", allow + "  forward: [{ae_title: PACS, host: pacs, port: 104, tls_subject: \"CN=x\"}]\n", "dicom.forward[0].tls_subject: is not used in forward", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			loadCase(t, base+"dicom:\n  ae_title: WARDGATE\n"+tc.dicom, files, tc.problem, tc.warn, "tls")
		})
	}
}
