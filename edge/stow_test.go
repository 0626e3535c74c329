package edge

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardgate/wardgate/edge/config"
)

// A DICOMweb destination's client trusts the entry's CA and carries the
// bearer token of its auth; after a 401 the token file is read again (it
// was rotated), so the Forwarder's next try goes with the new token.
func TestSTOWDestinationClient(t *testing.T) {
	var got []string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("Authorization"))
		if r.Header.Get("Authorization") != "Bearer new" {
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)
	token := filepath.Join(dir, "token")
	os.WriteFile(token, []byte("old\n"), 0o600)

	f := config.DICOMPeer{StowRS: srv.URL + "/dicomweb", TLS: &config.TLS{CAFile: ca},
		Auth: &config.FHIRAuth{Type: "bearer", TokenFile: config.Secret{Path: token}}}
	d, err := stowDestination(f)
	if err != nil {
		t.Fatal(err)
	}
	if d.LedgerName() != srv.URL+"/dicomweb" || d.HTTP == nil {
		t.Fatalf("destination %+v", d)
	}
	post := func() int {
		resp, err := d.HTTP.Post(srv.URL+"/dicomweb/studies/1.2.3", "multipart/related", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(); code != http.StatusUnauthorized {
		t.Fatalf("with the old token: %d", code)
	}
	os.WriteFile(token, []byte("new\n"), 0o600)
	if code := post(); code != http.StatusOK {
		t.Fatalf("with the rotated token: %d (sent %q)", code, got)
	}

	// Without the CA the archive's certificate is not trusted.
	d, _ = stowDestination(config.DICOMPeer{StowRS: srv.URL})
	if _, err := d.HTTP.Get(srv.URL); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("an untrusted certificate: %v", err)
	}
}
