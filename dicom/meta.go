package dicom

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// FileMeta is the File Meta Information of a DICOM Part 10 file (PS3.10
// 7.1): what wardgate writes in front of a received data set, and what it
// reads back to send a file.
type FileMeta struct {
	SOPClassUID       string // (0002,0002) Media Storage SOP Class UID
	SOPInstanceUID    string // (0002,0003) Media Storage SOP Instance UID
	TransferSyntaxUID string // (0002,0010)
	SourceAET         string // (0002,0016), optional
	// ImplementationClassUID (0002,0012) and ImplementationVersionName
	// (0002,0013) name the writer; empty means wardgate's own.
	ImplementationClassUID    string
	ImplementationVersionName string
}

// maxFileMeta bounds the meta group ReadFileMeta accepts; real ones are a
// few hundred bytes.
const maxFileMeta = 64 << 10

// WriteFileMeta writes the 128-byte preamble, "DICM" and the group 0002
// elements in Explicit VR Little Endian, with their group length. The data
// set, in m.TransferSyntaxUID, follows as the caller writes it. It returns
// the number of bytes written, which is where the data set starts.
func WriteFileMeta(w io.Writer, m FileMeta) (int64, error) {
	if m.SOPClassUID == "" || m.SOPInstanceUID == "" || m.TransferSyntaxUID == "" {
		return 0, errors.New("dicom: file meta needs SOP class, SOP instance and transfer syntax UIDs")
	}
	if m.ImplementationClassUID == "" {
		m.ImplementationClassUID = ImplementationClassUID
		m.ImplementationVersionName = ImplementationVersionName
	}
	for _, uid := range []string{m.SOPClassUID, m.SOPInstanceUID, m.TransferSyntaxUID, m.ImplementationClassUID} {
		if len(uid) > 64 {
			return 0, fmt.Errorf("dicom: UID %q longer than 64 characters", uid)
		}
	}
	if len(m.SourceAET) > 16 || len(m.ImplementationVersionName) > 16 {
		return 0, errors.New("dicom: source AE title and implementation version name have at most 16 characters")
	}
	var g []byte
	short := func(elem uint16, vr string, val []byte) {
		g = binary.LittleEndian.AppendUint16(g, 0x0002)
		g = binary.LittleEndian.AppendUint16(g, elem)
		g = append(g, vr...)
		g = binary.LittleEndian.AppendUint16(g, uint16(len(val)))
		g = append(g, val...)
	}
	// (0002,0001) OB: 2 reserved bytes and a 4-byte length.
	g = append(g, 0x02, 0x00, 0x01, 0x00, 'O', 'B', 0, 0, 2, 0, 0, 0, 0x00, 0x01)
	short(0x0002, "UI", padUID(m.SOPClassUID))
	short(0x0003, "UI", padUID(m.SOPInstanceUID))
	short(0x0010, "UI", padUID(m.TransferSyntaxUID))
	short(0x0012, "UI", padUID(m.ImplementationClassUID))
	if m.ImplementationVersionName != "" {
		short(0x0013, "SH", padText(m.ImplementationVersionName))
	}
	if m.SourceAET != "" {
		short(0x0016, "AE", padText(m.SourceAET))
	}
	b := make([]byte, 128, 128+4+12+len(g))
	b = append(b, "DICM"...)
	b = append(b, 0x02, 0x00, 0x00, 0x00, 'U', 'L', 4, 0)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(g)))
	b = append(b, g...)
	n, err := w.Write(b)
	return int64(n), err
}

// ReadFileMeta reads the preamble, "DICM" and the group 0002 elements of a
// Part 10 file and returns them with the offset at which the data set
// starts. A file without (0002,0000) is read element by element. If r is a
// *bufio.Reader it is left at the start of the data set; any other reader
// may have been read further (seek to datasetOffset).
func ReadFileMeta(r io.Reader) (FileMeta, int64, error) {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 4096)
	}
	var m FileMeta
	var head [132]byte
	if _, err := io.ReadFull(br, head[:]); err != nil {
		return m, 0, fmt.Errorf("dicom: reading Part 10 preamble: %w", truncated(err))
	}
	if string(head[128:]) != "DICM" {
		return m, 0, errors.New("dicom: not a DICOM Part 10 file (no DICM after the preamble)")
	}
	off := int64(132)
	groupEnd := int64(-1) // from (0002,0000), when present
	for {
		if groupEnd >= 0 && off >= groupEnd {
			break
		}
		peek, err := br.Peek(8)
		if err != nil {
			if groupEnd < 0 && len(peek) == 0 && errors.Is(err, io.EOF) {
				break // nothing but meta; an empty data set
			}
			return m, off, fmt.Errorf("dicom: file meta at offset %d: %w", off, truncated(err))
		}
		if binary.LittleEndian.Uint16(peek) != 0x0002 {
			if groupEnd >= 0 {
				return m, off, fmt.Errorf("dicom: file meta group ends at offset %d, before its group length says", off)
			}
			break
		}
		elem := binary.LittleEndian.Uint16(peek[2:])
		vr := string(peek[4:6])
		var hdrLen int
		var n uint32
		switch vr {
		case "OB", "OW", "OF", "SQ", "UT", "UN", "UC", "UR", "OD", "OL", "OV":
			long, err := br.Peek(12)
			if err != nil {
				return m, off, fmt.Errorf("dicom: file meta at offset %d: %w", off, truncated(err))
			}
			hdrLen, n = 12, binary.LittleEndian.Uint32(long[8:])
		default:
			if vr[0] < 'A' || vr[0] > 'Z' || vr[1] < 'A' || vr[1] > 'Z' {
				return m, off, fmt.Errorf("dicom: file meta element (0002,%04X) has no explicit VR", elem)
			}
			hdrLen, n = 8, uint32(binary.LittleEndian.Uint16(peek[6:]))
		}
		if off+int64(hdrLen)+int64(n) > 132+maxFileMeta {
			return m, off, fmt.Errorf("dicom: file meta larger than %d bytes", maxFileMeta)
		}
		if _, err := br.Discard(hdrLen); err != nil {
			return m, off, truncated(err)
		}
		val := make([]byte, n)
		if _, err := io.ReadFull(br, val); err != nil {
			return m, off, fmt.Errorf("dicom: file meta element (0002,%04X): %w", elem, truncated(err))
		}
		off += int64(hdrLen) + int64(n)
		switch elem {
		case 0x0000:
			if n != 4 {
				return m, off, errors.New("dicom: file meta group length is not 4 bytes")
			}
			groupEnd = off + int64(binary.LittleEndian.Uint32(val))
			if groupEnd > 132+maxFileMeta {
				return m, off, fmt.Errorf("dicom: file meta group length %d too large", groupEnd-off)
			}
		case 0x0002:
			m.SOPClassUID = trimUID(val)
		case 0x0003:
			m.SOPInstanceUID = trimUID(val)
		case 0x0010:
			m.TransferSyntaxUID = trimUID(val)
		case 0x0012:
			m.ImplementationClassUID = trimUID(val)
		case 0x0013:
			m.ImplementationVersionName = strings.Trim(string(bytes.TrimRight(val, "\x00")), " ")
		case 0x0016:
			m.SourceAET = strings.Trim(string(val), " \x00")
		}
	}
	if m.TransferSyntaxUID == "" {
		return m, off, errors.New("dicom: file meta has no transfer syntax UID (0002,0010)")
	}
	return m, off, nil
}
