// Command gendicom writes N CT-like Part 10 instances (Implicit VR Little
// Endian, 512×512 16-bit pixels: 0.5 MB each) of one study into a folder,
// for test/bench/dicom.sh.
package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/wardgate/wardgate/dicom"
)

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

// writeCT writes one generated CT instance as a Part 10 file.
func writeCT(path, study, series, sop, patientID string, number, rows, cols int) error {
	st := dicom.SyntheticStudy{StudyUID: study, SeriesUID: series, PatientID: patientID, PatientName: "Test^Patient"}
	ds, _ := st.Instance(number, rows, cols)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := dicom.WriteFileMeta(f, dicom.FileMeta{SOPClassUID: dicom.CTImageStorage, SOPInstanceUID: sop,
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
