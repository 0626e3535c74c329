package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/wardgate/wardgate/buffer"
	"github.com/wardgate/wardgate/dicom"
	"github.com/wardgate/wardgate/dicom/dataset"
	"github.com/wardgate/wardgate/dicom/internal/dicomtest"
	"github.com/wardgate/wardgate/dicom/sim"
)

// review13DS is the data set of instance 1 of a synthetic study; desc and
// rows make its content differ without changing patient or study.
func review13DS(t *testing.T, series, desc string, rows int) []byte {
	t.Helper()
	st := sim.SyntheticStudy{StudyUID: "1.2.826.0.1.3680043.13.1", SeriesUID: series, PatientID: "PID-13", Description: desc}
	r, _ := st.Instance(1, rows, rows)
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func review13UID(series string) string { return series + ".1" }

// review13Store sends ds to r as a C-STORE from callingAE would.
func review13Store(t *testing.T, r *Receiver, callingAE, uid string, ds []byte) uint16 {
	t.Helper()
	w, err := r.BeginStore(context.Background(), dicom.StoreRequest{CallingAE: callingAE, CalledAE: "WARDGATE",
		SOPClassUID: dicom.CTImageStorage, SOPInstanceUID: uid, TransferSyntaxUID: dicom.ImplicitVRLittleEndian})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(ds); err != nil {
		w.Abort()
		t.Fatal(err)
	}
	status, _ := w.Commit(context.Background())
	return status
}

// review13StoreAsBefore stores ds the way the release before 9d2a242 did:
// the meta header naming callingAE, then the data set, with only the
// header attribute (no calling_ae, no dataset_sha256).
func review13StoreAsBefore(t *testing.T, spool *buffer.Spool, callingAE, uid string, ds []byte) {
	t.Helper()
	w, err := spool.Create()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dicom.WriteFileMeta(w, dicom.FileMeta{SOPClassUID: dicom.CTImageStorage, SOPInstanceUID: uid,
		TransferSyntaxUID: dicom.ImplicitVRLittleEndian, SourceAET: callingAE}); err != nil {
		t.Fatal(err)
	}
	w.Write(ds)
	h, err := dataset.ReadInstanceHeader(bytes.NewReader(ds), dicom.ImplicitVRLittleEndian)
	if err != nil {
		t.Fatal(err)
	}
	hj, _ := json.Marshal(h)
	if _, _, err := w.Commit(context.Background(), uid, h.StudyInstanceUID, map[string]string{AttrHeader: string(hj)}); err != nil {
		t.Fatal(err)
	}
}

// Finding 5: instances stored by the previous release have no calling_ae
// attribute, so a replacement of one of them from another calling AE is
// not suspect, and under dicom.replacements: refuse it is stored, the
// copy the modality sent replaced by whoever sends next. The calling AE is
// in the spooled file's own meta header ((0002,0016) Source AE Title,
// written by BeginStore in every release), so it is known.
// The same data set again from another AE is, for these instances, a
// replacement (counted, handed over again, forwarded again) and not the
// duplicate README promises.
// Cause: dicom/gateway/receive.go suspectReplacement (`if ae, ok :=
// prev.Attrs[AttrCallingAE]; ok && ...`) and the dataset_sha256 check in
// Commit, both relying on attributes the old release did not write.
// Fix: when the attributes are missing, read Source AE Title from the
// stored file's meta header and hash the stored data set (from the meta
// header's end) once; or treat a missing calling_ae as suspect under refuse.
func TestReview13ReplacingAnInstanceStoredByThePreviousRelease(t *testing.T) {
	t.Run("another AE, other content", func(t *testing.T) {
		spool := openSpool(t, t.TempDir(), 0)
		r := &Receiver{Spool: spool, RefuseSuspectReplacements: true, Logger: dicomtest.DiscardLogger}
		series := "1.2.826.0.1.3680043.13.1.1"
		review13StoreAsBefore(t, spool, "MOD1", review13UID(series), review13DS(t, series, "original", 8))
		status := review13Store(t, r, "INTRUDER", review13UID(series), review13DS(t, series, "forged", 8))
		if st := r.Stats(); status != dicom.StatusDuplicateSOPInstance || st.Suspect != 1 {
			t.Fatalf("a copy from INTRUDER replacing MOD1's (stored by the previous release) under refuse: status 0x%04x, stats %+v; want 0111, one suspect", status, st)
		}
	})
	t.Run("another AE, same data set", func(t *testing.T) {
		spool := openSpool(t, t.TempDir(), 0)
		stored := 0
		r := &Receiver{Spool: spool, Logger: dicomtest.DiscardLogger, Stored: func(dataset.InstanceHeader, buffer.Instance) { stored++ }}
		series := "1.2.826.0.1.3680043.13.1.2"
		ds := review13DS(t, series, "original", 8)
		review13StoreAsBefore(t, spool, "MOD1", review13UID(series), ds)
		status := review13Store(t, r, "MOD2", review13UID(series), ds)
		if st := r.Stats(); status != dicom.StatusSuccess || st.Duplicates != 1 || st.Replaced != 0 || stored != 0 {
			t.Fatalf("the same data set from another AE: status 0x%04x, stats %+v, handed over %d times; want a duplicate", status, st, stored)
		}
	})
}

// Finding 6: the suspect check reads the stored copy (Spool.Get) and
// decides before Spool's Commit takes its per-key lock, so two C-STOREs of
// one SOP Instance UID from two AEs at once both see no stored copy (or the
// same one), and both are stored: the second replaces the first without
// being counted as suspect, even under dicom.replacements: refuse.
// Cause: dicom/gateway/receive.go receiveWriter.Commit, `prev, prevErr :=
// r.Spool.Get(...)` ... `rw.w.Commit(...)` is check-then-act. Fix: make the
// decision under the spool's key lock, e.g. a SpoolWriter.CommitIf(key,
// group, attrs, func(prev *Instance) error) that calls the check with the
// entry read inside the lock, or a per-SOP-Instance mutex in Receiver held
// from Get to Commit.
func TestReview13ConcurrentStoresOfOneInstanceFromTwoAEs(t *testing.T) {
	spool := openSpool(t, t.TempDir(), 0)
	r := &Receiver{Spool: spool, RefuseSuspectReplacements: true, Logger: dicomtest.DiscardLogger}
	const rounds = 200
	bothStored := 0
	for i := range rounds {
		series := fmt.Sprintf("1.2.826.0.1.3680043.13.2.%d", i)
		uid := review13UID(series)
		type sender struct {
			ae     string
			w      dicom.StoreWriter
			status uint16
		}
		senders := []*sender{{ae: "MOD1"}, {ae: "INTRUDER"}}
		for j, s := range senders {
			w, err := r.BeginStore(context.Background(), dicom.StoreRequest{CallingAE: s.ae, CalledAE: "WARDGATE",
				SOPClassUID: dicom.CTImageStorage, SOPInstanceUID: uid, TransferSyntaxUID: dicom.ImplicitVRLittleEndian})
			if err != nil {
				t.Fatal(err)
			}
			w.Write(review13DS(t, series, s.ae, 8+j))
			s.w = w
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for _, s := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				s.status, _ = s.w.Commit(context.Background())
			}()
		}
		close(start)
		wg.Wait()
		if senders[0].status == dicom.StatusSuccess && senders[1].status == dicom.StatusSuccess {
			bothStored++
		}
	}
	if st := r.Stats(); bothStored > 0 {
		t.Fatalf("in %d of %d rounds both MOD1's and INTRUDER's copies of one instance were acknowledged as stored under refuse (stats %+v): one replaced the other unchecked",
			bothStored, rounds, st)
	}
}

// Pins: a refused suspect replacement leaves nothing behind (no file, no
// space counted, the index entry and file unchanged, no hand-over), and a
// plain replacement from the same AE is still handed over (assembler,
// forwarders) with the new copy stored.
func TestReview13RefusedReplacementLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	spool := openSpool(t, dir, 0)
	var handed []string
	r := &Receiver{Spool: spool, RefuseSuspectReplacements: true, Logger: dicomtest.DiscardLogger,
		Stored: func(h dataset.InstanceHeader, in buffer.Instance) { handed = append(handed, in.SHA256) }}
	series := "1.2.826.0.1.3680043.13.3.1"
	uid := review13UID(series)
	if s := review13Store(t, r, "MOD1", uid, review13DS(t, series, "v1", 8)); s != dicom.StatusSuccess {
		t.Fatalf("first store 0x%04x", s)
	}
	before, _ := spool.Get(uid)
	used := func() [3]int64 { st := spool.Stats(); return [3]int64{st.Instances, st.Bytes, st.InFlightBytes} }
	statsBefore := used()
	files := func() int {
		n := 0
		filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() && !(fi.Size() == 0 && strings.HasPrefix(fi.Name(), "w-")) { // not an empty spare
				n++
			}
			return nil
		})
		return n
	}
	nfiles := files()
	if s := review13Store(t, r, "INTRUDER", uid, review13DS(t, series, "forged", 8)); s != dicom.StatusDuplicateSOPInstance {
		t.Fatalf("suspect replacement 0x%04x, want 0111", s)
	}
	after, _ := spool.Get(uid)
	if after.SHA256 != before.SHA256 || files() != nfiles || used() != statsBefore || len(handed) != 1 {
		t.Fatalf("a refused replacement left something: entry %v→%v, files %d→%d, stats %+v→%+v, handed over %d",
			before.SHA256, after.SHA256, nfiles, files(), statsBefore, used(), len(handed))
	}
	if s := review13Store(t, r, "MOD1", uid, review13DS(t, series, "v2", 8)); s != dicom.StatusSuccess {
		t.Fatalf("plain replacement 0x%04x", s)
	}
	now, _ := spool.Get(uid)
	if len(handed) != 2 || handed[1] != now.SHA256 || now.SHA256 == before.SHA256 || now.Attrs[AttrCallingAE] != "MOD1" {
		t.Fatalf("a plain replacement: handed over %v, stored %s", handed, now.SHA256)
	}
}
