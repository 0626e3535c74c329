package fhir

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// SMARTBackend is SMART Backend Services authorization: the client
// authenticates to the token endpoint with a JWT signed by its private key
// (private_key_jwt, RS384 or ES384) and receives an access token, cached
// until shortly before it expires.
type SMARTBackend struct {
	http     *http.Client
	tokenURL string
	clientID string
	scopes   []string
	signer   jose.Signer

	mu      sync.Mutex
	token   string
	expires time.Time
}

// NewSMARTBackend reads the PEM private key (RSA or EC P-384/P-256, PKCS#1,
// PKCS#8 or SEC1) and prepares the signer.
func NewSMARTBackend(hc *http.Client, tokenURL, clientID, keyID string, keyPEM []byte, scopes []string) (*SMARTBackend, error) {
	key, err := parsePrivateKey(keyPEM)
	if err != nil {
		return nil, err
	}
	alg := jose.RS384
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		switch k.Curve.Params().BitSize {
		case 384:
			alg = jose.ES384
		case 256:
			alg = jose.ES256
		default:
			return nil, fmt.Errorf("EC key on %s: SMART needs P-384 (or P-256)", k.Curve.Params().Name)
		}
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("RSA key of %d bits: at least 2048", k.N.BitLen())
		}
	}
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if keyID != "" {
		opts = opts.WithHeader("kid", keyID)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		return nil, err
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	return &SMARTBackend{http: hc, tokenURL: tokenURL, clientID: clientID, scopes: scopes, signer: signer}, nil
}

func parsePrivateKey(b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("private key: no PEM block")
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		if s, ok := k.(crypto.Signer); ok {
			return s, nil
		}
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	return nil, fmt.Errorf("private key: %s is not an RSA or EC private key", block.Type)
}

// Token returns a cached access token or fetches a new one.
func (s *SMARTBackend) Token(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token != "" && time.Now().Before(s.expires) {
		return s.token, nil
	}
	now := time.Now()
	var jti [16]byte
	rand.Read(jti[:])
	assertion, err := jwt.Signed(s.signer).Claims(jwt.Claims{
		Issuer: s.clientID, Subject: s.clientID, Audience: jwt.Audience{s.tokenURL},
		Expiry: jwt.NewNumericDate(now.Add(5 * time.Minute)), IssuedAt: jwt.NewNumericDate(now),
		ID: hex.EncodeToString(jti[:]),
	}).Serialize()
	if err != nil {
		return "", err
	}
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion},
	}
	if len(s.scopes) > 0 {
		form.Set("scope", strings.Join(s.scopes, " "))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	res, err := s.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("fhir token from %s: %w", s.tokenURL, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
		Error       string `json:"error"`
	}
	json.Unmarshal(body, &tok)
	if res.StatusCode != http.StatusOK || tok.AccessToken == "" {
		return "", fmt.Errorf("fhir token from %s: HTTP %d %s", s.tokenURL, res.StatusCode, tok.Error)
	}
	if tok.ExpiresIn <= 0 {
		tok.ExpiresIn = 300
	}
	s.token = tok.AccessToken
	// Renew a minute early (or at half the lifetime of a short token).
	s.expires = now.Add(time.Duration(tok.ExpiresIn)*time.Second - min(time.Minute, time.Duration(tok.ExpiresIn)*time.Second/2))
	return s.token, nil
}

// Invalidate drops the cached token.
func (s *SMARTBackend) Invalidate() {
	s.mu.Lock()
	s.token = ""
	s.mu.Unlock()
}
