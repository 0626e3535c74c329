package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/wardgate/wardgate/dicom"
	"github.com/wardgate/wardgate/dicom/dataset"

	"github.com/wardgate/wardgate/buffer"
)

// AttrHeader is the spool attribute holding an instance's dataset.InstanceHeader as
// JSON; AttrCallingAE the calling AE title of the association it came on.
// AttrDataSetSHA256 the SHA-256 of the data set as received. (The spool's
// own hash is that too since the meta header is written as a header; for
// instances spooled before, it covered the meta header as well.)
const (
	AttrHeader        = "header"
	AttrCallingAE     = "calling_ae"
	AttrDataSetSHA256 = "dataset_sha256"
)

// Receiver is the StoreHandler that keeps each instance in a buffer.Spool:
// a Part 10 meta header built from the association, then the data set bytes
// exactly as received. On Commit it reads the header fields from the
// spooled bytes (streaming, pixel data skipped), commits the instance (its
// file and its index entry durable: see buffer.SpoolWriter.Commit) under
// the SOP Instance UID in the group of its Study Instance UID, and only then
// answers Success.
//
// Refusals: a full spool (quota or disk) gives A700 and keeps nothing of the
// instance; a data set that cannot be parsed gives C000 and is not stored.
// A second copy with identical content is acknowledged and stored once; one
// with different content replaces the first and is counted. A replacement
// that comes from another calling AE title than the copy it replaces, or
// changes its Patient ID (or issuer) or Study Instance UID, is suspect: any
// host that may send could otherwise change a study. It is counted and
// logged as a warning, and refused with 0111 (duplicate SOP instance, the
// stored copy kept) when RefuseSuspectReplacements is set.
type Receiver struct {
	Spool *buffer.Spool
	// Stored, when set, is told of every instance committed as new or as a
	// replacement (not of duplicates), after it is durable and before the
	// modality is answered. It must not block for long.
	Stored func(h dataset.InstanceHeader, in buffer.Instance)
	// RefuseSuspectReplacements refuses suspect replacements (see above)
	// instead of storing them (dicom.replacements: refuse).
	RefuseSuspectReplacements bool
	// Logger; nil: slog.Default(). It gets UIDs at debug level only.
	Logger *slog.Logger

	received, duplicates, replaced, patientChanged, suspect, refusedSuspect, refusedFull, refusedUnparseable, failed atomic.Uint64

	stripes [64]sync.Mutex // by SOP Instance UID: see Commit
}

// ReceiverStats counts what the Receiver did with the instances it got.
type ReceiverStats struct {
	Received           uint64 // stored as new instances
	Duplicates         uint64 // identical copies acknowledged, stored once
	Replaced           uint64 // different content under a SOP Instance UID already stored
	PatientChanged     uint64 // of those, copies naming another patient than the one they replaced
	Suspect            uint64 // replacements from another calling AE, or changing the patient or the study (stored or refused)
	RefusedSuspect     uint64 // 0111: suspect replacements refused (dicom.replacements: refuse)
	RefusedFull        uint64 // A700: spool quota or disk full
	RefusedUnparseable uint64 // C000: data set could not be read
	Failed             uint64 // other storage errors (C000)
}

// Stats returns the counters.
func (r *Receiver) Stats() ReceiverStats {
	return ReceiverStats{
		Received: r.received.Load(), Duplicates: r.duplicates.Load(), Replaced: r.replaced.Load(), PatientChanged: r.patientChanged.Load(),
		Suspect: r.suspect.Load(), RefusedSuspect: r.refusedSuspect.Load(),
		RefusedFull: r.refusedFull.Load(), RefusedUnparseable: r.refusedUnparseable.Load(), Failed: r.failed.Load(),
	}
}

func (r *Receiver) log() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

// BeginStore implements StoreHandler.
func (r *Receiver) BeginStore(ctx context.Context, req dicom.StoreRequest) (dicom.StoreWriter, error) {
	w, err := r.Spool.Create()
	if err != nil {
		return nil, r.refusal(err)
	}
	// The meta header names the sender; the spool's hash (the instance's
	// identity) covers the data set alone.
	var meta bytes.Buffer
	if _, err := dicom.WriteFileMeta(&meta, dicom.FileMeta{
		SOPClassUID: req.SOPClassUID, SOPInstanceUID: req.SOPInstanceUID,
		TransferSyntaxUID: req.TransferSyntaxUID, SourceAET: req.CallingAE,
	}); err != nil {
		w.Abort()
		return nil, r.refusal(err)
	}
	n, err := w.WriteHeader(meta.Bytes())
	if err != nil {
		w.Abort()
		return nil, r.refusal(err)
	}
	return &receiveWriter{r: r, w: w, req: req, dataset: int64(n)}, nil
}

// refusal counts err and makes a full spool an dicom.ErrOutOfResources (A700).
func (r *Receiver) refusal(err error) error {
	if errors.Is(err, buffer.ErrFull) {
		r.refusedFull.Add(1)
		return fmt.Errorf("%w: %w", dicom.ErrOutOfResources, err)
	}
	r.failed.Add(1)
	return err
}

type receiveWriter struct {
	r       *Receiver
	w       *buffer.SpoolWriter
	req     dicom.StoreRequest
	dataset int64 // offset of the data set in the file
	err     error
}

func (rw *receiveWriter) Write(p []byte) (int, error) {
	n, err := rw.w.Write(p)
	if err != nil && rw.err == nil {
		rw.err = rw.r.refusal(err)
		return n, rw.err
	}
	return n, err
}

func (rw *receiveWriter) Abort() { rw.w.Abort() }

func (rw *receiveWriter) Commit(ctx context.Context) (uint16, error) {
	r := rw.r
	if rw.err != nil {
		rw.w.Abort()
		return dicom.StatusForError(rw.err), rw.err
	}
	size := rw.w.Size() - rw.dataset
	h, err := dataset.ReadInstanceHeader(io.NewSectionReader(rw.w.ReaderAt(), rw.dataset, size), rw.req.TransferSyntaxUID)
	if err != nil {
		rw.w.Abort()
		r.refusedUnparseable.Add(1)
		return dicom.StatusCannotUnderstand, fmt.Errorf("instance not stored: %w", err)
	}
	if h.SOPInstanceUID != rw.req.SOPInstanceUID {
		rw.w.Abort()
		r.refusedUnparseable.Add(1)
		return dicom.StatusDataSetMismatch, errors.New("instance not stored: the data set's SOP Instance UID differs from the C-STORE request's")
	}
	if h.SOPClassUID == "" {
		h.SOPClassUID = rw.req.SOPClassUID
	}
	hj, err := json.Marshal(h)
	if err != nil {
		rw.w.Abort()
		r.failed.Add(1)
		return dicom.StatusProcessingFailure, err
	}
	// From reading the stored copy to committing this one, no other copy
	// of the instance may be decided on: two at once from two AEs would
	// both pass the check.
	unlock := r.lockInstance(rw.req.SOPInstanceUID)
	defer unlock()
	prev, prevErr := r.Spool.Get(rw.req.SOPInstanceUID) // to tell a suspect replacement
	if prevErr == nil {
		prev = r.withOrigin(prev)
	}
	dsSum := rw.w.SHA256() // of the data set: the meta header is not hashed
	if prevErr == nil && prev.Attrs[AttrDataSetSHA256] == dsSum {
		// The same data set again (from another AE, say, which only our
		// meta header would record): the stored copy stands.
		rw.w.Abort()
		r.duplicates.Add(1)
		r.log().Debug("dicom: identical copy of a stored instance", "sop_instance", h.SOPInstanceUID)
		return dicom.StatusSuccess, nil
	}
	why := ""
	if prevErr == nil {
		why = suspectReplacement(prev, rw.req.CallingAE, h)
	}
	if why != "" {
		r.suspect.Add(1)
		if r.RefuseSuspectReplacements {
			rw.w.Abort()
			r.refusedSuspect.Add(1)
			r.log().Warn("dicom: a replacement of a stored instance was refused (dicom.replacements: refuse); the stored copy is kept", "why", why, "calling", rw.req.CallingAE)
			return dicom.StatusDuplicateSOPInstance, errors.New("instance not stored: it would replace a stored one " + why)
		}
		r.log().Warn("dicom: a stored instance was replaced by a copy "+why, "calling", rw.req.CallingAE)
	}
	in, outcome, err := rw.w.Commit(ctx, rw.req.SOPInstanceUID, h.StudyInstanceUID, map[string]string{AttrHeader: string(hj), AttrCallingAE: rw.req.CallingAE, AttrDataSetSHA256: dsSum})
	if err != nil {
		return dicom.StatusForError(r.refusal(err)), err
	}
	switch outcome {
	case buffer.Duplicate:
		r.duplicates.Add(1)
		r.log().Debug("dicom: identical copy of a stored instance", "sop_instance", h.SOPInstanceUID)
		return dicom.StatusSuccess, nil
	case buffer.Replaced:
		r.replaced.Add(1)
		r.log().Info("dicom: an instance was sent again with different content; it replaced the stored one")
		if old, err := HeaderOf(prev); prevErr == nil && err == nil && (strings.TrimSpace(old.PatientID) != strings.TrimSpace(h.PatientID) ||
			strings.TrimSpace(old.IssuerOfPatientID) != strings.TrimSpace(h.IssuerOfPatientID)) {
			r.patientChanged.Add(1)
			r.log().Warn("dicom: a replaced instance names another patient than the copy it replaced; its study is checked again before it is charted")
		}
	default:
		r.received.Add(1)
	}
	if r.Stored != nil {
		r.Stored(h, in)
	}
	return dicom.StatusSuccess, nil
}

// HeaderOf returns the dataset.InstanceHeader kept with a spooled instance.
func HeaderOf(in buffer.Instance) (dataset.InstanceHeader, error) {
	var h dataset.InstanceHeader
	v, ok := in.Attrs[AttrHeader]
	if !ok {
		return h, fmt.Errorf("spooled instance has no %q attribute", AttrHeader)
	}
	err := json.Unmarshal([]byte(v), &h)
	return h, err
}

// suspectReplacement says why a copy (from callingAE, with header h) that
// replaces the stored prev is suspect, or "" when it is not: it comes from
// another calling AE title, or names another patient or study. Only the
// facts, never their values (no patient data in logs).
func suspectReplacement(prev buffer.Instance, callingAE string, h dataset.InstanceHeader) string {
	var why []string
	if ae, ok := prev.Attrs[AttrCallingAE]; ok && strings.TrimSpace(ae) != strings.TrimSpace(callingAE) {
		why = append(why, "from another calling AE title than the original's")
	}
	if old, err := HeaderOf(prev); err == nil {
		if strings.TrimSpace(old.PatientID) != strings.TrimSpace(h.PatientID) || strings.TrimSpace(old.IssuerOfPatientID) != strings.TrimSpace(h.IssuerOfPatientID) {
			why = append(why, "naming another patient")
		}
		if old.StudyInstanceUID != h.StudyInstanceUID {
			why = append(why, "in another study")
		}
	}
	return strings.Join(why, ", ")
}

// lockInstance serialises the decisions about one SOP Instance UID (striped:
// two instances may share a stripe and wait for each other's commit).
func (r *Receiver) lockInstance(uid string) (unlock func()) {
	h := fnv.New32a()
	h.Write([]byte(uid))
	mu := &r.stripes[h.Sum32()%uint32(len(r.stripes))]
	mu.Lock()
	return mu.Unlock
}

// withOrigin fills in, for an instance stored by a release that did not
// record them, the calling AE title (from the Source AE Title of the
// file's own meta header) and the data set's hash, so that a replacement of
// it is judged like any other. An unreadable file leaves them out.
func (r *Receiver) withOrigin(in buffer.Instance) buffer.Instance {
	_, hasAE := in.Attrs[AttrCallingAE]
	_, hasSum := in.Attrs[AttrDataSetSHA256]
	if hasAE && hasSum {
		return in
	}
	f, _, err := r.Spool.Open(in.Key)
	if err != nil {
		return in
	}
	defer f.Close()
	br := bufio.NewReader(f)
	meta, _, err := dicom.ReadFileMeta(br)
	if err != nil {
		return in
	}
	h := sha256.New()
	if _, err := io.Copy(h, br); err != nil {
		return in
	}
	attrs := maps.Clone(in.Attrs)
	if attrs == nil {
		attrs = map[string]string{}
	}
	if !hasAE {
		attrs[AttrCallingAE] = meta.SourceAET
	}
	if !hasSum {
		attrs[AttrDataSetSHA256] = hex.EncodeToString(h.Sum(nil))
	}
	in.Attrs = attrs
	return in
}
