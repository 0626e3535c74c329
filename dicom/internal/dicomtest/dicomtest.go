// Package dicomtest holds what the DICOM packages' tests share: DCMTK as a
// real peer (run, storescp), the DCMTK-made fixture files in each transfer
// syntax, generated CT instances and waiting for a condition. It imports no
// wardgate package, so the protocol package's own tests can use it too.
package dicomtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	sdicom "github.com/suyashkumar/dicom"
)

// Transfer syntaxes and the SOP class the Fixtures use (the same values as
// package dicom's constants; this package cannot import it).
const (
	CTImage         = "1.2.840.10008.5.1.4.1.1.2"
	implicitLE      = "1.2.840.10008.1.2"
	explicitLE      = "1.2.840.10008.1.2.1"
	explicitBE      = "1.2.840.10008.1.2.2"
	deflatedLE      = "1.2.840.10008.1.2.1.99"
	jpegLosslessSV1 = "1.2.840.10008.1.2.4.70"
	rleLossless     = "1.2.840.10008.1.2.5"
	jpegLSLossless  = "1.2.840.10008.1.2.4.80"
)

// DiscardLogger logs nothing.
var DiscardLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// RequireTool returns the path of a DCMTK program or fails the test: tests
// against real peers never pass by skipping.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found (%v): these tests need DCMTK; install it with `apt-get install dcmtk`", name, err)
	}
	return p
}

// DCMTK runs a DCMTK program to completion. TCP_NODELAY=1 keeps Debian's
// build from waiting for delayed ACKs on every PDU.
func DCMTK(t testing.TB, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, RequireTool(t, name), args...)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func MustDCMTK(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := DCMTK(t, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// Storescp runs DCMTK's storescp writing what it receives, bit for bit,
// into a new directory, and stops it when the test ends.
func Storescp(t *testing.T, args ...string) (port int, dir string) {
	t.Helper()
	dir = t.TempDir()
	port = FreePort(t)
	args = append([]string{"+B", "-od", dir}, append(args, strconv.Itoa(port))...)
	cmd := exec.Command(RequireTool(t, "storescp"), args...)
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

// FreePort returns a loopback port nobody listens on now.
func FreePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	// Below the kernel's ephemeral range (32768–60999 by default), so that
	// no bind(0) or outgoing connection of another process (the test
	// binaries of other packages run beside this one) takes the port
	// between now and the peer's own bind; each process starts at its own
	// place in the range, so that two seldom walk the same ports.
	if portsNext == 0 {
		portsNext = portsLow + (os.Getpid()*7919)%(portsHigh-portsLow)
	}
	for tries := 0; tries < portsHigh-portsLow; tries++ {
		port := portsNext
		portsNext++
		if portsNext >= portsHigh {
			portsNext = portsLow
		}
		if portsGiven[port] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // in use
		}
		ln.Close()
		portsGiven[port] = true
		return port
	}
	t.Fatal("no free loopback port below the ephemeral range")
	return 0
}

const portsLow, portsHigh = 20000, 32000

var (
	portsNext  int
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// Fixtures: DICOM files made by DCMTK in several transfer syntaxes.

var (
	fixtureOnce sync.Once
	fixtureDir  string
	fixtureErr  error
)

type Fixture struct {
	Name, File     string
	SCUFlags       []string // storescu options proposing the file's own syntax first
	SCPFlag        string   // storescp option preferring it
	TransferSyntax string
}

var Fixtures = []Fixture{
	{"implicit", "implicit.dcm", []string{"-xi"}, "", implicitLE},
	{"explicit", "explicit.dcm", []string{"-xe"}, "+xe", explicitLE},
	{"big-endian", "big.dcm", []string{"-xb"}, "+xb", explicitBE},
	{"deflated", "deflated.dcm", []string{"-xd"}, "+xd", deflatedLE},
	{"jpeg-lossless", "jpeg.dcm", []string{"+C", "-xs"}, "+xs", jpegLosslessSV1},
	{"rle", "rle.dcm", []string{"+C", "-xr"}, "+xr", rleLossless},
	{"jpeg-ls", "jpegls.dcm", []string{"+C", "-xt"}, "+xt", jpegLSLossless},
}

// InstanceUID names the n-th generated CT instance.
func InstanceUID(n int) string { return fmt.Sprintf("1.2.826.0.1.3680043.2.1125.9.%d", n) }

// WriteCT writes a 192×192 12-bit CT image (72 KiB of pixels: several PDUs
// at DCMTK's 16 KiB default) in Implicit VR LE with dump2dcm.
func WriteCT(t testing.TB, dir, name string, n int) string {
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
`, InstanceUID(n), n, rows, cols, px.String())
	dumpPath := filepath.Join(dir, name+".dump")
	if err := os.WriteFile(dumpPath, []byte(dump), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name)
	MustDCMTK(t, "dump2dcm", "+l", "1000000", "+ti", dumpPath, out)
	return out
}

// FixturePath returns the fixture file for f, making all of them once.
func FixturePath(t testing.TB, f Fixture) string {
	t.Helper()
	fixtureOnce.Do(func() {
		fixtureDir, fixtureErr = os.MkdirTemp("", "wardgate-dicom-Fixtures")
		if fixtureErr != nil {
			return
		}
		d := fixtureDir
		p := func(n string) string { return filepath.Join(d, n) }
		WriteCT(t, d, "implicit.dcm", 0)
		MustDCMTK(t, "dcmconv", "+te", p("implicit.dcm"), p("explicit.dcm"))
		MustDCMTK(t, "dcmconv", "+tb", p("implicit.dcm"), p("big.dcm"))
		MustDCMTK(t, "dcmconv", "+td", p("implicit.dcm"), p("deflated.dcm"))
		MustDCMTK(t, "dcmcjpeg", p("explicit.dcm"), p("jpeg.dcm"))
		MustDCMTK(t, "dcmcrle", p("explicit.dcm"), p("rle.dcm"))
		MustDCMTK(t, "dcmcjpls", p("explicit.dcm"), p("jpegls.dcm"))
	})
	if fixtureErr != nil {
		t.Fatalf("Fixtures: %v", fixtureErr)
	}
	return filepath.Join(fixtureDir, f.File)
}

// OnlyFile returns the single file storescp wrote into dir.
func OnlyFile(t testing.TB, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("storescp wrote %d files into %s (%v)", len(entries), dir, err)
	}
	return filepath.Join(dir, entries[0].Name())
}

// RemoveFixtures deletes the fixture files; call it from TestMain after the
// tests ran.
func RemoveFixtures() {
	if fixtureDir != "" {
		os.RemoveAll(fixtureDir)
	}
}

// WriteCTs writes n CT instances numbered from first into a new directory.
func WriteCTs(t *testing.T, first, n int) []string {
	dir := t.TempDir()
	var files []string
	for i := first; i < first+n; i++ {
		files = append(files, WriteCT(t, dir, fmt.Sprintf("ct%d.dcm", i), i))
	}
	return files
}

// WaitFor polls cond until it holds, failing the test after 30 seconds: a
// condition, not a moment, so a loaded machine is only slower. (A test
// that checks something does not happen sleeps for its own reason.)
func WaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// seqDump is a data set with what makes the conversion interesting:
// sequences nested three deep, an icon (its own pixel module, 8-bit) in an
// item, private elements, US/SS attributes of a signed image, OB values
// inside items (longer explicit headers).
const seqDump = `(0008,0016) UI =CTImageStorage
(0008,0018) UI [1.2.826.0.1.3680043.2.1125.9.9001]
(0008,0060) CS [CT]
(0008,1140) SQ (Sequence with explicit length #=2)
  (fffe,e000) na (Item with explicit length #=3)
    (0008,1150) UI =CTImageStorage
    (0008,1155) UI [1.2.826.0.1.3680043.2.1125.9.9002]
    (0040,a170) SQ (Sequence with explicit length #=1)
      (fffe,e000) na (Item with explicit length #=4)
        (0008,0100) SH [121311]
        (0008,0102) SH [DCM]
        (0008,0104) LO [Localizer]
        (0009,0010) LO [ACME 1.0]
      (fffe,e00d) na (ItemDelimitationItem for re-encoding)
    (fffe,e0dd) na (SequenceDelimitationItem for re-encod.)
  (fffe,e00d) na (ItemDelimitationItem for re-encoding)
  (fffe,e000) na (Item with explicit length #=2)
    (0008,1150) UI =CTImageStorage
    (0008,1155) UI [1.2.826.0.1.3680043.2.1125.9.9003]
  (fffe,e00d) na (ItemDelimitationItem for re-encoding)
(fffe,e0dd) na (SequenceDelimitationItem for re-encod.)
(0009,0010) LO [ACME 1.0]
(0009,1001) LO [private value]
(0009,1002) OB 01\02\03\04
(0010,0010) PN [Test^Seq]
(0010,0020) LO [PIDSEQ]
(0020,000d) UI [1.2.826.0.1.3680043.2.1125.9.9004]
(0020,000e) UI [1.2.826.0.1.3680043.2.1125.9.9005]
(0028,0002) US 1
(0028,0004) CS [MONOCHROME2]
(0028,0010) US 4
(0028,0011) US 4
(0028,0100) US 16
(0028,0101) US 16
(0028,0102) US 15
(0028,0103) US 1
(0028,0106) SS -5
(0028,0107) SS 300
(0028,1050) DS [40]
(0088,0200) SQ (Sequence with explicit length #=1)
  (fffe,e000) na (Item with explicit length #=9)
    (0028,0002) US 1
    (0028,0004) CS [MONOCHROME2]
    (0028,0010) US 2
    (0028,0011) US 2
    (0028,0100) US 8
    (0028,0101) US 8
    (0028,0102) US 7
    (0028,0103) US 0
    (7fe0,0010) OB 01\02\03\04
  (fffe,e00d) na (ItemDelimitationItem for re-encoding)
(fffe,e0dd) na (SequenceDelimitationItem for re-encod.)
(7fe0,0010) OW fffb\0000\0001\0002\0003\0004\0005\0006\0007\0008\0009\000a\000b\000c\000d\012c
`

// LEFixtures returns pairs of the same data set stored in Implicit and in
// Explicit VR Little Endian (by DCMTK), by name.
func LEFixtures(t *testing.T) map[string][2]string {
	t.Helper()
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	if err := os.WriteFile(p("seq.dump"), []byte(seqDump), 0o644); err != nil {
		t.Fatal(err)
	}
	MustDCMTK(t, "dump2dcm", "+ti", p("seq.dump"), p("seq-i.dcm"))
	MustDCMTK(t, "dump2dcm", "+ti", "-e", p("seq.dump"), p("seq-undef-i.dcm"))
	MustDCMTK(t, "dcmconv", "+te", p("seq-i.dcm"), p("seq-e.dcm"))
	MustDCMTK(t, "dcmconv", "+te", "-e", p("seq-undef-i.dcm"), p("seq-undef-e.dcm"))
	ct := FixturePath(t, Fixtures[0])
	MustDCMTK(t, "dcmconv", "+ti", "+g", ct, p("ct-gl-i.dcm"))
	MustDCMTK(t, "dcmconv", "+te", "+g", ct, p("ct-gl-e.dcm"))
	MustDCMTK(t, "dcmconv", "+ti", "+g", p("seq-i.dcm"), p("seq-gl-i.dcm"))
	MustDCMTK(t, "dcmconv", "+te", "+g", p("seq-i.dcm"), p("seq-gl-e.dcm"))
	return map[string][2]string{
		"ct":                         {ct, FixturePath(t, Fixtures[1])},
		"sequences-defined-lengths":  {p("seq-i.dcm"), p("seq-e.dcm")},
		"sequences-undefined-length": {p("seq-undef-i.dcm"), p("seq-undef-e.dcm")},
		"ct-group-lengths":           {p("ct-gl-i.dcm"), p("ct-gl-e.dcm")},
		"sequences-group-lengths":    {p("seq-gl-i.dcm"), p("seq-gl-e.dcm")},
	}
}

// FirstDiff is the offset of the first byte where a and b differ.
func FirstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// ParsedElements lists a Part 10 file's data set elements, nested ones included, as
// suyashkumar/dicom reads them: tag and value (pixel data by its bytes'
// digest), without VRs (an implicit data set's come from the dictionary).
func ParsedElements(t testing.TB, part10 []byte) []string {
	t.Helper()
	parsed, err := sdicom.Parse(bytes.NewReader(part10), int64(len(part10)), nil, sdicom.AllowUnknownSpecificCharacterSet())
	if err != nil {
		t.Fatalf("parsing a data set: %v", err)
	}
	var out []string
	for e := range parsed.FlatIterator() {
		if e.Tag.Group == 0x0002 {
			continue
		}
		if e.Tag.Element == 0x0000 {
			// Group lengths: a data set's, not a value; they change with
			// the encoding (and the parser never checks them).
			out = append(out, fmt.Sprintf("%v group length", e.Tag))
			continue
		}
		switch e.Value.ValueType() {
		case sdicom.Sequences, sdicom.SequenceItem:
			out = append(out, fmt.Sprintf("%v sequence", e.Tag))
		case sdicom.PixelData:
			info := sdicom.MustGetPixelDataInfo(e.Value)
			h := sha256.New()
			for _, f := range info.Frames {
				if n, err := f.GetNativeFrame(); err == nil {
					fmt.Fprint(h, n.RawDataSlice())
				} else {
					h.Write(f.EncapsulatedData.Data)
				}
			}
			out = append(out, fmt.Sprintf("%v pixels %x", e.Tag, h.Sum(nil)))
		case sdicom.Ints:
			// US or SS: the same two bytes, read as the VR says.
			var vs []string
			for _, v := range e.Value.GetValue().([]int) {
				if e.RawValueRepresentation == "SS" || e.RawValueRepresentation == "US" {
					v = int(uint16(v))
				}
				vs = append(vs, fmt.Sprint(v))
			}
			out = append(out, fmt.Sprintf("%v %v", e.Tag, vs))
		case sdicom.Strings, sdicom.Bytes:
			// The same bytes read as a string (a known VR) or as bytes
			// (UN: a private tag in Implicit VR).
			var v string
			if b, ok := e.Value.GetValue().([]byte); ok {
				v = strings.TrimRight(string(b), " \x00")
			} else {
				v = strings.Join(e.Value.GetValue().([]string), "\\")
			}
			out = append(out, fmt.Sprintf("%v %q", e.Tag, v))
		default:
			out = append(out, fmt.Sprintf("%v %s", e.Tag, e.Value.String()))
		}
	}
	return out
}
