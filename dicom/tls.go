package dicom

import (
	"crypto/tls"
	"crypto/x509"
	"net"
)

// BCP195 returns a copy of cfg restricted to the BCP 195 TLS Secure
// Transport Connection Profile (PS3.15 B.9, RFC 9325): TLS 1.2 or 1.3, and
// under TLS 1.2 only ephemeral (EC)DHE key exchange with AEAD ciphers. Go
// has no finite-field DHE; the ECDHE suites are the ones BCP 195 ranks
// first. TLS 1.3 suites are not configurable in Go and all qualify.
func BCP195(cfg *tls.Config) *tls.Config {
	c := cfg.Clone()
	if c == nil {
		c = &tls.Config{}
	}
	c.MinVersion = tls.VersionTLS12
	c.CipherSuites = []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
	return c
}

// Peer is who asks for an association: its calling AE title, its address
// and, over DICOM TLS, the verified certificate chain it showed (nil when
// the connection is plain or the peer showed none).
type Peer struct {
	CallingAE string
	Remote    net.Addr
	// TLS is true when the association came over TLS.
	TLS bool
	// Certificate is the peer's leaf certificate once verified against the
	// server's client CAs; nil without one.
	Certificate *x509.Certificate
}
