package dicom

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// CommitmentHandler takes Storage Commitment Push Model requests (PS3.4
// J.3.2) for a Server.
type CommitmentHandler interface {
	// RequestCommitment is called, on the association's goroutine, for
	// each well-formed Storage Commitment Request (N-ACTION, Action Type
	// 1). Its status goes into the N-ACTION-RSP, sent when it returns:
	// success must mean the request is recorded durably, so that its
	// report comes even after a restart. An error with status 0 is
	// answered 0213 (resource limitation) when it wraps
	// ErrOutOfResources, 0110 (processing failure) otherwise.
	//
	// rep sends the N-EVENT-REPORT on this association while it is open.
	// It may be kept and used from any goroutine, but not from within
	// RequestCommitment: a report waits for the N-ACTION-RSP to go first.
	RequestCommitment(ctx context.Context, req CommitmentRequest, rep *Reporter) (status uint16, err error)
}

// CommitmentResultHandler takes the Storage Commitment N-EVENT-REPORTs a
// commitment SCP sends on an association it opened to us, as PS3.4 J.3.3
// allows once the requesting association is gone (we are then the
// commitment SCU). Its status goes into the N-EVENT-REPORT-RSP.
type CommitmentResultHandler interface {
	CommitmentResult(ctx context.Context, callingAE string, r CommitmentResult) uint16
}

// ErrAssociationEnded is returned by Reporter.Report when the association
// the request came on has ended (released, aborted, broken) before the
// report was answered: the report must go on another association.
var ErrAssociationEnded = errors.New("dicom: the association has ended")

// CommitmentStats counts a Server's Storage Commitment traffic.
type CommitmentStats struct {
	Requests        uint64 // N-ACTIONs answered with success
	Refused         uint64 // N-ACTIONs answered with a failure status (malformed, wrong instance, handler refusal)
	ReportsSent     uint64 // N-EVENT-REPORTs sent on the requesting association and answered
	ResultsReceived uint64 // N-EVENT-REPORTs received (as commitment SCU)
}

type commitmentCounters struct {
	requests, refused, reportsSent, results atomic.Uint64
}

// CommitmentStats returns a snapshot of the Storage Commitment counters.
func (s *Server) CommitmentStats() CommitmentStats {
	return CommitmentStats{
		Requests: s.commit.requests.Load(), Refused: s.commit.refused.Load(),
		ReportsSent: s.commit.reportsSent.Load(), ResultsReceived: s.commit.results.Load(),
	}
}

// roleAnswer is our answer to a requestor's SCP/SCU role selection item
// (PS3.7 D.3.3.4). For Storage Commitment (PS3.4 J.3): the requestor may be
// the SCU when we take requests, and the SCP (sending us reports) when we
// take results. For every other SOP class we act as SCP only.
func (s *Server) roleAnswer(r roleSelection) roleSelection {
	if r.SOPClassUID == StorageCommitmentPushModelSOPClass {
		return roleSelection{SOPClassUID: r.SOPClassUID, SCU: r.SCU && s.Commitment != nil, SCP: r.SCP && s.CommitmentResults != nil}
	}
	return roleSelection{SOPClassUID: r.SOPClassUID, SCU: r.SCU, SCP: false}
}

// outbound lets a session send requests of its own (N-EVENT-REPORT) while
// its read loop runs: one message at a time goes out (wmu, held for a
// whole message, command and data set, since PS3.8 does not let two
// messages' fragments interleave), one request of ours is outstanding at a
// time (busy: the default asynchronous operations window), and the read
// loop hands each response to the request waiting for it.
type outbound struct {
	wmu     sync.Mutex
	busy    sync.Mutex
	mu      sync.Mutex
	msgID   uint16
	waiting map[uint16]chan *command
	done    chan struct{}
	once    sync.Once
}

func (o *outbound) init() {
	o.waiting = map[uint16]chan *command{}
	o.done = make(chan struct{})
}

// end tells every waiting and future Report that the association is over.
func (o *outbound) end() { o.once.Do(func() { close(o.done) }) }

// deliver hands a response that arrived to the request waiting for it; one
// nobody waits for is dropped.
func (o *outbound) deliver(c *command) {
	o.mu.Lock()
	ch := o.waiting[c.MessageIDBeingRespondedTo]
	delete(o.waiting, c.MessageIDBeingRespondedTo)
	o.mu.Unlock()
	if ch != nil {
		ch <- c
	}
}

// Reporter sends N-EVENT-REPORTs on the association a Storage Commitment
// request came on.
type Reporter struct {
	ss       *session
	pcid     byte
	ready    chan struct{} // closed once the N-ACTION-RSP was sent
	answered bool          // with success: the association may carry the report
}

// Open reports whether the association is still there to carry a report.
func (r *Reporter) Open() bool {
	select {
	case <-r.ss.out.done:
		return false
	default:
		return true
	}
}

// Report sends an N-EVENT-REPORT-RQ carrying res and waits for its
// response, whose status it returns. It waits first for the N-ACTION-RSP to
// go. ErrAssociationEnded: the association ended before the report was
// answered (or the request was not answered with success); the report must
// go on another association.
func (r *Reporter) Report(ctx context.Context, res CommitmentResult) (uint16, error) {
	ss := r.ss
	o := &ss.out
	select {
	case <-r.ready:
	case <-o.done:
		return 0, ErrAssociationEnded
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	if !r.answered {
		return 0, ErrAssociationEnded
	}
	// One report of ours outstanding at a time.
	select {
	case <-o.done:
		return 0, ErrAssociationEnded
	default:
	}
	o.busy.Lock()
	defer o.busy.Unlock()

	ch := make(chan *command, 1)
	o.mu.Lock()
	o.msgID++
	id := o.msgID
	o.waiting[id] = ch
	o.mu.Unlock()
	defer func() {
		o.mu.Lock()
		delete(o.waiting, id)
		o.mu.Unlock()
	}()
	explicit := ss.a.contexts[r.pcid].TransferSyntax == ExplicitVRLittleEndian
	data := encodeCommitmentResult(res, explicit)
	err := ss.send(r.pcid, &command{
		AffectedSOPClassUID:    StorageCommitmentPushModelSOPClass,
		CommandField:           nEventReportRQ,
		MessageID:              id,
		CommandDataSetType:     0x0000,
		AffectedSOPInstanceUID: StorageCommitmentPushModelSOPInstance,
		EventTypeID:            res.EventType(),
	}, data)
	if err != nil {
		// A write that failed leaves the association broken: the read
		// loop notices and ends it.
		ss.a.nc.Close()
		return 0, fmt.Errorf("%w: sending the N-EVENT-REPORT: %v", ErrAssociationEnded, err)
	}
	// The peer answers within Idle or the read loop ends the
	// association (and so this wait) anyway; reportDeadline only keeps a
	// caller without a deadline from waiting on a stuck one for ever.
	timer := time.NewTimer(reportDeadline)
	defer timer.Stop()
	select {
	case <-timer.C:
		return 0, fmt.Errorf("%w: no N-EVENT-REPORT-RSP within %v", ErrAssociationEnded, reportDeadline)
	case rsp := <-ch:
		ss.s.commit.reportsSent.Add(1)
		return rsp.Status, nil
	case <-o.done:
		return 0, ErrAssociationEnded
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// send writes one message, command and optional data set, with no other
// message's fragments in between.
func (ss *session) send(pcid byte, c *command, data []byte) error {
	ss.out.wmu.Lock()
	defer ss.out.wmu.Unlock()
	if err := ss.a.sendCommand(pcid, c); err != nil {
		return err
	}
	if data != nil {
		if _, err := ss.a.sendDataSet(pcid, bytes.NewReader(data)); err != nil {
			return err
		}
	}
	return nil
}

// readBounded reads a data set of at most max bytes; a larger one is read
// to its end and dropped (so the association stays in step), and too is
// true.
func readBounded(r io.Reader, max int) (b []byte, too bool, err error) {
	b, err = io.ReadAll(io.LimitReader(r, int64(max)+1))
	if err != nil {
		return nil, false, err
	}
	if len(b) > max {
		_, err = io.Copy(io.Discard, r)
		return nil, true, err
	}
	return b, false, nil
}

// commitmentStatus is the N-ACTION or N-EVENT-REPORT status for what is
// wrong with a commitment data set.
func commitmentStatus(err error) uint16 {
	switch {
	case errors.Is(err, errMissingAttribute):
		return StatusMissingAttribute
	case errors.Is(err, errTooMany):
		return StatusResourceLimitation
	}
	return StatusInvalidArgumentValue
}

// comment fits an error comment into LO (64 characters).
func comment(s string) string {
	if len(s) > 64 {
		return s[:64]
	}
	return s
}

// commitmentDataSet reads the data set of an N-ACTION or N-EVENT-REPORT
// (none: nil), at most MaxCommitmentDataSet bytes of it (tooBig: it was
// larger, read to its end and dropped).
func (ss *session) commitmentDataSet(pcid byte, cmd *command) (data []byte, tooBig bool, err error) {
	if !cmd.hasDataSet() {
		return nil, false, nil
	}
	return readBounded(ss.a.dataSet(pcid), MaxCommitmentDataSet)
}

// action answers an N-ACTION-RQ whose command set has arrived.
func (ss *session) action(ctx context.Context, pcid byte, cmd *command) error {
	a, s := ss.a, ss.s
	data, tooBig, err := ss.commitmentDataSet(pcid, cmd)
	if err != nil {
		return err
	}
	pc := a.contexts[pcid]
	status, why := StatusSuccess, ""
	var req CommitmentRequest
	switch {
	case s.Commitment == nil || pc.AbstractSyntax != StorageCommitmentPushModelSOPClass:
		status, why = StatusUnrecognizedOperation, "N-ACTION outside a Storage Commitment context"
	case cmd.RequestedSOPClassUID != StorageCommitmentPushModelSOPClass:
		status, why = StatusNoSuchSOPClass, "Requested SOP Class UID is not Storage Commitment Push Model"
	case cmd.RequestedSOPInstanceUID != StorageCommitmentPushModelSOPInstance:
		status, why = StatusNoSuchSOPInstance, "Requested SOP Instance UID is not 1.2.840.10008.1.20.1.1"
	case cmd.ActionTypeID != CommitmentActionRequest:
		status, why = StatusNoSuchAction, fmt.Sprintf("Action Type ID %d is not 1", cmd.ActionTypeID)
	case !cmd.hasDataSet():
		status, why = StatusMissingAttribute, "no data set"
	case tooBig:
		status, why = StatusResourceLimitation, fmt.Sprintf("data set larger than %d bytes", MaxCommitmentDataSet)
	default:
		tuid, refs, err := decodeCommitmentRequest(data, pc.TransferSyntax == ExplicitVRLittleEndian)
		if err != nil {
			status, why = commitmentStatus(err), err.Error()
			break
		}
		req = CommitmentRequest{CallingAE: ss.rq.CallingAE, CalledAE: ss.rq.CalledAE, TransactionUID: tuid, References: refs, TLS: peerOf(ss.rq.CallingAE, ss.a).TLS}
	}
	rep := &Reporter{ss: ss, pcid: pcid, ready: make(chan struct{})}
	defer close(rep.ready)
	if status == StatusSuccess {
		var err error
		status, err = s.Commitment.RequestCommitment(ctx, req, rep)
		if err != nil {
			if status == StatusSuccess {
				status = StatusProcessingFailure
				if errors.Is(err, ErrOutOfResources) {
					status = StatusResourceLimitation
				}
			}
			why = err.Error()
		}
	}
	rsp := &command{
		AffectedSOPClassUID:       StorageCommitmentPushModelSOPClass,
		CommandField:              nActionRSP,
		MessageIDBeingRespondedTo: cmd.MessageID,
		CommandDataSetType:        noDataSet,
		Status:                    status,
		ErrorComment:              comment(why),
		AffectedSOPInstanceUID:    StorageCommitmentPushModelSOPInstance,
	}
	if status == StatusSuccess {
		rsp.ActionTypeID = CommitmentActionRequest
		s.commit.requests.Add(1)
	} else {
		s.commit.refused.Add(1)
		ss.log.Warn("dicom: storage commitment request refused", "status", fmt.Sprintf("0x%04x", status), "why", why)
	}
	if err := ss.send(pcid, rsp, nil); err != nil {
		return err
	}
	rep.answered = status == StatusSuccess
	return nil
}

// eventReport answers an N-EVENT-REPORT-RQ: a commitment SCP reporting to
// us on an association it opened.
func (ss *session) eventReport(ctx context.Context, pcid byte, cmd *command) error {
	a, s := ss.a, ss.s
	data, tooBig, err := ss.commitmentDataSet(pcid, cmd)
	if err != nil {
		return err
	}
	pc := a.contexts[pcid]
	status, why := StatusSuccess, ""
	var res CommitmentResult
	switch {
	case s.CommitmentResults == nil || pc.AbstractSyntax != StorageCommitmentPushModelSOPClass:
		status, why = StatusUnrecognizedOperation, "N-EVENT-REPORT outside a Storage Commitment context"
	case cmd.AffectedSOPInstanceUID != StorageCommitmentPushModelSOPInstance:
		status, why = StatusNoSuchSOPInstance, "Affected SOP Instance UID is not 1.2.840.10008.1.20.1.1"
	case cmd.EventTypeID != CommitmentEventSuccess && cmd.EventTypeID != CommitmentEventFailures:
		status, why = StatusNoSuchEventType, fmt.Sprintf("Event Type ID %d is not 1 or 2", cmd.EventTypeID)
	case !cmd.hasDataSet():
		status, why = StatusMissingAttribute, "no data set"
	case tooBig:
		status, why = StatusResourceLimitation, fmt.Sprintf("data set larger than %d bytes", MaxCommitmentDataSet)
	default:
		var err error
		if res, err = decodeCommitmentResult(data, pc.TransferSyntax == ExplicitVRLittleEndian); err != nil {
			status, why = commitmentStatus(err), err.Error()
			break
		}
		s.commit.results.Add(1)
		status = s.CommitmentResults.CommitmentResult(ctx, ss.rq.CallingAE, res)
	}
	if why != "" {
		ss.log.Warn("dicom: storage commitment report refused", "status", fmt.Sprintf("0x%04x", status), "why", why)
	}
	return ss.send(pcid, &command{
		AffectedSOPClassUID:       StorageCommitmentPushModelSOPClass,
		CommandField:              nEventReportRSP,
		MessageIDBeingRespondedTo: cmd.MessageID,
		CommandDataSetType:        noDataSet,
		Status:                    status,
		ErrorComment:              comment(why),
		AffectedSOPInstanceUID:    StorageCommitmentPushModelSOPInstance,
		EventTypeID:               cmd.EventTypeID,
	}, nil)
}

// reportDeadline bounds how long a Reporter waits for its
// N-EVENT-REPORT-RSP.
const reportDeadline = 10 * time.Minute
