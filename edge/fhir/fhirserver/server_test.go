package fhirserver

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

func do(t *testing.T, h http.Handler, method, path, body string, header ...string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Body)
	var v map[string]any
	json.Unmarshal(b, &v)
	return rec.Code, v
}

const patient = `{"resourceType":"Patient","identifier":[{"system":"urn:oid:1.2.3.4","value":"MRN-1"}]}`

func obs(value string) string {
	return `{"resourceType":"Observation","identifier":[{"system":"urn:x","value":"` + value + `"}],"status":"final",` +
		`"code":{"text":"x"},"subject":{"reference":"Patient?identifier=urn%3Aoid%3A1.2.3.4%7CMRN-1"}}`
}

func entry(method, url, ifNoneExist, resource string) string {
	e := `{"request":{"method":"` + method + `","url":"` + url + `"`
	if ifNoneExist != "" {
		e += `,"ifNoneExist":"` + ifNoneExist + `"`
	}
	return e + `},"resource":` + resource + `}`
}

func TestConditionalCreateIsIdempotent(t *testing.T) {
	s := New()
	for i, want := range []int{201, 200} {
		code, _ := do(t, s, "POST", "/Patient", patient, "If-None-Exist", "identifier=urn:oid:1.2.3.4|MRN-1")
		if code != want {
			t.Fatalf("create %d: %d, want %d", i, code, want)
		}
	}
	if s.Count("Patient") != 1 {
		t.Fatalf("%d patients", s.Count("Patient"))
	}
	code, found := do(t, s, "GET", "/Patient?identifier=urn%3Aoid%3A1.2.3.4%7CMRN-1", "")
	if code != 200 || found["total"].(float64) != 1 {
		t.Fatalf("search: %d %v", code, found)
	}
	code, _ = do(t, s, "GET", "/Patient/1", "")
	if code != 200 {
		t.Fatalf("read: %d", code)
	}
}

func TestInvalidResourcesAreRefusedWithAnOperationOutcome(t *testing.T) {
	s := New()
	code, oo := do(t, s, "POST", "/Observation", `{"resourceType":"Observation","code":{"text":"x"}}`)
	if code != 422 || oo["resourceType"] != "OperationOutcome" || !strings.Contains(oo["issue"].([]any)[0].(map[string]any)["diagnostics"].(string), "status") {
		t.Fatalf("%d %v", code, oo)
	}
	code, _ = do(t, s, "POST", "/Observation", `{"resourceType":"Patient"}`)
	if code != 400 {
		t.Fatalf("a Patient posted as Observation: %d", code)
	}
}

func TestATransactionIsAllOrNothing(t *testing.T) {
	s := New()
	do(t, s, "POST", "/Patient", patient)
	bad := `{"resourceType":"Observation","identifier":[{"system":"urn:x","value":"bad"}],"code":{"text":"x"}}`
	tx := `{"resourceType":"Bundle","type":"transaction","entry":[` +
		entry("POST", "Observation", "identifier=urn:x|a", obs("a")) + "," +
		entry("POST", "Observation", "identifier=urn:x|bad", bad) + `]}`
	code, oo := do(t, s, "POST", "/", tx)
	if code != 422 || !strings.Contains(oo["issue"].([]any)[0].(map[string]any)["diagnostics"].(string), "entry 1") {
		t.Fatalf("%d %v", code, oo)
	}
	if s.Count("Observation") != 0 {
		t.Fatal("a failed transaction left an Observation behind")
	}
	// The same as a batch: the good entry lands, the bad one is refused.
	batch := strings.Replace(tx, `"transaction"`, `"batch"`, 1)
	code, res := do(t, s, "POST", "/", batch)
	entries := res["entry"].([]any)
	if code != 200 || s.Count("Observation") != 1 ||
		entries[0].(map[string]any)["response"].(map[string]any)["status"] != "201 Created" ||
		entries[1].(map[string]any)["response"].(map[string]any)["status"] != "422" {
		t.Fatalf("batch: %d %v", code, res)
	}
	// The conditional subject reference was resolved to the Patient.
	if !strings.Contains(string(s.Resources("Observation")[0]), `"reference":"Patient/1"`) {
		t.Fatalf("stored: %s", s.Resources("Observation")[0])
	}
}

func TestConditionalUpdateCreatesThenUpdates(t *testing.T) {
	s := New()
	do(t, s, "POST", "/Patient", patient)
	study := func(n int) string {
		return `{"resourceType":"ImagingStudy","identifier":[{"system":"urn:dicom:uid","value":"urn:oid:1.2.3"}],"status":"available",` +
			`"subject":{"reference":"Patient/1"},"numberOfInstances":` + strconv.Itoa(n) + `}`
	}
	for i, want := range []int{201, 200} {
		tx := `{"resourceType":"Bundle","type":"transaction","entry":[` +
			entry("PUT", "ImagingStudy?identifier=urn%3Adicom%3Auid%7Curn%3Aoid%3A1.2.3", "", study(i+1)) + `]}`
		code, res := do(t, s, "POST", "/", tx)
		status := res["entry"].([]any)[0].(map[string]any)["response"].(map[string]any)["status"].(string)
		if code != 200 || !strings.HasPrefix(status, strconv.Itoa(want)) {
			t.Fatalf("update %d: %d %s", i, code, status)
		}
	}
	if s.Count("ImagingStudy") != 1 || !strings.Contains(string(s.Resources("ImagingStudy")[0]), `"numberOfInstances":2`) {
		t.Fatalf("studies: %d %s", s.Count("ImagingStudy"), s.Resources("ImagingStudy"))
	}
}

func TestFaults(t *testing.T) {
	s := New()
	s.SetFaults(Faults{Status: 429, RetryAfter: "7"})
	req := httptest.NewRequest("POST", "/", strings.NewReader("{}"))
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != 429 || rec.Header().Get("Retry-After") != "7" {
		t.Fatalf("%d %v", rec.Code, rec.Header())
	}
	s.SetFaults(Faults{Token: "t"})
	if code, _ := do(t, s, "GET", "/metadata", ""); code != 401 {
		t.Fatalf("no token: %d", code)
	}
	if code, _ := do(t, s, "GET", "/metadata", "", "Authorization", "Bearer t"); code != 200 {
		t.Fatalf("with the token: %d", code)
	}
}
