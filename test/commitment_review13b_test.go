package test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/wardgate/wardgate/dicom"
)

// issueBoth makes a certificate for cn usable as client and as server
// (127.0.0.1), as a node's certificate often is.
func (p *pki) issueBoth(name, cn string) (certFile, keyFile string) {
	p.t.Helper()
	serial++
	key := rsaKey(p.t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn, Organization: []string{"Test Hospital"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		p.t.Fatal(err)
	}
	return p.write(name+".crt", "CERTIFICATE", der), p.write(name+".key", "PRIVATE KEY", must(x509.MarshalPKCS8PrivateKey(key)))
}

// A modality that speaks only DICOM TLS (its AE title bound to its
// certificate with tls_subject) asks for storage commitment over TLS and
// leaves; its report must come on a new association over TLS to its
// address, not in the clear (which a TLS-only modality can never take:
// the report would be retried for a week and then abandoned).
func TestReview13bCommitmentReportToATLSOnlyModality(t *testing.T) {
	commitmentReportOverTLS(t, false)
}

// The same with TLS on its own port beside a plain dicom.listen and no
// tls_subject: the request came over TLS, so the report goes over TLS
// (the modality's certificate checked by its host name).
func TestCommitmentReportOverTLSBesidePlain(t *testing.T) {
	commitmentReportOverTLS(t, true)
}

func commitmentReportOverTLS(t *testing.T, beside bool) {
	RequirePeers(t, "storescu", "storescp")
	site := newPKI(t, "site")
	wgCert, wgKey := site.issueBoth("wardgate", "wardgate.ward4b")
	modCert, modKey := site.issueBoth("modality", "modality.radiology")
	pacsPort, pacsDir, scuPort := freePort(t), t.TempDir(), freePort(t)

	// The modality's TLS listener: mutual TLS, the site's CA.
	pair, err := tls.LoadX509KeyPair(modCert, modKey)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(site.cert)
	results := &commitmentResults{got: make(chan dicom.CommitmentResult, 4)}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(scuPort)))
	if err != nil {
		t.Fatal(err)
	}
	modality := &dicom.Server{AETitle: "MODALITY", CommitmentResults: results}
	go modality.Serve(tls.NewListener(ln, dicom.BCP195(&tls.Config{
		Certificates: []tls.Certificate{pair}, ClientCAs: roots, ClientAuth: tls.RequireAndVerifyClientCert})))
	t.Cleanup(func() { modality.Shutdown(context.Background()) })

	cfg := fmt.Sprintf(`  allow:
    - {ae_title: MODALITY, host: 127.0.0.1, port: %d, tls_subject: "CN=modality.radiology,O=Test Hospital"}
  tls: {cert_file: %s, key_file: %s, client_ca_file: %s}
  forward: [{ae_title: PACS, host: 127.0.0.1, port: %d}]
  commitment: {commit_after: forwarded, timeout: 1h}
`, scuPort, wgCert, wgKey, site.CA, pacsPort)
	tlsPort := freePort(t)
	if beside {
		cfg = fmt.Sprintf(`  allow:
    - {ae_title: MODALITY, host: 127.0.0.1, port: %d}
  tls: {listen: "127.0.0.1:%d", cert_file: %s, key_file: %s, client_ca_file: %s}
  forward: [{ae_title: PACS, host: 127.0.0.1, port: %d}]
  commitment: {commit_after: forwarded, timeout: 1h}
`, scuPort, tlsPort, wgCert, wgKey, site.CA, pacsPort)
	}
	p, _, _, port := dicomGateway(t, cfg, "")
	if beside {
		p.WaitLog(t, `dicom listening for TLS`, 10*time.Second)
		port = tlsPort
	}

	study := "1.2.826.0.1.3680043.2.1125.131"
	files := studyFiles(t, study, 1, 16, 16)
	args := []string{"-xi", "-aet", "MODALITY", "-aec", "WARDGATE", "+tls", modKey, modCert, "-pw", "+cf", site.CA, "127.0.0.1", strconv.Itoa(port)}
	if out, err := dcmtkCmd("storescu", append(args, files...)...).CombinedOutput(); err != nil {
		t.Fatalf("storescu +tls: %v\n%s", err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	as, err := dicom.Dialer{CallingAE: "MODALITY", CalledAE: "WARDGATE", TLS: dicom.BCP195(&tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: roots})}.
		Dial(ctx, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), []dicom.PresentationContextProposal{dicom.CommitmentProposal()})
	if err != nil {
		t.Fatal(err)
	}
	refs := []dicom.SOPReference{{SOPClassUID: dicom.CTImageStorage, SOPInstanceUID: study + ".1.1"}}
	if st, err := as.RequestCommitment(ctx, study+".900", refs); err != nil || st != dicom.StatusSuccess {
		t.Fatalf("N-ACTION: 0x%04x, %v", st, err)
	}
	// The PACS is down: nothing can be reported yet. The modality leaves.
	if err := as.Release(ctx); err != nil {
		t.Fatal(err)
	}
	startStorescp(t, pacsPort, pacsDir)

	select {
	case res := <-results.got:
		if res.TransactionUID != study+".900" || len(res.Committed) != 1 {
			t.Fatalf("report %+v", res)
		}
	case <-ctx.Done():
		t.Fatalf("no storage commitment report reached the TLS-only modality (PACS has %d files):\n%s", countDir(pacsDir), p.Log())
	}
}
