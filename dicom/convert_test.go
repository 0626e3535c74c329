package dicom

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	sdicom "github.com/suyashkumar/dicom"
)

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

// leFixtures are pairs of the same data set made by DCMTK in Implicit and
// Explicit VR Little Endian: name → (implicit file, explicit file).
func leFixtures(t *testing.T) map[string][2]string {
	t.Helper()
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	if err := os.WriteFile(p("seq.dump"), []byte(seqDump), 0o644); err != nil {
		t.Fatal(err)
	}
	mustDCMTK(t, "dump2dcm", "+ti", p("seq.dump"), p("seq-i.dcm"))
	mustDCMTK(t, "dump2dcm", "+ti", "-e", p("seq.dump"), p("seq-undef-i.dcm"))
	mustDCMTK(t, "dcmconv", "+te", p("seq-i.dcm"), p("seq-e.dcm"))
	mustDCMTK(t, "dcmconv", "+te", "-e", p("seq-undef-i.dcm"), p("seq-undef-e.dcm"))
	ct := fixturePath(t, fixtures[0])
	mustDCMTK(t, "dcmconv", "+ti", "+g", ct, p("ct-gl-i.dcm"))
	mustDCMTK(t, "dcmconv", "+te", "+g", ct, p("ct-gl-e.dcm"))
	mustDCMTK(t, "dcmconv", "+ti", "+g", p("seq-i.dcm"), p("seq-gl-i.dcm"))
	mustDCMTK(t, "dcmconv", "+te", "+g", p("seq-i.dcm"), p("seq-gl-e.dcm"))
	return map[string][2]string{
		"ct":                         {ct, fixturePath(t, fixtures[1])},
		"sequences-defined-lengths":  {p("seq-i.dcm"), p("seq-e.dcm")},
		"sequences-undefined-length": {p("seq-undef-i.dcm"), p("seq-undef-e.dcm")},
		"ct-group-lengths":           {p("ct-gl-i.dcm"), p("ct-gl-e.dcm")},
		"sequences-group-lengths":    {p("seq-gl-i.dcm"), p("seq-gl-e.dcm")},
	}
}

func convertBytes(t testing.TB, b []byte, from, to string) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := ConvertLE(&out, bytes.NewReader(b), from, to); err != nil {
		t.Fatalf("%s → %s: %v", from, to, err)
	}
	return out.Bytes()
}

// Our conversion of DCMTK's Implicit VR file is DCMTK's Explicit VR file
// (dcmconv +te) byte for byte, and the other way round; so is a round
// trip. Element by element (parsed by suyashkumar/dicom and dumped by
// dcmdump) they are the same data set.
func TestConvertLEMatchesDCMTK(t *testing.T) {
	for name, pair := range leFixtures(t) {
		t.Run(name, func(t *testing.T) {
			mi, imp := dataSetOf(t, pair[0])
			me, exp := dataSetOf(t, pair[1])
			// DCMTK gives pixel data read from Implicit VR the VR OW even
			// when Bits Allocated is 8 (the icon's); ConvertLE gives it OB,
			// as a modality sending 8-bit images does. Both are valid
			// (PS3.5 8.1.2) and the bytes are the same.
			exp = bytes.ReplaceAll(exp, []byte{0xE0, 0x7F, 0x10, 0x00, 'O', 'W', 0, 0, 4, 0, 0, 0, 1, 2, 3, 4},
				[]byte{0xE0, 0x7F, 0x10, 0x00, 'O', 'B', 0, 0, 4, 0, 0, 0, 1, 2, 3, 4})
			if mi.TransferSyntaxUID != ImplicitVRLittleEndian || me.TransferSyntaxUID != ExplicitVRLittleEndian {
				t.Fatalf("fixtures in %s and %s", mi.TransferSyntaxUID, me.TransferSyntaxUID)
			}
			gotExp := convertBytes(t, imp, ImplicitVRLittleEndian, ExplicitVRLittleEndian)
			if !bytes.Equal(gotExp, exp) {
				t.Errorf("Implicit → Explicit differs from dcmconv +te (%d bytes, want %d) at byte %d", len(gotExp), len(exp), firstDiff(gotExp, exp))
				diffDumps(t, gotExp, exp, ExplicitVRLittleEndian)
			}
			gotImp := convertBytes(t, exp, ExplicitVRLittleEndian, ImplicitVRLittleEndian)
			if !bytes.Equal(gotImp, imp) {
				t.Errorf("Explicit → Implicit differs from DCMTK's (%d bytes, want %d) at byte %d", len(gotImp), len(imp), firstDiff(gotImp, imp))
				diffDumps(t, gotImp, imp, ImplicitVRLittleEndian)
			}
			if back := convertBytes(t, gotImp, ImplicitVRLittleEndian, ExplicitVRLittleEndian); !bytes.Equal(back, exp) {
				t.Errorf("Explicit → Implicit → Explicit is not the original (differs at byte %d)", firstDiff(back, exp))
			}
			a, b := parsedElements(t, gotExp, ExplicitVRLittleEndian), parsedElements(t, imp, ImplicitVRLittleEndian)
			if strings.Join(a, "\n") != strings.Join(b, "\n") {
				t.Errorf("elements differ:\nconverted:\n%s\noriginal:\n%s", strings.Join(a, "\n"), strings.Join(b, "\n"))
			}
			if len(a) < 10 {
				t.Fatalf("only %d elements parsed", len(a))
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// diffDumps shows dcmdump's view of a data set and of the one it should be.
func diffDumps(t *testing.T, got, want []byte, ts string) {
	t.Helper()
	dg, dw := dcmdumpDataSet(t, got, ts), dcmdumpDataSet(t, want, ts)
	if dg == dw {
		t.Logf("dcmdump shows no difference")
		return
	}
	t.Logf("dcmdump of ours:\n%s\ndcmdump of DCMTK's:\n%s", dg, dw)
}

// dcmdumpDataSet dumps a data set (its elements, not the meta header).
func dcmdumpDataSet(t *testing.T, ds []byte, ts string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ds.dcm")
	writePart10(t, p, ds, ts)
	out := mustDCMTK(t, "dcmdump", "-q", "+L", p)
	if i := strings.Index(out, "# Dicom-Data-Set"); i >= 0 {
		out = out[i:]
		if j := strings.IndexByte(out, '\n'); j >= 0 {
			out = out[j+1:] // the syntax line
		}
		if j := strings.IndexByte(out, '\n'); j >= 0 {
			out = out[j+1:]
		}
	}
	return out
}

func writePart10(t testing.TB, path string, ds []byte, ts string) {
	t.Helper()
	var b bytes.Buffer
	if _, err := WriteFileMeta(&b, FileMeta{SOPClassUID: ctImage, SOPInstanceUID: "1.2.3", TransferSyntaxUID: ts}); err != nil {
		t.Fatal(err)
	}
	b.Write(ds)
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// parsedElements lists a data set's elements, nested ones included, as
// suyashkumar/dicom reads them: tag and value (pixel data by its bytes'
// digest), without VRs (an implicit data set's come from the dictionary).
func parsedElements(t testing.TB, ds []byte, ts string) []string {
	t.Helper()
	var b bytes.Buffer
	if _, err := WriteFileMeta(&b, FileMeta{SOPClassUID: ctImage, SOPInstanceUID: "1.2.3", TransferSyntaxUID: ts}); err != nil {
		t.Fatal(err)
	}
	b.Write(ds)
	parsed, err := sdicom.Parse(bytes.NewReader(b.Bytes()), int64(b.Len()), nil, sdicom.AllowUnknownSpecificCharacterSet())
	if err != nil {
		t.Fatalf("parsing a %s data set: %v", ts, err)
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

// A data set larger than the buffers streams through: a 64 MiB instance
// converted both ways allocates a few MiB, and comes back bit for bit.
func TestConvertLEStreamsLargeInstances(t *testing.T) {
	rows, cols := 4096, 8192 // 64 MiB of pixels
	if os.Getenv("WARDGATE_CONVERT_1GIB") != "" {
		rows, cols = 16384, 32768
	}
	st := SyntheticStudy{StudyUID: "1.2.3", SeriesUID: "1.2.3.4", PatientID: "P", PatientName: "Big^Test"}
	src, size := st.Instance(1, rows, cols)
	hin, hout := sha256.New(), sha256.New()
	var explicitBytes countingWriter
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		err := ConvertLE(io.MultiWriter(pw, &explicitBytes), io.TeeReader(src, hin), ImplicitVRLittleEndian, ExplicitVRLittleEndian)
		pw.CloseWithError(err)
		errc <- err
	}()
	if err := ConvertLE(hout, pr, ExplicitVRLittleEndian, ImplicitVRLittleEndian); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	runtime.ReadMemStats(&after)
	if !bytes.Equal(hin.Sum(nil), hout.Sum(nil)) {
		t.Fatal("Implicit → Explicit → Implicit changed the data set")
	}
	// Only the pixel data has a long VR (OW): its header grows by 4 bytes.
	if want := size + 4; int64(explicitBytes) != want {
		t.Fatalf("explicit data set %d bytes, want %d", explicitBytes, want)
	}
	grown := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d MiB converted twice in %s (%.0f MB/s a conversion, under the race detector if enabled); %d KiB allocated",
		size>>20, el.Round(time.Millisecond), float64(size)/el.Seconds()/1e6, grown>>10)
	if grown > 16<<20 {
		t.Fatalf("%d MiB allocated converting a %d MiB instance", grown>>20, size>>20)
	}
}

// A defined-length sequence too long to buffer is written with undefined
// length (and its items too): the same data set.
func TestConvertLELongSequenceBecomesUndefinedLength(t *testing.T) {
	big := bytes.Repeat([]byte{0xAB}, 3<<19) // 1.5 MiB
	var item bytes.Buffer
	implicitElement(&item, 0x0008, 0x1150, []byte(ctImage), 0)
	implicitElement(&item, 0x0042, 0x0011, big, 0) // Encapsulated Document, OB
	var seqValue bytes.Buffer
	binary.Write(&seqValue, binary.LittleEndian, [2]uint16{0xFFFE, 0xE000})
	binary.Write(&seqValue, binary.LittleEndian, uint32(item.Len()))
	seqValue.Write(item.Bytes())
	var ds bytes.Buffer
	implicitElement(&ds, 0x0008, 0x0016, []byte(ctImage), 0)
	implicitElement(&ds, 0x0008, 0x1140, seqValue.Bytes(), 0)
	implicitElement(&ds, 0x0010, 0x0020, []byte("PID"), ' ')
	exp := convertBytes(t, ds.Bytes(), ImplicitVRLittleEndian, ExplicitVRLittleEndian)
	// (0008,1140) SQ with undefined length, an item with undefined length.
	i := bytes.Index(exp, []byte{0x08, 0x00, 0x40, 0x11, 'S', 'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF})
	if i < 0 {
		t.Fatal("the long sequence is not written with undefined lengths")
	}
	if !bytes.Contains(exp, []byte{0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0, 0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0}) {
		t.Fatal("no item and sequence delimiters")
	}
	a, b := parsedElements(t, exp, ExplicitVRLittleEndian), parsedElements(t, ds.Bytes(), ImplicitVRLittleEndian)
	if strings.Join(a, "\n") != strings.Join(b, "\n") {
		t.Fatalf("elements differ:\n%v\n%v", a, b)
	}
	imp := convertBytes(t, exp, ExplicitVRLittleEndian, ImplicitVRLittleEndian)
	if c := parsedElements(t, imp, ImplicitVRLittleEndian); strings.Join(c, "\n") != strings.Join(b, "\n") {
		t.Fatalf("back to implicit, elements differ:\n%v\n%v", c, b)
	}
}

// Unknown tags of undefined length become sequences, their items
// converted; a private tag of defined length is UN.
func TestConvertLEPrivateElements(t *testing.T) {
	var item bytes.Buffer
	implicitElement(&item, 0x0008, 0x0100, []byte("ABC"), ' ')
	implicitElement(&item, 0x0009, 0x1001, bytes.Repeat([]byte{1}, 70000), 0) // private: UN, long is fine
	var ds bytes.Buffer
	implicitElement(&ds, 0x0008, 0x0016, []byte(ctImage), 0)
	implicitElement(&ds, 0x0009, 0x0010, []byte("ACME"), ' ')
	binary.Write(&ds, binary.LittleEndian, []uint16{0x0009, 0x1010})
	binary.Write(&ds, binary.LittleEndian, []uint32{undefinedLength})
	binary.Write(&ds, binary.LittleEndian, []uint16{0xFFFE, 0xE000})
	binary.Write(&ds, binary.LittleEndian, []uint32{undefinedLength})
	ds.Write(item.Bytes())
	binary.Write(&ds, binary.LittleEndian, []uint32{0xE00DFFFE, 0, 0xE0DDFFFE, 0})
	exp := convertBytes(t, ds.Bytes(), ImplicitVRLittleEndian, ExplicitVRLittleEndian)
	for _, want := range [][]byte{
		{0x09, 0x00, 0x10, 0x00, 'L', 'O', 4, 0},
		{0x09, 0x00, 0x10, 0x10, 'S', 'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF},
		{0x08, 0x00, 0x00, 0x01, 'S', 'H', 4, 0},
		{0x09, 0x00, 0x01, 0x10, 'U', 'N', 0, 0, 0x70, 0x11, 0x01, 0x00},
	} {
		if !bytes.Contains(exp, want) {
			t.Errorf("no % X in the explicit data set", want)
		}
	}
	if back := convertBytes(t, exp, ExplicitVRLittleEndian, ImplicitVRLittleEndian); !bytes.Equal(back, ds.Bytes()) {
		t.Errorf("round trip differs at byte %d", firstDiff(back, ds.Bytes()))
	}
}

// What cannot be converted is an error, never a panic, and says no value.
func TestConvertLEMalformed(t *testing.T) {
	le := binary.LittleEndian
	el := func(g, e uint16, v []byte) []byte {
		var b bytes.Buffer
		implicitElement(&b, g, e, v, 0)
		return b.Bytes()
	}
	hdr := func(g, e uint16, l uint32) []byte {
		b := le.AppendUint16(nil, g)
		b = le.AppendUint16(b, e)
		return le.AppendUint32(b, l)
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	secret := []byte("SECRET^PATIENT")
	nested := func(depth int) []byte {
		var b []byte
		for range depth {
			b = append(b, hdr(0x0008, 0x1140, undefinedLength)...)
			b = append(b, hdr(0xFFFE, 0xE000, undefinedLength)...)
		}
		for range depth {
			b = append(b, hdr(0xFFFE, 0xE00D, 0)...)
			b = append(b, hdr(0xFFFE, 0xE0DD, 0)...)
		}
		return b
	}
	for _, tc := range []struct {
		name     string
		from     string
		data     []byte
		contains string
	}{
		{"cut in a header", ImplicitVRLittleEndian, cat(el(0x0010, 0x0010, secret), []byte{0x10, 0x00, 0x20}), "cut short"},
		{"cut in a value", ImplicitVRLittleEndian, cat(el(0x0010, 0x0010, secret), hdr(0x0010, 0x0020, 100), secret), "cut short"},
		{"value too long for its explicit VR", ImplicitVRLittleEndian, el(0x0010, 0x0010, bytes.Repeat(secret, 5000)), "too long for VR PN"},
		{"encapsulated pixel data", ImplicitVRLittleEndian, cat(el(0x0028, 0x0100, le.AppendUint16(nil, 8)), hdr(0x7FE0, 0x0010, undefinedLength), hdr(0xFFFE, 0xE000, 0)), "encapsulated"},
		{"encapsulated pixel data, explicit", ExplicitVRLittleEndian, []byte{0xE0, 0x7F, 0x10, 0x00, 'O', 'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF}, "encapsulated"},
		{"undefined length on a string", ImplicitVRLittleEndian, hdr(0x0010, 0x0010, undefinedLength), "undefined length"},
		{"nested too deep", ImplicitVRLittleEndian, nested(17), "deeper than 16"},
		{"item at the top", ImplicitVRLittleEndian, hdr(0xFFFE, 0xE000, 0), "where a data element belongs"},
		{"element in a sequence", ImplicitVRLittleEndian, cat(hdr(0x0008, 0x1140, 8), hdr(0x0010, 0x0010, 0)), "where an item belongs"},
		{"item longer than its sequence", ImplicitVRLittleEndian, cat(hdr(0x0008, 0x1140, 8), hdr(0xFFFE, 0xE000, 100), el(0x0010, 0x0010, secret)), "longer than its sequence"},
		{"element longer than its item", ImplicitVRLittleEndian, cat(hdr(0x0008, 0x1140, uint32(8+8+len(secret))), hdr(0xFFFE, 0xE000, uint32(8+len(secret))), hdr(0x0010, 0x0010, 1000), secret), "longer than what holds it"},
		{"sequence delimiter in a defined length", ImplicitVRLittleEndian, cat(hdr(0x0008, 0x1140, 8), hdr(0xFFFE, 0xE0DD, 0)), "sequence delimiter"},
		{"an undefined-length item past its sequence", ImplicitVRLittleEndian, cat(hdr(0x0008, 0x1140, 16), hdr(0xFFFE, 0xE000, undefinedLength), hdr(0x0010, 0x0010, 1<<30), secret), "longer than what holds it"},
		{"no item delimiter", ImplicitVRLittleEndian, cat(hdr(0x0008, 0x1140, undefinedLength), hdr(0xFFFE, 0xE000, undefinedLength), el(0x0010, 0x0010, secret)), "cut short"},
		{"bad VR", ExplicitVRLittleEndian, cat([]byte{0x10, 0x00, 0x10, 0x00, 'z', 'z', 2, 0}, secret), "no valid VR"},
		{"explicit string of undefined length", ExplicitVRLittleEndian, []byte{0x10, 0x00, 0x10, 0x00, 'U', 'T', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF}, "undefined length"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			to := OtherLittleEndian(tc.from)
			err := ConvertLE(io.Discard, bytes.NewReader(tc.data), tc.from, to)
			var ce *ConvertError
			if !errors.As(err, &ce) {
				t.Fatalf("err %v, want a *ConvertError", err)
			}
			if !strings.Contains(err.Error(), tc.contains) {
				t.Fatalf("err %q, want it to say %q", err, tc.contains)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Fatalf("err %q quotes a value", err)
			}
		})
	}
	if err := ConvertLE(io.Discard, bytes.NewReader(nil), ImplicitVRLittleEndian, JPEGLosslessSV1); err == nil {
		t.Fatal("converted to JPEG")
	}
	// Nesting up to 16 is fine.
	if err := ConvertLE(io.Discard, bytes.NewReader(nested(16)), ImplicitVRLittleEndian, ExplicitVRLittleEndian); err != nil {
		t.Fatalf("16 levels: %v", err)
	}
}

// A group length that does not match its group is dropped, not copied
// wrong.
func TestConvertLEWrongGroupLengthIsDropped(t *testing.T) {
	var ds bytes.Buffer
	implicitElement(&ds, 0x0008, 0x0000, binary.LittleEndian.AppendUint32(nil, 7), 0) // not at an element's end
	implicitElement(&ds, 0x0008, 0x0016, []byte(ctImage), 0)
	implicitElement(&ds, 0x0010, 0x0020, []byte("PID"), ' ')
	exp := convertBytes(t, ds.Bytes(), ImplicitVRLittleEndian, ExplicitVRLittleEndian)
	if bytes.HasPrefix(exp, []byte{0x08, 0x00, 0x00, 0x00}) {
		t.Fatal("the wrong group length was kept")
	}
	if !bytes.HasPrefix(exp, []byte{0x08, 0x00, 0x16, 0x00, 'U', 'I'}) {
		t.Fatalf("explicit data set starts % X", exp[:min(len(exp), 8)])
	}
}

func FuzzConvertLE(f *testing.F) {
	var ds bytes.Buffer
	implicitElement(&ds, 0x0008, 0x0016, []byte(ctImage), 0)
	implicitElement(&ds, 0x0028, 0x0103, []byte{1, 0}, 0)
	implicitElement(&ds, 0x0028, 0x0106, []byte{0xFB, 0xFF}, 0)
	f.Add(ds.Bytes(), true)
	var seq bytes.Buffer
	binary.Write(&seq, binary.LittleEndian, []uint32{0x11400008, undefinedLength, 0xE000FFFE, 14})
	implicitElement(&seq, 0x0008, 0x1150, []byte("1.2.3"), 0)
	binary.Write(&seq, binary.LittleEndian, []uint32{0xE0DDFFFE, 0})
	f.Add(seq.Bytes(), true)
	f.Add(convertBytes(f, seq.Bytes(), ImplicitVRLittleEndian, ExplicitVRLittleEndian), false)
	f.Add([]byte{0x08, 0x00, 0x00, 0x00, 4, 0, 0, 0, 8, 0, 0, 0, 0x08, 0x00, 0x16, 0x00, 0, 0, 0, 0}, true)
	f.Add([]byte{0x09, 0x00, 0x10, 0x10, 'U', 'N', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0}, false)
	f.Fuzz(func(t *testing.T, data []byte, implicit bool) {
		from := ExplicitVRLittleEndian
		if implicit {
			from = ImplicitVRLittleEndian
		}
		to := OtherLittleEndian(from)
		var out bytes.Buffer
		err := ConvertLE(&out, bytes.NewReader(data), from, to)
		if err != nil {
			var ce *ConvertError
			if !errors.As(err, &ce) {
				t.Fatalf("error of another kind: %v", err)
			}
			return
		}
		if out.Len() > 2*len(data)+64 {
			t.Fatalf("%d bytes from %d", out.Len(), len(data))
		}
		// What converted from Implicit VR converts back. (Explicit VR input
		// may give an element a VR its tag does not have in the dictionary,
		// which Implicit VR cannot say.)
		if !implicit {
			return
		}
		if err := ConvertLE(io.Discard, bytes.NewReader(out.Bytes()), to, from); err != nil {
			t.Fatalf("converting back: %v", err)
		}
	})
}

// go test -run XXX -bench ConvertLE ./dicom/
func BenchmarkConvertLE(b *testing.B) {
	st := SyntheticStudy{StudyUID: "1.2.3", SeriesUID: "1.2.3.4"}
	_, size := st.Instance(1, 2048, 2048)
	src := make([]byte, size)
	r, _ := st.Instance(1, 2048, 2048)
	io.ReadFull(r, src)
	exp := convertBytes(b, src, ImplicitVRLittleEndian, ExplicitVRLittleEndian)
	b.Run("implicit-to-explicit", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			ConvertLE(io.Discard, bytes.NewReader(src), ImplicitVRLittleEndian, ExplicitVRLittleEndian)
		}
	})
	b.Run("explicit-to-implicit", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			ConvertLE(io.Discard, bytes.NewReader(exp), ExplicitVRLittleEndian, ImplicitVRLittleEndian)
		}
	})
}
