package edge

import (
	"fmt"
	"net/http"
	"time"

	"github.com/wardgate/wardgate/dicom/gateway"

	"github.com/wardgate/wardgate/edge/config"
	"github.com/wardgate/wardgate/edge/fhir"
)

// stowTimeout bounds one STOW-RS request: a full batch (64 MiB) over a
// slow link to a cloud archive, with room to spare.
const stowTimeout = 5 * time.Minute

// stowDestination makes a dicom.forward entry with stow_rs a destination:
// an HTTP client with the entry's TLS (a CA, a client certificate for
// mutual TLS) and authentication built as fhir.auth's is. The DICOM
// application gets the client, never the config.
func stowDestination(f config.DICOMPeer) (gateway.Destination, error) {
	var t config.TLS
	if f.TLS != nil {
		t = *f.TLS
	}
	tlsCfg, err := fhir.TLSConfig(t.CAFile, t.CertFile, []byte(t.KeyFile.Value()))
	if err != nil {
		return gateway.Destination{}, fmt.Errorf("tls: %w", err)
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.TLSClientConfig = tlsCfg
	a := config.FHIRAuth{Type: "none"}
	if f.Auth != nil {
		a = *f.Auth
	}
	auth, err := httpAuth(a, &http.Client{Timeout: 30 * time.Second, Transport: base})
	if err != nil {
		return gateway.Destination{}, fmt.Errorf("auth: %w", err)
	}
	hc := &http.Client{Timeout: stowTimeout, Transport: base}
	if auth != nil {
		hc.Transport = &bearerTransport{base: base, auth: auth}
	}
	return gateway.Destination{STOWRS: f.StowRS, HTTP: hc}, nil
}

// bearerTransport puts the token of auth on every request; a 401 makes
// the next request fetch (or read) a fresh one. The request itself is not
// repeated here: the Forwarder retries it with its backoff.
type bearerTransport struct {
	base http.RoundTripper
	auth fhir.Auth
}

func (b *bearerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tok, err := b.auth.Token(req.Context())
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+tok)
	resp, err := b.base.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusUnauthorized {
		b.auth.Invalidate()
	}
	return resp, err
}
