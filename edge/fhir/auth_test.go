package fhir

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/wardgate/wardgate/edge/fhir/fhirserver"
)

// tokenEndpoint answers OAuth2 token requests with check's verdict.
func tokenEndpoint(t *testing.T, check func(r *http.Request) bool) (*httptest.Server, *atomic.Int32) {
	var calls atomic.Int32
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		if !check(r) {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"invalid_client"}`))
			return
		}
		w.Write([]byte(`{"access_token":"granted","token_type":"bearer","expires_in":3600}`))
	}))
	t.Cleanup(s.Close)
	return s, &calls
}

func TestClientCredentialsTokenReachesTheServer(t *testing.T) {
	tokens, calls := tokenEndpoint(t, func(r *http.Request) bool {
		id, secret, ok := r.BasicAuth()
		if !ok {
			id, secret = r.Form.Get("client_id"), r.Form.Get("client_secret")
		}
		return r.Form.Get("grant_type") == "client_credentials" && id == "wardgate-4b" && secret == "s3cret" &&
			r.Form.Get("scope") == "system/Observation.write"
	})
	r := newRig(t, 5*time.Second, 50, func(d *Deliverer) {
		d.Client.Auth = &ClientCredentials{Config: clientcredentials.Config{
			ClientID: "wardgate-4b", ClientSecret: "s3cret", TokenURL: tokens.URL, Scopes: []string{"system/Observation.write"},
		}}
	})
	r.server.SetFaults(fhirserver.Faults{Token: "granted"})
	r.readings(30)
	r.waitDrained(30 * time.Second)
	r.exactlyOnce(30)
	if calls.Load() != 1 {
		t.Fatalf("%d token requests, want 1 (the token is cached)", calls.Load())
	}
}

func TestSMARTBackendSignsAnAssertionTheTokenServerVerifies(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	var tokenURL string
	tokens, calls := tokenEndpoint(t, func(r *http.Request) bool {
		if r.Form.Get("grant_type") != "client_credentials" ||
			r.Form.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
			return false
		}
		tok, err := jwt.ParseSigned(r.Form.Get("client_assertion"), []jose.SignatureAlgorithm{jose.ES384})
		if err != nil || tok.Headers[0].KeyID != "key-1" {
			t.Errorf("assertion: %v", err)
			return false
		}
		var c jwt.Claims
		if err := tok.Claims(&key.PublicKey, &c); err != nil {
			t.Errorf("signature: %v", err)
			return false
		}
		if err := c.Validate(jwt.Expected{Issuer: "wardgate-4b", Subject: "wardgate-4b", AnyAudience: jwt.Audience{tokenURL}}); err != nil || c.ID == "" {
			t.Errorf("claims %+v: %v", c, err)
			return false
		}
		return c.Expiry.Time().Sub(time.Now()) <= 5*time.Minute
	})
	tokenURL = tokens.URL
	auth, err := NewSMARTBackend(nil, tokens.URL, "wardgate-4b", "key-1", keyPEM, []string{"system/*.write"})
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, 5*time.Second, 50, func(d *Deliverer) { d.Client.Auth = auth })
	r.server.SetFaults(fhirserver.Faults{Token: "granted"})
	r.readings(10)
	r.waitDrained(30 * time.Second)
	r.exactlyOnce(10)
	if calls.Load() != 1 {
		t.Fatalf("%d token requests, want 1", calls.Load())
	}
}

func TestARefusedTokenKeepsTheEntriesWaiting(t *testing.T) {
	tokens, _ := tokenEndpoint(t, func(*http.Request) bool { return false })
	r := newRig(t, 5*time.Second, 50, func(d *Deliverer) {
		d.Client.Auth = &ClientCredentials{Config: clientcredentials.Config{ClientID: "x", ClientSecret: "y", TokenURL: tokens.URL}}
	})
	r.server.SetFaults(fhirserver.Faults{Token: "granted"})
	r.readings(3)
	for r.d.Stats().Retried == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	if s := r.outbox.Stats(); s.Waiting != 4 || s.Dead != 0 {
		t.Fatalf("outbox: %+v", s)
	}
	if !strings.Contains(r.d.Stats().LastError, "token") {
		t.Fatalf("last error: %q", r.d.Stats().LastError)
	}
	if strings.Contains(r.d.Stats().LastError, "y") && strings.Contains(r.d.Stats().LastError, "client_secret") {
		t.Fatal("the secret reached the error")
	}
}

func TestBadPrivateKeysAreRefused(t *testing.T) {
	for name, pemText := range map[string]string{
		"not pem":   "hello",
		"not a key": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
	} {
		if _, err := NewSMARTBackend(nil, "https://x/token", "c", "", []byte(pemText), nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
