// Package dstest holds the test helpers of the packages above the DICOM
// protocol (dicom/dataset, dicom/gateway) that need package dicom itself:
// data sets out of Part 10 files and one of the project's own SCPs to send
// to. (dicomtest cannot import dicom: the protocol's own tests use it.)
package dstest

import (
	"bytes"
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/wardgate/wardgate/dicom"
	"github.com/wardgate/wardgate/dicom/internal/dicomtest"
)

// DataSetOf returns a Part 10 file's meta and data set bytes.
func DataSetOf(t testing.TB, path string) (dicom.FileMeta, []byte) {
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

// ParsedElements lists a data set's elements as suyashkumar/dicom reads
// them (dicomtest.ParsedElements), behind a file meta header naming ts.
func ParsedElements(t testing.TB, ds []byte, ts string) []string {
	t.Helper()
	var b bytes.Buffer
	if _, err := dicom.WriteFileMeta(&b, dicom.FileMeta{SOPClassUID: dicomtest.CTImage, SOPInstanceUID: "1.2.3", TransferSyntaxUID: ts}); err != nil {
		t.Fatal(err)
	}
	b.Write(ds)
	return dicomtest.ParsedElements(t, b.Bytes())
}

// StartServer serves s (quiet unless it has a Logger) on a free local port
// until the test ends.
func StartServer(t *testing.T, s *dicom.Server) (host, port string) {
	t.Helper()
	if s.Logger == nil {
		s.Logger = dicomtest.DiscardLogger
	}
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
