// Command gendicom writes N CT-like Part 10 instances (Implicit VR Little
// Endian, 512×512 16-bit pixels: 0.5 MB each) of one study into a folder,
// for test/bench/dicom.sh.
package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/wardgate/wardgate/dicom"
)

const ctImageStorage = "1.2.840.10008.5.1.4.1.1.2"

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: gendicom N DIR")
		os.Exit(2)
	}
	n, _ := strconv.Atoi(os.Args[1])
	study := "1.2.826.0.1.3680043.2.1125.555"
	for i := 1; i <= n; i++ {
		p := filepath.Join(os.Args[2], fmt.Sprintf("ct%04d.dcm", i))
		if err := writeCT(p, study, study+".1", fmt.Sprintf("%s.1.%d", study, i), "PID-BENCH", i, 512, 512); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}

// implicitElement encodes one Implicit VR Little Endian element, padded
// to even length with pad.
func implicitElement(b *bytes.Buffer, group, elem uint16, v []byte, pad byte) {
	if len(v)%2 == 1 {
		v = append(v, pad)
	}
	binary.Write(b, binary.LittleEndian, [2]uint16{group, elem})
	binary.Write(b, binary.LittleEndian, uint32(len(v)))
	b.Write(v)
}

// WriteCT writes a Part 10 CT instance in Implicit VR Little Endian with
// rows×cols 16-bit pixels, without group lengths or trailing padding, so
// that storescu -xi sends its data set unchanged.
func writeCT(path, study, series, sop, patientID string, number, rows, cols int) error {
	var ds bytes.Buffer
	str := func(g, e uint16, s string) { implicitElement(&ds, g, e, []byte(s), ' ') }
	uid := func(g, e uint16, s string) { implicitElement(&ds, g, e, []byte(s), 0) }
	us := func(g, e uint16, v uint16) { implicitElement(&ds, g, e, binary.LittleEndian.AppendUint16(nil, v), 0) }
	uid(0x0008, 0x0016, ctImageStorage)
	uid(0x0008, 0x0018, sop)
	str(0x0008, 0x0020, "20261125")
	str(0x0008, 0x0030, "081500")
	str(0x0008, 0x0060, "CT")
	str(0x0010, 0x0010, "Test^Patient")
	str(0x0010, 0x0020, patientID)
	uid(0x0020, 0x000D, study)
	uid(0x0020, 0x000E, series)
	str(0x0020, 0x0011, "1")
	str(0x0020, 0x0013, strconv.Itoa(number))
	us(0x0028, 0x0002, 1)
	str(0x0028, 0x0004, "MONOCHROME2")
	us(0x0028, 0x0010, uint16(rows))
	us(0x0028, 0x0011, uint16(cols))
	us(0x0028, 0x0100, 16)
	us(0x0028, 0x0101, 12)
	us(0x0028, 0x0102, 11)
	us(0x0028, 0x0103, 0)
	px := make([]byte, rows*cols*2)
	for i := 0; i < rows*cols; i++ {
		binary.LittleEndian.PutUint16(px[2*i:], uint16((i*7+number*13)%4096))
	}
	implicitElement(&ds, 0x7FE0, 0x0010, px, 0)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := dicom.WriteFileMeta(f, dicom.FileMeta{SOPClassUID: ctImageStorage, SOPInstanceUID: sop,
		TransferSyntaxUID: dicom.ImplicitVRLittleEndian}); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(ds.Bytes()); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
