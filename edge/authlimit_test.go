package edge

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/edge/fhir/fhirserver"
)

func TestPeerOf(t *testing.T) {
	for in, want := range map[string]string{
		"10.1.2.3":             "10.1.2.3",
		"::ffff:10.1.2.3":      "10.1.2.3",
		"2001:db8:1:2:aaaa::1": "2001:db8:1:2::/64",
		"2001:db8:1:2:bbbb::9": "2001:db8:1:2::/64",
		"fe80::1%eth0":         "fe80::/64",
		"not an address":       "not an address",
	} {
		if got := peerOf(in); got != want {
			t.Errorf("peerOf(%q) = %q, want %q", in, got, want)
		}
	}
}

// After authBurst failures within authWindow a peer is blocked, for a
// penalty that doubles up to authMaxPenalty; others are not; a right
// token forgets the peer. The log shows the 1st, 2nd, 4th, 8th… failure
// of a peer, each block, and a summary, however many failures there are.
func TestAuthLimiterBlocksAndLogsBounded(t *testing.T) {
	var logged bytes.Buffer
	l := newAuthLimiter(slog.New(slog.NewTextHandler(&logged, nil)))
	now := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	for i := range authBurst {
		if d := l.retryAfter("10.0.0.9", now); d != 0 {
			t.Fatalf("blocked after %d failures", i)
		}
		l.fail("10.0.0.9", "GET", "/api/beds", now)
	}
	if d := l.retryAfter("10.0.0.9", now); d != authWindow {
		t.Fatalf("after %d failures: retry after %v, want %v", authBurst, d, authWindow)
	}
	if d := l.retryAfter("10.0.0.10", now); d != 0 {
		t.Fatalf("another peer is blocked too: %v", d)
	}
	// Each block doubles the penalty, up to the cap.
	var penalties []time.Duration
	for range 6 {
		now = now.Add(l.retryAfter("10.0.0.9", now))
		for range authBurst {
			l.fail("10.0.0.9", "GET", "/api/beds", now)
		}
		penalties = append(penalties, l.retryAfter("10.0.0.9", now))
	}
	want := []time.Duration{2 * time.Minute, 4 * time.Minute, 8 * time.Minute, authMaxPenalty, authMaxPenalty, authMaxPenalty}
	for i := range want {
		if penalties[i] != want[i] {
			t.Fatalf("penalties %v, want %v", penalties, want)
		}
	}
	l.succeeded("10.0.0.9")
	if d := l.retryAfter("10.0.0.9", now); d != 0 {
		t.Fatalf("blocked after the right token: %v", d)
	}

	// A flood as the handlers see it (a blocked peer's attempts are
	// refused before they are compared): 10,000 attempts of one peer and
	// one attempt each of 10,000 peers.
	logged.Reset()
	attempt := func(peer string) {
		if l.retryAfter(peer, now) == 0 {
			l.fail(peer, "POST", "/login", now)
		}
	}
	for range 10000 {
		attempt("10.9.9.9")
	}
	for i := range 10000 {
		attempt(fmt.Sprintf("10.8.%d.%d", i/256, i%256))
	}
	l.summarize(now)
	// One line per peer up to authMaxPeers (its 1st failure), a few for
	// the 1st, 2nd, 4th failures and the block of the flooding peer and of
	// the peers past authMaxPeers (who share one record), one summary.
	if lines := strings.Count(logged.String(), "\n"); lines > authMaxPeers+20 {
		t.Errorf("%d lines logged for 20,000 attempts", lines)
	}
	if !strings.Contains(logged.String(), "failed attempts since the last summary") || !strings.Contains(logged.String(), "refused_while_blocked=") {
		t.Errorf("no summary:\n%s", logged.String()[max(0, logged.Len()-500):])
	}
	if n := len(l.peers); n > authMaxPeers+1 {
		t.Errorf("%d peers kept, more than %d and the record they share past it", n, authMaxPeers)
	}
	if f, b := l.counts(); f == 0 || b == 0 || f+b < 20000 {
		t.Errorf("counted %d failures and %d refused while blocked, for 20,000 attempts", f, b)
	}
}

// On a listener reachable from the ward's network (127.0.0.2 counts), the
// monitors' live values and trends need the admin token, as a bearer token
// or the view cookie that /login sets; without it the page and the API
// still show states and counts. Wrong tokens are counted and, past the
// burst, answered 429 with Retry-After, the right one too.
func TestValuesNeedTheTokenOffLoopback(t *testing.T) {
	g, base, _ := operatorGatewayOn(t, t.TempDir(), fhirserver.New(), `listen: "127.0.0.2:0"`, adminToken, `patients:
  static: {bed-12: Patient/123}
monitors:
  - {id: bed-12-monitor, location: bed-12, profile: masimo/radical-7, serial: {port: /dev/null}}
`)
	at := time.Now().Add(-time.Second).UTC().Truncate(time.Second)
	g.monitorList()[0].Frame([]devices.Reading{spo2("bed-12-monitor", "bed-12", at, 97)}, 0, 0)

	code, body := get(t, base+"/api/monitors")
	if code != 200 || strings.Contains(body, `"value":97`) || !strings.Contains(body, `"values":[]`) || !strings.Contains(body, `"values_hidden":true`) ||
		!strings.Contains(body, `"id":"bed-12-monitor"`) || !strings.Contains(body, `"frames":1`) {
		t.Fatalf("/api/monitors without the token: %d %s", code, body)
	}
	for _, path := range []string{"/api/status", "/readyz"} {
		if code, body := get(t, base+path); code != 200 || strings.Contains(body, `"value":97`) || !strings.Contains(body, `"values_hidden":true`) {
			t.Errorf("%s without the token: %d %s", path, code, body)
		}
	}
	if code, body := get(t, base+"/api/monitors", bearer(adminToken)...); code != 200 || !strings.Contains(body, `"value":97`) {
		t.Fatalf("/api/monitors with the token: %d %s", code, body)
	}
	code, page := get(t, base+"/")
	if code != 200 || strings.Contains(page, `data-value="97"`) || !strings.Contains(page, `values-hidden`) || !strings.Contains(page, `<form id="login" method="post" action="/login">`) ||
		!strings.Contains(page, `data-monitor="bed-12-monitor"`) {
		t.Fatalf("the page without the token: %d\n%s", code, page)
	}

	// Signing in on the page sets the view cookie, which is not the token;
	// a wrong token sets none and is a failure.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.PostForm(base+"/login", url.Values{"token": {"guess-0123456789abcdefghij"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Fatalf("login with a wrong token: %d %v", resp.StatusCode, resp.Cookies())
	}
	resp, err = noRedirect.PostForm(base+"/login", url.Values{"token": {adminToken}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cookies := resp.Cookies()
	if resp.StatusCode != http.StatusSeeOther || len(cookies) != 1 || !cookies[0].HttpOnly || cookies[0].SameSite != http.SameSiteStrictMode || strings.Contains(cookies[0].Value, adminToken) {
		t.Fatalf("login: %d %v", resp.StatusCode, cookies)
	}
	cookie := cookies[0].Name + "=" + cookies[0].Value
	if code, page := get(t, base+"/", "Cookie", cookie); code != 200 || !strings.Contains(page, `data-value="97"`) || !strings.Contains(page, `<form id="logout"`) {
		t.Fatalf("the page with the view cookie: %d\n%s", code, page)
	}
	if code, body := get(t, base+"/api/beds", "Cookie", cookie); code != 401 {
		t.Fatalf("an admin API with the view cookie only: %d %s", code, body)
	}

	// The right token at /login forgot the wrong one before it; the view
	// cookie at an admin API was a failure. Then wrong tokens: 401 up to
	// the burst, then 429 with Retry-After, for the right token too;
	// counted in /metrics (with the wrong login: 6).
	for i := range authBurst - 1 {
		if code, body := get(t, base+"/api/monitors", bearer("wrong-token-0123456789abcdef")...); code != 401 {
			t.Fatalf("wrong token %d: %d %s", i+1, code, body)
		}
	}
	req, _ := http.NewRequest("GET", base+"/api/monitors", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("after %d wrong tokens: %d, Retry-After %q", authBurst, resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if code, body := get(t, base+"/api/monitors"); code != 200 || !strings.Contains(body, `"values_hidden":true`) {
		t.Fatalf("without a token while blocked: %d %s", code, body)
	}
	_, metrics := get(t, base+"/metrics")
	for _, want := range []string{`wardgate_errors_total{kind="http_auth_failed"} 6`, `wardgate_errors_total{kind="http_auth_rate_limited"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// On a loopback listener the values show without the token.
func TestValuesShowOnLoopback(t *testing.T) {
	g, base, _ := operatorGateway(t, t.TempDir(), fhirserver.New(), adminToken, `monitors:
  - {id: bed-12-monitor, location: bed-12, profile: masimo/radical-7, serial: {port: /dev/null}}
`)
	g.monitorList()[0].Frame([]devices.Reading{spo2("bed-12-monitor", "bed-12", time.Now().Add(-time.Second), 97)}, 0, 0)
	if code, body := get(t, base+"/api/monitors"); code != 200 || !strings.Contains(body, `"value":97`) || strings.Contains(body, `"values_hidden":true`) {
		t.Fatalf("/api/monitors on loopback: %d %s", code, body)
	}
}
