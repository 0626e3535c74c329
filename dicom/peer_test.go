package dicom

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// requireTool returns the path of a DCMTK program or fails the test: tests
// against real peers never pass by skipping.
func requireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found (%v): these tests need DCMTK; install it with `apt-get install dcmtk`", name, err)
	}
	return p
}

// dcmtk runs a DCMTK program to completion. TCP_NODELAY=1 keeps Debian's
// build from waiting for delayed ACKs on every PDU.
func dcmtk(t testing.TB, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, requireTool(t, name), args...)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mustDCMTK(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := dcmtk(t, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// storescp runs DCMTK's storescp writing what it receives, bit for bit,
// into a new directory, and stops it when the test ends.
func storescp(t *testing.T, args ...string) (port int, dir string) {
	t.Helper()
	dir = t.TempDir()
	port = freePort(t)
	args = append([]string{"+B", "-od", dir}, append(args, strconv.Itoa(port))...)
	cmd := exec.Command(requireTool(t, "storescp"), args...)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting storescp: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("storescp output:\n%s", out.String())
		}
	})
	for deadline := time.Now().Add(5 * time.Second); ; {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return port, dir
		}
		if time.Now().After(deadline) {
			t.Fatalf("storescp did not listen on %d: %v", port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startServer serves s on a free local port until the test ends.
func startServer(t *testing.T, s *Server) (host, port string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != ErrServerClosed {
			t.Errorf("Serve returned %v", err)
		}
	})
	host, port, _ = net.SplitHostPort(ln.Addr().String())
	return host, port
}

// testStore is a StoreHandler writing each instance's data set to a file.
type testStore struct {
	dir       string
	refuse    error // returned by BeginStore when set
	failWrite error // returned by Write when set
	mu        sync.Mutex
	committed map[string]StoreRequest // SOP instance UID → request
	aborted   chan string
}

func newTestStore(t *testing.T) *testStore {
	return &testStore{dir: t.TempDir(), committed: map[string]StoreRequest{}, aborted: make(chan string, 16)}
}

func (s *testStore) BeginStore(ctx context.Context, req StoreRequest) (StoreWriter, error) {
	if s.refuse != nil {
		return nil, s.refuse
	}
	f, err := os.CreateTemp(s.dir, req.SOPInstanceUID+".*.part")
	if err != nil {
		return nil, err
	}
	return &testWriter{s: s, f: f, req: req}, nil
}

func (s *testStore) data(t *testing.T, instance string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dir, instance))
	if err != nil {
		t.Fatalf("instance %s not stored: %v", instance, err)
	}
	return b
}

func (s *testStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.committed)
}

type testWriter struct {
	s   *testStore
	f   *os.File
	req StoreRequest
}

func (w *testWriter) Write(b []byte) (int, error) {
	if w.s.failWrite != nil {
		return 0, w.s.failWrite
	}
	return w.f.Write(b)
}

func (w *testWriter) Commit(ctx context.Context) (uint16, error) {
	if err := w.f.Close(); err != nil {
		return StatusOutOfResources, err
	}
	if err := os.Rename(w.f.Name(), filepath.Join(w.s.dir, w.req.SOPInstanceUID)); err != nil {
		return 0, err
	}
	w.s.mu.Lock()
	w.s.committed[w.req.SOPInstanceUID] = w.req
	w.s.mu.Unlock()
	return StatusSuccess, nil
}

func (w *testWriter) Abort() {
	w.f.Close()
	os.Remove(w.f.Name())
	w.s.aborted <- w.req.SOPInstanceUID
}

// Fixtures: DICOM files made by DCMTK in several transfer syntaxes.

const ctImage = "1.2.840.10008.5.1.4.1.1.2"

var (
	fixtureOnce sync.Once
	fixtureDir  string
	fixtureErr  error
)

type fixture struct {
	name, file     string
	scuFlags       []string // storescu options proposing the file's own syntax first
	scpFlag        string   // storescp option preferring it
	transferSyntax string
}

var fixtures = []fixture{
	{"implicit", "implicit.dcm", []string{"-xi"}, "", ImplicitVRLittleEndian},
	{"explicit", "explicit.dcm", []string{"-xe"}, "+xe", ExplicitVRLittleEndian},
	{"big-endian", "big.dcm", []string{"-xb"}, "+xb", ExplicitVRBigEndian},
	{"deflated", "deflated.dcm", []string{"-xd"}, "+xd", DeflatedExplicitVRLittleEndian},
	{"jpeg-lossless", "jpeg.dcm", []string{"+C", "-xs"}, "+xs", JPEGLosslessSV1},
	{"rle", "rle.dcm", []string{"+C", "-xr"}, "+xr", RLELossless},
	{"jpeg-ls", "jpegls.dcm", []string{"+C", "-xt"}, "+xt", JPEGLSLossless},
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fixtureDir != "" {
		os.RemoveAll(fixtureDir)
	}
	os.Exit(code)
}

// instanceUID names the n-th generated CT instance.
func instanceUID(n int) string { return fmt.Sprintf("1.2.826.0.1.3680043.2.1125.9.%d", n) }

// writeCT writes a 192×192 12-bit CT image (72 KiB of pixels: several PDUs
// at DCMTK's 16 KiB default) in Implicit VR LE with dump2dcm.
func writeCT(t testing.TB, dir, name string, n int) string {
	const rows, cols = 192, 192
	var px strings.Builder
	for i := range rows * cols {
		if i > 0 {
			px.WriteByte('\\')
		}
		fmt.Fprintf(&px, "%04x", (i*7+i/cols*13)%4096)
	}
	dump := fmt.Sprintf(`(0008,0016) UI =CTImageStorage
(0008,0018) UI [%s]
(0008,0060) CS [CT]
(0010,0010) PN [Test^Patient]
(0010,0020) LO [PID%d]
(0020,000d) UI [1.2.826.0.1.3680043.2.1125.2]
(0020,000e) UI [1.2.826.0.1.3680043.2.1125.3]
(0028,0002) US 1
(0028,0004) CS [MONOCHROME2]
(0028,0010) US %d
(0028,0011) US %d
(0028,0100) US 16
(0028,0101) US 12
(0028,0102) US 11
(0028,0103) US 0
(7fe0,0010) OW %s
`, instanceUID(n), n, rows, cols, px.String())
	dumpPath := filepath.Join(dir, name+".dump")
	if err := os.WriteFile(dumpPath, []byte(dump), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name)
	mustDCMTK(t, "dump2dcm", "+l", "1000000", "+ti", dumpPath, out)
	return out
}

// fixturePath returns the fixture file for f, making all of them once.
func fixturePath(t testing.TB, f fixture) string {
	t.Helper()
	fixtureOnce.Do(func() {
		fixtureDir, fixtureErr = os.MkdirTemp("", "wardgate-dicom-fixtures")
		if fixtureErr != nil {
			return
		}
		d := fixtureDir
		p := func(n string) string { return filepath.Join(d, n) }
		writeCT(t, d, "implicit.dcm", 0)
		mustDCMTK(t, "dcmconv", "+te", p("implicit.dcm"), p("explicit.dcm"))
		mustDCMTK(t, "dcmconv", "+tb", p("implicit.dcm"), p("big.dcm"))
		mustDCMTK(t, "dcmconv", "+td", p("implicit.dcm"), p("deflated.dcm"))
		mustDCMTK(t, "dcmcjpeg", p("explicit.dcm"), p("jpeg.dcm"))
		mustDCMTK(t, "dcmcrle", p("explicit.dcm"), p("rle.dcm"))
		mustDCMTK(t, "dcmcjpls", p("explicit.dcm"), p("jpegls.dcm"))
	})
	if fixtureErr != nil {
		t.Fatalf("fixtures: %v", fixtureErr)
	}
	return filepath.Join(fixtureDir, f.file)
}

// dataSetOf returns a Part 10 file's meta and data set bytes.
func dataSetOf(t testing.TB, path string) (FileMeta, []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m, off, err := ReadFileMeta(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m, b[off:]
}

// onlyFile returns the single file storescp wrote into dir.
func onlyFile(t testing.TB, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("storescp wrote %d files into %s (%v)", len(entries), dir, err)
	}
	return filepath.Join(dir, entries[0].Name())
}

func quietServer(s *Server) *Server {
	if s.Logger == nil {
		s.Logger = discardLogger
	}
	return s
}
