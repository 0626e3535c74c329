package sim

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"strconv"

	"github.com/wardgate/wardgate/dicom"
)

// SyntheticStudy describes a study of generated CT-like instances, for the
// demo, tests and benchmarks: a simulated modality.
type SyntheticStudy struct {
	StudyUID, SeriesUID string
	PatientID           string
	PatientName         string // DICOM PN, e.g. Demo^Patient
	AccessionNumber     string
	Modality            string // CT when empty
	Description         string
	Date, Time          string // DA and TM; 20261125 and 081500 when empty
}

// InstanceUID is the SOP Instance UID of instance number n of the study.
func (s SyntheticStudy) InstanceUID(n int) string {
	return s.SeriesUID + "." + strconv.Itoa(n)
}

// Instance returns instance number n as an Implicit VR Little Endian data
// set with rows×cols 16-bit pixels, and its length. The pixels are
// generated as they are read, so an instance of any size (a 1 GiB one for
// the memory test) never sits in memory. There are no group lengths and no
// trailing padding, so storescu -xi sends it unchanged.
func (s SyntheticStudy) Instance(n, rows, cols int) (io.Reader, int64) {
	var ds bytes.Buffer
	str := func(g, e uint16, v string) { ImplicitElement(&ds, g, e, []byte(v), ' ') }
	uid := func(g, e uint16, v string) { ImplicitElement(&ds, g, e, []byte(v), 0) }
	us := func(g, e uint16, v uint16) { ImplicitElement(&ds, g, e, binary.LittleEndian.AppendUint16(nil, v), 0) }
	orDefault := func(v, d string) string {
		if v == "" {
			return d
		}
		return v
	}
	uid(0x0008, 0x0016, dicom.CTImageStorage)
	uid(0x0008, 0x0018, s.InstanceUID(n))
	str(0x0008, 0x0020, orDefault(s.Date, "20261125"))
	str(0x0008, 0x0030, orDefault(s.Time, "081500"))
	str(0x0008, 0x0050, s.AccessionNumber)
	str(0x0008, 0x0060, orDefault(s.Modality, "CT"))
	str(0x0008, 0x1030, s.Description)
	str(0x0010, 0x0010, s.PatientName)
	str(0x0010, 0x0020, s.PatientID)
	uid(0x0020, 0x000D, s.StudyUID)
	uid(0x0020, 0x000E, s.SeriesUID)
	str(0x0020, 0x0011, "1")
	str(0x0020, 0x0013, strconv.Itoa(n))
	us(0x0028, 0x0002, 1)
	str(0x0028, 0x0004, "MONOCHROME2")
	us(0x0028, 0x0010, uint16(rows))
	us(0x0028, 0x0011, uint16(cols))
	us(0x0028, 0x0100, 16)
	us(0x0028, 0x0101, 12)
	us(0x0028, 0x0102, 11)
	us(0x0028, 0x0103, 0)
	pixels := int64(rows) * int64(cols) * 2
	binary.Write(&ds, binary.LittleEndian, [2]uint16{0x7FE0, 0x0010})
	binary.Write(&ds, binary.LittleEndian, uint32(pixels))
	head := ds.Len()
	return io.MultiReader(&ds, &pixelReader{n: pixels, seed: n}), int64(head) + pixels
}

// ImplicitElement appends one Implicit VR Little Endian element to b,
// padding an odd-length value with pad.
func ImplicitElement(b *bytes.Buffer, group, elem uint16, v []byte, pad byte) {
	if len(v)%2 == 1 {
		v = append(v, pad)
	}
	binary.Write(b, binary.LittleEndian, [2]uint16{group, elem})
	binary.Write(b, binary.LittleEndian, uint32(len(v)))
	b.Write(v)
}

// pixelReader yields n bytes of a 12-bit gradient, two bytes a pixel.
type pixelReader struct {
	n, off int64
	seed   int
}

func (p *pixelReader) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), p.n-p.off)&^1]
	if len(b) == 0 {
		return 0, io.ErrShortBuffer
	}
	for i := 0; i < len(b); i += 2 {
		px := (p.off+int64(i))/2*7 + int64(p.seed)*13
		binary.LittleEndian.PutUint16(b[i:], uint16(px%4096))
	}
	p.off += int64(len(b))
	return len(b), nil
}

// WriteFile writes instance number n as a Part 10 file (Implicit VR Little
// Endian), for tests and the benchmark's generator.
func (s SyntheticStudy) WriteFile(path string, n, rows, cols int) error {
	ds, _ := s.Instance(n, rows, cols)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := dicom.WriteFileMeta(f, dicom.FileMeta{SOPClassUID: dicom.CTImageStorage, SOPInstanceUID: s.InstanceUID(n),
		TransferSyntaxUID: dicom.ImplicitVRLittleEndian}); err != nil {
		f.Close()
		return err
	}
	if _, err := io.Copy(f, ds); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
