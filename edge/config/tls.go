package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"time"
)

// certExpiryWarning is how long before its end a certificate makes check
// warn: long enough to order and install a new one.
const certExpiryWarning = 30 * 24 * time.Hour

// validateClientTLS checks a client's TLS settings (fhir.tls, a forward
// destination's tls): readable files, a certificate that goes with its
// key and has not expired.
func validateClientTLS(ps *Problems, path string, t *TLS) {
	if t.CAFile != "" {
		validateCAFile(ps, path+".ca_file", t.CAFile)
	}
	if (t.CertFile != "") != t.KeyFile.Set() {
		ps.At(path, "cert_file and key_file go together (mutual TLS needs both)")
		return
	}
	if t.CertFile != "" {
		validateKeyPair(ps, path, t.CertFile, &t.KeyFile)
	}
}

// validateDICOMTLS checks dicom.tls: the node's certificate and key, and
// the CA that verifies the modalities' certificates.
func validateDICOMTLS(ps *Problems, t *DICOMTLS) {
	if t.Listen != "" {
		validateListen(ps, "dicom.tls.listen", t.Listen, false)
	}
	if t.CertFile == "" || !t.KeyFile.Set() {
		ps.At("dicom.tls", "cert_file and key_file are required: the certificate the node shows to modalities")
	} else {
		validateKeyPair(ps, "dicom.tls", t.CertFile, &t.KeyFile)
	}
	switch {
	case t.ClientCAFile != "":
		validateCAFile(ps, "dicom.tls.client_ca_file", t.ClientCAFile)
	case t.ClientCertRequired():
		ps.At("dicom.tls.client_ca_file", "is required to verify the modalities' certificates (or write require_client_cert: false to accept modalities without one)")
	}
}

func validateCAFile(ps *Problems, path, file string) {
	b, err := os.ReadFile(file)
	if err != nil {
		ps.At(path, "%v", err)
		return
	}
	if !x509.NewCertPool().AppendCertsFromPEM(b) {
		ps.At(path, "%s holds no PEM certificate", file)
		return
	}
	for rest := b; ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		if c, err := x509.ParseCertificate(blk.Bytes); err == nil {
			certTimes(ps, path, "CA certificate "+c.Subject.String(), c)
		}
	}
}

// validateKeyPair loads the key (a secret) and checks that the
// certificate goes with it and is current.
func validateKeyPair(ps *Problems, path, certFile string, key *Secret) {
	loadSecret(ps, path+".key_file", key)
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		ps.At(path+".cert_file", "%v", err)
		return
	}
	if key.Value() == "" {
		return
	}
	pair, err := tls.X509KeyPair(certPEM, []byte(key.Value()))
	if err != nil {
		ps.At(path, "cert_file %s and key_file: %v", certFile, err)
		return
	}
	if c, err := x509.ParseCertificate(pair.Certificate[0]); err == nil {
		certTimes(ps, path+".cert_file", "the certificate", c)
	}
}

func certTimes(ps *Problems, path, what string, c *x509.Certificate) {
	now := time.Now()
	switch {
	case now.After(c.NotAfter):
		ps.At(path, "%s expired on %s: peers will refuse it", what, c.NotAfter.UTC().Format(time.DateOnly))
	case now.Before(c.NotBefore):
		ps.At(path, "%s is valid only from %s (is the clock right?)", what, c.NotBefore.UTC().Format(time.DateTime))
	case c.NotAfter.Sub(now) < certExpiryWarning:
		ps.Warn(path, "%s expires on %s", what, c.NotAfter.UTC().Format(time.DateOnly))
	}
}

// TLSSubjectOf is how a tls_subject is compared: a certificate's subject
// in RFC 2253 form.
func TLSSubjectOf(c *x509.Certificate) string { return c.Subject.String() }
