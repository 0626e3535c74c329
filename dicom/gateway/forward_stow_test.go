package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardgate/wardgate/dicom"
	"github.com/wardgate/wardgate/dicom/internal/dicomtest"
	"github.com/wardgate/wardgate/dicom/sim"

	"github.com/wardgate/wardgate/buffer"
)

// stowArchive is a STOW-RS origin server written from PS3.18 10.5: it
// takes multipart/related; type="application/dicom" at /studies/{study},
// and answers each instance as answer says — stored (0), or failed with a
// Failure Reason — or the whole request with an HTTP status (whole).
type stowArchive struct {
	t  *testing.T
	mu sync.Mutex
	// answer gives the Failure Reason of the n-th try (from 1) of an
	// instance; nil or 0: stored.
	answer func(uid string, n int) uint16
	// whole, when not 0, answers every request with this status and no
	// body.
	whole    int
	tries    map[string]int
	stored   map[string][]byte // SOP Instance UID → the part's bytes
	requests []stowRequest
}

type stowRequest struct {
	study string
	uids  []string
	bytes int64
}

func newSTOWArchive(t *testing.T) (*stowArchive, *httptest.Server) {
	a := &stowArchive{t: t, tries: map[string]int{}, stored: map[string][]byte{}}
	srv := httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(srv.Close)
	return a, srv
}

func (a *stowArchive) serve(w http.ResponseWriter, r *http.Request) {
	study, ok := strings.CutPrefix(r.URL.Path, "/dicomweb/studies/")
	if r.Method != http.MethodPost || !ok {
		http.NotFound(w, r)
		return
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/related" || params["type"] != "application/dicom" {
		http.Error(w, "unsupported media type", http.StatusUnsupportedMediaType)
		return
	}
	if r.ContentLength <= 0 {
		a.t.Errorf("a request without a Content-Length")
	}
	a.mu.Lock()
	whole := a.whole
	a.mu.Unlock()
	if whole != 0 {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(whole)
		return
	}
	req := stowRequest{study: study}
	type item struct {
		uid, class string
		reason     uint16
	}
	var items []item
	mr := multipart.NewReader(r.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if ct := p.Header.Get("Content-Type"); ct != "application/dicom" {
			a.t.Errorf("part of type %q", ct)
		}
		b, _ := io.ReadAll(p)
		req.bytes += int64(len(b))
		m, _, err := dicom.ReadFileMeta(bytes.NewReader(b))
		if err != nil {
			a.t.Errorf("a part is not a Part 10 file: %v", err)
			continue
		}
		req.uids = append(req.uids, m.SOPInstanceUID)
		a.mu.Lock()
		a.tries[m.SOPInstanceUID]++
		var reason uint16
		if a.answer != nil {
			reason = a.answer(m.SOPInstanceUID, a.tries[m.SOPInstanceUID])
		}
		if reason == 0 {
			a.stored[m.SOPInstanceUID] = b
		}
		a.mu.Unlock()
		items = append(items, item{m.SOPInstanceUID, m.SOPClassUID, reason})
	}
	a.mu.Lock()
	a.requests = append(a.requests, req)
	a.mu.Unlock()
	var ref, failed []any
	for _, it := range items {
		el := map[string]any{
			"00081150": map[string]any{"vr": "UI", "Value": []string{it.class}},
			"00081155": map[string]any{"vr": "UI", "Value": []string{it.uid}},
		}
		if it.reason == 0 {
			ref = append(ref, el)
		} else {
			el["00081197"] = map[string]any{"vr": "US", "Value": []uint16{it.reason}}
			failed = append(failed, el)
		}
	}
	status := http.StatusOK
	switch {
	case len(items) > 0 && len(ref) == 0:
		status = http.StatusConflict
	case len(failed) > 0:
		status = http.StatusAccepted
	}
	w.Header().Set("Content-Type", "application/dicom+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{
		"00081198": map[string]any{"vr": "SQ", "Value": failed},
		"00081199": map[string]any{"vr": "SQ", "Value": ref},
	})
}

func (a *stowArchive) has(uid string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.stored[uid]
	return ok
}

func (a *stowArchive) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.stored)
}

// stowStudies spools n instances of each of the studies and returns the
// SOP Instance UIDs with the spooled files' bytes.
func stowStudies(t *testing.T, spool *buffer.Spool, n int, studies ...string) map[string][]byte {
	t.Helper()
	dir := t.TempDir()
	out := map[string][]byte{}
	for _, study := range studies {
		st := sim.SyntheticStudy{StudyUID: study, SeriesUID: study + ".1", PatientID: "PID-STOW", PatientName: "Test^Patient"}
		for i := 1; i <= n; i++ {
			p := filepath.Join(dir, fmt.Sprintf("%s-%d.dcm", study, i))
			if err := st.WriteFile(p, i, 16, 16); err != nil {
				t.Fatal(err)
			}
			h, in := storeFile(t, spool, p)
			b, err := os.ReadFile(spool.Path(in))
			if err != nil {
				t.Fatal(err)
			}
			out[h.SOPInstanceUID] = b
		}
	}
	return out
}

// Two studies go in requests of one study each, within the count and byte
// bounds, each part the spooled file byte for byte; every instance is
// marked delivered.
func TestSTOWForwardsStudiesInBoundedBatches(t *testing.T) {
	spool, ledger := fwdFixture(t)
	want := stowStudies(t, spool, 7, "1.2.826.0.1.3680043.2.1125.71", "1.2.826.0.1.3680043.2.1125.72")
	archive, srv := newSTOWArchive(t)
	dest := Destination{STOWRS: srv.URL + "/dicomweb/", STOWBatch: 3}
	f := startForwarder(t, &Forwarder{Dest: dest, Spool: spool, Ledger: ledger})
	dicomtest.WaitFor(t, "14 instances at the archive", func() bool { return archive.count() == 14 && f.Stats().Waiting == 0 })
	stopPart(f)
	for uid, b := range want {
		if !bytes.Equal(archive.stored[uid], b) {
			t.Fatalf("the archive got other bytes than the spool holds for %s", uid)
		}
	}
	for _, r := range archive.requests {
		if len(r.uids) > 3 {
			t.Fatalf("a request of %d instances, bound 3", len(r.uids))
		}
		for _, uid := range r.uids {
			if !strings.HasPrefix(uid, r.study+".") {
				t.Fatalf("instance %s posted to study %s", uid, r.study)
			}
		}
	}
	marks, _ := ledger.Forwarded(dest.LedgerName())
	if len(marks) != 14 {
		t.Fatalf("%d marks, want 14", len(marks))
	}
	if st := f.Stats(); st.Delivered != 14 || st.Destination != srv.URL+"/dicomweb" {
		t.Fatalf("stats %+v", st)
	}

	// A byte bound smaller than one instance: one instance per request.
	spool2, ledger2 := fwdFixture(t)
	stowStudies(t, spool2, 3, "1.2.826.0.1.3680043.2.1125.73")
	archive2, srv2 := newSTOWArchive(t)
	f2 := startForwarder(t, &Forwarder{Dest: Destination{STOWRS: srv2.URL + "/dicomweb", STOWBatchBytes: 100}, Spool: spool2, Ledger: ledger2})
	dicomtest.WaitFor(t, "3 instances at the second archive", func() bool { return archive2.count() == 3 && f2.Stats().Waiting == 0 })
	for _, r := range archive2.requests {
		if len(r.uids) != 1 {
			t.Fatalf("a request of %d instances under a 100-byte bound", len(r.uids))
		}
	}
}

// In one request: an instance the archive stores, one it refuses with a
// permanent reason (A900, dead-lettered once refusals have persisted), one
// it refuses for want of resources (A700, retried until it is taken).
func TestSTOWFailedInstancesAreSettledOneByOne(t *testing.T) {
	spool, ledger := fwdFixture(t)
	stowStudies(t, spool, 3, "1.2.826.0.1.3680043.2.1125.74")
	st := sim.SyntheticStudy{StudyUID: "1.2.826.0.1.3680043.2.1125.74", SeriesUID: "1.2.826.0.1.3680043.2.1125.74.1"}
	refused, busy := st.InstanceUID(2), st.InstanceUID(3)
	archive, srv := newSTOWArchive(t)
	archive.answer = func(uid string, n int) uint16 {
		switch {
		case uid == refused:
			return 0xA900
		case uid == busy && n <= 4:
			return 0xA700
		}
		return 0
	}
	var mu sync.Mutex
	var told []Refusal
	dest := Destination{STOWRS: srv.URL + "/dicomweb"}
	f := startForwarder(t, &Forwarder{Dest: dest, Spool: spool, Ledger: ledger, MaxAttempts: 3, DeadAfter: time.Nanosecond,
		OnRefused: func(r Refusal) { mu.Lock(); told = append(told, r); mu.Unlock() }})
	dicomtest.WaitFor(t, "two stored, one dead-lettered", func() bool {
		s := f.Stats()
		return s.Waiting == 0 && s.DeadLettered == 1 && archive.count() == 2
	})
	if archive.has(refused) || !archive.has(busy) {
		t.Fatal("the wrong instances were stored")
	}
	marks, _ := ledger.Forwarded(dest.LedgerName())
	if m := marks[refused]; !m.Dead || !strings.Contains(m.Reason, "0xA900") {
		t.Fatalf("mark of the refused instance: %+v", m)
	}
	if m := marks[busy]; m.Dead {
		t.Fatalf("an out-of-resources instance was dead-lettered: %+v", m)
	}
	archive.mu.Lock()
	tries := archive.tries[refused]
	archive.mu.Unlock()
	if tries < 3 {
		t.Fatalf("dead-lettered after %d tries, MaxAttempts 3", tries)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(told) != 1 || told[0].Key != refused || told[0].Destination != dest.LedgerName() {
		t.Fatalf("refusals told: %+v", told)
	}
}

// Refused credentials (401, 403), a wrong URL (404) and a failing archive
// (503) hold the destination back, whatever the instances: nothing is
// dead-lettered however long it lasts, the reason is shown, and all goes
// once the archive takes it.
func TestSTOWDestinationProblemsNeverDeadLetter(t *testing.T) {
	for _, code := range []int{401, 403, 404, 503} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			spool, ledger := fwdFixture(t)
			stowStudies(t, spool, 2, "1.2.826.0.1.3680043.2.1125.75")
			archive, srv := newSTOWArchive(t)
			archive.whole = code
			f := startForwarder(t, &Forwarder{Dest: Destination{STOWRS: srv.URL + "/dicomweb"}, Spool: spool, Ledger: ledger,
				MaxAttempts: 1, DeadAfter: time.Nanosecond})
			dicomtest.WaitFor(t, "the reason shown", func() bool {
				return strings.Contains(f.Stats().LastError, fmt.Sprint(code))
			})
			s := f.Stats()
			if s.Connected || s.Waiting != 2 || s.DeadLettered != 0 {
				t.Fatalf("stats while refused: %+v", s)
			}
			if code == 401 && !strings.Contains(s.LastError, "credentials") {
				t.Fatalf("a 401 does not say it is the credentials: %q", s.LastError)
			}
			archive.mu.Lock()
			archive.whole = 0
			archive.mu.Unlock()
			dicomtest.WaitFor(t, "both stored", func() bool { return archive.count() == 2 && f.Stats().Waiting == 0 })
			if s := f.Stats(); s.LastError != "" || !s.Connected || s.DeadLettered != 0 {
				t.Fatalf("stats once taken: %+v", s)
			}
		})
	}
}

// Nothing listens: the instances wait, the reason says so, and they go when
// the archive comes up at that address.
func TestSTOWUnreachableArchiveWaits(t *testing.T) {
	spool, ledger := fwdFixture(t)
	stowStudies(t, spool, 2, "1.2.826.0.1.3680043.2.1125.76")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	f := startForwarder(t, &Forwarder{Dest: Destination{STOWRS: "http://" + addr + "/dicomweb"}, Spool: spool, Ledger: ledger})
	dicomtest.WaitFor(t, "the reason shown", func() bool { return strings.Contains(f.Stats().LastError, "connection refused") })
	if s := f.Stats(); s.Waiting != 2 || s.Connected {
		t.Fatalf("stats while unreachable: %+v", s)
	}
	archive := &stowArchive{t: t, tries: map[string]int{}, stored: map[string][]byte{}}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the address is taken meanwhile: %v", err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(archive.serve)}}
	srv.Start()
	t.Cleanup(srv.Close)
	dicomtest.WaitFor(t, "both stored", func() bool { return archive.count() == 2 && f.Stats().Waiting == 0 })
}

// An answer without a word on an instance: stored after a 200, retried
// after a 202 (the Forwarder does not guess).
func TestSTOWUnmentionedInstances(t *testing.T) {
	spool, ledger := fwdFixture(t)
	stowStudies(t, spool, 1, "1.2.826.0.1.3680043.2.1125.77")
	var mu sync.Mutex
	status := http.StatusAccepted
	posts := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		defer mu.Unlock()
		posts++
		w.WriteHeader(status)
		io.WriteString(w, `{"00081199":{"vr":"SQ"}}`)
	}))
	t.Cleanup(srv.Close)
	f := startForwarder(t, &Forwarder{Dest: Destination{STOWRS: srv.URL}, Spool: spool, Ledger: ledger})
	dicomtest.WaitFor(t, "two tries answered 202", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return posts >= 2
	})
	if s := f.Stats(); s.Delivered != 0 || s.Waiting != 1 || len(s.Reasons) != 1 {
		t.Fatalf("stats after 202s: %+v", s)
	}
	mu.Lock()
	status = http.StatusOK
	mu.Unlock()
	dicomtest.WaitFor(t, "delivered after a 200", func() bool { return f.Stats().Delivered == 1 })
}

func TestSTOWLedgerNameHasNoCredentials(t *testing.T) {
	for in, want := range map[string]string{
		"https://archive.example.org/dicomweb":              "https://archive.example.org/dicomweb",
		"https://archive.example.org/dicomweb/":             "https://archive.example.org/dicomweb",
		"https://user:secret@archive.example.org/dicomweb/": "https://archive.example.org/dicomweb",
		"http://127.0.0.1:8042/dicom-web?token=x":           "http://127.0.0.1:8042/dicom-web",
	} {
		if got := (Destination{STOWRS: in}).LedgerName(); got != want {
			t.Errorf("%s: %q, want %q", in, got, want)
		}
	}
}

// An answer as Orthanc 1.10 gives it (200, and 409 for an instance of
// another study), in an array, with reasons as strings, and what is not an
// answer.
func TestParseSTOWResponse(t *testing.T) {
	orthanc200 := `{"00080005":{"Value":["ISO_IR 100"],"vr":"CS"},"00081190":{"Value":["http://x/studies/1"],"vr":"UR"},
		"00081198":{"vr":"SQ"},"00081199":{"Value":[{"00081150":{"Value":["1.2.840.10008.5.1.4.1.1.2"],"vr":"UI"},
		"00081155":{"Value":["1.2.3.1"],"vr":"UI"},"00081190":{"Value":["http://x"],"vr":"UR"}}],"vr":"SQ"}}`
	orthanc409 := `{"00080005":{"Value":["ISO_IR 100"],"vr":"CS"},"00081198":{"Value":[{"00081150":{"Value":["1.2.840.10008.5.1.4.1.1.2"],"vr":"UI"},
		"00081155":{"Value":["1.2.3.1"],"vr":"UI"},"00081197":{"Value":[272],"vr":"US"}}],"vr":"SQ"},"00081199":{"vr":"SQ"}}`
	for _, tc := range []struct {
		name, body string
		ref        []string
		failed     map[string]uint16
		err        bool
	}{
		{"orthanc 200", orthanc200, []string{"1.2.3.1"}, nil, false},
		{"orthanc 409", orthanc409, nil, map[string]uint16{"1.2.3.1": 0x0110}, false},
		{"array", "[" + orthanc200 + "]", []string{"1.2.3.1"}, nil, false},
		{"reason as a string, padded UID", `{"00081198":{"vr":"SQ","Value":[{"00081155":{"vr":"UI","Value":["1.2.3.2\u0000"]},"00081197":{"vr":"US","Value":["43264"]}}]}}`,
			nil, map[string]uint16{"1.2.3.2": 0xA900}, false},
		{"no reason", `{"00081198":{"vr":"SQ","Value":[{"00081155":{"vr":"UI","Value":["1.2.3.3"]}}]}}`, nil, map[string]uint16{"1.2.3.3": 0x0110}, false},
		{"a success as a failure reason", `{"00081198":{"vr":"SQ","Value":[{"00081155":{"vr":"UI","Value":["1.2.3.3"]},"00081197":{"vr":"US","Value":[0]}}]}}`,
			nil, map[string]uint16{"1.2.3.3": 0x0110}, false},
		{"both stored and failed", `{"00081199":{"vr":"SQ","Value":[{"00081155":{"vr":"UI","Value":["1.2.3.4"]}}]},"00081198":{"vr":"SQ","Value":[{"00081155":{"vr":"UI","Value":["1.2.3.4"]},"00081197":{"vr":"US","Value":[49152]}}]}}`,
			nil, map[string]uint16{"1.2.3.4": 0xC000}, false},
		{"an item without a UID", `{"00081199":{"vr":"SQ","Value":[{"00081150":{"vr":"UI","Value":["1.2"]}}, 7]}}`, nil, nil, false},
		{"empty", "", nil, nil, true},
		{"xml", `<?xml version="1.0"?><NativeDicomModel/>`, nil, nil, true},
		{"empty array", "[]", nil, nil, true},
	} {
		res, err := parseSTOWResponse([]byte(tc.body))
		if (err != nil) != tc.err {
			t.Errorf("%s: err %v", tc.name, err)
		}
		if len(res.Referenced) != len(tc.ref) {
			t.Errorf("%s: referenced %v, want %v", tc.name, res.Referenced, tc.ref)
		}
		for _, uid := range tc.ref {
			if _, ok := res.Referenced[uid]; !ok {
				t.Errorf("%s: %s not referenced", tc.name, uid)
			}
		}
		if len(res.Failed) != len(tc.failed) {
			t.Errorf("%s: failed %v, want %v", tc.name, res.Failed, tc.failed)
		}
		for uid, r := range tc.failed {
			if res.Failed[uid] != r {
				t.Errorf("%s: %s failed with 0x%04X, want 0x%04X", tc.name, uid, res.Failed[uid], r)
			}
		}
	}
}

// Whatever an archive answers, the parser neither panics nor calls an
// instance both stored and failed, nor gives a failure reason that is not
// a failure.
func FuzzParseSTOWResponse(f *testing.F) {
	f.Add([]byte(`{"00081199":{"vr":"SQ","Value":[{"00081155":{"vr":"UI","Value":["1.2.3.1"]}}]}}`))
	f.Add([]byte(`[{"00081198":{"vr":"SQ","Value":[{"00081155":{"vr":"UI","Value":["1.2.3.2"]},"00081197":{"vr":"US","Value":[43264]}}]}}]`))
	f.Add([]byte(`{"00081198":{"vr":"SQ","Value":[{"00081155":{"vr":"UI","Value":[1]},"00081197":{"vr":"US","Value":["x"]}}]}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		res, _ := parseSTOWResponse(body)
		for uid, r := range res.Failed {
			if _, ok := res.Referenced[uid]; ok {
				t.Fatalf("%q both stored and failed", uid)
			}
			if !dicom.IsFailureStatus(r) {
				t.Fatalf("failure reason 0x%04X is not a failure", r)
			}
		}
	})
}
