package test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// pki is a throw-away certificate authority for the TLS tests: PEM files
// in a folder, RSA keys (what every DCMTK build accepts).
type pki struct {
	t    *testing.T
	dir  string
	cert *x509.Certificate
	key  *rsa.PrivateKey
	CA   string // the CA certificate's file
}

func newPKI(t *testing.T, name string) *pki {
	t.Helper()
	p := &pki{t: t, dir: t.TempDir()}
	p.key = rsaKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name, Organization: []string{"Test Hospital"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &p.key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	p.cert, _ = x509.ParseCertificate(der)
	p.CA = p.write(name+"-ca.crt", "CERTIFICATE", der)
	return p
}

var serial int64 = 100

func rsaKey(t *testing.T) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (p *pki) write(name, typ string, der []byte) string {
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		p.t.Fatal(err)
	}
	return path
}

// issue makes a certificate for cn (a server's one names 127.0.0.1),
// valid from notBefore to notAfter, and returns its certificate and key
// files.
func (p *pki) issue(name, cn string, server bool, notBefore, notAfter time.Time) (certFile, keyFile string) {
	p.t.Helper()
	serial++
	key := rsaKey(p.t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn, Organization: []string{"Test Hospital"}},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		p.t.Fatal(err)
	}
	return p.write(name+".crt", "CERTIFICATE", der), p.write(name+".key", "PRIVATE KEY", must(x509.MarshalPKCS8PrivateKey(key)))
}

func (p *pki) valid(name, cn string, server bool) (string, string) {
	return p.issue(name, cn, server, time.Now().Add(-time.Hour), time.Now().Add(365*24*time.Hour))
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// startStorescpTLS runs storescp +tls as AE PACS, requiring a client
// certificate signed by clientCA.
func startStorescpTLS(t *testing.T, port int, dir, cert, key, clientCA string) {
	t.Helper()
	startStorescp(t, port, dir, "+tls", key, cert, "-pw", "+cf", clientCA)
}

// storescuTLS sends files over TLS with DCMTK; tlsArgs are storescu's TLS
// options (+tls KEY CERT, or +tla).
func storescuTLS(port int, caFile string, tlsArgs []string, files ...string) (string, error) {
	args := append([]string{"-xi", "-aet", "CT01", "-aec", "WARDGATE"}, tlsArgs...)
	args = append(args, "-pw", "+cf", caFile, "127.0.0.1", strconv.Itoa(port))
	cmd := dcmtkCmd("storescu", append(args, files...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// A modality sends over DICOM TLS with DCMTK: with a certificate of the
// subject its AE title is bound to, the study is stored and forwarded to a
// PACS over TLS (mutual: the PACS requires wardgate's certificate) byte for
// byte; an expired certificate, one from another CA, none at all, one of
// another subject, or a plain connection are refused, each with its reason
// in the log and nothing stored.
func TestDicomTLSWithDCMTK(t *testing.T) {
	RequirePeers(t, "storescu", "storescp", "echoscu")
	site := newPKI(t, "site")
	other := newPKI(t, "elsewhere")
	srvCert, srvKey := site.valid("wardgate", "wardgate.ward4b", true)
	ctCert, ctKey := site.valid("ct01", "ct01.radiology", false)
	mriCert, mriKey := site.valid("mri02", "mri02.radiology", false)
	oldCert, oldKey := site.issue("ct01-old", "ct01.radiology", false, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
	strangerCert, strangerKey := other.valid("stranger", "ct01.radiology", false)
	wgCert, wgKey := site.valid("wardgate-client", "wardgate.ward4b", false)
	pacsCert, pacsKey := site.valid("pacs", "pacs.radiology", true)

	pacsPort, pacsDir := freePort(t), t.TempDir()
	startStorescpTLS(t, pacsPort, pacsDir, pacsCert, pacsKey, site.CA)

	p, record, _, port := dicomGateway(t, fmt.Sprintf(`  allow:
    - {ae_title: CT01, host: 127.0.0.1, tls_subject: "CN=ct01.radiology, O=Test Hospital"}
  tls: {cert_file: %s, key_file: %s, client_ca_file: %s}
  study_stable_after: 1s
  forward:
    - {ae_title: PACS, host: 127.0.0.1, port: %d, tls: {ca_file: %s, cert_file: %s, key_file: %s}}
`, srvCert, srvKey, site.CA, pacsPort, site.CA, wgCert, wgKey), "")

	// C-ECHO over TLS.
	if out, err := dcmtkCmd("echoscu", "-aet", "CT01", "-aec", "WARDGATE", "+tls", ctKey, ctCert, "-pw", "+cf", site.CA,
		"127.0.0.1", strconv.Itoa(port)).CombinedOutput(); err != nil {
		t.Fatalf("echoscu +tls: %v\n%s", err, out)
	}

	files := studyFiles(t, "1.2.826.0.1.3680043.2.1125.81", 3, 64, 64)
	if out, err := storescuTLS(port, site.CA, []string{"+tls", ctKey, ctCert}, files...); err != nil {
		t.Fatalf("storescu +tls: %v\n%s", err, out)
	}
	Eventually(t, 30*time.Second, func() bool { return countDir(pacsDir) == 3 && studyHas(record, 3) },
		func() string { return fmt.Sprintf("PACS has %d files\n%s", countDir(pacsDir), p.Log()) })
	for _, f := range files {
		if !bytes.Equal(dataSet(t, filepath.Join(pacsDir, "CT."+sopOf(t, f))), dataSet(t, f)) {
			t.Fatalf("%s arrived changed", f)
		}
	}

	refused := []struct {
		name, log string
		args      []string
	}{
		{"expired certificate", `TLS handshake failed.*expired`, []string{"+tls", oldKey, oldCert}},
		{"certificate from another CA", `TLS handshake failed.*unknown authority`, []string{"+tls", strangerKey, strangerCert}},
		{"no certificate", `TLS handshake failed.*certificate`, []string{"+tla"}},
		{"another subject for CT01", `association rejected.*calling AE title not recognized`, []string{"+tls", mriKey, mriCert}},
	}
	more := studyFiles(t, "1.2.826.0.1.3680043.2.1125.82", 1, 16, 16)
	for _, r := range refused {
		if out, err := storescuTLS(port, site.CA, r.args, more...); err == nil {
			t.Errorf("%s: storescu succeeded:\n%s", r.name, out)
		}
		p.WaitLog(t, r.log, 10*time.Second)
	}
	// A plain modality talking to the TLS port gets nothing either.
	if out, err := dcmtkCmd("storescu", "-aet", "CT01", "-aec", "WARDGATE", "127.0.0.1", strconv.Itoa(port), more[0]).CombinedOutput(); err == nil {
		t.Errorf("plain storescu to the TLS port succeeded:\n%s", out)
	}
	v := readyz(t, p)
	d := v["dicom"].(map[string]any)
	if got := d["instances_received"]; got != float64(3) {
		t.Fatalf("stored %v instances, want the 3 sent with the right certificate: %v", got, d)
	}
	if got := d["tls_handshakes_failed"]; got.(float64) < 3 {
		t.Fatalf("TLS handshake failures %v, want at least 3: %v", got, d)
	}
	if strings.Contains(p.Log(), "PID-E2E") {
		t.Fatal("the log names the patient")
	}
	if page := getPage(t, p); !strings.Contains(page, fmt.Sprintf("DICOM TLS on 127.0.0.1:%d", port)) || !strings.Contains(page, "TLS handshakes failed") {
		t.Fatalf("the status page does not show the TLS listener and its failed handshakes:\n%s", page)
	}
}

// `wardgate echo -tls` and `send -tls` against a TLS storescp that requires
// a client certificate; without one, or trusting another CA, they fail
// with the reason.
func TestDicomEchoAndSendOverTLS(t *testing.T) {
	site := newPKI(t, "site")
	other := newPKI(t, "elsewhere")
	pacsCert, pacsKey := site.valid("pacs", "pacs.radiology", true)
	cert, key := site.valid("wardgate", "wardgate.ward4b", false)
	port, dir := freePort(t), t.TempDir()
	startStorescpTLS(t, port, dir, pacsCert, pacsKey, site.CA)
	addr := fmt.Sprintf("127.0.0.1:%d", port)

	if r := Run(t, "echo", "-aec", "PACS", "-ca", site.CA, "-cert", cert, "-key", key, addr); r.Code != 0 || !strings.Contains(r.Stdout, "success") {
		t.Fatalf("echo -tls: %+v", r)
	}
	files := studyFiles(t, "1.2.826.0.1.3680043.2.1125.83", 2, 32, 32)
	if r := Run(t, "send", "-tls", "-aec", "PACS", "-ca", site.CA, "-cert", cert, "-key", key, addr, filepath.Dir(files[0])); r.Code != 0 || strings.Count(r.Stdout, ": success (0x0000)") != 2 {
		t.Fatalf("send -tls: %+v", r)
	}
	if countDir(dir) != 2 {
		t.Fatalf("storescp has %d files", countDir(dir))
	}
	if r := Run(t, "echo", "-aec", "PACS", "-ca", other.CA, "-cert", cert, "-key", key, addr); r.Code != 1 || !strings.Contains(r.Stderr, "unknown authority") {
		t.Fatalf("echo trusting another CA: %+v", r)
	}
	if r := Run(t, "echo", "-tls", "-aec", "PACS", "-ca", site.CA, addr); r.Code != 1 {
		t.Fatalf("echo without a client certificate: %+v", r)
	}
	if r := Run(t, "echo", "-aec", "PACS", "-cert", cert, addr); r.Code != 2 || !strings.Contains(r.Stderr, "-cert and -key go together") {
		t.Fatalf("echo with -cert alone: %+v", r)
	}
	// A PACS whose certificate has expired is refused, with the reason.
	oldCert, oldKey := site.issue("pacs-old", "pacs.radiology", true, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
	oldPort := freePort(t)
	startStorescpTLS(t, oldPort, t.TempDir(), oldCert, oldKey, site.CA)
	if r := Run(t, "echo", "-aec", "PACS", "-ca", site.CA, "-cert", cert, "-key", key, fmt.Sprintf("127.0.0.1:%d", oldPort)); r.Code != 1 || !strings.Contains(r.Stderr, "expired") {
		t.Fatalf("echo to a PACS with an expired certificate: %+v", r)
	}
}

// With dicom.tls.listen, TLS has its own port and dicom.listen stays
// plain: an older modality sends in the clear, a newer one over TLS, and
// the status names both listeners.
func TestDicomTLSBesidePlain(t *testing.T) {
	RequirePeers(t, "storescu")
	site := newPKI(t, "site")
	srvCert, srvKey := site.valid("wardgate", "wardgate.ward4b", true)
	ctCert, ctKey := site.valid("ct01", "ct01.radiology", false)
	tlsPort := freePort(t)
	p, _, _, port := dicomGateway(t, fmt.Sprintf(`  allow: [{ae_title: CT01, host: 127.0.0.1}]
  tls: {listen: "127.0.0.1:%d", cert_file: %s, key_file: %s, client_ca_file: %s}
  study_stable_after: 1h
`, tlsPort, srvCert, srvKey, site.CA), "")
	p.WaitLog(t, `dicom listening for TLS`, 10*time.Second)
	files := studyFiles(t, "1.2.826.0.1.3680043.2.1125.84", 2, 16, 16)
	if out, err := dcmtkCmd("storescu", "-xi", "-aet", "CT01", "-aec", "WARDGATE", "127.0.0.1", strconv.Itoa(port), files[0]).CombinedOutput(); err != nil {
		t.Fatalf("plain storescu to dicom.listen: %v\n%s", err, out)
	}
	if out, err := storescuTLS(tlsPort, site.CA, []string{"+tls", ctKey, ctCert}, files[1]); err != nil {
		t.Fatalf("storescu +tls to dicom.tls.listen: %v\n%s", err, out)
	}
	d := readyz(t, p)["dicom"].(map[string]any)
	if d["instances_received"] != float64(2) || d["listening"] != fmt.Sprintf("127.0.0.1:%d", port) || d["listening_tls"] != fmt.Sprintf("127.0.0.1:%d", tlsPort) {
		t.Fatalf("/readyz dicom: %v", d)
	}
}
