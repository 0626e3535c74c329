package test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dicomsim "github.com/wardgate/wardgate/dicom/sim"

	"github.com/wardgate/wardgate/dicom"
	"github.com/wardgate/wardgate/edge/fhir/fhirserver"
)

// studyFiles writes n instances of one study into a new folder.
func studyFiles(t testing.TB, study string, n, rows, cols int) []string {
	t.Helper()
	dir := t.TempDir()
	var files []string
	st := dicomsim.SyntheticStudy{StudyUID: study, SeriesUID: study + ".1", PatientID: "PID-E2E", PatientName: "Test^Patient"}
	for i := 1; i <= n; i++ {
		p := filepath.Join(dir, fmt.Sprintf("ct%04d.dcm", i))
		if err := st.WriteFile(p, i, rows, cols); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	return files
}

// dcmtkCmd is a DCMTK program with TCP_NODELAY=1 (Debian's build leaves
// Nagle's algorithm on otherwise).
func dcmtkCmd(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	return cmd
}

// startStorescp runs storescp +B as AE PACS on port, writing into dir,
// with more options (TLS) before the port.
func startStorescp(t *testing.T, port int, dir string, options ...string) {
	t.Helper()
	RequirePeers(t, "storescp")
	args := append([]string{"+B", "-aet", "PACS", "-od", dir}, options...)
	cmd := dcmtkCmd("storescp", append(args, strconv.Itoa(port))...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	Eventually(t, 5*time.Second, func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
		}
		return err == nil
	}, func() string { return "storescp did not listen: " + out.String() })
}

// dicomGateway starts wardgate with a DICOM node on a free port, recording
// to a FHIR server where the test patient exists. Unless extraDICOM lists
// the modalities allowed, any may send (allow_any).
func dicomGateway(t *testing.T, extraDICOM, extra string) (p *Process, record *fhirserver.Server, cfg string, port int) {
	t.Helper()
	port = freePort(t)
	if !strings.Contains(extraDICOM, "allow:") {
		extraDICOM = "  allow_any: true\n" + extraDICOM
	}
	record, cfg, _ = recordWith(t, fmt.Sprintf(`dicom:
  listen: 127.0.0.1:%d
  ae_title: WARDGATE
%s%s`, port, extraDICOM, extra))
	record.Put("Patient", "p-e2e", json.RawMessage(`{"resourceType":"Patient","id":"p-e2e","identifier":[{"system":"urn:oid:1.2.3.4","value":"PID-E2E"}]}`))
	p = Start(t, "run", "-config", cfg)
	p.WaitLog(t, `dicom listening`, 20*time.Second)
	return p, record, cfg, port
}

// dataSet returns the data set of a Part 10 file.
func dataSet(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, off, err := dicom.ReadFileMeta(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return b[off:]
}

// imagingStudies returns the record's ImagingStudies.
func imagingStudies(record *fhirserver.Server) []map[string]any {
	var out []map[string]any
	for _, raw := range record.Resources("ImagingStudy") {
		var m map[string]any
		json.Unmarshal(raw, &m)
		out = append(out, m)
	}
	return out
}

func studyHas(record *fhirserver.Server, n int) bool {
	s := imagingStudies(record)
	return len(s) == 1 && s[0]["numberOfInstances"] == float64(n)
}

func countDir(dir string) int {
	e, _ := os.ReadDir(dir)
	return len(e)
}

func readyz(t *testing.T, p *Process) map[string]any {
	t.Helper()
	addr := p.WaitLog(t, statusRe, 10*time.Second)
	_, v := getJSON(t, "http://"+addr+"/readyz")
	return v
}

// echoscu and storescu to wardgate; each instance forwarded to storescp
// byte for byte; the study in the record once; an unknown AE rejected.
func TestDicomEchoStoreAndForward(t *testing.T) {
	RequirePeers(t, "echoscu", "storescu", "storescp")
	pacsPort, pacsDir := freePort(t), t.TempDir()
	startStorescp(t, pacsPort, pacsDir)
	p, record, _, port := dicomGateway(t, fmt.Sprintf(`  allow: [{ae_title: MODALITY}]
  forward: [{ae_title: PACS, host: 127.0.0.1, port: %d}]
  study_stable_after: 1s
`, pacsPort), "")
	addr := []string{"127.0.0.1", strconv.Itoa(port)}

	if out, err := dcmtkCmd("echoscu", append([]string{"-aet", "MODALITY", "-aec", "WARDGATE"}, addr...)...).CombinedOutput(); err != nil {
		t.Fatalf("echoscu: %v\n%s", err, out)
	}
	if out, err := dcmtkCmd("echoscu", append([]string{"-aet", "STRANGER", "-aec", "WARDGATE"}, addr...)...).CombinedOutput(); err == nil {
		t.Fatalf("echoscu from an AE not in dicom.allow was accepted:\n%s", out)
	}
	if out, err := dcmtkCmd("echoscu", append([]string{"-aet", "MODALITY", "-aec", "OTHER"}, addr...)...).CombinedOutput(); err == nil {
		t.Fatalf("echoscu calling another AE title was accepted:\n%s", out)
	}

	files := studyFiles(t, "1.2.826.0.1.3680043.2.1125.77", 12, 128, 128)
	args := append(append([]string{"-xi", "-aet", "MODALITY", "-aec", "WARDGATE"}, addr...), files...)
	if out, err := dcmtkCmd("storescu", args...).CombinedOutput(); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
	Eventually(t, 20*time.Second, func() bool { return countDir(pacsDir) == len(files) },
		func() string { return fmt.Sprintf("%d of %d instances at storescp", countDir(pacsDir), len(files)) })
	for _, f := range files {
		sop := "1.2.826.0.1.3680043.2.1125.77.1." + strings.TrimLeft(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "ct"), ".dcm"), "0")
		got := dataSet(t, filepath.Join(pacsDir, "CT."+sop))
		if !bytes.Equal(got, dataSet(t, f)) {
			t.Fatalf("%s reached storescp with different bytes", f)
		}
	}
	Eventually(t, 20*time.Second, func() bool { return studyHas(record, len(files)) },
		func() string { return fmt.Sprintf("ImagingStudies in the record: %v", imagingStudies(record)) })

	d, _ := readyz(t, p)["dicom"].(map[string]any)
	if d == nil {
		t.Fatal("/readyz has no dicom section")
	}
	if d["instances_received"] != float64(len(files)) || d["associations_rejected"] != float64(2) {
		t.Fatalf("/readyz dicom: %v", d)
	}
	fw := d["forward"].([]any)[0].(map[string]any)
	if fw["delivered"] != float64(len(files)) || fw["waiting"] != float64(0) {
		t.Fatalf("/readyz forward: %v", fw)
	}
}

var (
	sendingRe = regexp.MustCompile(`(?m)^I: Sending file: (.+)$`)
	successRe = regexp.MustCompile(`(?m)^I: Received Store Response \(Success\)`)
)

// acknowledged returns the files storescu -v reported stored with success.
func acknowledged(out string) []string {
	var acked []string
	var current string
	for _, line := range strings.Split(out, "\n") {
		if m := sendingRe.FindStringSubmatch(line); m != nil {
			current = m[1]
		} else if successRe.MatchString(line) && current != "" {
			acked = append(acked, current)
			current = ""
		}
	}
	return acked
}

// SIGKILL of wardgate in the middle of a 300-instance transfer: every
// instance storescu saw acknowledged reaches storescp after the restart,
// and the study reaches the record once.
func TestDicomSIGKILLDuringTransfer(t *testing.T) {
	RequirePeers(t, "storescu", "storescp")
	pacsPort, pacsDir := freePort(t), t.TempDir()
	p, record, cfg, port := dicomGateway(t, fmt.Sprintf(`  forward: [{ae_title: PACS, host: 127.0.0.1, port: %d}]
  study_stable_after: 2s
`, pacsPort), "")
	files := studyFiles(t, "1.2.826.0.1.3680043.2.1125.88", 300, 256, 256)
	args := append([]string{"-v", "-xi", "-aet", "MODALITY", "-aec", "WARDGATE", "127.0.0.1", strconv.Itoa(port)}, files...)
	scu := dcmtkCmd("storescu", args...)
	var out syncBuffer
	scu.Stdout, scu.Stderr = &out, &out
	if err := scu.Start(); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 30*time.Second, func() bool { return len(acknowledged(out.String())) >= 60 },
		func() string { return "storescu made no progress:\n" + out.String() })
	p.Cmd.Process.Signal(syscall.SIGKILL)
	scu.Wait()
	acked := acknowledged(out.String())
	if len(acked) >= len(files) {
		t.Fatalf("the transfer finished before the kill (%d acknowledged)", len(acked))
	}
	t.Logf("storescu saw %d of %d acknowledged before SIGKILL", len(acked), len(files))

	// The PACS comes up; wardgate restarts with the same data folder.
	startStorescp(t, pacsPort, pacsDir)
	p2 := Start(t, "run", "-config", cfg)
	p2.WaitLog(t, `dicom listening`, 20*time.Second)
	present := func() int {
		n := 0
		for _, f := range acked {
			if _, err := os.Stat(filepath.Join(pacsDir, "CT."+sopOf(t, f))); err == nil {
				n++
			}
		}
		return n
	}
	Eventually(t, 60*time.Second, func() bool { return present() == len(acked) },
		func() string {
			return fmt.Sprintf("%d of %d acknowledged instances at storescp", present(), len(acked))
		})
	for _, f := range acked {
		if !bytes.Equal(dataSet(t, filepath.Join(pacsDir, "CT."+sopOf(t, f))), dataSet(t, f)) {
			t.Fatalf("%s reached storescp with different bytes", f)
		}
	}
	// The study holds every acknowledged instance, and perhaps the one
	// whose response the kill cut off (stored, never acknowledged: the
	// modality sends it again anyway).
	Eventually(t, 30*time.Second, func() bool { return studyHas(record, len(acked)) || studyHas(record, len(acked)+1) },
		func() string { return fmt.Sprintf("ImagingStudies: %d", len(imagingStudies(record))) })

	// The modality sends the study again (as it would after the error):
	// everything arrives, the study is in the record once, complete.
	args[0] = "-q"
	if o, err := dcmtkCmd("storescu", args...).CombinedOutput(); err != nil {
		t.Fatalf("storescu again: %v\n%s", err, o)
	}
	Eventually(t, 60*time.Second, func() bool { return countDir(pacsDir) == len(files) },
		func() string { return fmt.Sprintf("%d of %d at storescp", countDir(pacsDir), len(files)) })
	Eventually(t, 30*time.Second, func() bool { return studyHas(record, len(files)) },
		func() string { return fmt.Sprintf("ImagingStudies: %v", len(imagingStudies(record))) })
}

func sopOf(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, _, err := dicom.ReadFileMeta(f)
	if err != nil {
		t.Fatal(err)
	}
	return m.SOPInstanceUID
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A spool quota smaller than the study: A700 for what does not fit, and
// what was acknowledged is kept, whole, across a restart.
func TestDicomQuotaRefusesWithA700(t *testing.T) {
	RequirePeers(t, "storescu")
	// 176 KiB of pixels each: 5 fit in 1 MiB, the smallest quota allowed.
	files := studyFiles(t, "1.2.826.0.1.3680043.2.1125.99", 10, 300, 300)
	p, _, cfg, port := dicomGateway(t, "  study_stable_after: 1h\n", "buffer:\n  spool_quota: 1MiB\n")
	args := append([]string{"-v", "-nh", "-xi", "-aet", "MODALITY", "-aec", "WARDGATE", "127.0.0.1", strconv.Itoa(port)}, files...)
	out, _ := dcmtkCmd("storescu", args...).CombinedOutput()
	acked := acknowledged(string(out))
	refused := strings.Count(string(out), "Received Store Response (Refused: OutOfResources)")
	if len(acked) != 5 || refused != 5 {
		t.Fatalf("storescu saw %d acknowledged and %d A700, want 5 and 5:\n%s", len(acked), refused, out)
	}
	d := readyz(t, p)["dicom"].(map[string]any)
	if d["instances_received"] != float64(5) || d["refused_full"] != float64(5) {
		t.Fatalf("/readyz dicom instances: %v", d)
	}
	p.Cmd.Process.Signal(syscall.SIGTERM)
	if code := p.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	p2 := Start(t, "run", "-config", cfg)
	p2.WaitLog(t, `spool open.*instances=5 `, 20*time.Second)
}

// `wardgate echo` and `wardgate send` against storescp.
func TestDicomEchoAndSendCommands(t *testing.T) {
	pacsPort, pacsDir := freePort(t), t.TempDir()
	startStorescp(t, pacsPort, pacsDir)
	addr := fmt.Sprintf("127.0.0.1:%d", pacsPort)
	r := Run(t, "echo", "-aet", "WARDGATE", "-aec", "PACS", addr)
	if r.Code != 0 || !strings.Contains(r.Stdout, "success") {
		t.Fatalf("echo: %+v", r)
	}
	if r := Run(t, "echo", "-aec", "PACS", fmt.Sprintf("127.0.0.1:%d", freePort(t))); r.Code != 1 {
		t.Fatalf("echo to a closed port: %+v", r)
	}
	files := studyFiles(t, "1.2.826.0.1.3680043.2.1125.66", 3, 64, 64)
	dir := filepath.Dir(files[0])
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not DICOM"), 0o600)
	r = Run(t, "send", "-aet", "WARDGATE", "-aec", "PACS", addr, dir)
	if r.Code != 0 || strings.Count(r.Stdout, ": success (0x0000)") != 3 {
		t.Fatalf("send: %+v", r)
	}
	if countDir(pacsDir) != 3 {
		t.Fatalf("storescp has %d files", countDir(pacsDir))
	}
	for _, f := range files {
		if !bytes.Equal(dataSet(t, filepath.Join(pacsDir, "CT."+sopOf(t, f))), dataSet(t, f)) {
			t.Fatalf("%s arrived changed", f)
		}
	}
	if r := Run(t, "send", "-aec", "PACS", fmt.Sprintf("127.0.0.1:%d", freePort(t)), files[0]); r.Code != 1 {
		t.Fatalf("send to a closed port: %+v", r)
	}
}
