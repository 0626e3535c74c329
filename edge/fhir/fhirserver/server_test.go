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

// R4: a conditional reference that matches nothing fails the transaction
// (404), one that matches several fails it with 412; a server told to keep
// them stores the reference as it was sent.
func TestConditionalReferencesInATransaction(t *testing.T) {
	s := New()
	tx := `{"resourceType":"Bundle","type":"transaction","entry":[` + entry("POST", "Observation", "", obs("a")) + `]}`
	if code, oo := do(t, s, "POST", "/", tx); code != 404 || !strings.Contains(oo["issue"].([]any)[0].(map[string]any)["diagnostics"].(string), "matches no resource") {
		t.Fatalf("no Patient: %d %v", code, oo)
	}
	do(t, s, "POST", "/Patient", patient)
	do(t, s, "POST", "/Patient", patient)
	if code, _ := do(t, s, "POST", "/", tx); code != 412 {
		t.Fatalf("two Patients: %d", code)
	}
	s.SetFaults(Faults{KeepConditionalReferences: true})
	if code, _ := do(t, s, "POST", "/", tx); code != 200 {
		t.Fatalf("kept: %d", code)
	}
	if got := string(s.Resources("Observation")[0]); !strings.Contains(got, `"reference":"Patient?identifier=`) {
		t.Fatalf("stored %s", got)
	}
}

// The bed lookup's search: Encounters with a location entry at the bed's
// Location, by date overlap with Encounter.period and by status, with the
// Locations included and pages linked.
func TestEncounterSearchByLocationAndDate(t *testing.T) {
	s := New()
	s.Put("Location", "L7", json.RawMessage(`{"resourceType":"Location","id":"L7","identifier":[{"system":"urn:beds","value":"bed-7"}]}`))
	enc := func(id, status, period string) {
		s.Put("Encounter", id, json.RawMessage(`{"resourceType":"Encounter","id":"`+id+`","status":"`+status+`","class":{"code":"IMP"},`+
			`"subject":{"reference":"Patient/`+id+`"},`+period+`"location":[{"location":{"reference":"Location/L7"}}]}`))
	}
	enc("1", "finished", `"period":{"start":"2026-11-20T08:00:00Z","end":"2026-11-21T08:00:00Z"},`)
	enc("2", "finished", `"period":{"start":"2026-11-24T08:00:00Z","end":"2026-11-25T08:00:00Z"},`)
	enc("3", "in-progress", `"period":{"start":"2026-11-25T09:00:00Z"},`)
	enc("4", "in-progress", ``)
	ids := func(path string) (string, map[string]any) {
		code, b := do(t, s, "GET", path, "")
		if code != 200 {
			t.Fatalf("%s: %d %v", path, code, b)
		}
		var got []string
		for _, e := range b["entry"].([]any) {
			m := e.(map[string]any)
			got = append(got, m["fullUrl"].(string))
		}
		return strings.Join(got, " "), b
	}
	q := "/Encounter?location.identifier=urn%3Abeds%7Cbed-7"
	if got, _ := ids(q + "&date=ge2026-11-24T12:00:00Z"); got != "Encounter/2 Encounter/3" {
		t.Fatalf("date=ge: %s", got)
	}
	if got, _ := ids(q + "&date=ge2026-11-22T00:00:00Z&date=le2026-11-24T12:00:00Z"); got != "Encounter/2" {
		t.Fatalf("a day: %s", got)
	}
	if got, _ := ids(q + "&status=arrived,in-progress&_include=Encounter:location"); got != "Encounter/3 Encounter/4 Location/L7" {
		t.Fatalf("open ones with their Location: %s", got)
	}
	got, b := ids(q + "&_count=3")
	next := b["link"].([]any)[0].(map[string]any)["url"].(string)
	if got != "Encounter/1 Encounter/2 Encounter/3" || !strings.Contains(next, "_offset=3") {
		t.Fatalf("page 1: %s, next %s", got, next)
	}
	if got, _ := ids("/" + next); got != "Encounter/4" {
		t.Fatalf("page 2: %s", got)
	}
}
