package edge

import (
	"fmt"
	"net/http"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/wardgate/wardgate/edge/config"
	"github.com/wardgate/wardgate/edge/fhir"
)

// fhirClient builds the FHIR client the config describes: TLS (a CA, a client
// certificate), the request timeout and the authentication.
func fhirClient(c config.FHIR) (*fhir.Client, error) {
	tlsCfg, err := fhir.TLSConfig(c.TLS.CAFile, c.TLS.CertFile, []byte(c.TLS.KeyFile.Value()))
	if err != nil {
		return nil, fmt.Errorf("fhir.tls: %w", err)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = tlsCfg
	hc := &http.Client{Timeout: c.Timeout.D(), Transport: transport}
	auth, err := httpAuth(c.Auth, hc)
	if err != nil {
		return nil, fmt.Errorf("fhir.auth: %w", err)
	}
	return &fhir.Client{BaseURL: c.BaseURL, HTTP: hc, Auth: auth}, nil
}

// httpAuth builds the authentication an auth section describes (fhir.auth,
// a DICOMweb destination's auth); nil for type none. hc makes the token
// requests, with the same TLS settings as the requests they authorize.
func httpAuth(a config.FHIRAuth, hc *http.Client) (fhir.Auth, error) {
	switch a.Type {
	case "none", "":
		return nil, nil
	case "bearer":
		return &fhir.BearerFile{Path: a.TokenFile.Path}, nil
	case "client_credentials":
		return &fhir.ClientCredentials{
			HTTP: hc,
			Config: clientcredentials.Config{
				ClientID: a.ClientID, ClientSecret: a.ClientSecretFile.Value(),
				TokenURL: a.TokenURL, Scopes: a.Scopes,
			},
		}, nil
	case "smart_backend":
		return fhir.NewSMARTBackend(hc, a.TokenURL, a.ClientID, a.KeyID, []byte(a.PrivateKeyFile.Value()), a.Scopes)
	default:
		return nil, fmt.Errorf("type %q", a.Type)
	}
}
