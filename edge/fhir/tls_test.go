package fhir

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wardgate/wardgate/edge/fhir/fhirserver"
)

// testCA makes a CA and certificates signed by it, as PEM.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func (ca *testCA) issue(t *testing.T, name string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

func TestMutualTLSWithAPrivateCA(t *testing.T) {
	ca := newTestCA(t)
	srvCert, srvKey := ca.issue(t, "fhir", x509.ExtKeyUsageServerAuth)
	cliCert, cliKey := ca.issue(t, "wardgate", x509.ExtKeyUsageClientAuth)
	dir := t.TempDir()
	caFile, certFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "client.pem")
	os.WriteFile(caFile, ca.pem, 0o600)
	os.WriteFile(certFile, cliCert, 0o600)

	pair, _ := tls.X509KeyPair(srvCert, srvKey)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.pem)
	record := fhirserver.New()
	hs := httptest.NewUnstartedServer(record)
	hs.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	hs.StartTLS()
	defer hs.Close()

	cfg, err := TLSConfig(caFile, certFile, cliKey)
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, 5*time.Second, 50, func(d *Deliverer) {
		d.Client.BaseURL = hs.URL
		d.Client.HTTP = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	})
	r.readings(5)
	r.waitDrained(30 * time.Second)
	if n := record.Count("Observation"); n != 5 {
		t.Fatalf("%d Observations over mutual TLS", n)
	}

	// Without the client certificate the server refuses the handshake; the
	// entries wait.
	noCert, _ := TLSConfig(caFile, "", nil)
	r2 := newRig(t, 5*time.Second, 50, func(d *Deliverer) {
		d.Client.BaseURL = hs.URL
		d.Client.HTTP = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: noCert}}
	})
	r2.readings(1)
	for r2.d.Stats().Retried == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	if n := record.Count("Observation"); n != 5 {
		t.Fatalf("%d Observations without a client certificate", n)
	}
	if _, err := TLSConfig(filepath.Join(dir, "missing.pem"), "", nil); err == nil {
		t.Fatal("a missing CA file was accepted")
	}
}

func TestASlowServerIsWaitedFor(t *testing.T) {
	r := newRig(t, 5*time.Second, 50)
	r.server.SetFaults(fhirserver.Faults{Hang: 300 * time.Millisecond}) // slow, within the timeout
	r.readings(20)
	r.waitDrained(30 * time.Second)
	r.exactlyOnce(20)
	if s := r.d.Stats(); s.Retried != 0 {
		t.Fatalf("a slow answer was retried: %+v", s)
	}
}
