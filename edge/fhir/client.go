package fhir

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Auth supplies the bearer token of each request. Invalidate is called
// after a 401, so that the next Token is a fresh one.
type Auth interface {
	Token(ctx context.Context) (string, error)
	Invalidate()
}

// BearerFile is a token kept in a file (rotated by someone else); it is read
// again after a 401.
type BearerFile struct {
	Path string

	mu    sync.Mutex
	token string
}

// Token returns the file's token.
func (b *BearerFile) Token(context.Context) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.token == "" {
		t, err := os.ReadFile(b.Path)
		if err != nil {
			return "", fmt.Errorf("fhir bearer token: %w", err)
		}
		b.token = strings.TrimSpace(string(t))
	}
	return b.token, nil
}

// Invalidate makes the next Token read the file again.
func (b *BearerFile) Invalidate() {
	b.mu.Lock()
	b.token = ""
	b.mu.Unlock()
}

// ClientCredentials is OAuth2's client-credentials grant; tokens are cached
// until they expire or a 401 invalidates them.
type ClientCredentials struct {
	Config clientcredentials.Config
	// HTTP makes the token requests (nil: http.DefaultClient), so that they
	// use the same TLS settings as the FHIR requests.
	HTTP *http.Client

	mu  sync.Mutex
	src oauth2.TokenSource
}

// Token returns a valid access token, fetching one when needed.
func (c *ClientCredentials) Token(ctx context.Context) (string, error) {
	c.mu.Lock()
	if c.src == nil {
		tctx := context.WithoutCancel(ctx)
		if c.HTTP != nil {
			tctx = context.WithValue(tctx, oauth2.HTTPClient, c.HTTP)
		}
		c.src = c.Config.TokenSource(tctx)
	}
	src := c.src
	c.mu.Unlock()
	t, err := src.Token()
	if err != nil {
		return "", fmt.Errorf("fhir token from %s: %w", c.Config.TokenURL, err)
	}
	return t.AccessToken, nil
}

// Invalidate drops the cached token.
func (c *ClientCredentials) Invalidate() {
	c.mu.Lock()
	c.src = nil
	c.mu.Unlock()
}

// TLSConfig builds the client TLS settings from a CA file and an optional
// client certificate (mutual TLS). Empty arguments keep the system's roots.
func TLSConfig(caFile, certFile string, keyPEM []byte) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
		}
		cfg.RootCAs = pool
	}
	if certFile != "" {
		certPEM, err := os.ReadFile(certFile)
		if err != nil {
			return nil, err
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("client certificate %s: %w", certFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Client posts Bundles to one FHIR server.
type Client struct {
	BaseURL string
	HTTP    *http.Client // its Timeout bounds each request
	Auth    Auth         // nil: no authentication
}

// Response is the server's answer to a Bundle.
type Response struct {
	Status     int
	RetryAfter time.Duration // from a Retry-After header, 0 if none
	// Outcome is the diagnostics of an OperationOutcome in the body, or the
	// start of the body when it is not one. It may quote patient data: it
	// goes with a dead letter, never into a log.
	Outcome string
	// Codes are the OperationOutcome's severities and issue codes only,
	// safe for logs and retry reasons.
	Codes string
	// IsOutcome tells that the body was a FHIR OperationOutcome: the FHIR
	// server itself answered, not a proxy in front of it.
	IsOutcome bool
	// TransactionResponse tells that the body was a transaction-response
	// Bundle; Entries are its entry statuses, in entry order.
	TransactionResponse bool
	Entries             []string
}

// noRedirects keeps a POST from being turned into a GET by a redirect (an
// http→https hop, a login page): the Bundle must reach the record or fail.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Post sends a Bundle and reads the answer. A 401 invalidates the token and
// the request is made once more with a new one. An error means no answer
// (network, timeout): the Bundle may or may not have been processed.
func (c *Client) Post(ctx context.Context, bundle []byte) (*Response, error) {
	resp, err := c.post(ctx, bundle)
	if err == nil && resp.Status == http.StatusUnauthorized && c.Auth != nil {
		c.Auth.Invalidate()
		resp, err = c.post(ctx, bundle)
	}
	return resp, err
}

func (c *Client) post(ctx context.Context, bundle []byte) (*Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.BaseURL, bytes.NewReader(bundle))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Prefer", "return=minimal")
	res, err := c.do(ctx, req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 8<<20))
	if err != nil {
		return nil, err
	}
	r := &Response{Status: res.StatusCode, RetryAfter: retryAfter(res.Header.Get("Retry-After"), time.Now())}
	var parsed struct {
		ResourceType string `json:"resourceType"`
		Type         string `json:"type"`
		Issue        []struct {
			Severity, Code, Diagnostics string
		} `json:"issue"`
		Entry []struct {
			Response struct{ Status string } `json:"response"`
		} `json:"entry"`
	}
	if json.Unmarshal(body, &parsed) == nil {
		switch parsed.ResourceType {
		case "OperationOutcome":
			var parts, codes []string
			for _, is := range parsed.Issue {
				parts = append(parts, strings.TrimSpace(is.Severity+" "+is.Code+": "+is.Diagnostics))
				codes = append(codes, strings.TrimSpace(is.Severity+" "+is.Code))
			}
			r.Outcome, r.Codes, r.IsOutcome = strings.Join(parts, "; "), strings.Join(codes, "; "), true
		case "Bundle":
			r.TransactionResponse = parsed.Type == "transaction-response"
			for _, e := range parsed.Entry {
				r.Entries = append(r.Entries, e.Response.Status)
			}
		}
	} else if res.StatusCode >= 300 {
		r.Outcome = truncateString(strings.TrimSpace(string(body)), 500)
	}
	return r, nil
}

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func truncateString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// do sends a request with the headers every request carries (FHIR JSON,
// the bearer token) and without following redirects.
func (c *Client) do(ctx context.Context, req *http.Request) (*http.Response, error) {
	req.Header.Set("Accept", "application/fhir+json")
	req.Header.Set("User-Agent", "wardgate")
	if c.Auth != nil {
		tok, err := c.Auth.Token(ctx)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	hc := http.Client{}
	if c.HTTP != nil {
		hc = *c.HTTP
	}
	hc.CheckRedirect = noRedirects
	return hc.Do(req)
}
