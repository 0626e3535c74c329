package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/wardgate/wardgate/dicom"
	"github.com/wardgate/wardgate/dicom/dataset"

	"github.com/wardgate/wardgate/buffer"
)

// AttrHeader is the spool attribute holding an instance's dataset.InstanceHeader as
// JSON.
const AttrHeader = "header"

// Receiver is the StoreHandler that keeps each instance in a buffer.Spool:
// a Part 10 meta header built from the association, then the data set bytes
// exactly as received. On Commit it reads the header fields from the
// spooled bytes (streaming, pixel data skipped), commits the file (fsync of
// file and folder, then the index) under the SOP Instance UID in the group
// of its Study Instance UID, and only then answers Success.
//
// Refusals: a full spool (quota or disk) gives A700 and keeps nothing of the
// instance; a data set that cannot be parsed gives C000 and is not stored.
// A second copy with identical content is acknowledged and stored once; one
// with different content replaces the first and is counted.
type Receiver struct {
	Spool *buffer.Spool
	// Stored, when set, is told of every instance committed as new or as a
	// replacement (not of duplicates), after it is durable and before the
	// modality is answered. It must not block for long.
	Stored func(h dataset.InstanceHeader, in buffer.Instance)
	// Logger; nil: slog.Default(). It gets UIDs at debug level only.
	Logger *slog.Logger

	received, duplicates, replaced, patientChanged, refusedFull, refusedUnparseable, failed atomic.Uint64
}

// ReceiverStats counts what the Receiver did with the instances it got.
type ReceiverStats struct {
	Received           uint64 // stored as new instances
	Duplicates         uint64 // identical copies acknowledged, stored once
	Replaced           uint64 // different content under a SOP Instance UID already stored
	PatientChanged     uint64 // of those, copies naming another patient than the one they replaced
	RefusedFull        uint64 // A700: spool quota or disk full
	RefusedUnparseable uint64 // C000: data set could not be read
	Failed             uint64 // other storage errors (C000)
}

// Stats returns the counters.
func (r *Receiver) Stats() ReceiverStats {
	return ReceiverStats{
		Received: r.received.Load(), Duplicates: r.duplicates.Load(), Replaced: r.replaced.Load(), PatientChanged: r.patientChanged.Load(),
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
	n, err := dicom.WriteFileMeta(w, dicom.FileMeta{
		SOPClassUID: req.SOPClassUID, SOPInstanceUID: req.SOPInstanceUID,
		TransferSyntaxUID: req.TransferSyntaxUID, SourceAET: req.CallingAE,
	})
	if err != nil {
		w.Abort()
		return nil, r.refusal(err)
	}
	return &receiveWriter{r: r, w: w, req: req, dataset: n}, nil
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
	prev, prevErr := r.Spool.Get(rw.req.SOPInstanceUID) // to tell a replacement that changes the patient
	in, outcome, err := rw.w.Commit(ctx, rw.req.SOPInstanceUID, h.StudyInstanceUID, map[string]string{AttrHeader: string(hj)})
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
