package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dicomsim "github.com/wardgate/wardgate/dicom/sim"
)

// studyOf writes instances first…last of a study for patientID into dir.
func studyOf(t *testing.T, dir, study, patientID string, first, last int) []string {
	t.Helper()
	st := dicomsim.SyntheticStudy{StudyUID: study, SeriesUID: study + ".1", PatientID: patientID, PatientName: "Test^Patient"}
	var files []string
	for i := first; i <= last; i++ {
		p := filepath.Join(dir, fmt.Sprintf("ct%04d-%s.dcm", i, patientID))
		if err := st.WriteFile(p, i, 64, 64); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	return files
}

func storescu(t *testing.T, port int, files ...string) {
	t.Helper()
	args := append([]string{"-xi", "-aet", "MODALITY", "-aec", "WARDGATE", "127.0.0.1", strconv.Itoa(port)}, files...)
	if out, err := dcmtkCmd("storescu", args...).CombinedOutput(); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
}

// Finding 4: a modality sends a study whose instances name two patients.
// It is not charted (the build before this charted it under the first
// instance's patient, silently): it is a dead letter with the reason, in
// /api/dead-letters (what the page and `wardgate queue list` show). The modality then re-sends the odd
// instance corrected; the study is charted, whole, and the dead letter is
// gone.
func TestDicomStudyWithTwoPatientIDsIsNotCharted(t *testing.T) {
	RequirePeers(t, "storescu")
	p, record, _, port := dicomGateway(t, "  study_stable_after: 1s\n", "")
	const study = "1.2.826.0.1.3680043.2.1125.88"
	dir := t.TempDir()
	files := append(studyOf(t, dir, study, "PID-E2E", 1, 2), studyOf(t, dir, study, "PID-OTHER", 3, 3)...)
	storescu(t, port, files...)
	addr := p.WaitLog(t, statusRe, 10*time.Second)
	Eventually(t, 30*time.Second, func() bool {
		_, dl := getJSON(t, "http://"+addr+"/api/dead-letters")
		return dl["count"].(float64) == 1
	}, func() string { return "no dead letter for the study\n" + p.Log() })
	_, dl := getJSON(t, "http://"+addr+"/api/dead-letters")
	d := dl["dead_letters"].([]any)[0].(map[string]any)
	if d["kind"] != "study" || !strings.Contains(d["reason"].(string), "2 different patients") {
		t.Fatalf("dead letter %v", d)
	}
	if record.Count("ImagingStudy") != 0 {
		t.Fatalf("a study naming two patients was charted: %v", imagingStudies(record))
	}
	if strings.Contains(p.Log(), "PID-OTHER") || strings.Contains(p.Log(), "PID-E2E") {
		t.Fatal("a Patient ID reached the log")
	}

	// The corrected copy of instance 3 replaces the odd one.
	fixed := studyOf(t, t.TempDir(), study, "PID-E2E", 3, 3)
	storescu(t, port, fixed...)
	Eventually(t, 30*time.Second, func() bool { return studyHas(record, 3) },
		func() string { return fmt.Sprintf("ImagingStudies: %v\n%s", imagingStudies(record), p.Log()) })
	Eventually(t, 10*time.Second, func() bool {
		_, dl := getJSON(t, "http://"+addr+"/api/dead-letters")
		return dl["count"].(float64) == 0
	}, func() string { return "the dead letter stayed after the study was charted" })
}

// Finding 7: the gateway loses spool/ledger.db after a study was charted
// and its instances left the spool; one late instance arrives. The
// ImagingStudy in the record keeps every instance (the build before this
// replaced it with a study of one instance).
func TestDicomLedgerLostThenALateInstance(t *testing.T) {
	RequirePeers(t, "storescu")
	p, record, cfg, port := dicomGateway(t, "  study_stable_after: 1s\n", "")
	const study = "1.2.826.0.1.3680043.2.1125.89"
	storescu(t, port, studyOf(t, t.TempDir(), study, "PID-E2E", 1, 3)...)
	Eventually(t, 30*time.Second, func() bool { return studyHas(record, 3) },
		func() string { return fmt.Sprintf("ImagingStudies: %v\n%s", imagingStudies(record), p.Log()) })
	spool := filepath.Join(filepath.Dir(cfg), "data", "spool")
	// The instances leave the spool once the record has the study.
	Eventually(t, 60*time.Second, func() bool {
		v := readyz(t, p)
		return v["dicom"].(map[string]any)["pruned"].(float64) == 3
	}, func() string { return "the instances stayed in the spool\n" + p.Log() })
	p.Cmd.Process.Signal(syscall.SIGTERM)
	p.Wait(t, 30*time.Second)
	if err := os.Remove(filepath.Join(spool, "ledger.db")); err != nil {
		t.Fatal(err)
	}

	p = Start(t, "run", "-config", cfg)
	p.WaitLog(t, `dicom listening`, 20*time.Second)
	storescu(t, port, studyOf(t, t.TempDir(), study, "PID-E2E", 4, 4)...)
	Eventually(t, 30*time.Second, func() bool { return studyHas(record, 4) },
		func() string { return fmt.Sprintf("ImagingStudies: %v\n%s", imagingStudies(record), p.Log()) })
	time.Sleep(2 * time.Second)
	if !studyHas(record, 4) {
		t.Fatalf("the ImagingStudy changed again: %v", imagingStudies(record))
	}
}
