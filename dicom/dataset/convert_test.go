package dataset

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/dicom"
	"github.com/wardgate/wardgate/dicom/internal/dicomtest"
	"github.com/wardgate/wardgate/dicom/internal/dicomtest/dstest"
	"github.com/wardgate/wardgate/dicom/sim"
)

// dicomtest.LEFixtures are pairs of the same data set made by DCMTK in Implicit and
// Explicit VR Little Endian: name → (implicit file, explicit file).

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
	for name, pair := range dicomtest.LEFixtures(t) {
		t.Run(name, func(t *testing.T) {
			mi, imp := dstest.DataSetOf(t, pair[0])
			me, exp := dstest.DataSetOf(t, pair[1])
			// DCMTK gives pixel data read from Implicit VR the VR OW even
			// when Bits Allocated is 8 (the icon's); ConvertLE gives it OB,
			// as a modality sending 8-bit images does. Both are valid
			// (PS3.5 8.1.2) and the bytes are the same.
			exp = bytes.ReplaceAll(exp, []byte{0xE0, 0x7F, 0x10, 0x00, 'O', 'W', 0, 0, 4, 0, 0, 0, 1, 2, 3, 4},
				[]byte{0xE0, 0x7F, 0x10, 0x00, 'O', 'B', 0, 0, 4, 0, 0, 0, 1, 2, 3, 4})
			if mi.TransferSyntaxUID != dicom.ImplicitVRLittleEndian || me.TransferSyntaxUID != dicom.ExplicitVRLittleEndian {
				t.Fatalf("fixtures in %s and %s", mi.TransferSyntaxUID, me.TransferSyntaxUID)
			}
			gotExp := convertBytes(t, imp, dicom.ImplicitVRLittleEndian, dicom.ExplicitVRLittleEndian)
			if !bytes.Equal(gotExp, exp) {
				t.Errorf("Implicit → Explicit differs from dcmconv +te (%d bytes, want %d) at byte %d", len(gotExp), len(exp), dicomtest.FirstDiff(gotExp, exp))
				diffDumps(t, gotExp, exp, dicom.ExplicitVRLittleEndian)
			}
			gotImp := convertBytes(t, exp, dicom.ExplicitVRLittleEndian, dicom.ImplicitVRLittleEndian)
			if !bytes.Equal(gotImp, imp) {
				t.Errorf("Explicit → Implicit differs from DCMTK's (%d bytes, want %d) at byte %d", len(gotImp), len(imp), dicomtest.FirstDiff(gotImp, imp))
				diffDumps(t, gotImp, imp, dicom.ImplicitVRLittleEndian)
			}
			if back := convertBytes(t, gotImp, dicom.ImplicitVRLittleEndian, dicom.ExplicitVRLittleEndian); !bytes.Equal(back, exp) {
				t.Errorf("Explicit → Implicit → Explicit is not the original (differs at byte %d)", dicomtest.FirstDiff(back, exp))
			}
			a, b := dstest.ParsedElements(t, gotExp, dicom.ExplicitVRLittleEndian), dstest.ParsedElements(t, imp, dicom.ImplicitVRLittleEndian)
			if strings.Join(a, "\n") != strings.Join(b, "\n") {
				t.Errorf("elements differ:\nconverted:\n%s\noriginal:\n%s", strings.Join(a, "\n"), strings.Join(b, "\n"))
			}
			if len(a) < 10 {
				t.Fatalf("only %d elements parsed", len(a))
			}
		})
	}
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
	out := dicomtest.MustDCMTK(t, "dcmdump", "-q", "+L", p)
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
	if _, err := dicom.WriteFileMeta(&b, dicom.FileMeta{SOPClassUID: dicomtest.CTImage, SOPInstanceUID: "1.2.3", TransferSyntaxUID: ts}); err != nil {
		t.Fatal(err)
	}
	b.Write(ds)
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A data set larger than the buffers streams through: a 64 MiB instance
// converted both ways allocates a few MiB, and comes back bit for bit.
func TestConvertLEStreamsLargeInstances(t *testing.T) {
	rows, cols := 4096, 8192 // 64 MiB of pixels
	if os.Getenv("WARDGATE_CONVERT_1GIB") != "" {
		rows, cols = 16384, 32768
	}
	st := sim.SyntheticStudy{StudyUID: "1.2.3", SeriesUID: "1.2.3.4", PatientID: "P", PatientName: "Big^Test"}
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
		err := ConvertLE(io.MultiWriter(pw, &explicitBytes), io.TeeReader(src, hin), dicom.ImplicitVRLittleEndian, dicom.ExplicitVRLittleEndian)
		pw.CloseWithError(err)
		errc <- err
	}()
	if err := ConvertLE(hout, pr, dicom.ExplicitVRLittleEndian, dicom.ImplicitVRLittleEndian); err != nil {
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
	sim.ImplicitElement(&item, 0x0008, 0x1150, []byte(dicomtest.CTImage), 0)
	sim.ImplicitElement(&item, 0x0042, 0x0011, big, 0) // Encapsulated Document, OB
	var seqValue bytes.Buffer
	binary.Write(&seqValue, binary.LittleEndian, [2]uint16{0xFFFE, 0xE000})
	binary.Write(&seqValue, binary.LittleEndian, uint32(item.Len()))
	seqValue.Write(item.Bytes())
	var ds bytes.Buffer
	sim.ImplicitElement(&ds, 0x0008, 0x0016, []byte(dicomtest.CTImage), 0)
	sim.ImplicitElement(&ds, 0x0008, 0x1140, seqValue.Bytes(), 0)
	sim.ImplicitElement(&ds, 0x0010, 0x0020, []byte("PID"), ' ')
	exp := convertBytes(t, ds.Bytes(), dicom.ImplicitVRLittleEndian, dicom.ExplicitVRLittleEndian)
	// (0008,1140) SQ with undefined length, an item with undefined length.
	i := bytes.Index(exp, []byte{0x08, 0x00, 0x40, 0x11, 'S', 'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF})
	if i < 0 {
		t.Fatal("the long sequence is not written with undefined lengths")
	}
	if !bytes.Contains(exp, []byte{0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0, 0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0}) {
		t.Fatal("no item and sequence delimiters")
	}
	a, b := dstest.ParsedElements(t, exp, dicom.ExplicitVRLittleEndian), dstest.ParsedElements(t, ds.Bytes(), dicom.ImplicitVRLittleEndian)
	if strings.Join(a, "\n") != strings.Join(b, "\n") {
		t.Fatalf("elements differ:\n%v\n%v", a, b)
	}
	imp := convertBytes(t, exp, dicom.ExplicitVRLittleEndian, dicom.ImplicitVRLittleEndian)
	if c := dstest.ParsedElements(t, imp, dicom.ImplicitVRLittleEndian); strings.Join(c, "\n") != strings.Join(b, "\n") {
		t.Fatalf("back to implicit, elements differ:\n%v\n%v", c, b)
	}
}

// Unknown tags of undefined length become sequences, their items
// converted; a private tag of defined length is UN.
func TestConvertLEPrivateElements(t *testing.T) {
	var item bytes.Buffer
	sim.ImplicitElement(&item, 0x0008, 0x0100, []byte("ABC"), ' ')
	sim.ImplicitElement(&item, 0x0009, 0x1001, bytes.Repeat([]byte{1}, 70000), 0) // private: UN, long is fine
	var ds bytes.Buffer
	sim.ImplicitElement(&ds, 0x0008, 0x0016, []byte(dicomtest.CTImage), 0)
	sim.ImplicitElement(&ds, 0x0009, 0x0010, []byte("ACME"), ' ')
	binary.Write(&ds, binary.LittleEndian, []uint16{0x0009, 0x1010})
	binary.Write(&ds, binary.LittleEndian, []uint32{undefinedLength})
	binary.Write(&ds, binary.LittleEndian, []uint16{0xFFFE, 0xE000})
	binary.Write(&ds, binary.LittleEndian, []uint32{undefinedLength})
	ds.Write(item.Bytes())
	binary.Write(&ds, binary.LittleEndian, []uint32{0xE00DFFFE, 0, 0xE0DDFFFE, 0})
	exp := convertBytes(t, ds.Bytes(), dicom.ImplicitVRLittleEndian, dicom.ExplicitVRLittleEndian)
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
	if back := convertBytes(t, exp, dicom.ExplicitVRLittleEndian, dicom.ImplicitVRLittleEndian); !bytes.Equal(back, ds.Bytes()) {
		t.Errorf("round trip differs at byte %d", dicomtest.FirstDiff(back, ds.Bytes()))
	}
}

// What cannot be converted is an error, never a panic, and says no value.
func TestConvertLEMalformed(t *testing.T) {
	le := binary.LittleEndian
	el := func(g, e uint16, v []byte) []byte {
		var b bytes.Buffer
		sim.ImplicitElement(&b, g, e, v, 0)
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
		{"cut in a header", dicom.ImplicitVRLittleEndian, cat(el(0x0010, 0x0010, secret), []byte{0x10, 0x00, 0x20}), "cut short"},
		{"cut in a value", dicom.ImplicitVRLittleEndian, cat(el(0x0010, 0x0010, secret), hdr(0x0010, 0x0020, 100), secret), "cut short"},
		{"value too long for its explicit VR", dicom.ImplicitVRLittleEndian, el(0x0010, 0x0010, bytes.Repeat(secret, 5000)), "too long for VR PN"},
		{"encapsulated pixel data", dicom.ImplicitVRLittleEndian, cat(el(0x0028, 0x0100, le.AppendUint16(nil, 8)), hdr(0x7FE0, 0x0010, undefinedLength), hdr(0xFFFE, 0xE000, 0)), "encapsulated"},
		{"encapsulated pixel data, explicit", dicom.ExplicitVRLittleEndian, []byte{0xE0, 0x7F, 0x10, 0x00, 'O', 'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF}, "encapsulated"},
		{"undefined length on a string", dicom.ImplicitVRLittleEndian, hdr(0x0010, 0x0010, undefinedLength), "undefined length"},
		{"nested too deep", dicom.ImplicitVRLittleEndian, nested(17), "deeper than 16"},
		{"item at the top", dicom.ImplicitVRLittleEndian, hdr(0xFFFE, 0xE000, 0), "where a data element belongs"},
		{"element in a sequence", dicom.ImplicitVRLittleEndian, cat(hdr(0x0008, 0x1140, 8), hdr(0x0010, 0x0010, 0)), "where an item belongs"},
		{"item longer than its sequence", dicom.ImplicitVRLittleEndian, cat(hdr(0x0008, 0x1140, 8), hdr(0xFFFE, 0xE000, 100), el(0x0010, 0x0010, secret)), "longer than its sequence"},
		{"element longer than its item", dicom.ImplicitVRLittleEndian, cat(hdr(0x0008, 0x1140, uint32(8+8+len(secret))), hdr(0xFFFE, 0xE000, uint32(8+len(secret))), hdr(0x0010, 0x0010, 1000), secret), "longer than what holds it"},
		{"sequence delimiter in a defined length", dicom.ImplicitVRLittleEndian, cat(hdr(0x0008, 0x1140, 8), hdr(0xFFFE, 0xE0DD, 0)), "sequence delimiter"},
		{"an undefined-length item past its sequence", dicom.ImplicitVRLittleEndian, cat(hdr(0x0008, 0x1140, 16), hdr(0xFFFE, 0xE000, undefinedLength), hdr(0x0010, 0x0010, 1<<30), secret), "longer than what holds it"},
		{"no item delimiter", dicom.ImplicitVRLittleEndian, cat(hdr(0x0008, 0x1140, undefinedLength), hdr(0xFFFE, 0xE000, undefinedLength), el(0x0010, 0x0010, secret)), "cut short"},
		{"bad VR", dicom.ExplicitVRLittleEndian, cat([]byte{0x10, 0x00, 0x10, 0x00, 'z', 'z', 2, 0}, secret), "no valid VR"},
		{"explicit string of undefined length", dicom.ExplicitVRLittleEndian, []byte{0x10, 0x00, 0x10, 0x00, 'U', 'T', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF}, "undefined length"},
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
	if err := ConvertLE(io.Discard, bytes.NewReader(nil), dicom.ImplicitVRLittleEndian, dicom.JPEGLosslessSV1); err == nil {
		t.Fatal("converted to JPEG")
	}
	// Nesting up to 16 is fine.
	if err := ConvertLE(io.Discard, bytes.NewReader(nested(16)), dicom.ImplicitVRLittleEndian, dicom.ExplicitVRLittleEndian); err != nil {
		t.Fatalf("16 levels: %v", err)
	}
}

// A group length that does not match its group is dropped, not copied
// wrong.
func TestConvertLEWrongGroupLengthIsDropped(t *testing.T) {
	var ds bytes.Buffer
	sim.ImplicitElement(&ds, 0x0008, 0x0000, binary.LittleEndian.AppendUint32(nil, 7), 0) // not at an element's end
	sim.ImplicitElement(&ds, 0x0008, 0x0016, []byte(dicomtest.CTImage), 0)
	sim.ImplicitElement(&ds, 0x0010, 0x0020, []byte("PID"), ' ')
	exp := convertBytes(t, ds.Bytes(), dicom.ImplicitVRLittleEndian, dicom.ExplicitVRLittleEndian)
	if bytes.HasPrefix(exp, []byte{0x08, 0x00, 0x00, 0x00}) {
		t.Fatal("the wrong group length was kept")
	}
	if !bytes.HasPrefix(exp, []byte{0x08, 0x00, 0x16, 0x00, 'U', 'I'}) {
		t.Fatalf("explicit data set starts % X", exp[:min(len(exp), 8)])
	}
}

func FuzzConvertLE(f *testing.F) {
	var ds bytes.Buffer
	sim.ImplicitElement(&ds, 0x0008, 0x0016, []byte(dicomtest.CTImage), 0)
	sim.ImplicitElement(&ds, 0x0028, 0x0103, []byte{1, 0}, 0)
	sim.ImplicitElement(&ds, 0x0028, 0x0106, []byte{0xFB, 0xFF}, 0)
	f.Add(ds.Bytes(), true)
	var seq bytes.Buffer
	binary.Write(&seq, binary.LittleEndian, []uint32{0x11400008, undefinedLength, 0xE000FFFE, 14})
	sim.ImplicitElement(&seq, 0x0008, 0x1150, []byte("1.2.3"), 0)
	binary.Write(&seq, binary.LittleEndian, []uint32{0xE0DDFFFE, 0})
	f.Add(seq.Bytes(), true)
	f.Add(convertBytes(f, seq.Bytes(), dicom.ImplicitVRLittleEndian, dicom.ExplicitVRLittleEndian), false)
	f.Add([]byte{0x08, 0x00, 0x00, 0x00, 4, 0, 0, 0, 8, 0, 0, 0, 0x08, 0x00, 0x16, 0x00, 0, 0, 0, 0}, true)
	f.Add([]byte{0x09, 0x00, 0x10, 0x10, 'U', 'N', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0}, false)
	f.Fuzz(func(t *testing.T, data []byte, implicit bool) {
		from := dicom.ExplicitVRLittleEndian
		if implicit {
			from = dicom.ImplicitVRLittleEndian
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
	st := sim.SyntheticStudy{StudyUID: "1.2.3", SeriesUID: "1.2.3.4"}
	_, size := st.Instance(1, 2048, 2048)
	src := make([]byte, size)
	r, _ := st.Instance(1, 2048, 2048)
	io.ReadFull(r, src)
	exp := convertBytes(b, src, dicom.ImplicitVRLittleEndian, dicom.ExplicitVRLittleEndian)
	b.Run("implicit-to-explicit", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			ConvertLE(io.Discard, bytes.NewReader(src), dicom.ImplicitVRLittleEndian, dicom.ExplicitVRLittleEndian)
		}
	})
	b.Run("explicit-to-implicit", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			ConvertLE(io.Discard, bytes.NewReader(exp), dicom.ExplicitVRLittleEndian, dicom.ImplicitVRLittleEndian)
		}
	})
}
