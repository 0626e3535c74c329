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
	client := &fhir.Client{BaseURL: c.BaseURL, HTTP: hc}
	a := c.Auth
	switch a.Type {
	case "none":
	case "bearer":
		client.Auth = &fhir.BearerFile{Path: a.TokenFile.Path}
	case "client_credentials":
		client.Auth = &fhir.ClientCredentials{
			HTTP: hc,
			Config: clientcredentials.Config{
				ClientID: a.ClientID, ClientSecret: a.ClientSecretFile.Value(),
				TokenURL: a.TokenURL, Scopes: a.Scopes,
			},
		}
	case "smart_backend":
		auth, err := fhir.NewSMARTBackend(hc, a.TokenURL, a.ClientID, a.KeyID, []byte(a.PrivateKeyFile.Value()), a.Scopes)
		if err != nil {
			return nil, fmt.Errorf("fhir.auth: %w", err)
		}
		client.Auth = auth
	default:
		return nil, fmt.Errorf("fhir.auth.type %q", a.Type)
	}
	return client, nil
}
