package edge

import (
	"log/slog"
	"strings"
	"sync/atomic"
)

// serverErrorLog is the HTTP server's own log. A failed TLS handshake is
// what any port scanner or a browser refusing the certificate makes, so
// those are logged at their 1st, 2nd, 4th, 8th… occurrence only, and
// counted (http_tls_handshakes_failed): a flood cannot fill the log.
type serverErrorLog struct {
	log        *slog.Logger
	handshakes atomic.Uint64
}

func (s *serverErrorLog) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	if strings.HasPrefix(msg, "http: TLS handshake error") {
		if n := s.handshakes.Add(1); n&(n-1) == 0 {
			s.log.Warn(msg+" (logged at the 1st, 2nd, 4th, 8th… failed handshake)", "handshakes_failed", n)
		}
		return len(p), nil
	}
	s.log.Warn(msg)
	return len(p), nil
}

// tlsHandshakesFailed counts the failed TLS handshakes of the HTTP server.
func (g *Gateway) tlsHandshakesFailed() uint64 {
	if g.httpErrors == nil {
		return 0
	}
	return g.httpErrors.handshakes.Load()
}
