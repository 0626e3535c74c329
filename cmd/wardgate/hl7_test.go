package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices/hl7"
	"github.com/wardgate/wardgate/devices/pcd01"
)

func TestHL7Mode(t *testing.T) {
	for _, c := range []struct {
		args []string
		want bool
	}{
		{[]string{"-hl7", "x.hl7"}, true},
		{[]string{"-zone", "UTC", "--hl7=x.hl7"}, true},
		{[]string{"-profile", "masimo/radical-7", "capture.txt"}, false},
		{[]string{"-profile", "generic/json", "--", "-hl7"}, false},
		{[]string{"hl7"}, false},
	} {
		if got := hl7Mode(c.args); got != c.want {
			t.Errorf("hl7Mode(%q) = %v", c.args, got)
		}
	}
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "devices", "pcd01", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func runCmd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestReplayHL7MLLPCapture: a capture off the wire (two frames, garbage
// between them) prints each message's readings and problems, and no
// patient identifier without -show-patient.
func TestReplayHL7MLLPCapture(t *testing.T) {
	var capture []byte
	capture = hl7.AppendFrame(capture, fixture(t, "philips-picix.hl7"))
	capture = append(capture, "\r\nnoise"...)
	capture = hl7.AppendFrame(capture, fixture(t, "ge-b40.hl7"))
	path := filepath.Join(t.TempDir(), "capture.mllp")
	if err := os.WriteFile(path, capture, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCmd("replay", "-hl7", path, "-zone", "Europe/Berlin")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{
		"message 1: control id PH|000042, bed CCU\\T\\EAST^R07^B2", "2 patient identifier(s), 6 readings",
		"OBX(3)   150456 MDC_PULS_OXIM_SAT_O2              95 %       2024-03-05T10:14:52+01:00",
		"problem OBX(7)-2 (segment 11): value type \"ST\" is not decoded (only NM)",
		"(questionable, in alarm)",
		"message 2: control id GE0000123, bed SURGERY^^V2, 1 patient identifier(s), 12 readings, 7 hierarchy rows, 1 problems",
		"OBX(19)  150344 MDC_TEMP                        37.2 Cel     2024-03-05T10:14:55+01:00  device 080019FFFE0B4020",
		"problem OBX(20)-5 (segment 24): no value",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{"MRN77", "HED12", "900111"} {
		if strings.Contains(out, secret) {
			t.Errorf("output shows the patient identifier %s without -show-patient", secret)
		}
	}
	if !strings.Contains(errs, "2 messages, 18 readings, 7 problems, 0 messages not decoded") || !strings.Contains(errs, "bytes outside frames skipped") {
		t.Errorf("summary: %s", errs)
	}
	_, out, _ = runCmd("replay", "-hl7", path, "-zone", "Europe/Berlin", "-show-patient")
	if !strings.Contains(out, "patient HED12 (authority PID, type MR)") {
		t.Errorf("-show-patient:\n%s", out)
	}
}

// TestReplayHL7PlainText: one segment per line, blank lines between them,
// messages starting at MSH; a message that is no PCD-01 result is named.
func TestReplayHL7PlainText(t *testing.T) {
	text := string(fixture(t, "mindray-no-pid.hl7")) + "\n\n" +
		"MSH|^~\\&|HIS|HOSP|WG|WARD|20261202090000+0000||ADT^A01^ADT_A01|ADT1|P|2.5\nEVN|A01\n\n" +
		string(fixture(t, "philips-picix.hl7"))
	path := filepath.Join(t.TempDir(), "capture.hl7")
	os.WriteFile(path, []byte(text), 0o600)
	code, out, errs := runCmd("replay", "-hl7", path, "-zone", "UTC")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"message 1: control id", "no PID", "message 2 (control id ADT1): not decoded: pcd01: MSH-9", "message 3: control id PH|000042"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errs, "3 messages,") || !strings.Contains(errs, "1 messages not decoded") {
		t.Errorf("summary: %s", errs)
	}
}

// TestReplayHL7FHIR: -fhir prints the Observations of the chartable
// readings for the placeholder patient; demo readings are not charted.
func TestReplayHL7FHIR(t *testing.T) {
	path := filepath.Join(t.TempDir(), "demo.hl7")
	os.WriteFile(path, fixture(t, "mindray-demo.hl7"), 0o600)
	code, out, errs := runCmd("replay", "-hl7", path, "-zone", "UTC", "-fhir")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(out, `"resourceType": "Observation"`) || !strings.Contains(out, `"reference": "Patient/replay"`) ||
		!strings.Contains(out, `"resourceType": "Device"`) {
		t.Errorf("output:\n%s", out)
	}
	if !strings.Contains(errs, "demo or test readings not charted") {
		t.Errorf("stderr: %s", errs)
	}
}

func TestReplayHL7Usage(t *testing.T) {
	if code, _, _ := runCmd("replay", "-hl7", "x", "-zone", "Mars/Olympus"); code != exitUsage {
		t.Errorf("a bad zone: exit %d", code)
	}
	if code, _, _ := runCmd("replay", "-hl7", filepath.Join(t.TempDir(), "missing")); code != exitFailure {
		t.Errorf("a missing file: exit %d", code)
	}
}

// recorder is an hl7.Server handler keeping every message it took.
type recorder struct {
	mu    sync.Mutex
	msgs  []*hl7.Message
	reply hl7.Outcome
}

func (r *recorder) HandleMessage(_ context.Context, m *hl7.Message, _ hl7.Peer) hl7.Reply {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, m)
	return hl7.Reply{Outcome: r.reply, Text: "refused by the test"}
}

func (r *recorder) messages() []*hl7.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*hl7.Message(nil), r.msgs...)
}

func listenHL7(t *testing.T, h hl7.Handler, tlsConfig *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	s := &hl7.Server{Handler: h, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	go s.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return ln.Addr().String()
}

// TestSimulateHL7Count: -count results for three beds on two connections,
// every one acknowledged, each a PCD-01 result without a problem; with
// -adt, every bed is admitted before its first result.
func TestSimulateHL7Count(t *testing.T) {
	var results, adt recorder
	addr := listenHL7(t, &results, nil)
	adtAddr := listenHL7(t, &adt, nil)
	code, out, errs := runCmd("simulate", "-hl7", addr, "-adt", adtAddr, "-beds", "3", "-every", "20ms",
		"-connections", "2", "-count", "9", "-seed", "42", "-authority", "CITY")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "results sent 9 acked 9 retried 0 busy 0 rejected 0 unacked 0") || !strings.Contains(out, "| adt sent") {
		t.Errorf("output: %s", out)
	}
	got := results.messages()
	if len(got) != 9 {
		t.Fatalf("%d results delivered", len(got))
	}
	ids := map[string]bool{}
	for _, m := range got {
		r, err := (&pcd01.Decoder{}).Decode(m, time.Now())
		if err != nil || len(r.Problems) > 0 {
			t.Fatalf("%v %v", err, r.Problems)
		}
		ids[r.ControlID] = true
		if r.HasPatient && r.Patient[0].Authority.Namespace != "CITY" {
			t.Errorf("PID-3 %+v", r.Patient)
		}
	}
	if len(ids) != 9 {
		t.Errorf("%d control ids for 9 results", len(ids))
	}
	events := adt.messages()
	if len(events) < 3 {
		t.Fatalf("%d ADT events", len(events))
	}
	for i, m := range events[:3] {
		if typ, bed := m.Field("MSH", 1, 9).Raw(), m.Field("PV1", 1, 3).Raw(); typ != "ADT^A01^ADT_A01" || bed != "WARD^^BED"+string(rune('1'+i)) {
			t.Errorf("event %d: %s %s", i, typ, bed)
		}
	}
}

// TestSimulateHL7Refused: a receiver that refuses results makes simulate
// exit 1 and say which.
func TestSimulateHL7Refused(t *testing.T) {
	rec := recorder{reply: hl7.Failed}
	addr := listenHL7(t, &rec, nil)
	code, out, errs := runCmd("simulate", "-hl7", addr, "-beds", "2", "-every", "10ms", "-count", "2", "-no-pid")
	if code != exitFailure {
		t.Fatalf("exit %d, want 1: %s %s", code, out, errs)
	}
	if !strings.Contains(errs, "refused: AE refused by the test") || !strings.Contains(out, "rejected 2") {
		t.Errorf("stdout %s\nstderr %s", out, errs)
	}
	for _, m := range rec.messages() {
		if _, ok := m.Find("PID", 1); ok {
			t.Error("-no-pid sent a PID")
		}
	}
}

// TestSimulateHL7TLS: MLLP over TLS with the gateway's CA and a client
// certificate.
func TestSimulateHL7TLS(t *testing.T) {
	dir := t.TempDir()
	caCert, caKey := newCert(t, "test CA", nil, nil, dir, "ca")
	newCert(t, "127.0.0.1", caCert, caKey, dir, "server")
	newCert(t, "CENTRAL", caCert, caKey, dir, "client")
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	var rec recorder
	addr := listenHL7(t, &rec, &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert})
	code, out, errs := runCmd("simulate", "-hl7", addr, "-beds", "1", "-every", "10ms", "-count", "2",
		"-tls", "-ca", filepath.Join(dir, "ca.crt"), "-cert", filepath.Join(dir, "client.crt"), "-key", filepath.Join(dir, "client.key"))
	if code != exitOK || len(rec.messages()) != 2 {
		t.Fatalf("exit %d, %d delivered: %s %s", code, len(rec.messages()), out, errs)
	}
	if code, _, _ := runCmd("simulate", "-hl7", addr, "-cert", "x"); code != exitUsage {
		t.Errorf("-cert without -tls: exit %d", code)
	}
}

// newCert writes NAME.crt and NAME.key in dir: a CA when parent is nil,
// else a certificate for name (an IP address or a client name) signed by it.
func newCert(t *testing.T, name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, dir, file string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		KeyUsage:    x509.KeyUsageDigitalSignature,
	}
	signer, signerKey := tmpl, key
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	} else {
		signer, signerKey = parent, parentKey
		if ip := net.ParseIP(name); ip != nil {
			tmpl.IPAddresses = []net.IP{ip}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	kb, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(filepath.Join(dir, file+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, file+".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return cert, key
}
