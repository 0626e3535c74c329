package dicom

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
)

// Role is an SCP/SCU role selection: which roles the requestor takes for a
// SOP class.
type Role struct{ SCU, SCP bool }

// sortedKeys lists m's keys in order, so that an A-ASSOCIATE-RQ is the same
// every time.
func sortedKeys(m map[string]Role) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// AcceptedRole is the acceptor's answer to our role selection for sopClass:
// the roles we may take. answered is false when it sent none, and then the
// default holds (we are the SCU only).
func (as *Association) AcceptedRole(sopClass string) (r Role, answered bool) {
	for _, x := range as.roles {
		if x.SOPClassUID == sopClass {
			return Role{SCU: x.SCU, SCP: x.SCP}, true
		}
	}
	return Role{SCU: true}, false
}

// CommitmentProposal proposes Storage Commitment Push Model in both
// uncompressed Little Endian syntaxes. A commitment SCP reporting on an
// association it opens also proposes, with Dialer.Roles, that it is the
// SCP (Role{SCP: true}, PS3.4 J.3.3).
func CommitmentProposal() PresentationContextProposal {
	return PresentationContextProposal{
		AbstractSyntax:   StorageCommitmentPushModelSOPClass,
		TransferSyntaxes: []string{ExplicitVRLittleEndian, ImplicitVRLittleEndian},
	}
}

// contextFor returns the first accepted context for abstractSyntax.
func (as *Association) contextFor(abstractSyntax string) (AcceptedContext, bool) {
	for _, c := range as.accepted {
		if c.AbstractSyntax == abstractSyntax {
			return c, true
		}
	}
	return AcceptedContext{}, false
}

// TransferSyntaxFor returns the transfer syntax the peer accepted for
// abstractSyntax (its first accepted context), or "".
func (as *Association) TransferSyntaxFor(abstractSyntax string) string {
	c, _ := as.contextFor(abstractSyntax)
	return c.TransferSyntax
}

// Action sends an N-ACTION-RQ on sopClass's context, with dataset (already
// encoded in that context's transfer syntax; nil: none), and returns the
// response status.
func (as *Association) Action(ctx context.Context, sopClass, sopInstance string, actionType uint16, dataset []byte) (uint16, error) {
	c, ok := as.contextFor(sopClass)
	if !ok {
		return 0, fmt.Errorf("N-ACTION: %w for %s", ErrNoPresentationContext, sopClass)
	}
	rq := &command{
		RequestedSOPClassUID:    sopClass,
		CommandField:            nActionRQ,
		CommandDataSetType:      noDataSet,
		RequestedSOPInstanceUID: sopInstance,
		ActionTypeID:            actionType,
	}
	var r io.Reader
	if dataset != nil {
		rq.CommandDataSetType = 0x0000
		r = bytes.NewReader(dataset)
	}
	rsp, err := as.exchange(ctx, c.ID, rq, r)
	if err != nil {
		return 0, fmt.Errorf("N-ACTION: %w", err)
	}
	return rsp.Status, nil
}

// RequestCommitment sends a Storage Commitment Request (N-ACTION, Action
// Type 1) for refs under transactionUID and returns the N-ACTION-RSP's
// status. The result comes later in an N-EVENT-REPORT: on this association
// (ReceiveCommitmentResult) or on one the SCP opens.
func (as *Association) RequestCommitment(ctx context.Context, transactionUID string, refs []SOPReference) (uint16, error) {
	if len(refs) == 0 || len(refs) > MaxCommitmentReferences {
		return 0, fmt.Errorf("N-ACTION: %d references, want 1..%d", len(refs), MaxCommitmentReferences)
	}
	ts := as.TransferSyntaxFor(StorageCommitmentPushModelSOPClass)
	data := encodeCommitmentRequest(transactionUID, refs, ts == ExplicitVRLittleEndian)
	return as.Action(ctx, StorageCommitmentPushModelSOPClass, StorageCommitmentPushModelSOPInstance, CommitmentActionRequest, data)
}

// ReportCommitment sends a Storage Commitment result (N-EVENT-REPORT) as
// the commitment SCP on an association we opened, and returns the
// response's status.
func (as *Association) ReportCommitment(ctx context.Context, res CommitmentResult) (uint16, error) {
	c, ok := as.contextFor(StorageCommitmentPushModelSOPClass)
	if !ok {
		return 0, fmt.Errorf("N-EVENT-REPORT: %w for Storage Commitment", ErrNoPresentationContext)
	}
	data := encodeCommitmentResult(res, c.TransferSyntax == ExplicitVRLittleEndian)
	rsp, err := as.exchange(ctx, c.ID, &command{
		AffectedSOPClassUID:    StorageCommitmentPushModelSOPClass,
		CommandField:           nEventReportRQ,
		CommandDataSetType:     0x0000,
		AffectedSOPInstanceUID: StorageCommitmentPushModelSOPInstance,
		EventTypeID:            res.EventType(),
	}, bytes.NewReader(data))
	if err != nil {
		return 0, fmt.Errorf("N-EVENT-REPORT: %w", err)
	}
	return rsp.Status, nil
}

// ReceiveCommitmentResult waits (up to Timeouts.Idle, or ctx) for the
// N-EVENT-REPORT of a Storage Commitment request sent on this association,
// answers it and returns its result. A report that cannot be read is
// answered with a failure status and returned as an error.
func (as *Association) ReceiveCommitmentResult(ctx context.Context) (res CommitmentResult, err error) {
	if as.broken != nil {
		return res, fmt.Errorf("association unusable: %w", as.broken)
	}
	a := as.a
	stop := context.AfterFunc(ctx, func() { a.nc.Close() })
	defer func() {
		stop()
		if err != nil && ctx.Err() != nil {
			err = ctx.Err()
		}
	}()
	fail := func(err error) (CommitmentResult, error) {
		var o *otherPDU
		if errors.As(err, &o) {
			err = violation(abortUnexpectedPDU, "PDU type 0x%02x while waiting for an N-EVENT-REPORT", o.Type)
		}
		a.failWith(err)
		as.broken = err
		return CommitmentResult{}, fmt.Errorf("N-EVENT-REPORT: %w", err)
	}
	pcid, cmd, err := a.readCommand()
	if err != nil {
		return fail(err)
	}
	var data []byte
	tooBig := false
	if cmd.hasDataSet() {
		if data, tooBig, err = readBounded(a.dataSet(pcid), MaxCommitmentDataSet); err != nil {
			return fail(err)
		}
	}
	if cmd.CommandField != nEventReportRQ {
		return fail(violation(abortUnexpectedPDUParam, "command 0x%04x while waiting for an N-EVENT-REPORT", cmd.CommandField))
	}
	status := StatusSuccess
	var derr error
	switch {
	case a.contexts[pcid].AbstractSyntax != StorageCommitmentPushModelSOPClass:
		status, derr = StatusNoSuchSOPClass, errors.New("N-EVENT-REPORT outside the Storage Commitment context")
	case cmd.EventTypeID != CommitmentEventSuccess && cmd.EventTypeID != CommitmentEventFailures:
		status, derr = StatusNoSuchEventType, fmt.Errorf("event type %d", cmd.EventTypeID)
	case tooBig:
		status, derr = StatusResourceLimitation, errors.New("data set too large")
	case data == nil:
		status, derr = StatusMissingAttribute, errors.New("no data set")
	default:
		res, derr = decodeCommitmentResult(data, a.contexts[pcid].TransferSyntax == ExplicitVRLittleEndian)
		if derr != nil {
			status = commitmentStatus(derr)
		}
	}
	if err := a.sendCommand(pcid, &command{
		AffectedSOPClassUID:       StorageCommitmentPushModelSOPClass,
		CommandField:              nEventReportRSP,
		MessageIDBeingRespondedTo: cmd.MessageID,
		CommandDataSetType:        noDataSet,
		Status:                    status,
		AffectedSOPInstanceUID:    StorageCommitmentPushModelSOPInstance,
		EventTypeID:               cmd.EventTypeID,
	}); err != nil {
		return fail(err)
	}
	if derr != nil {
		return res, fmt.Errorf("N-EVENT-REPORT refused (status 0x%04x): %w", status, derr)
	}
	return res, nil
}
