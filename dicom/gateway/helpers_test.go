package gateway

import (
	"bytes"
	"context"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/wardgate/wardgate/dicom"
	"github.com/wardgate/wardgate/dicom/internal/dicomtest"
)

// The DICOM test helpers under the names these tests use.
var (
	requireTool   = dicomtest.RequireTool
	dcmtk         = dicomtest.DCMTK
	mustDCMTK     = dicomtest.MustDCMTK
	storescp      = dicomtest.Storescp
	freePort      = dicomtest.FreePort
	fixtures      = dicomtest.Fixtures
	fixturePath   = dicomtest.FixturePath
	instanceUID   = dicomtest.InstanceUID
	writeCT       = dicomtest.WriteCT
	writeCTs      = dicomtest.WriteCTs
	onlyFile      = dicomtest.OnlyFile
	waitFor       = dicomtest.WaitFor
	discardLogger = dicomtest.DiscardLogger
)

const ctImage = dicomtest.CTImage

var (
	leFixtures = dicomtest.LEFixtures
	firstDiff  = dicomtest.FirstDiff
)

// dataSetOf returns a Part 10 file's meta and data set bytes.
func dataSetOf(t testing.TB, path string) (dicom.FileMeta, []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m, off, err := dicom.ReadFileMeta(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m, b[off:]
}

// parsedElements lists a data set's elements as suyashkumar/dicom reads
// them (dicomtest.ParsedElements), behind a file meta header naming ts.
func parsedElements(t testing.TB, ds []byte, ts string) []string {
	t.Helper()
	var b bytes.Buffer
	if _, err := dicom.WriteFileMeta(&b, dicom.FileMeta{SOPClassUID: ctImage, SOPInstanceUID: "1.2.3", TransferSyntaxUID: ts}); err != nil {
		t.Fatal(err)
	}
	b.Write(ds)
	return dicomtest.ParsedElements(t, b.Bytes())
}

// startServer serves s on a free local port until the test ends.
func startServer(t *testing.T, s *dicom.Server) (host, port string) {
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
		if err := <-done; err != dicom.ErrServerClosed {
			t.Errorf("Serve returned %v", err)
		}
	})
	host, port, _ = net.SplitHostPort(ln.Addr().String())
	return host, port
}

func quietServer(s *dicom.Server) *dicom.Server {
	if s.Logger == nil {
		s.Logger = discardLogger
	}
	return s
}

// The node's parts are run in production by the gateway's supervisor;
// these run one the same way (its own context, stopped and waited for), so
// that a test can stop one and run it again.
type runner interface{ Run(context.Context) error }

var runningParts sync.Map // runner → *runningPart

type runningPart struct {
	cancel context.CancelFunc
	done   chan error
}

func startPart(p runner) error {
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningPart{cancel: cancel, done: make(chan error, 1)}
	runningParts.Store(p, r)
	go func() { r.done <- p.Run(ctx) }()
	return nil
}

// stopPart stops p and waits for it; a part not running is left alone.
func stopPart(p runner) {
	if v, ok := runningParts.LoadAndDelete(p); ok {
		r := v.(*runningPart)
		r.cancel()
		<-r.done
	}
}

// runParts starts parts in order and returns what stops them in reverse.
func runParts(t *testing.T, parts []Part) (stop func()) {
	t.Helper()
	type run struct {
		cancel context.CancelFunc
		done   chan error
		name   string
	}
	var runs []run
	for _, p := range parts {
		ctx, cancel := context.WithCancel(context.Background())
		r := run{cancel, make(chan error, 1), p.Name}
		go func() { r.done <- p.Run(ctx) }()
		runs = append(runs, r)
	}
	return func() {
		for i := len(runs) - 1; i >= 0; i-- {
			runs[i].cancel()
			if err := <-runs[i].done; err != nil {
				t.Errorf("%s: %v", runs[i].name, err)
			}
		}
	}
}
