package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/wardgate/wardgate/dicom/internal/dicomtest"
)

// A stow_rs URL that reaches a web server which is not the archive — a
// reverse proxy's default site, a single-page app answering every path
// with its index page, a webhook catcher — answers a POST with 200 and a
// page that is no Store Instances Response. Taken as "all stored", the
// instances were marked delivered (and then pruned): a study lost with
// nobody told. Such an answer, and a 200 with no body at all, must leave
// the instances waiting with the reason shown, like a 404 does.
func TestReview13bSTOW200WithoutAStoreInstancesResponse(t *testing.T) {
	for name, body := range map[string]string{
		"an HTML page": "<!doctype html><html><body>Welcome to nginx!</body></html>",
		"no body":      "",
	} {
		t.Run(name, func(t *testing.T) {
			spool, ledger := fwdFixture(t)
			stowStudies(t, spool, 2, "1.2.826.0.1.3680043.2.1125.131")
			var mu sync.Mutex
			posts := 0
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				mu.Lock()
				posts++
				mu.Unlock()
				if body != "" {
					w.Header().Set("Content-Type", "text/html")
				}
				w.WriteHeader(http.StatusOK)
				io.WriteString(w, body)
			}))
			t.Cleanup(srv.Close)
			f := startForwarder(t, &Forwarder{Dest: Destination{STOWRS: srv.URL + "/dicomweb"}, Spool: spool, Ledger: ledger})
			dicomtest.WaitFor(t, "the answer settled", func() bool {
				mu.Lock()
				n := posts
				mu.Unlock()
				s := f.Stats()
				return n >= 1 && (s.Delivered > 0 || s.LastError != "")
			})
			s := f.Stats()
			if s.Delivered != 0 || s.Waiting != 2 {
				t.Fatalf("a 200 with %s taken as stored: %+v", name, s)
			}
			if !strings.Contains(s.LastError, "STOW-RS") {
				t.Fatalf("the reason is not shown: %+v", s)
			}
		})
	}
}
