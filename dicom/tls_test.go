package dicom

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardgate/wardgate/dicom/internal/dicomtest"
)

// testCA issues certificates for the TLS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return &testCA{c, k, pool}
}

func (ca *testCA) issue(t *testing.T, cn string, server bool) tls.Certificate {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn, Organization: []string{"Test"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &k.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
}

// Over a TLS listener the server handshakes before reading the request,
// gives Allow the verified client certificate, and counts a failed
// handshake without serving anything; the Dialer speaks TLS under the
// BCP 195 profile and checks the server's name.
func TestTLSAssociation(t *testing.T) {
	ca, other := newTestCA(t), newTestCA(t)
	srvCfg := BCP195(&tls.Config{Certificates: []tls.Certificate{ca.issue(t, "scp", true)}, ClientCAs: ca.pool, ClientAuth: tls.RequireAndVerifyClientCert})
	var mu sync.Mutex
	var seen []Peer
	s := quietServer(&Server{Allow: func(p Peer) bool {
		mu.Lock()
		seen = append(seen, p)
		mu.Unlock()
		return p.Certificate != nil && p.Certificate.Subject.CommonName == "ct01"
	}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(tls.NewListener(ln, srvCfg))
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	addr := ln.Addr().String()
	echo := []PresentationContextProposal{{VerificationSOPClass, []string{ImplicitVRLittleEndian}}}
	client := func(cert *tls.Certificate, roots *x509.CertPool) *tls.Config {
		c := &tls.Config{RootCAs: roots}
		if cert != nil {
			c.Certificates = []tls.Certificate{*cert}
		}
		return BCP195(c)
	}
	ctx := context.Background()
	ct01, mri := ca.issue(t, "ct01", false), ca.issue(t, "mri02", false)

	as, err := Dialer{CallingAE: "CT01", CalledAE: "X", TLS: client(&ct01, ca.pool)}.Dial(ctx, addr, echo)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := as.Echo(ctx); err != nil || st != StatusSuccess {
		t.Fatalf("echo over TLS: %v 0x%04x", err, st)
	}
	as.Release(ctx)
	mu.Lock()
	if len(seen) != 1 || !seen[0].TLS || seen[0].Certificate == nil || seen[0].CallingAE != "CT01" {
		t.Fatalf("Allow saw %+v", seen)
	}
	mu.Unlock()

	// A verified certificate of another subject: Allow refuses it.
	_, err = Dialer{CallingAE: "CT01", CalledAE: "X", TLS: client(&mri, ca.pool)}.Dial(ctx, addr, echo)
	var rj *RejectError
	if !errors.As(err, &rj) {
		t.Fatalf("another subject: %v, want a rejection", err)
	}
	// No certificate, or one from another CA: no handshake, nothing asked.
	stranger := other.issue(t, "ct01", false)
	for _, cert := range []*tls.Certificate{nil, &stranger} {
		if as, err := (Dialer{CallingAE: "CT01", CalledAE: "X", TLS: client(cert, ca.pool)}).Dial(ctx, addr, echo); err == nil {
			as.Abort()
			t.Fatal("associated without a valid client certificate")
		}
	}
	// The client refuses a server its CAs did not sign.
	if _, err := (Dialer{CallingAE: "CT01", CalledAE: "X", TLS: client(&ct01, other.pool)}).Dial(ctx, addr, echo); err == nil || !strings.Contains(err.Error(), "TLS") {
		t.Fatalf("a server of an unknown CA: %v", err)
	}
	// A plain association on the TLS port.
	if _, err := (Dialer{CallingAE: "CT01", CalledAE: "X", Timeouts: Timeouts{ARTIM: 2 * time.Second}}).Dial(ctx, addr, echo); err == nil {
		t.Fatal("a plain association on the TLS port succeeded")
	}
	dicomtest.WaitFor(t, "three failed handshakes", func() bool { return s.Stats().TLSHandshakesFailed >= 3 })
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 {
		t.Fatalf("Allow was asked %d times, want 2 (only after good handshakes)", len(seen))
	}
}

// BCP195 keeps TLS 1.2 and later and only ECDHE AEAD suites.
func TestBCP195Profile(t *testing.T) {
	c := BCP195(nil)
	if c.MinVersion != tls.VersionTLS12 {
		t.Fatalf("MinVersion %x", c.MinVersion)
	}
	for _, id := range c.CipherSuites {
		name := tls.CipherSuiteName(id)
		if !strings.HasPrefix(name, "TLS_ECDHE_") || !(strings.Contains(name, "_GCM_") || strings.Contains(name, "CHACHA20")) {
			t.Fatalf("%s is not in the BCP 195 profile", name)
		}
	}
	orig := &tls.Config{ServerName: "x"}
	if BCP195(orig); orig.MinVersion != 0 {
		t.Fatal("BCP195 changed its argument")
	}
}
