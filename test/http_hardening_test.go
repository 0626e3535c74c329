package test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The real binary on http.listen 127.0.0.2 (which the gateway counts as
// reachable from the ward's network): check refuses a weak admin token
// and warns about a page without TLS; without the token the page and
// /api/monitors show states and counts but no values; wrong tokens are
// refused 401, then 429 with Retry-After, logged a few times however many
// come, and counted in /metrics.
func TestHTTPHardeningOffLoopback(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	broker := startMosquitto(t, dir, port)
	token := filepath.Join(dir, "admin-token")
	const secret = "Zm9vYmFyLWJhei1xdXV4LWNvcmdl"
	os.WriteFile(token, []byte("short\n"), 0o600)
	_, cfg, _ := recordWith(t, mqttConfig(port))
	b, _ := os.ReadFile(cfg)
	text := strings.Replace(string(b), "listen: 127.0.0.1:0\n", "listen: 127.0.0.2:0\n  admin_token_file: "+token+"\n", 1)
	os.WriteFile(cfg, []byte(text), 0o600)

	if r := Run(t, "check", "-config", cfg); r.Code != 2 || !strings.Contains(r.Stderr, "at least 128 bits of randomness: 32 hex characters or 22 base64url characters") {
		t.Fatalf("check with a 5-character token: exit %d\n%s", r.Code, r.Stderr)
	}
	os.WriteFile(token, []byte(secret+"\n"), 0o600)
	if r := Run(t, "check", "-config", cfg); r.Code != 0 || !strings.Contains(r.Stderr, "set http.tls with cert_file and key_file") {
		t.Fatalf("check without TLS on 127.0.0.2: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}

	gw := Start(t, "run", "-config", cfg)
	addr := gw.WaitLog(t, statusRe, 30*time.Second)
	gw.WaitLog(t, `subscribed; waiting for messages`, 30*time.Second)
	if !strings.HasPrefix(addr, "127.0.0.2:") {
		t.Fatalf("listening on %s", addr)
	}
	base := "http://" + addr
	broker.publish("ward4b/bed-14/vitals", []string{vitals("MX450-Q", 0)})
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	Eventually(t, 30*time.Second, func() bool {
		code, body, _ := fetch(t, base+"/api/monitors", bearer(secret))
		return code == 200 && strings.Contains(body, `"value":90`)
	}, func() string { return "no value with the token\n" + gw.Log() })

	code, body, _ := fetch(t, base+"/api/monitors", nil)
	if code != 200 || strings.Contains(body, `"value":`) || !strings.Contains(body, `"values_hidden":true`) || !strings.Contains(body, `"readings":2`) {
		t.Fatalf("/api/monitors without the token: %d %s", code, body)
	}
	code, page, _ := fetch(t, base+"/", nil)
	if code != 200 || strings.Contains(page, `data-value="90"`) || !strings.Contains(page, "values-hidden") || !strings.Contains(page, `data-monitor="bed-14-monitor"`) {
		t.Fatalf("the page without the token: %d\n%s", code, page)
	}

	// 50 wrong tokens: the first authBurst (5) are 401, the rest 429.
	codes := map[int]int{}
	var retryAfter string
	for range 50 {
		code, _, h := fetch(t, base+"/api/monitors", bearer("wrong-"+secret))
		codes[code]++
		if code == 429 {
			retryAfter = h.Get("Retry-After")
		}
	}
	if codes[401] != 5 || codes[429] != 45 || retryAfter == "" {
		t.Fatalf("50 wrong tokens answered %v, Retry-After %q", codes, retryAfter)
	}
	if code, _, _ := fetch(t, base+"/api/monitors", bearer(secret)); code != 429 {
		t.Fatalf("the right token from a blocked peer: %d", code)
	}
	_, metrics, _ := fetch(t, base+"/metrics", nil)
	for _, want := range []string{`wardgate_errors_total{kind="http_auth_failed"} 5`, `wardgate_errors_total{kind="http_auth_rate_limited"} 46`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// Logged at the 1st, 2nd and 4th failure and the block: 4 lines for 51
	// attempts (the summary comes once a minute or at the stop).
	if n := len(regexp.MustCompile(`admin token: a request without the right token`).FindAllString(gw.Log(), -1)); n != 4 {
		t.Errorf("%d log lines for 51 attempts, want 4\n%s", n, gw.Log())
	}
	if strings.Contains(gw.Log(), secret) {
		t.Error("the log shows the token")
	}
}

// fetch GETs url with header; it returns the status, body and headers.
func fetch(t *testing.T, url string, header http.Header) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// With http.tls the real binary serves HTTPS with the configured
// certificate, plain HTTP gets no page, and wardgate queue reaches it.
func TestHTTPTLSServedAndQueueReachesIt(t *testing.T) {
	dir := t.TempDir()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// A certificate that does not name 127.0.0.1: queue trusts the
	// configured one whatever its names.
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: "wardgate.ward4b.example"},
		DNSNames: []string{"wardgate.ward4b.example"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalPKCS8PrivateKey(k)
	crt, key := filepath.Join(dir, "http.pem"), filepath.Join(dir, "http-key.pem")
	os.WriteFile(crt, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600)

	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	_, cfg, _ := recordWith(t, "")
	b, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, []byte(strings.Replace(string(b), "listen: 127.0.0.1:0\n",
		"listen: "+addr+"\n  tls: {cert_file: "+crt+", key_file: "+key+"}\n", 1)), 0o600)
	gw := Start(t, "run", "-config", cfg)
	if got := gw.WaitLog(t, `status=(https://[0-9.:]+)/`, 30*time.Second); got != "https://"+addr {
		t.Fatalf("the log names the page at %s", got)
	}

	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "wardgate.ward4b.example"}}}
	Eventually(t, 30*time.Second, func() bool {
		resp, err := c.Get("https://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, func() string { return "no ready answer over HTTPS\n" + gw.Log() })
	if resp, err := http.Get("http://" + addr + "/"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP got the page")
		}
	}
	if r := Run(t, "queue", "-config", cfg, "list"); r.Code != 0 || !strings.Contains(r.Stdout, "no dead letters") {
		t.Fatalf("queue list over HTTPS: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
}
