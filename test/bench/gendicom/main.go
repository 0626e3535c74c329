// Command gendicom writes N CT-like Part 10 instances (Implicit VR Little
// Endian, 512×512 16-bit pixels: 0.5 MB each) of one study into a folder,
// for test/bench/dicom.sh.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	dicomsim "github.com/wardgate/wardgate/dicom/sim"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: gendicom N DIR")
		os.Exit(2)
	}
	n, _ := strconv.Atoi(os.Args[1])
	study := "1.2.826.0.1.3680043.2.1125.555"
	st := dicomsim.SyntheticStudy{StudyUID: study, SeriesUID: study + ".1", PatientID: "PID-BENCH", PatientName: "Test^Patient"}
	for i := 1; i <= n; i++ {
		p := filepath.Join(os.Args[2], fmt.Sprintf("ct%04d.dcm", i))
		if err := st.WriteFile(p, i, 512, 512); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
