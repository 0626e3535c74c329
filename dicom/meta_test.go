package dicom

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardgate/wardgate/dicom/internal/dicomtest"
)

func TestFileMetaRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	m := FileMeta{SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", SOPInstanceUID: "1.2.3.4.5", TransferSyntaxUID: ExplicitVRLittleEndian, SourceAET: "CT1"}
	n, err := WriteFileMeta(&buf, m)
	if err != nil {
		t.Fatal(err)
	}
	buf.WriteString("DATASET")
	br := bufio.NewReader(&buf)
	got, off, err := ReadFileMeta(br)
	if err != nil {
		t.Fatal(err)
	}
	m.ImplementationClassUID, m.ImplementationVersionName = ImplementationClassUID, ImplementationVersionName
	if got != m || off != n {
		t.Fatalf("got %+v at %d, want %+v at %d", got, off, m, n)
	}
	rest, _ := br.ReadString(0)
	if rest != "DATASET" {
		t.Fatalf("reader left at %q", rest)
	}
}

// TestFileMetaWithoutGroupLength reads a meta group written without
// (0002,0000), as some writers do.
func TestFileMetaWithoutGroupLength(t *testing.T) {
	var buf bytes.Buffer
	WriteFileMeta(&buf, FileMeta{SOPClassUID: "1.2", SOPInstanceUID: "1.2.3", TransferSyntaxUID: ImplicitVRLittleEndian})
	b := buf.Bytes()
	b = append(b[:132:132], b[144:]...)                           // drop (0002,0000)
	b = append(b, 0x08, 0, 0x16, 0, 4, 0, 0, 0, '1', '.', '2', 0) // data set, implicit VR
	m, off, err := ReadFileMeta(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if m.TransferSyntaxUID != ImplicitVRLittleEndian || off != int64(len(b)-12) {
		t.Fatalf("got %+v at %d", m, off)
	}
}

func TestReadFileMetaErrors(t *testing.T) {
	var good bytes.Buffer
	WriteFileMeta(&good, FileMeta{SOPClassUID: "1.2", SOPInstanceUID: "1.2.3", TransferSyntaxUID: ImplicitVRLittleEndian})
	g := good.Bytes()
	huge := append([]byte(nil), g...)
	copy(huge[140:144], []byte{0xFF, 0xFF, 0xFF, 0x7F})
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "preamble"},
		{"no DICM", make([]byte, 200), "no DICM"},
		{"truncated", g[:150], "unexpected EOF"},
		{"huge group length", huge, "too large"},
		{"no transfer syntax", g[:132], "no transfer syntax"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ReadFileMeta(bytes.NewReader(tc.b))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestWriteFileMetaDcmdump has DCMTK read a file we wrote.
func TestWriteFileMetaDcmdump(t *testing.T) {
	dcmdump := dicomtest.RequireTool(t, "dcmdump")
	path := filepath.Join(t.TempDir(), "x.dcm")
	var buf bytes.Buffer
	WriteFileMeta(&buf, FileMeta{SOPClassUID: "1.2.840.10008.5.1.4.1.1.7", SOPInstanceUID: "1.2.3.4", TransferSyntaxUID: ImplicitVRLittleEndian, SourceAET: "SRC"})
	// (0008,0016) and (0008,0018) in Implicit VR LE.
	buf.Write([]byte{0x08, 0, 0x16, 0, 26, 0, 0, 0})
	buf.WriteString("1.2.840.10008.5.1.4.1.1.7\x00")
	buf.Write([]byte{0x08, 0, 0x18, 0, 8, 0, 0, 0})
	buf.WriteString("1.2.3.4\x00")
	os.WriteFile(path, buf.Bytes(), 0o644)
	out, err := exec.Command(dcmdump, "-M", "+L", path).CombinedOutput()
	if err != nil {
		t.Fatalf("dcmdump: %v\n%s", err, out)
	}
	for _, want := range []string{"(0002,0010) UI =LittleEndianImplicit", "(0002,0012) UI [" + ImplementationClassUID + "]",
		"(0002,0013) SH [" + ImplementationVersionName + "]", "(0002,0016) AE [SRC]", "(0008,0018) UI [1.2.3.4]"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("dcmdump output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "W: ") || strings.Contains(string(out), "E: ") {
		t.Errorf("dcmdump complained:\n%s", out)
	}
}

func FuzzReadFileMeta(f *testing.F) {
	var good bytes.Buffer
	WriteFileMeta(&good, FileMeta{SOPClassUID: "1.2", SOPInstanceUID: "1.2.3", TransferSyntaxUID: ExplicitVRLittleEndian, SourceAET: "A"})
	f.Add(good.Bytes())
	f.Add(append(make([]byte, 128), "DICM\x02\x00\x10\x00UI\x04\x001.2\x00"...))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, off, err := ReadFileMeta(bytes.NewReader(b))
		if err == nil && (off < 132 || off > int64(len(b)) || m.TransferSyntaxUID == "") {
			t.Fatalf("offset %d of %d, meta %+v", off, len(b), m)
		}
	})
}
