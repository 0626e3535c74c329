package config

import (
	"fmt"
	"math"
	"net"
	"strings"
)

// minTokenBits is the randomness an admin token must carry: enough that
// guessing it over the network is hopeless even without the rate limit.
const minTokenBits = 128

// validateHTTP checks the http section: the listener, the admin token's
// strength, the TLS certificate, and what a listener reachable from the
// ward's network shows.
func validateHTTP(c *Config, ps *Problems) {
	h := &c.HTTP
	validateListen(ps, "http.listen", h.Listen, true)
	if h.AdminTokenFile.Set() {
		loadSecret(ps, "http.admin_token_file", &h.AdminTokenFile)
		if tok := h.AdminTokenFile.Value(); tok != "" {
			if why := weakToken(tok); why != "" {
				ps.At("http.admin_token_file", "%s; it needs at least %d bits of randomness: 32 hex characters or 22 base64url characters, not all one character (make one with: openssl rand -hex 32)", why, minTokenBits)
			}
		}
	}
	if h.TLS != nil {
		if h.TLS.CertFile == "" || !h.TLS.KeyFile.Set() {
			ps.At("http.tls", "cert_file and key_file are required: the certificate the status page shows to browsers")
		} else {
			validateKeyPair(ps, "http.tls", h.TLS.CertFile, &h.TLS.KeyFile)
		}
	} else if !ListensOnLoopbackOnly(h.Listen) {
		ps.Warn("http.listen", "the status page and the admin token travel unencrypted to this address; set http.tls with cert_file and key_file")
	}
	if h.PublicValues && !ListensOnLoopbackOnly(h.Listen) {
		ps.Warn("http.public_values", "anyone who can reach %s sees the patients' live values and trends without the admin token", h.Listen)
	}
}

// weakToken says why tok carries less than minTokenBits, judged by its
// length and alphabet (a token is taken to be random characters of the
// smallest alphabet that spells it); "" when it is long enough.
func weakToken(tok string) string {
	if strings.Count(tok, tok[:1]) == len(tok) {
		return "the token is one character repeated"
	}
	alphabet, bitsPer := "printable", math.Log2(94)
	switch {
	case strings.Trim(tok, "0123456789abcdefABCDEF") == "":
		alphabet, bitsPer = "hex", 4
	case strings.Trim(strings.TrimRight(tok, "="), "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/") == "":
		alphabet, bitsPer = "base64", 6
		tok = strings.TrimRight(tok, "=")
	}
	n := len([]rune(tok))
	if bits := float64(n) * bitsPer; bits < minTokenBits {
		return fmt.Sprintf("the token has %d %s characters, at most %d bits", n, alphabet, int(bits))
	}
	return ""
}

// ListensOnLoopbackOnly reports whether addr (host:port) can be reached
// from this machine only. Only the usual names of this machine count:
// 127.0.0.1, ::1 and localhost. Any other address, other 127.0.0.0/8
// addresses and an empty host (every interface) included, is taken as
// reachable from the ward's network: a box may route or forward
// loopback aliases, and tests can stand for a ward address with
// 127.0.0.2.
func ListensOnLoopbackOnly(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	switch host {
	case "localhost", "127.0.0.1", "::1":
		return true
	}
	return false
}
