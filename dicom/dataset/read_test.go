package dataset

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/wardgate/wardgate/dicom"
)

// el encodes an explicit VR little endian element; a length of -1 writes
// undefinedLength.
func el(group, elem uint16, vr string, value []byte, length int64) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, [2]uint16{group, elem})
	b.WriteString(vr)
	l := uint32(length)
	if length < 0 {
		l = undefinedLength
	}
	if explicitLong[vr] {
		b.Write([]byte{0, 0})
		binary.Write(&b, binary.LittleEndian, l)
	} else {
		binary.Write(&b, binary.LittleEndian, uint16(l))
	}
	b.Write(value)
	return b.Bytes()
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

var validHead = cat(
	el(0x0008, 0x0016, "UI", []byte("1.2.840.10008.5.1.4.1.1.7\x00"), 26),
	el(0x0008, 0x0018, "UI", []byte("1.2.3.4.5.6\x00"), 12),
	el(0x0010, 0x0010, "PN", []byte("SECRET^NAME "), 12),
	el(0x0020, 0x000D, "UI", []byte("1.2.3.4.5\x00"), 10),
)

// Hostile and damaged headers are refused with a clear error, quickly and
// without allocating what they claim; nothing in the error quotes a value.
func TestReadInstanceHeaderRefusesHostileHeaders(t *testing.T) {
	nested := el(0x0008, 0x1115, "SQ", nil, -1)
	var deep []byte
	for range 40 {
		deep = append(deep, nested...)
		deep = append(deep, []byte{0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF}...) // item, undefined length
	}
	for _, tc := range []struct {
		name string
		ds   []byte
		want string
	}{
		{"4 GB element", cat(validHead[:54], el(0x0008, 0x0050, "OB", nil, 0xFFFFFFF0), []byte("SECRET")), "longer than"},
		{"element longer than its item", cat(el(0x0008, 0x1110, "SQ", nil, 20),
			[]byte{0xFE, 0xFF, 0x00, 0xE0, 12, 0, 0, 0}, el(0x0008, 0x1150, "UI", []byte("1.2"), 1000)), "longer than what holds it"},
		{"nested too deep", deep, "nested deeper"},
		{"no VR", []byte{8, 0, 0x18, 0, 0, 0, 4, 0, 'S', 'E', 'C', 'R'}, "no valid VR"},
		{"cut short", validHead[:len(validHead)-5], "cut short"},
		{"garbage in a sequence", cat(el(0x0008, 0x1110, "SQ", nil, -1), []byte("SECRETSECRETSECRET")), "where an item belongs"},
		{"larger than the bound", cat(el(0x0009, 0x1010, "OB", nil, maxHeaderBytes+2), make([]byte, 64)), "longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := ReadInstanceHeader(bytes.NewReader(tc.ds), dicom.ExplicitVRLittleEndian)
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error with %q, got %v", tc.want, err)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Fatalf("the error quotes a value: %v", err)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 32<<20 {
				t.Fatalf("allocated %d MiB for a %d-byte data set", grew>>20, len(tc.ds))
			}
		})
	}
	h, err := ReadInstanceHeader(bytes.NewReader(validHead), dicom.ExplicitVRLittleEndian)
	if err != nil || h.SOPInstanceUID != "1.2.3.4.5.6" || h.StudyInstanceUID != "1.2.3.4.5" {
		t.Fatalf("a valid header: %+v, %v", h, err)
	}
	var be *errHeaderBounds
	_, err = ReadInstanceHeader(bytes.NewReader(validHead[:20]), dicom.ExplicitVRLittleEndian)
	if !errors.As(err, &be) {
		t.Fatalf("a cut header: %v", err)
	}
}

// FuzzReadInstanceHeader feeds arbitrary data sets in every transfer
// syntax: no panic, no error quoting a long run of the input.
func FuzzReadInstanceHeader(f *testing.F) {
	f.Add(validHead, uint8(0))
	f.Add(cat(el(0x0008, 0x1110, "SQ", nil, -1), []byte{0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF},
		el(0x0008, 0x1150, "UI", []byte("1.2\x00"), 4), []byte{0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0, 0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0}, validHead), uint8(1))
	if b, err := os.ReadFile("testdata/header-seed.bin"); err == nil {
		f.Add(b, uint8(0))
	}
	syntaxes := []string{dicom.ExplicitVRLittleEndian, dicom.ImplicitVRLittleEndian, dicom.ExplicitVRBigEndian, dicom.DeflatedExplicitVRLittleEndian}
	f.Fuzz(func(t *testing.T, ds []byte, ts uint8) {
		_, err := ReadInstanceHeader(bytes.NewReader(ds), syntaxes[int(ts)%len(syntaxes)])
		if err != nil && len(ds) >= 16 && strings.Contains(err.Error(), string(ds[len(ds)-16:])) {
			t.Fatalf("the error quotes the input: %v", err)
		}
	})
}
