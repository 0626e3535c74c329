package dicom

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Storage Commitment Push Model (PS3.4 Annex J): the SOP class and its one
// well-known instance, the N-ACTION and N-EVENT-REPORT type IDs.
const (
	StorageCommitmentPushModelSOPClass    = "1.2.840.10008.1.20.1"
	StorageCommitmentPushModelSOPInstance = "1.2.840.10008.1.20.1.1"

	// CommitmentActionRequest is the N-ACTION Action Type ID of a Storage
	// Commitment Request (PS3.4 J.3.2.1).
	CommitmentActionRequest = 1
	// CommitmentEventSuccess and CommitmentEventFailures are the
	// N-EVENT-REPORT Event Type IDs (PS3.4 J.3.3.1): every reference
	// committed, or at least one failed.
	CommitmentEventSuccess  = 1
	CommitmentEventFailures = 2
)

// Failure Reasons of a Failed SOP Sequence item (PS3.3 C.14.1.1).
const (
	FailureProcessing          uint16 = 0x0110 // a general failure in processing
	FailureNoSuchObject        uint16 = 0x0112 // the instance is not here
	FailureResourceLimitation  uint16 = 0x0213 // not enough resources to store it
	FailureSOPClassUnsupported uint16 = 0x0122 // its SOP class is not supported
	FailureClassConflict       uint16 = 0x0119 // another SOP class than the one stored
	FailureDuplicateTransUID   uint16 = 0x0131 // the Transaction UID is in use
)

// DIMSE-N statuses used by the Storage Commitment SCP and SCU (PS3.7
// 10.1.4.1.10, 10.1.1.1.8).
const (
	StatusNoSuchSOPInstance     uint16 = 0x0112
	StatusNoSuchEventType       uint16 = 0x0113
	StatusInvalidArgumentValue  uint16 = 0x0115
	StatusNoSuchSOPClass        uint16 = 0x0118
	StatusClassInstanceConflict uint16 = 0x0119
	StatusMissingAttribute      uint16 = 0x0120
	StatusMissingAttributeValue uint16 = 0x0121
	StatusNoSuchAction          uint16 = 0x0123
	StatusMistypedArgument      uint16 = 0x0212
	StatusResourceLimitation    uint16 = 0x0213
)

// Data set tags of Storage Commitment (PS3.4 J.3, PS3.6).
const (
	tagFailureReason           = 0x00081197
	tagFailedSOPSequence       = 0x00081198
	tagReferencedSOPSequence   = 0x00081199
	tagTransactionUID          = 0x00081195
	tagReferencedSOPClassUID   = 0x00081150
	tagReferencedSOPInstanceUI = 0x00081155
)

// MaxCommitmentReferences bounds the references one request or report may
// carry; MaxCommitmentDataSet the size of its data set. A study of several
// thousand instances fits; a hostile data set is refused before it costs
// more than this much memory.
const (
	MaxCommitmentReferences = 10000
	MaxCommitmentDataSet    = 4 << 20
)

// SOPReference names one instance: its SOP class and SOP instance UIDs.
type SOPReference struct {
	SOPClassUID    string `json:"class"`
	SOPInstanceUID string `json:"instance"`
}

// FailedReference is a reference that was not committed, with its Failure
// Reason (Failure* constants).
type FailedReference struct {
	SOPReference
	Reason uint16 `json:"reason"`
}

// CommitmentRequest is a Storage Commitment Request: the N-ACTION data set
// (PS3.4 Table J.3-1) and where it came from. Its UIDs say nothing of a
// patient, but they are not logged above debug level either.
type CommitmentRequest struct {
	CallingAE, CalledAE string
	TransactionUID      string
	References          []SOPReference
	// TLS: the request came over DICOM TLS (so its report must not go in
	// the clear).
	TLS bool
}

// CommitmentResult is what an N-EVENT-REPORT says of a request (PS3.4
// Table J.3-2): the references committed and those that failed.
type CommitmentResult struct {
	TransactionUID string
	Committed      []SOPReference
	Failed         []FailedReference
}

// EventType is the N-EVENT-REPORT Event Type ID for r.
func (r CommitmentResult) EventType() uint16 {
	if len(r.Failed) > 0 {
		return CommitmentEventFailures
	}
	return CommitmentEventSuccess
}

// errMissingAttribute and errTooMany classify what is wrong with a
// commitment data set: a missing attribute is answered 0120, too many
// references 0213, anything else malformed 0115.
var (
	errMissingAttribute = errors.New("missing attribute")
	errTooMany          = errors.New("too many references")
)

// encodeCommitmentRequest encodes the N-ACTION data set.
func encodeCommitmentRequest(transactionUID string, refs []SOPReference, explicit bool) []byte {
	w := &elementWriter{explicit: explicit}
	w.uid(tagTransactionUID, transactionUID)
	w.sequence(tagReferencedSOPSequence, len(refs), func(w *elementWriter, i int) {
		w.uid(tagReferencedSOPClassUID, refs[i].SOPClassUID)
		w.uid(tagReferencedSOPInstanceUI, refs[i].SOPInstanceUID)
	})
	return w.b
}

// decodeCommitmentRequest reads an N-ACTION data set. Errors wrap
// errMissingAttribute or errTooMany where that is what is wrong.
func decodeCommitmentRequest(b []byte, explicit bool) (string, []SOPReference, error) {
	els, err := parseDataSet(b, explicit)
	if err != nil {
		return "", nil, err
	}
	tuid, ok := find(els, tagTransactionUID)
	if !ok {
		return "", nil, fmt.Errorf("%w: Transaction UID (0008,1195)", errMissingAttribute)
	}
	uid, ok := uidValue(tuid)
	if !ok {
		return "", nil, fmt.Errorf("Transaction UID (0008,1195) %q is not a UID", uid)
	}
	seq, ok := find(els, tagReferencedSOPSequence)
	if !ok || seq.vr != "SQ" || len(seq.items) == 0 {
		return "", nil, fmt.Errorf("%w: Referenced SOP Sequence (0008,1199) with at least one item", errMissingAttribute)
	}
	refs, err := decodeReferences(seq.items, false)
	if err != nil {
		return "", nil, fmt.Errorf("Referenced SOP Sequence (0008,1199): %w", err)
	}
	out := make([]SOPReference, len(refs))
	for i, r := range refs {
		out[i] = r.SOPReference
	}
	return uid, out, nil
}

// decodeReferences reads the items of a Referenced or Failed SOP Sequence.
func decodeReferences(items [][]element, failed bool) ([]FailedReference, error) {
	if len(items) > MaxCommitmentReferences {
		return nil, fmt.Errorf("%w: %d, at most %d", errTooMany, len(items), MaxCommitmentReferences)
	}
	out := make([]FailedReference, 0, len(items))
	for i, it := range items {
		var r FailedReference
		for _, t := range []struct {
			tag  uint32
			name string
			dst  *string
		}{
			{tagReferencedSOPClassUID, "Referenced SOP Class UID (0008,1150)", &r.SOPClassUID},
			{tagReferencedSOPInstanceUI, "Referenced SOP Instance UID (0008,1155)", &r.SOPInstanceUID},
		} {
			e, ok := find(it, t.tag)
			if !ok {
				return nil, fmt.Errorf("item %d: %w: %s", i+1, errMissingAttribute, t.name)
			}
			v, ok := uidValue(e)
			if !ok {
				return nil, fmt.Errorf("item %d: %s %q is not a UID", i+1, t.name, v)
			}
			*t.dst = v
		}
		if failed {
			e, ok := find(it, tagFailureReason)
			if !ok || len(e.value) != 2 {
				return nil, fmt.Errorf("item %d: %w: Failure Reason (0008,1197)", i+1, errMissingAttribute)
			}
			r.Reason = binary.LittleEndian.Uint16(e.value)
		}
		out = append(out, r)
	}
	return out, nil
}

// encodeCommitmentResult encodes the N-EVENT-REPORT data set: the
// Transaction UID, then the Failed SOP Sequence when some failed and the
// Referenced SOP Sequence when some were committed (in tag order).
func encodeCommitmentResult(r CommitmentResult, explicit bool) []byte {
	w := &elementWriter{explicit: explicit}
	w.uid(tagTransactionUID, r.TransactionUID)
	if len(r.Failed) > 0 {
		w.sequence(tagFailedSOPSequence, len(r.Failed), func(w *elementWriter, i int) {
			w.uid(tagReferencedSOPClassUID, r.Failed[i].SOPClassUID)
			w.uid(tagReferencedSOPInstanceUI, r.Failed[i].SOPInstanceUID)
			w.us(tagFailureReason, r.Failed[i].Reason)
		})
	}
	if len(r.Committed) > 0 {
		w.sequence(tagReferencedSOPSequence, len(r.Committed), func(w *elementWriter, i int) {
			w.uid(tagReferencedSOPClassUID, r.Committed[i].SOPClassUID)
			w.uid(tagReferencedSOPInstanceUI, r.Committed[i].SOPInstanceUID)
		})
	}
	return w.b
}

// decodeCommitmentResult reads an N-EVENT-REPORT data set.
func decodeCommitmentResult(b []byte, explicit bool) (CommitmentResult, error) {
	var r CommitmentResult
	els, err := parseDataSet(b, explicit)
	if err != nil {
		return r, err
	}
	tuid, ok := find(els, tagTransactionUID)
	if !ok {
		return r, fmt.Errorf("%w: Transaction UID (0008,1195)", errMissingAttribute)
	}
	if r.TransactionUID, ok = uidValue(tuid); !ok {
		return r, fmt.Errorf("Transaction UID (0008,1195) %q is not a UID", r.TransactionUID)
	}
	if seq, ok := find(els, tagReferencedSOPSequence); ok {
		refs, err := decodeReferences(seq.items, false)
		if err != nil {
			return r, fmt.Errorf("Referenced SOP Sequence (0008,1199): %w", err)
		}
		for _, f := range refs {
			r.Committed = append(r.Committed, f.SOPReference)
		}
	}
	if seq, ok := find(els, tagFailedSOPSequence); ok {
		if r.Failed, err = decodeReferences(seq.items, true); err != nil {
			return r, fmt.Errorf("Failed SOP Sequence (0008,1198): %w", err)
		}
	}
	return r, nil
}
