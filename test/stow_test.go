package test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wardgate/wardgate/dicom"
)

// orthancDICOMWeb is where Debian's orthanc-dicomweb puts the plugin.
const orthancDICOMWeb = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"

// orthanc is a real Orthanc with its DICOMweb plugin, storing durably
// (SyncStorageArea) into a folder of the test's.
type orthanc struct {
	port int
	cmd  *exec.Cmd
	log  *syncBuffer
	cfg  string
}

// startOrthanc starts Orthanc with DICOMweb at /dicom-web/ on httpPort (0:
// a free one) and waits until it answers.
func startOrthanc(t *testing.T, httpPort int) *orthanc {
	t.Helper()
	RequirePeers(t, "Orthanc")
	if _, err := os.Stat(orthancDICOMWeb); err != nil {
		t.Fatalf("Orthanc's DICOMweb plugin is missing (%v; Debian package orthanc-dicomweb): run ./test/run, which installs the test peers", err)
	}
	if httpPort == 0 {
		httpPort = freePort(t)
	}
	dir := t.TempDir()
	conf := map[string]any{
		"Name": "wardgate-test", "HttpPort": httpPort, "DicomPort": freePort(t),
		"StorageDirectory": filepath.Join(dir, "storage"), "IndexDirectory": filepath.Join(dir, "index"),
		"Plugins": []string{orthancDICOMWeb}, "DicomWeb": map[string]any{"Enable": true, "Root": "/dicom-web/"},
		"AuthenticationEnabled": false, "RemoteAccessAllowed": true, "SyncStorageArea": true,
	}
	b, _ := json.Marshal(conf)
	o := &orthanc{port: httpPort, log: &syncBuffer{}, cfg: filepath.Join(dir, "orthanc.json")}
	os.WriteFile(o.cfg, b, 0o600)
	o.cmd = exec.Command("Orthanc", o.cfg)
	o.cmd.Stdout, o.cmd.Stderr = o.log, o.log
	if err := o.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		o.cmd.Process.Kill()
		o.cmd.Wait()
		if t.Failed() {
			t.Logf("Orthanc log:\n%s", o.log.String())
		}
	})
	Eventually(t, 30*time.Second, func() bool {
		resp, err := http.Get(o.url("/system"))
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	}, func() string { return "Orthanc did not answer /system:\n" + o.log.String() })
	return o
}

func (o *orthanc) url(path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", o.port, path) }

func (o *orthanc) get(t *testing.T, path string, v any) []byte {
	t.Helper()
	resp, err := http.Get(o.url(path))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	return b
}

// instances maps the SOP Instance UID of every instance Orthanc holds to
// the SHA-256 of its data set (the file Orthanc keeps, after its meta
// header), with how many instances it holds in all.
func (o *orthanc) instances(t *testing.T) (bySOP map[string]string, n int) {
	t.Helper()
	var ids []string
	o.get(t, "/instances", &ids)
	bySOP = map[string]string{}
	for _, id := range ids {
		file := o.get(t, "/instances/"+id+"/file", nil)
		m, off, err := dicom.ReadFileMeta(bytes.NewReader(file))
		if err != nil {
			t.Fatalf("Orthanc's file of %s: %v", id, err)
		}
		bySOP[m.SOPInstanceUID] = fmt.Sprintf("%x", sha256.Sum256(file[off:]))
	}
	return bySOP, len(ids)
}

func (o *orthanc) count(t *testing.T) int {
	var ids []string
	o.get(t, "/instances", &ids)
	return len(ids)
}

// sentDataSets maps the SOP Instance UID of each file to the SHA-256 of its
// data set (storescu -xi sends these synthetic files unchanged).
func sentDataSets(t *testing.T, files []string) map[string]string {
	out := map[string]string{}
	for _, f := range files {
		out[sopOf(t, f)] = fmt.Sprintf("%x", sha256.Sum256(dataSet(t, f)))
	}
	return out
}

// stowGateway starts wardgate forwarding to the DICOMweb base, refusals
// final after 1 s, with http.listen on a fixed port and an admin token (so
// that wardgate queue reaches it); it returns the gateway, its config and
// its DICOM port.
func stowGateway(t *testing.T, base string) (gw *Process, cfg string, port int) {
	t.Helper()
	RequirePeers(t, "storescu")
	port = freePort(t)
	record, cfg, _ := recordWith(t, fmt.Sprintf(`dicom:
  listen: 127.0.0.1:%d
  ae_title: WARDGATE
  allow_any: true
  study_stable_after: 1s
  refused_for_good_after: 1s
  forward:
    - {stow_rs: %s}
`, port, base))
	token := filepath.Join(filepath.Dir(cfg), "admin-token")
	os.WriteFile(token, []byte("s3cret-token-0123456789abcdef\n"), 0o600)
	b, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, []byte(strings.Replace(string(b), "http:\n  listen: 127.0.0.1:0\n",
		fmt.Sprintf("http:\n  listen: 127.0.0.1:%d\n  admin_token_file: %s\n", freePort(t), token), 1)), 0o600)
	record.Put("Patient", "p-e2e", json.RawMessage(`{"resourceType":"Patient","id":"p-e2e","identifier":[{"system":"urn:oid:1.2.3.4","value":"PID-E2E"}]}`))
	gw = Start(t, "run", "-config", cfg)
	gw.WaitLog(t, `dicom listening`, 20*time.Second)
	return gw, cfg, port
}

func forwardStatus(t *testing.T, gw *Process) map[string]any {
	return readyz(t, gw)["dicom"].(map[string]any)["forward"].([]any)[0].(map[string]any)
}

// A study forwarded by STOW-RS lands in Orthanc, each instance once, each
// data set byte for byte as the modality sent it.
func TestSTOWForwardsAStudyToOrthanc(t *testing.T) {
	o := startOrthanc(t, 0)
	gw, _, port := stowGateway(t, o.url("/dicom-web"))
	files := studyOf(t, t.TempDir(), "1.2.826.0.1.3680043.2.1125.81", "PID-E2E", 1, 12)
	storescu(t, port, files...)
	Eventually(t, 60*time.Second, func() bool { return o.count(t) == len(files) },
		func() string { return fmt.Sprintf("Orthanc holds %d of %d\n%s", o.count(t), len(files), gw.Log()) })
	got, n := o.instances(t)
	want := sentDataSets(t, files)
	if n != len(want) {
		t.Fatalf("Orthanc holds %d instances, want %d", n, len(want))
	}
	for uid, sum := range want {
		if got[uid] != sum {
			t.Fatalf("instance %s: Orthanc's data set differs from the one sent", uid)
		}
	}
	var studies []string
	o.get(t, "/dicom-web/studies/1.2.826.0.1.3680043.2.1125.81/instances", nil)
	o.get(t, "/studies", &studies)
	if len(studies) != 1 {
		t.Fatalf("Orthanc holds %d studies", len(studies))
	}
	Eventually(t, 30*time.Second, func() bool {
		f := forwardStatus(t, gw)
		return f["delivered"] == float64(len(files)) && f["waiting"] == float64(0)
	}, func() string { return fmt.Sprintf("forward status %v", forwardStatus(t, gw)) })
	if f := forwardStatus(t, gw); f["destination"] != o.url("/dicom-web") {
		t.Fatalf("destination named %v", f["destination"])
	}
}

// SIGKILL while a STOW-RS request is in flight — Orthanc has stored the
// batch, the gateway has not had the answer — then a restart: the batch
// goes again, and every instance is in Orthanc exactly once, none missing.
func TestSTOWSIGKILLInTheMiddleOfABatch(t *testing.T) {
	o := startOrthanc(t, 0)
	target, _ := url.Parse(o.url(""))
	proxy := httputil.NewSingleHostReverseProxy(target)
	var mu sync.Mutex
	posts := 0
	var sent atomic.Bool           // the whole study is in the spool
	held := make(chan struct{})    // the first POST reached Orthanc
	release := make(chan struct{}) // the gateway is dead: let the answer go
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !sent.Load() {
			// Until the whole study is queued, the archive is busy: the
			// batch killed in flight is then the whole study.
			io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		mu.Lock()
		posts++
		first := posts == 1
		mu.Unlock()
		if !first {
			proxy.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		proxy.ServeHTTP(rec, r) // Orthanc stores the whole batch
		close(held)
		<-release
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(front.Close)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})

	gw, cfg, port := stowGateway(t, front.URL+"/dicom-web")
	files := studyOf(t, t.TempDir(), "1.2.826.0.1.3680043.2.1125.82", "PID-E2E", 1, 20)
	storescu(t, port, files...)
	sent.Store(true)
	select {
	case <-held:
	case <-time.After(60 * time.Second):
		t.Fatalf("no STOW-RS request reached Orthanc\n%s", gw.Log())
	}
	inFirst := o.count(t)
	gw.Cmd.Process.Signal(syscall.SIGKILL)
	gw.Wait(t, 10*time.Second)
	close(release)
	if inFirst != len(files) {
		t.Fatalf("Orthanc stored %d of the first request, want the whole study of %d", inFirst, len(files))
	}
	t.Logf("Orthanc held %d instances when the gateway was killed", inFirst)

	gw = Start(t, "run", "-config", cfg)
	gw.WaitLog(t, `dicom listening`, 20*time.Second)
	Eventually(t, 60*time.Second, func() bool {
		f := forwardStatus(t, gw)
		return f["waiting"] == float64(0) && o.count(t) == len(files)
	}, func() string {
		return fmt.Sprintf("Orthanc holds %d of %d; forward status %v", o.count(t), len(files), forwardStatus(t, gw))
	})
	got, n := o.instances(t)
	want := sentDataSets(t, files)
	if n != len(files) || len(got) != len(files) {
		t.Fatalf("Orthanc holds %d instances (%d distinct), want %d each once", n, len(got), len(files))
	}
	for uid, sum := range want {
		if got[uid] != sum {
			t.Fatalf("instance %s missing or changed in Orthanc", uid)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if posts < 2 {
		t.Fatalf("%d requests: the batch was not sent again after the restart", posts)
	}
}

// fakeArchive is a STOW-RS origin server written from PS3.18 10.5, for
// what Orthanc cannot be made to do: refuse one instance of a batch. It
// answers per instance what answer says (0: stored), 200, 202 or 409 as
// the standard asks.
type fakeArchive struct {
	// open: until it is, the archive is busy (503).
	open   atomic.Bool
	mu     sync.Mutex
	answer func(uid string, try int) uint16
	tries  map[string]int
	stored map[string]bool
	codes  []int
}

func (a *fakeArchive) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !a.open.Load() {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	_, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || r.Method != http.MethodPost {
		http.Error(w, "not a STOW-RS request", http.StatusBadRequest)
		return
	}
	var ref, failed []any
	mr := multipart.NewReader(r.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err != nil {
			break
		}
		m, _, err := dicom.ReadFileMeta(p)
		io.Copy(io.Discard, p)
		if err != nil {
			http.Error(w, "a part is not a DICOM file", http.StatusBadRequest)
			return
		}
		a.mu.Lock()
		a.tries[m.SOPInstanceUID]++
		reason := a.answer(m.SOPInstanceUID, a.tries[m.SOPInstanceUID])
		if reason == 0 {
			a.stored[m.SOPInstanceUID] = true
		}
		a.mu.Unlock()
		item := map[string]any{
			"00081150": map[string]any{"vr": "UI", "Value": []string{m.SOPClassUID}},
			"00081155": map[string]any{"vr": "UI", "Value": []string{m.SOPInstanceUID}},
		}
		if reason == 0 {
			ref = append(ref, item)
		} else {
			item["00081197"] = map[string]any{"vr": "US", "Value": []uint16{reason}}
			failed = append(failed, item)
		}
	}
	code := http.StatusOK
	switch {
	case len(ref) == 0:
		code = http.StatusConflict
	case len(failed) > 0:
		code = http.StatusAccepted
	}
	a.mu.Lock()
	a.codes = append(a.codes, code)
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/dicom+json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{
		"00081198": map[string]any{"vr": "SQ", "Value": failed},
		"00081199": map[string]any{"vr": "SQ", "Value": ref},
	})
}

// One instance of a batch refused for good (A900: 202 for the batch, then
// 409 when it goes alone): it becomes a dead letter naming the archive,
// the others are stored; one refused for want of resources (A700) is
// retried until it is taken.
func TestSTOWFailedInstanceOfABatch(t *testing.T) {
	files := studyOf(t, t.TempDir(), "1.2.826.0.1.3680043.2.1125.83", "PID-E2E", 1, 4)
	refused, busy := sopOf(t, files[1]), sopOf(t, files[2])
	archive := &fakeArchive{tries: map[string]int{}, stored: map[string]bool{}, answer: func(uid string, try int) uint16 {
		switch {
		case uid == refused:
			return 0xA900
		case uid == busy && try == 1:
			return 0xA700
		}
		return 0
	}}
	srv := httptest.NewServer(archive)
	t.Cleanup(srv.Close)
	gw, cfg, port := stowGateway(t, srv.URL+"/dicomweb")
	storescu(t, port, files...)
	archive.open.Store(true) // the whole study goes in one request
	Eventually(t, 90*time.Second, func() bool {
		f := forwardStatus(t, gw)
		return f["dead_lettered"] == float64(1) && f["waiting"] == float64(0)
	}, func() string { return fmt.Sprintf("forward status %v\n%s", forwardStatus(t, gw), gw.Log()) })
	archive.mu.Lock()
	stored, codes := len(archive.stored), fmt.Sprint(archive.codes)
	archive.mu.Unlock()
	if stored != 3 || archive.stored[refused] {
		t.Fatalf("the archive stored %d (the refused one: %v), want the 3 others", stored, archive.stored[refused])
	}
	if !strings.Contains(codes, "202") || !strings.Contains(codes, "409") {
		t.Fatalf("answers %s: want a 202 and a 409 among them", codes)
	}
	list := Run(t, "queue", "-config", cfg, "list")
	if !strings.Contains(list.Stdout, srv.URL+"/dicomweb") || !strings.Contains(list.Stdout, "0xA900") {
		t.Fatalf("the dead letters do not name the archive and the reason:\n%s%s", list.Stdout, list.Stderr)
	}
	if strings.Contains(gw.Log(), "PID-E2E") {
		t.Fatal("a Patient ID reached the log")
	}
}

// Nothing listens at the archive's address: the study waits, the status
// says why, and it goes once Orthanc comes up there.
func TestSTOWUnreachableArchive(t *testing.T) {
	httpPort := freePort(t)
	gw, _, port := stowGateway(t, fmt.Sprintf("http://127.0.0.1:%d/dicom-web", httpPort))
	files := studyOf(t, t.TempDir(), "1.2.826.0.1.3680043.2.1125.84", "PID-E2E", 1, 5)
	storescu(t, port, files...)
	Eventually(t, 30*time.Second, func() bool {
		f := forwardStatus(t, gw)
		e, _ := f["last_error"].(string)
		return strings.Contains(e, "connection refused") && f["waiting"] == float64(len(files)) && f["connected"] == false
	}, func() string { return fmt.Sprintf("forward status %v", forwardStatus(t, gw)) })
	page := getPage(t, gw)
	if !strings.Contains(page, "connection refused") {
		t.Fatalf("the status page does not say why the study waits:\n%s", page)
	}

	o := startOrthanc(t, httpPort)
	Eventually(t, 90*time.Second, func() bool { return o.count(t) == len(files) && forwardStatus(t, gw)["waiting"] == float64(0) },
		func() string {
			return fmt.Sprintf("Orthanc holds %d of %d; %v", o.count(t), len(files), forwardStatus(t, gw))
		})
	if f := forwardStatus(t, gw); f["last_error"] != nil || f["connected"] != true {
		t.Fatalf("forward status once delivered: %v", f)
	}
}

func getPage(t *testing.T, gw *Process) string {
	addr := gw.WaitLog(t, statusRe, 10*time.Second)
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
