package fhir

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardgate/wardgate/buffer"
	"github.com/wardgate/wardgate/edge/fhir/fhirserver"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// rig is a real outbox, a real HTTP FHIR server and a deliverer between them.
type rig struct {
	t      *testing.T
	outbox *buffer.Outbox
	server *fhirserver.Server
	http   *httptest.Server
	d      *Deliverer
	m      *Mapper
	cancel context.CancelFunc
	done   chan error
	n      int // readings made
}

// newRig starts the deliverer after setup has adjusted it (before Run, so
// that tests never change it under the running goroutine).
func newRig(t *testing.T, timeout time.Duration, batch int, setup ...func(*Deliverer)) *rig {
	t.Helper()
	ob, err := buffer.OpenOutbox(filepath.Join(t.TempDir(), "outbox.db"), buffer.OutboxOptions{
		Logger:  quiet,
		Backoff: buffer.Backoff{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond, Multiplier: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := fhirserver.New()
	hs := httptest.NewServer(srv)
	r := &rig{t: t, outbox: ob, server: srv, http: hs, m: testMapper(), done: make(chan error, 1)}
	r.d = &Deliverer{Outbox: ob, Client: &Client{BaseURL: hs.URL, HTTP: &http.Client{Timeout: timeout}}, BatchSize: batch, Log: quiet}
	for _, f := range setup {
		f(r.d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- r.d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-r.done
		hs.Close()
		ob.Close()
	})
	return r
}

// readings appends n readings of distinct times, each mapped and stored the
// way the gateway does it.
func (r *rig) readings(n int) {
	r.t.Helper()
	for i := 0; i < n; i++ {
		rd := reading(150456, "MDC_PULS_OXIM_SAT_O2", float64(90+i%10), "%")
		rd.DeviceTime = deviceTime.Add(time.Duration(r.n) * time.Second)
		r.n++
		entries, rejected := r.m.MapReadings(charted(rd))
		if len(rejected) > 0 {
			r.t.Fatal(rejected)
		}
		var items []buffer.Item
		for _, e := range entries {
			b, _ := json.Marshal(e)
			items = append(items, buffer.Item{Key: rd.Device, Kind: "fhir", Payload: b})
		}
		if _, err := r.outbox.Append(context.Background(), items...); err != nil {
			r.t.Fatal(err)
		}
		r.m.ConfirmDevices(entries)
	}
}

// waitDrained waits until the outbox has nothing waiting.
func (r *rig) waitDrained(within time.Duration) {
	r.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if r.outbox.Stats().Waiting == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.t.Fatalf("outbox not drained: %+v, delivery %+v", r.outbox.Stats(), r.d.Stats())
}

// waitCounted waits until the deliverer has counted n entries as settled
// (its counters move just after the outbox acks).
func (r *rig) waitCounted(n uint64) DeliveryStats {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := r.d.Stats()
		if s.Delivered+s.DeadLettered >= n || time.Now().After(deadline) {
			return s
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// exactlyOnce checks that the server holds each reading's Observation once.
func (r *rig) exactlyOnce(want int) {
	r.t.Helper()
	seen := map[string]int{}
	for _, raw := range r.server.Resources("Observation") {
		var o Observation
		json.Unmarshal(raw, &o)
		seen[o.Identifier[0].Value]++
		if o.Device == nil || !strings.HasPrefix(o.Device.Reference, "Device/") {
			r.t.Fatalf("device reference not resolved: %+v", o.Device)
		}
	}
	if len(seen) != want {
		r.t.Fatalf("%d distinct Observations in the record, want %d", len(seen), want)
	}
	for id, n := range seen {
		if n != 1 {
			r.t.Fatalf("%s is in the record %d times", id, n)
		}
	}
	if n := r.server.Count("Device"); n != 1 {
		r.t.Fatalf("%d Devices in the record, want 1", n)
	}
}

func TestDeliveryWritesEachReadingOnce(t *testing.T) {
	r := newRig(t, 5*time.Second, 50)
	r.readings(250)
	r.waitDrained(30 * time.Second)
	r.exactlyOnce(250)
	if s := r.waitCounted(251); s.Delivered != 251 || s.DeadLettered != 0 {
		t.Fatalf("stats: %+v", s)
	}
}

func TestAnOutageCostsNoReadingAndMakesNoDuplicate(t *testing.T) {
	r := newRig(t, 5*time.Second, 50)
	r.server.SetFaults(fhirserver.Faults{Status: 503})
	r.readings(100)
	for r.d.Stats().Retried == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	r.readings(100) // readings keep coming during the outage
	if n := r.server.Count("Observation"); n != 0 {
		t.Fatalf("%d Observations written during the outage", n)
	}
	r.server.SetFaults(fhirserver.Faults{})
	r.waitDrained(30 * time.Second)
	r.exactlyOnce(200)
}

func TestTooManyRequestsIsHonoured(t *testing.T) {
	r := newRig(t, 5*time.Second, 50)
	r.server.SetFaults(fhirserver.Faults{Status: 429, RetryAfter: "1"})
	r.readings(10)
	for r.d.Stats().Retried == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	// The backoff here is 20 ms; the server asked for 1 s.
	time.Sleep(300 * time.Millisecond)
	if got := r.server.Requests(); got != 1 {
		t.Fatalf("%d requests within the Retry-After, want 1", got)
	}
	r.server.SetFaults(fhirserver.Faults{})
	r.waitDrained(30 * time.Second)
	r.exactlyOnce(10)
}

// A server that writes but answers too late: the client times out, retries,
// and the conditional create keeps the record free of copies.
func TestAHangPastTheTimeoutMakesNoDuplicate(t *testing.T) {
	r := newRig(t, 200*time.Millisecond, 50)
	r.server.SetFaults(fhirserver.Faults{Hang: time.Second})
	r.readings(20)
	for r.d.Stats().Retried == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	r.server.SetFaults(fhirserver.Faults{})
	r.waitDrained(30 * time.Second)
	r.exactlyOnce(20)
	if s := r.d.Stats(); !strings.Contains(s.LastError, "no answer") {
		t.Fatalf("last error %q", s.LastError)
	}
}

func TestOneRefusedEntryAmongAHundred(t *testing.T) {
	r := newRig(t, 5*time.Second, 200, func(d *Deliverer) { d.BatchWait = 200 * time.Millisecond }) // all 100 in one Bundle
	r.server.SetFaults(fhirserver.Faults{Reject: "bed-12-monitor/150456/2026-11-25T03:00:42Z"})
	r.readings(100)
	r.waitDrained(30 * time.Second)
	if n := r.server.Count("Observation"); n != 99 {
		t.Fatalf("%d Observations landed, want 99", n)
	}
	dl, err := r.outbox.DeadLetters(0)
	if err != nil || len(dl) != 1 {
		t.Fatalf("dead letters: %v %v", dl, err)
	}
	if !strings.Contains(dl[0].Reason, "HTTP 422") || !strings.Contains(dl[0].Reason, "refuses the resource") ||
		!strings.Contains(string(dl[0].Payload), "03:00:42Z") {
		t.Fatalf("dead letter: %s / %s", dl[0].Reason, dl[0].Payload)
	}
	if s := r.waitCounted(101); s.DeadLettered != 1 || s.Delivered != 100 {
		t.Fatalf("stats: %+v", s)
	}
}

// Finding 8: one entry the record answers with 412 (its conditional create
// matches several resources) in the middle of a device's stream. It is
// retried a few times, then dead-lettered with the OperationOutcome, and
// the device's later readings flow on.
func TestA412InTheMiddleOfAStreamDoesNotStallIt(t *testing.T) {
	for _, status := range []int{412, 409, 403} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			r := newRig(t, 5*time.Second, 10)
			r.server.SetFaults(fhirserver.Faults{Reject: "bed-12-monitor/150456/2026-11-25T03:00:14Z", RejectStatus: status})
			r.readings(40)
			r.waitDrained(30 * time.Second)
			if n := r.server.Count("Observation"); n != 39 {
				t.Fatalf("%d Observations landed, want 39", n)
			}
			dl, err := r.outbox.DeadLetters(0)
			if err != nil || len(dl) != 1 {
				t.Fatalf("dead letters: %v %v", dl, err)
			}
			if !strings.Contains(dl[0].Reason, fmt.Sprintf("HTTP %d", status)) || !strings.Contains(string(dl[0].Payload), "03:00:14Z") || dl[0].Attempts < 5 {
				t.Fatalf("dead letter after %d attempts: %s / %s", dl[0].Attempts, dl[0].Reason, dl[0].Payload)
			}
		})
	}
}

func TestATokenIsRenewedOnceAfter401(t *testing.T) {
	tokens := &countingAuth{tokens: []string{"old", "new"}}
	r := newRig(t, 5*time.Second, 50, func(d *Deliverer) { d.Client.Auth = tokens })
	r.server.SetFaults(fhirserver.Faults{Token: "new"})
	r.readings(5)
	r.waitDrained(30 * time.Second)
	r.exactlyOnce(5)
	if tokens.invalidated != 1 {
		t.Fatalf("token invalidated %d times", tokens.invalidated)
	}
}

type countingAuth struct {
	mu          sync.Mutex
	tokens      []string
	invalidated int
}

func (a *countingAuth) Token(context.Context) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.tokens) == 0 {
		return "", errors.New("no token")
	}
	return a.tokens[0], nil
}

func (a *countingAuth) Invalidate() {
	a.mu.Lock()
	a.invalidated++
	if len(a.tokens) > 1 {
		a.tokens = a.tokens[1:]
	}
	a.mu.Unlock()
}

func TestRetryAfterHeader(t *testing.T) {
	now := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	for h, want := range map[string]time.Duration{
		"":                              0,
		"120":                           2 * time.Minute,
		"Wed, 25 Nov 2026 03:00:30 GMT": 30 * time.Second,
		"soon":                          0,
	} {
		if got := retryAfter(h, now); got != want {
			t.Errorf("%q: %v, want %v", h, got, want)
		}
	}
	_ = fmt.Sprint
}

// A 2xx that is not the record's own answer (a redirect to a login page, a
// proxy) must not acknowledge anything.
func TestARedirectOrAProxyPageAcknowledgesNothing(t *testing.T) {
	page := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/login" {
			w.Write([]byte("<html>please log in</html>"))
			return
		}
		http.Redirect(w, req, "/login", http.StatusFound)
	})
	proxy := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.WriteHeader(200)
		w.Write([]byte(`{"ok":true}`))
	})
	// What answers at the configured base URL changes under the deliverer.
	var current atomic.Pointer[http.Handler]
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		(*current.Load()).ServeHTTP(w, req)
	}))
	defer front.Close()
	r := newRig(t, 5*time.Second, 50, func(d *Deliverer) { d.Client.BaseURL = front.URL })
	for _, h := range []http.Handler{page, proxy, http.NotFoundHandler()} {
		current.Store(&h)
		before := r.d.Stats().Retried
		r.readings(3)
		for r.d.Stats().Retried == before {
			time.Sleep(5 * time.Millisecond)
		}
		if s := r.outbox.Stats(); s.Dead != 0 || r.d.Stats().Delivered != 0 {
			t.Fatalf("outbox %+v, delivery %+v", s, r.d.Stats())
		}
	}
	var record http.Handler = r.server
	current.Store(&record)
	r.waitDrained(30 * time.Second)
	r.exactlyOnce(9)
}

// The same entry twice in one Bundle (a source redelivering after a crash)
// is written once.
func TestDuplicateEntriesInOneBundleAreWrittenOnce(t *testing.T) {
	r := newRig(t, 5*time.Second, 50, func(d *Deliverer) { d.BatchWait = 200 * time.Millisecond })
	rd := reading(150456, "MDC_PULS_OXIM_SAT_O2", 97, "%")
	rd.SerialNumber = "SN,1|x" // search-special characters in the identity
	for i := 0; i < 3; i++ {
		entries, _ := testMapper().MapReadings(charted(rd))
		for _, e := range entries {
			b, _ := json.Marshal(e)
			r.outbox.Append(context.Background(), buffer.Item{Key: rd.Device, Payload: b})
		}
	}
	r.waitDrained(30 * time.Second)
	if n, d := r.server.Count("Observation"), r.server.Count("Device"); n != 1 || d != 1 {
		t.Fatalf("%d Observations and %d Devices, want 1 and 1", n, d)
	}
}
