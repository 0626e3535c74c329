// Package fhirserver is a small FHIR R4 server for wardgate's tests and its
// demo: it keeps resources in memory, validates every write with package r4,
// and in tests with google/fhir as well (Independent), rejecting an invalid
// resource with an OperationOutcome, as it does an Observation that claims
// a vital-signs profile and does not meet it (vitalsigns.go), and supports
// what wardgate uses of a real record: create, conditional create
// (If-None-Exist), update and conditional update, read, search by
// identifier, and transaction and batch Bundles with conditional
// references. It can be told to misbehave (Faults) so that tests can see
// what the gateway does when the record is down, slow or strict.
package fhirserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardgate/wardgate/edge/fhir/r4"
)

// Independent is a second validator that every write must pass as well,
// when set. Tests set it to google/fhir's (package r4google), in a file
// independent_test.go of each package that starts a server, so that every
// resource their gateways write is held against an independent reading of
// R4 as well as against r4.Validate; New refuses to start a server in a
// test without it. The demo leaves it nil, and keeps google/fhir out of
// the binary.
var Independent func(resource []byte) error

// check validates a resource: one of a type that wardgate writes with
// r4.Validate, and with Independent when set (the two must agree, by
// r4.Disagreement); one of another type (a Patient a test creates) with
// Independent only.
func check(resource []byte) error {
	var head struct {
		ResourceType string `json:"resourceType"`
	}
	json.Unmarshal(resource, &head)
	modelled := r4.Models(head.ResourceType)
	var ours error
	if modelled {
		ours = r4.Validate(resource)
	}
	if Independent == nil {
		return ours
	}
	theirs := Independent(resource)
	if !modelled {
		return theirs
	}
	if err := r4.Disagreement(ours, theirs); err != nil {
		return fmt.Errorf("the validators disagree: %w", err)
	}
	return ours
}

// Faults make the server misbehave; the zero value is a well-behaved server.
type Faults struct {
	// Status, when non-zero, answers every request with this status (and an
	// OperationOutcome) without processing it: 503 for an outage, 429 for
	// rate limiting.
	Status int
	// StatusOnly limits Status to requests whose path starts with this
	// resource type ("Encounter": the bed lookups fail, writes go through).
	StatusOnly string
	// RetryAfter is sent with Status (seconds, as a string).
	RetryAfter string
	// Hang delays each answer by this long after the request was processed:
	// the write is in the record, the client may time out before it knows.
	Hang time.Duration
	// HangOnly limits Hang to requests that carry this resource type.
	HangOnly string
	// Reject makes any entry whose resource carries an identifier with this
	// value invalid (422, or RejectStatus), as a strict server would.
	Reject       string
	RejectStatus int
	// KeepConditionalReferences stores conditional references
	// ("Patient?identifier=…") as they were sent instead of resolving them,
	// as Medplum does: the stored reference points at nothing.
	KeepConditionalReferences bool
	// Unauthorized answers 401 to requests whose bearer token is not Token.
	Token string
}

// Server is the in-memory FHIR server. Its zero value is not usable: call New.
type Server struct {
	mu       sync.Mutex
	store    map[string]map[string]json.RawMessage // type → id → resource
	ident    map[string]map[string]map[string]bool // type → "system|value" → ids
	versions map[string]int                        // type/id → version
	nextID   int
	faults   Faults
	requests int
	rejected int
}

// New returns an empty server. In a test, it panics unless Independent is
// set.
func New() *Server {
	if testing.Testing() && Independent == nil {
		panic("fhirserver.New in a test without an independent validator: add to the test package a file " +
			"independent_test.go with func init() { fhirserver.Independent = r4google.Validate } " +
			"(package github.com/wardgate/wardgate/edge/fhir/r4/r4google)")
	}
	return &Server{store: map[string]map[string]json.RawMessage{}, ident: map[string]map[string]map[string]bool{}, versions: map[string]int{}}
}

// SetFaults changes how the server misbehaves from the next request on.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	s.faults = f
	s.mu.Unlock()
}

// Resources returns the stored resources of one type.
func (s *Server) Resources(resourceType string) []json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []json.RawMessage
	for _, r := range s.store[resourceType] {
		out = append(out, r)
	}
	return out
}

// Count is the number of stored resources of one type.
func (s *Server) Count(resourceType string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.store[resourceType])
}

// Requests is the number of HTTP requests served.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// httpError is a failure with its HTTP status and OperationOutcome.
type httpError struct {
	status int
	code   string // OperationOutcome issue code
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func fail(status int, code, format string, args ...any) *httpError {
	return &httpError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

func outcome(code, msg string) map[string]any {
	return map[string]any{
		"resourceType": "OperationOutcome",
		"issue":        []any{map[string]any{"severity": "error", "code": code, "diagnostics": msg}},
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/fhir+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests++
	f := s.faults
	s.mu.Unlock()
	if f.Token != "" && r.Header.Get("Authorization") != "Bearer "+f.Token {
		writeJSON(w, http.StatusUnauthorized, outcome("login", "missing or wrong bearer token"))
		return
	}
	if f.Status != 0 && (f.StatusOnly == "" || strings.HasPrefix(strings.TrimPrefix(r.URL.Path, "/"), f.StatusOnly)) {
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		writeJSON(w, f.Status, outcome("transient", "the server is told to fail"))
		return
	}
	var reqBody []byte
	if r.Body != nil {
		reqBody, _ = io.ReadAll(io.LimitReader(r.Body, 64<<20))
	}
	status, location, body := s.handle(r, reqBody, f)
	if f.Hang > 0 && (f.HangOnly == "" || bytes.Contains(reqBody, []byte(`"resourceType":"`+f.HangOnly+`"`))) {
		select {
		case <-time.After(f.Hang):
		case <-r.Context().Done():
			return // the client gave up; the write stands
		}
	}
	if location != "" {
		w.Header().Set("Location", location)
	}
	if body == nil {
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, body)
}

func (s *Server) handle(r *http.Request, body []byte, f Faults) (status int, location string, _ any) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) == 1 && parts[0] == "" {
		parts = nil
	}
	switch {
	case r.Method == http.MethodPost && len(parts) == 0:
		status, body := s.bundle(body, f)
		return status, "", body
	case r.Method == http.MethodGet && len(parts) == 1 && parts[0] == "metadata":
		return 200, "", map[string]any{"resourceType": "CapabilityStatement", "status": "active", "kind": "instance", "fhirVersion": "4.0.1",
			"date": "2026-01-01", "format": []string{"json"}}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tx := s.begin()
	res, err := tx.do(entryRequest{Method: r.Method, URL: strings.Join(parts, "/") + queryOf(r.URL), IfNoneExist: r.Header.Get("If-None-Exist")}, body, f)
	if err != nil {
		s.rejected++
		return err.status, "", outcome(err.code, err.msg)
	}
	tx.commit()
	return res.status, res.location, res.body
}

func queryOf(u *url.URL) string {
	if u.RawQuery == "" {
		return ""
	}
	return "?" + u.RawQuery
}

type entryRequest struct {
	Method      string `json:"method"`
	URL         string `json:"url"`
	IfNoneExist string `json:"ifNoneExist"`
}

type result struct {
	status   int
	location string
	body     any
}

// tx stages changes to the store; commit applies them all.
type tx struct {
	s      *Server
	staged map[string]json.RawMessage // "Type/id" → resource
	order  []string
	ident  map[string]map[string]bool // "Type system|value" → staged ids
	// checked holds the results of validating a Bundle's entries up front,
	// by entry index; entry is the entry being processed.
	checked map[int]error
	entry   int
}

func (s *Server) begin() *tx {
	return &tx{s: s, staged: map[string]json.RawMessage{}, ident: map[string]map[string]bool{}}
}

func (t *tx) get(typ, id string) (json.RawMessage, bool) {
	if r, ok := t.staged[typ+"/"+id]; ok {
		return r, true
	}
	r, ok := t.s.store[typ][id]
	return r, ok
}

func (t *tx) put(typ, id string, r json.RawMessage) {
	k := typ + "/" + id
	if old, ok := t.staged[k]; ok {
		for _, key := range identKeys(old) {
			delete(t.ident[typ+" "+key], id)
		}
	} else {
		t.order = append(t.order, k)
	}
	t.staged[k] = r
	for _, key := range identKeys(r) {
		if t.ident[typ+" "+key] == nil {
			t.ident[typ+" "+key] = map[string]bool{}
		}
		t.ident[typ+" "+key][id] = true
	}
}

func (t *tx) commit() {
	for _, k := range t.order {
		typ, id, _ := strings.Cut(k, "/")
		if t.s.store[typ] == nil {
			t.s.store[typ] = map[string]json.RawMessage{}
			t.s.ident[typ] = map[string]map[string]bool{}
		}
		for _, key := range identKeys(t.s.store[typ][id]) {
			delete(t.s.ident[typ][key], id)
		}
		t.s.store[typ][id] = t.staged[k]
		for _, key := range identKeys(t.staged[k]) {
			if t.s.ident[typ][key] == nil {
				t.s.ident[typ][key] = map[string]bool{}
			}
			t.s.ident[typ][key][id] = true
		}
		t.s.versions[k]++
	}
}

// identKeys are the "system|value" of a resource's identifiers.
func identKeys(raw json.RawMessage) []string {
	if raw == nil {
		return nil
	}
	var r struct {
		Identifier []struct{ System, Value string } `json:"identifier"`
	}
	json.Unmarshal(raw, &r)
	keys := make([]string, len(r.Identifier))
	for i, id := range r.Identifier {
		keys[i] = id.System + "|" + id.Value
	}
	return keys
}

// search finds the ids of typ whose identifier matches "system|value" (or a
// bare value), in the store and in what this transaction staged.
func (t *tx) search(typ, query string) ([]string, *httpError) {
	q, err := url.ParseQuery(query)
	if err != nil {
		return nil, fail(400, "invalid", "bad search %q", query)
	}
	if typ == "Encounter" && q.Has("location.identifier") {
		return t.encountersAt(q)
	}
	ident := q.Get("identifier")
	if ident == "" || len(q) != 1 {
		return nil, fail(400, "not-supported", "only search by identifier is supported, not %q", query)
	}
	system, value, hasSystem := cutUnescaped(ident)
	if !hasSystem {
		system, value = "", ident
	}
	system, value = searchUnescape(system), searchUnescape(value)
	ids := map[string]bool{}
	check := func(id string, raw json.RawMessage) {
		var r struct {
			Identifier []struct{ System, Value string } `json:"identifier"`
		}
		json.Unmarshal(raw, &r)
		for _, i := range r.Identifier {
			if i.Value == value && (!hasSystem || i.System == system) {
				ids[id] = true
			}
		}
	}
	if hasSystem { // the index answers for what is stored; staged versions below
		for id := range t.s.ident[typ][system+"|"+value] {
			if _, staged := t.staged[typ+"/"+id]; !staged {
				ids[id] = true
			}
		}
	} else {
		for id, raw := range t.s.store[typ] {
			if _, staged := t.staged[typ+"/"+id]; !staged {
				check(id, raw)
			}
		}
	}
	if hasSystem {
		for id := range t.ident[typ+" "+system+"|"+value] {
			ids[id] = true
		}
	} else {
		for k, raw := range t.staged {
			if ty, id, _ := strings.Cut(k, "/"); ty == typ {
				check(id, raw)
			}
		}
	}
	out := make([]string, 0, len(ids))
	for id := range ids {
		out = append(out, id)
	}
	return out, nil
}

// resolve replaces conditional references ("Type?identifier=...") in a
// resource with the one resource they match; none or several is an error.
func (t *tx) resolve(v any) *httpError {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			if ref, ok := c.(string); ok && k == "reference" && strings.Contains(ref, "?") {
				typ, query, _ := strings.Cut(ref, "?")
				ids, err := t.search(typ, query)
				if err != nil {
					return err
				}
				// R4 (http.html, conditional references): no match or
				// several fail the transaction; as for a conditional
				// create, several is 412.
				switch len(ids) {
				case 0:
					return fail(404, "not-found", "conditional reference %s matches no resource", ref)
				case 1:
				default:
					return fail(412, "multiple-matches", "conditional reference %s matches %d resources", ref, len(ids))
				}
				x[k] = typ + "/" + ids[0]
				continue
			}
			if err := t.resolve(c); err != nil {
				return err
			}
		}
	case []any:
		for _, c := range x {
			if err := t.resolve(c); err != nil {
				return err
			}
		}
	}
	return nil
}

// do performs one create, update, read or search.
func (t *tx) do(req entryRequest, body []byte, f Faults) (result, *httpError) {
	path, query, _ := strings.Cut(req.URL, "?")
	parts := strings.Split(strings.Trim(path, "/"), "/")
	typ := parts[0]
	if typ == "" || strings.ContainsAny(typ, ".") {
		return result{}, fail(400, "invalid", "no resource type in %q", req.URL)
	}
	switch {
	case req.Method == "GET" && len(parts) == 2:
		r, ok := t.get(typ, parts[1])
		if !ok {
			return result{}, fail(404, "not-found", "%s/%s is not here", typ, parts[1])
		}
		return result{status: 200, body: json.RawMessage(r)}, nil
	case req.Method == "GET" && len(parts) == 1:
		return t.searchBundle(typ, query)
	case req.Method == "POST" && len(parts) == 1:
		if req.IfNoneExist != "" {
			ids, err := t.search(typ, req.IfNoneExist)
			if err != nil {
				return result{}, err
			}
			switch len(ids) {
			case 0:
			case 1:
				return result{status: 200, location: typ + "/" + ids[0]}, nil
			default:
				return result{}, fail(412, "duplicate", "If-None-Exist matches %d resources", len(ids))
			}
		}
		t.s.nextID++
		id := strconv.Itoa(t.s.nextID)
		if err := t.write(typ, id, body, f); err != nil {
			return result{}, err
		}
		return result{status: 201, location: typ + "/" + id + "/_history/1"}, nil
	case req.Method == "PUT" && len(parts) == 1 && query != "":
		ids, err := t.search(typ, query)
		if err != nil {
			return result{}, err
		}
		var id string
		switch len(ids) {
		case 0:
			t.s.nextID++
			id = strconv.Itoa(t.s.nextID)
		case 1:
			id = ids[0]
		default:
			return result{}, fail(412, "duplicate", "conditional update matches %d resources", len(ids))
		}
		_, existed := t.get(typ, id)
		if err := t.write(typ, id, body, f); err != nil {
			return result{}, err
		}
		if existed {
			return result{status: 200, location: typ + "/" + id}, nil
		}
		return result{status: 201, location: typ + "/" + id}, nil
	case req.Method == "PUT" && len(parts) == 2:
		_, existed := t.get(typ, parts[1])
		if err := t.write(typ, parts[1], body, f); err != nil {
			return result{}, err
		}
		if existed {
			return result{status: 200, location: typ + "/" + parts[1]}, nil
		}
		return result{status: 201, location: typ + "/" + parts[1]}, nil
	}
	return result{}, fail(405, "not-supported", "%s %s is not supported", req.Method, req.URL)
}

// write validates a resource, resolves its conditional references, stamps
// id and meta, and stages it.
func (t *tx) write(typ, id string, body []byte, f Faults) *httpError {
	var res map[string]any
	if err := json.Unmarshal(body, &res); err != nil {
		return fail(400, "structure", "not JSON: %v", err)
	}
	if res["resourceType"] != typ {
		return fail(400, "invalid", "resourceType %v where %s was expected", res["resourceType"], typ)
	}
	if f.Reject != "" && strings.Contains(string(body), `"value":"`+f.Reject+`"`) {
		status := f.RejectStatus
		if status == 0 {
			status = 422
		}
		return fail(status, "business-rule", "the server refuses the resource with identifier %s", f.Reject)
	}
	if !f.KeepConditionalReferences {
		if err := t.resolve(res); err != nil {
			return err
		}
	}
	checked, pre := t.checked[t.entry]
	if pre && checked != nil {
		return fail(422, "invalid", "%v", checked)
	}
	res["id"] = id
	res["meta"] = map[string]any{"versionId": strconv.Itoa(t.s.versions[typ+"/"+id] + 1), "lastUpdated": time.Now().UTC().Format(time.RFC3339Nano)}
	b, _ := json.Marshal(res)
	if !pre {
		if err := check(b); err != nil {
			return fail(422, "invalid", "%v", err)
		}
		// The profiles it claims, from the resource as it was sent: the
		// server's meta has replaced them in b.
		if err := vitalSigns(body); err != nil {
			return fail(422, "invalid", "%v", err)
		}
	}
	t.put(typ, id, b)
	return nil
}

// validateAll validates the resources of a Bundle's entries before the
// store is locked, on every core; write uses the results.
func validateAll(resources []json.RawMessage) map[int]error {
	out := make(map[int]error, len(resources))
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < runtime.NumCPU(); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				err := check(resources[i])
				if err == nil {
					err = vitalSigns(resources[i])
				}
				mu.Lock()
				out[i] = err
				mu.Unlock()
			}
		}()
	}
	for i, r := range resources {
		if len(r) > 0 {
			next <- i
		}
	}
	close(next)
	wg.Wait()
	return out
}

// bundle processes a transaction (all or nothing) or a batch (each entry on
// its own).
func (s *Server) bundle(body []byte, f Faults) (int, any) {
	var b struct {
		ResourceType string `json:"resourceType"`
		Type         string `json:"type"`
		Entry        []struct {
			Resource json.RawMessage `json:"resource"`
			Request  entryRequest    `json:"request"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(body, &b); err != nil || b.ResourceType != "Bundle" {
		return 400, outcome("structure", "not a Bundle")
	}
	if b.Type != "transaction" && b.Type != "batch" {
		return 400, outcome("not-supported", "Bundle type "+b.Type+" is not processed")
	}
	resources := make([]json.RawMessage, len(b.Entry))
	for i, e := range b.Entry {
		resources[i] = e.Resource
	}
	checked := validateAll(resources)
	s.mu.Lock()
	defer s.mu.Unlock()
	responses := make([]any, len(b.Entry))
	t := s.begin()
	t.checked = checked
	// Creates first, then updates, then reads (the transaction order of the
	// FHIR spec), each group in entry order.
	for _, pass := range []string{"POST", "PUT", "GET"} {
		for i, e := range b.Entry {
			if e.Request.Method != pass {
				continue
			}
			if b.Type == "batch" {
				t = s.begin()
				t.checked = checked
			}
			t.entry = i
			res, err := t.do(e.Request, e.Resource, f)
			if err != nil {
				if b.Type == "transaction" {
					s.rejected++
					return err.status, outcome(err.code, fmt.Sprintf("entry %d: %s", i, err.msg))
				}
				responses[i] = map[string]any{"response": map[string]any{"status": strconv.Itoa(err.status), "outcome": outcome(err.code, err.msg)}}
				continue
			}
			if b.Type == "batch" {
				t.commit()
			}
			resp := map[string]any{"status": fmt.Sprintf("%d %s", res.status, http.StatusText(res.status))}
			if res.location != "" {
				resp["location"] = res.location
			}
			entry := map[string]any{"response": resp}
			if res.body != nil {
				entry["resource"] = res.body
			}
			responses[i] = entry
		}
	}
	for i, e := range b.Entry {
		if responses[i] == nil {
			responses[i] = map[string]any{"response": map[string]any{"status": "400", "outcome": outcome("not-supported", "method "+e.Request.Method)}}
			if b.Type == "transaction" {
				return 400, outcome("not-supported", fmt.Sprintf("entry %d: method %s", i, e.Request.Method))
			}
		}
	}
	if b.Type == "transaction" {
		t.commit()
	}
	return 200, map[string]any{"resourceType": "Bundle", "type": b.Type + "-response", "entry": responses}
}

// cutUnescaped splits a token search at its first unescaped '|'.
func cutUnescaped(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '|':
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// searchUnescape undoes FHIR search escaping (\\, \, \$ \|).
func searchUnescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// searchBundle answers a search with a searchset Bundle: the matches in id
// order, _count of them from _offset, a next link while more remain, and
// with _include=Encounter:location the Locations the page's Encounters name.
func (t *tx) searchBundle(typ, query string) (result, *httpError) {
	q, err := url.ParseQuery(query)
	if err != nil {
		return result{}, fail(400, "invalid", "bad search %q", query)
	}
	count, offset := 100, 0
	if v := q.Get("_count"); v != "" {
		if count, err = strconv.Atoi(v); err != nil || count < 1 {
			return result{}, fail(400, "invalid", "_count %q", v)
		}
	}
	if v := q.Get("_offset"); v != "" {
		if offset, err = strconv.Atoi(v); err != nil || offset < 0 {
			return result{}, fail(400, "invalid", "_offset %q", v)
		}
	}
	includes := q["_include"]
	rest := url.Values{}
	for k, v := range q {
		if k != "_count" && k != "_offset" && k != "_include" {
			rest[k] = v
		}
	}
	ids, herr := t.search(typ, rest.Encode())
	if herr != nil {
		return result{}, herr
	}
	sortIDs(ids)
	total := len(ids)
	ids = ids[min(offset, total):min(offset+count, total)]
	entries := []any{}
	included := map[string]bool{}
	var includeIDs []string
	for _, id := range ids {
		r, _ := t.get(typ, id)
		entries = append(entries, map[string]any{"fullUrl": typ + "/" + id, "resource": json.RawMessage(r), "search": map[string]any{"mode": "match"}})
		if typ == "Encounter" && slices.Contains(includes, "Encounter:location") {
			var e struct {
				Location []struct {
					Location struct{ Reference string } `json:"location"`
				} `json:"location"`
			}
			json.Unmarshal(r, &e)
			for _, l := range e.Location {
				if lid, ok := strings.CutPrefix(l.Location.Reference, "Location/"); ok && !included[lid] {
					included[lid] = true
					includeIDs = append(includeIDs, lid)
				}
			}
		}
	}
	for _, lid := range includeIDs {
		if r, ok := t.get("Location", lid); ok {
			entries = append(entries, map[string]any{"fullUrl": "Location/" + lid, "resource": json.RawMessage(r), "search": map[string]any{"mode": "include"}})
		}
	}
	body := map[string]any{"resourceType": "Bundle", "type": "searchset", "total": total, "entry": entries}
	if offset+count < total {
		next := url.Values{}
		for k, v := range q {
			next[k] = v
		}
		next.Set("_offset", strconv.Itoa(offset+count))
		next.Set("_count", strconv.Itoa(count))
		body["link"] = []any{map[string]any{"relation": "next", "url": typ + "?" + next.Encode()}}
	}
	return result{status: 200, body: body}, nil
}

// sortIDs orders ids numerically where they are numbers, so that pages are
// stable.
func sortIDs(ids []string) {
	slices.SortFunc(ids, func(a, b string) int {
		x, ea := strconv.Atoi(a)
		y, eb := strconv.Atoi(b)
		if ea == nil && eb == nil {
			return x - y
		}
		return strings.Compare(a, b)
	})
}

// encountersAt answers an Encounter search on location.identifier
// (system|value): the Encounters with a location entry naming a Location
// that carries that identifier, filtered by status (a comma-separated list)
// and by date, which R4 defines on Encounter.period: ge/gt keep periods that
// end at or after (after) the value or are open, le/lt those that start at
// or before (before) it; an Encounter without a period matches no date.
func (t *tx) encountersAt(q url.Values) ([]string, *httpError) {
	system, value, ok := cutUnescaped(q.Get("location.identifier"))
	if !ok {
		return nil, fail(400, "not-supported", "location.identifier needs system|value")
	}
	for k := range q {
		if k != "location.identifier" && k != "status" && k != "date" {
			return nil, fail(400, "not-supported", "Encounter search parameter %q is not supported here", k)
		}
	}
	type bound struct {
		prefix string
		at     time.Time
	}
	var dates []bound
	for _, d := range q["date"] {
		prefix := "eq"
		if len(d) > 2 && strings.Trim(d[:2], "abcdefghijklmnopqrstuvwxyz") == "" {
			prefix, d = d[:2], d[2:]
		}
		at, err := parseInstant(d)
		if err != nil || !slices.Contains([]string{"ge", "gt", "le", "lt"}, prefix) {
			return nil, fail(400, "not-supported", "date %q: give ge, gt, le or lt and a dateTime", prefix+d)
		}
		dates = append(dates, bound{prefix, at})
	}
	var statuses []string
	if st := q.Get("status"); st != "" {
		statuses = strings.Split(st, ",")
	}
	system, value = searchUnescape(system), searchUnescape(value)
	locations := map[string]bool{}
	for id := range t.s.ident["Location"][system+"|"+value] {
		locations["Location/"+id] = true
	}
	var out []string
	for id, raw := range t.s.store["Encounter"] {
		var e struct {
			Status string `json:"status"`
			Period *struct {
				Start string `json:"start"`
				End   string `json:"end"`
			} `json:"period"`
			Location []struct {
				Location struct {
					Reference  string `json:"reference"`
					Identifier *struct{ System, Value string }
				} `json:"location"`
			} `json:"location"`
		}
		json.Unmarshal(raw, &e)
		if len(statuses) > 0 && !slices.Contains(statuses, e.Status) {
			continue
		}
		if len(dates) > 0 {
			if e.Period == nil {
				continue
			}
			start, errS := parseInstant(e.Period.Start)
			end, errE := parseInstant(e.Period.End)
			match := true
			for _, d := range dates {
				switch d.prefix {
				case "ge":
					match = match && (errE != nil || !end.Before(d.at))
				case "gt":
					match = match && (errE != nil || end.After(d.at))
				case "le":
					match = match && (errS != nil || !start.After(d.at))
				case "lt":
					match = match && (errS != nil || start.Before(d.at))
				}
			}
			if !match {
				continue
			}
		}
		for _, l := range e.Location {
			ref := l.Location.Reference
			if locations[ref] || (l.Location.Identifier != nil && l.Location.Identifier.System == system && l.Location.Identifier.Value == value) {
				out = append(out, id)
				break
			}
		}
	}
	return out, nil
}

func parseInstant(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("not a dateTime: %q", s)
}

// Put stores a resource as if it had been written by someone else (a
// registration system putting a patient in a bed), for tests and the demo.
func (s *Server) Put(resourceType, id string, resource json.RawMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.store[resourceType] == nil {
		s.store[resourceType] = map[string]json.RawMessage{}
	}
	s.store[resourceType][id] = resource
	s.versions[resourceType+"/"+id]++
	var r struct {
		Identifier []struct{ System, Value string } `json:"identifier"`
	}
	json.Unmarshal(resource, &r)
	for _, i := range r.Identifier {
		k := i.System + "|" + i.Value
		if s.ident[resourceType] == nil {
			s.ident[resourceType] = map[string]map[string]bool{}
		}
		if s.ident[resourceType][k] == nil {
			s.ident[resourceType][k] = map[string]bool{}
		}
		s.ident[resourceType][k][id] = true
	}
}
