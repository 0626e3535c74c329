package edge

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	dicomsim "github.com/wardgate/wardgate/dicom/sim"

	"github.com/wardgate/wardgate/dicom"
)

// An instance may leave the spool only once the record has acknowledged an
// ImagingStudy holding it: the gateway tells the DICOM node when it has.
func TestDeliveredStudyIsRecordedForPruning(t *testing.T) {
	g, record, _ := running(t)
	record.Put("Patient", "p1", json.RawMessage(`{"resourceType":"Patient","id":"p1","identifier":[{"system":"urn:oid:1.2.3.4","value":"MRN-1"}]}`))
	st := dicomsim.SyntheticStudy{StudyUID: "1.2.826.0.1.3680043.2.1125.9001", SeriesUID: "1.2.826.0.1.3680043.2.1125.9001.1", PatientID: "MRN-1"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := dicom.Dialer{CallingAE: "CT1", CalledAE: "WARDGATE"}
	a, err := d.Dial(ctx, g.DICOMAddr(), dicom.ExactStorageProposals([]dicom.SOPClassTransfer{{SOPClassUID: dicom.CTImageStorage, TransferSyntaxUID: dicom.ImplicitVRLittleEndian}}))
	if err != nil {
		t.Fatal(err)
	}
	ds, _ := st.Instance(1, 16, 16)
	if status, err := a.Store(ctx, dicom.CTImageStorage, st.InstanceUID(1), dicom.ImplicitVRLittleEndian, ds); err != nil || status != 0 {
		t.Fatalf("C-STORE: %04X %v", status, err)
	}
	a.Release(ctx)
	in, err := g.spool.Get(st.InstanceUID(1))
	if err != nil {
		t.Fatal(err)
	}
	if g.dicom.Ledger.IsDelivered(st.StudyUID, in.Key, in.SHA256) {
		t.Fatal("delivered before the record had it")
	}
	waitFor(t, "the ImagingStudy in the record", func() bool { return record.Count("ImagingStudy") == 1 })
	waitFor(t, "the delivery recorded", func() bool { return g.dicom.Ledger.IsDelivered(st.StudyUID, in.Key, in.SHA256) })
}
