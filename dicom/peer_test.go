package dicom

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/wardgate/wardgate/dicom/internal/dicomtest"
)

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

func TestMain(m *testing.M) {
	code := m.Run()
	dicomtest.RemoveFixtures()
	os.Exit(code)
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

func quietServer(s *Server) *Server {
	if s.Logger == nil {
		s.Logger = dicomtest.DiscardLogger
	}
	return s
}
