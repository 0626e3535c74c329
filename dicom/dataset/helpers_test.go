package dataset

import (
	"bytes"
	"os"
	"testing"

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
