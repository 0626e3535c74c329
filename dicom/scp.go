package dicom

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// ErrOutOfResources is the error a StoreHandler wraps when it refuses an
// instance for lack of room (a full spool); the C-STORE-RSP then carries
// status A700 (Out of Resources) instead of C000.
var ErrOutOfResources = errors.New("dicom: out of resources")

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("dicom: server closed")

// StoreHandler receives the instances of C-STORE requests.
type StoreHandler interface {
	// BeginStore is called when a C-STORE-RQ's command set has arrived.
	// The data set bytes, exactly as received in the negotiated transfer
	// syntax, are then written to the returned StoreWriter as they arrive.
	// An error refuses the instance: its data set is read and dropped, and
	// the response carries A700 if the error wraps ErrOutOfResources, C000
	// otherwise.
	BeginStore(ctx context.Context, req StoreRequest) (StoreWriter, error)
}

// StoreRequest describes an incoming instance. It holds no patient data.
type StoreRequest struct {
	CallingAE, CalledAE string
	Remote              net.Addr
	SOPClassUID         string
	SOPInstanceUID      string
	TransferSyntaxUID   string
	MessageID           uint16
}

// StoreWriter receives one instance's data set. Exactly one of Commit and
// Abort is called, unless Write failed (then Abort is called).
type StoreWriter interface {
	io.Writer
	// Commit is called after the last fragment. Its status goes into the
	// C-STORE-RSP; success must mean the instance is durable. A non-nil
	// error with status 0 is answered with A700 (when it wraps
	// ErrOutOfResources) or C000.
	Commit(ctx context.Context) (status uint16, err error)
	// Abort is called when the instance cannot be completed (the
	// association broke or was aborted mid-instance, or Write failed): the
	// partial instance must be discarded.
	Abort()
}

// ServerStats is a snapshot of a Server's counters.
type ServerStats struct {
	AssociationsActive   int64  // associations accepted and not yet ended
	Unasked              int64  // connections that have not sent their A-ASSOCIATE-RQ yet
	ConnectionsRefused   uint64 // connections closed at once: too many unasked ones from their address
	TLSHandshakesFailed  uint64 // TLS connections closed because their handshake failed
	AssociationsAccepted uint64 // associations accepted since start
	AssociationsRejected uint64 // A-ASSOCIATE-RJ sent
	AssociationsAborted  uint64 // ended by an A-ABORT, a timeout or a broken connection
	InstancesStored      uint64 // C-STORE answered with success or a warning
	InstancesFailed      uint64 // C-STORE answered with a failure status
	BytesReceived        uint64 // data set bytes received by C-STORE
}

// Server is a DICOM SCP: it accepts associations for Verification and, with
// a StoreHandler, for every Storage SOP class in any transfer syntax it can
// keep as received. The zero value accepts every called and calling AE
// title. Fields must not change after Serve is called.
type Server struct {
	// AETitle is our AE title; an association asking for another one is
	// rejected (called AE title not recognized). Empty: accept any.
	AETitle string
	// Allow decides whether a peer (its calling AE title, address and TLS
	// certificate) may associate. Nil: everyone may.
	Allow func(Peer) bool
	// MaxAssociations bounds concurrent associations; beyond it a new one
	// is rejected transiently (local limit exceeded). 0: unbounded. A slot
	// is taken when an association is accepted, not when a connection
	// opens: idle connections cannot use the slots up.
	MaxAssociations int
	// MaxAsyncOps is the asynchronous operations window (PS3.7 D.3.3.3) a
	// requestor that offers one may use: that many C-STOREs outstanding,
	// the next arriving while earlier ones are made durable. A requestor
	// that offers none works one at a time. 0: DefaultMaxAsyncOps; 1: one
	// at a time for everyone.
	MaxAsyncOps int
	// MaxUnaskedPerPeer bounds the connections from one address that have
	// not sent their A-ASSOCIATE-RQ yet; one more is closed at once.
	// 0: DefaultMaxUnaskedPerPeer.
	MaxUnaskedPerPeer int
	// MaxPDULength is the maximum P-DATA-TF length we advertise.
	// 0: DefaultMaxPDULength.
	MaxPDULength uint32
	Timeouts     Timeouts
	// Store receives C-STORE instances. Nil: only Verification is accepted.
	Store StoreHandler
	// Commitment takes Storage Commitment Push Model requests (N-ACTION);
	// CommitmentResults takes the reports (N-EVENT-REPORT) a commitment
	// SCP sends us. Either makes the server accept that SOP class.
	Commitment        CommitmentHandler
	CommitmentResults CommitmentResultHandler
	// Logger receives connection-level events; it never gets patient data.
	// Nil: slog.Default().
	Logger *slog.Logger

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*assoc]context.CancelFunc
	closing   atomic.Bool
	wg        sync.WaitGroup

	active, unasked                       atomic.Int64
	unaskedBy                             map[string]int // peer IP → connections not yet asked, under mu
	refusedConns, tlsFailed               atomic.Uint64
	accepted, rejected, aborted           atomic.Uint64
	instancesStored, instancesFailed, rxB atomic.Uint64
	commit                                commitmentCounters
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() ServerStats {
	return ServerStats{
		AssociationsActive:   s.active.Load(),
		Unasked:              s.unasked.Load(),
		ConnectionsRefused:   s.refusedConns.Load(),
		TLSHandshakesFailed:  s.tlsFailed.Load(),
		AssociationsAccepted: s.accepted.Load(),
		AssociationsRejected: s.rejected.Load(),
		AssociationsAborted:  s.aborted.Load(),
		InstancesStored:      s.instancesStored.Load(),
		InstancesFailed:      s.instancesFailed.Load(),
		BytesReceived:        s.rxB.Load(),
	}
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *Server) maxPDU() uint32 {
	if s.MaxPDULength == 0 {
		return DefaultMaxPDULength
	}
	return s.MaxPDULength
}

// Serve accepts connections on ln until Shutdown, serving each association
// on its own goroutine. It returns ErrServerClosed after Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		return ErrServerClosed
	}
	if s.listeners == nil {
		s.listeners = map[net.Listener]struct{}{}
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()

	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, errTooManyFiles) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.logger().Warn("dicom: accept failed, retrying", "err", err, "in", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		ctx, cancel := context.WithCancel(context.Background())
		a := newAssoc(nc, s.Timeouts, s.maxPDU())
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			cancel()
			nc.Close()
			return ErrServerClosed
		}
		if s.conns == nil {
			s.conns = map[*assoc]context.CancelFunc{}
		}
		peer := peerIP(nc.RemoteAddr())
		if s.unaskedBy == nil {
			s.unaskedBy = map[string]int{}
		}
		if s.unaskedBy[peer] >= s.maxUnasked() || s.unasked.Load() >= MaxUnaskedTotal {
			s.mu.Unlock()
			cancel()
			nc.Close()
			if n := s.refusedConns.Add(1); n&(n-1) == 0 { // the 1st, 2nd, 4th, 8th…: a flood logs little
				s.logger().Warn("dicom: connection closed: too many from this address have not asked for an association yet",
					"remote", nc.RemoteAddr().String(), "unasked", s.maxUnasked(), "refused_so_far", n)
			}
			continue
		}
		s.unaskedBy[peer]++
		s.unasked.Add(1)
		s.conns[a] = cancel
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(ctx, a, peer)
	}
}

// Shutdown stops accepting connections and waits for running associations
// to end. When ctx expires first, it aborts them (A-ABORT, which makes each
// in-flight StoreWriter's Abort run) and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	for ln := range s.listeners {
		ln.Close()
	}
	// A connection that has not been accepted has nothing in flight: it
	// is closed now, not waited for.
	for a := range s.conns {
		if !a.accepted.Load() {
			a.nc.Close()
		}
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	for a, cancel := range s.conns {
		cancel()
		a.abortNow(abortSourceUser, abortReasonNotSpecified)
	}
	s.mu.Unlock()
	<-done
	return ctx.Err()
}

// serveConn runs one association from A-ASSOCIATE-RQ to its end. Nothing
// that happens in it reaches another association.
func (s *Server) serveConn(ctx context.Context, a *assoc, peer string) {
	remote := a.nc.RemoteAddr()
	log := s.logger().With("remote", remote.String())
	unasked := true
	asked := func() {
		if unasked {
			unasked = false
			s.unasked.Add(-1)
			s.mu.Lock()
			if s.unaskedBy[peer]--; s.unaskedBy[peer] <= 0 {
				delete(s.unaskedBy, peer)
			}
			s.mu.Unlock()
		}
	}
	slot := false
	defer func() {
		if r := recover(); r != nil {
			log.Error("dicom: association panicked", "panic", r, "stack", string(debug.Stack()))
			s.aborted.Add(1)
			a.abort(abortSourceProvider, abortReasonNotSpecified)
		}
		a.nc.Close()
		asked()
		if slot {
			s.active.Add(-1)
		}
		s.mu.Lock()
		if cancel := s.conns[a]; cancel != nil {
			cancel()
		}
		delete(s.conns, a)
		s.mu.Unlock()
		s.wg.Done()
	}()

	// The connection counts against its address until it is accepted: a
	// rejected or garbled request waiting for its peer to close still
	// holds a socket, and that wait is Timeouts.Request, not ARTIM.
	artim := a.t.ARTIM
	a.t.ARTIM = a.t.Request
	if tc, ok := a.nc.(*tls.Conn); ok {
		// The handshake is bounded like the request it precedes; a peer
		// that fails it (no certificate, an expired one, another CA) never
		// gets to ask.
		hctx, cancel := context.WithTimeout(ctx, a.t.Request)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			log.Warn("dicom: TLS handshake failed", "err", err.Error())
			s.tlsFailed.Add(1)
			return
		}
	}
	rq, err := s.readAssociateRQ(a)
	if err != nil {
		log.Warn("dicom: bad association request", "err", describe(err))
		s.aborted.Add(1)
		a.failWith(err)
		return
	}
	log = log.With("calling", rq.CallingAE, "called", rq.CalledAE)
	if _, ok := a.nc.(*tls.Conn); ok {
		log = log.With("tls", true)
	}
	rj := s.check(rq, a)
	if rj == nil {
		// The slot is taken once the request is acceptable, and given back
		// when the limit is already reached.
		if n := s.active.Add(1); s.MaxAssociations > 0 && n > int64(s.MaxAssociations) {
			s.active.Add(-1)
			rj = &RejectError{rejectTransient, rejectSourcePresentation, rejectLocalLimitExceeded}
		} else {
			slot = true
		}
	}
	if rj != nil {
		log.Warn("dicom: association rejected", "reason", rj.Error())
		s.rejected.Add(1)
		if a.write(rejectPDU(rj.Result, rj.Source, rj.Reason)) == nil {
			a.closeGracefully()
		}
		return
	}
	ac := s.negotiate(a, rq)
	// Accepted before the A-ASSOCIATE-AC leaves: a peer that has read it
	// may send at once, and Shutdown must then wait for the association,
	// not close it as one that was never accepted.
	a.accepted.Store(true)
	if err := a.write(appendAssociate(nil, pduAssociateAC, ac)); err != nil {
		log.Warn("dicom: sending A-ASSOCIATE-AC", "err", describe(err))
		s.aborted.Add(1)
		return
	}
	a.t.ARTIM = artim
	asked()
	s.accepted.Add(1)
	log.Info("dicom: association accepted", "contexts", len(a.contexts), "peer_max_pdu", a.peerMax)

	sess := &session{s: s, a: a, rq: rq, remote: remote, log: log}
	err = sess.run(ctx)
	var o *otherPDU
	switch {
	case err == nil:
		log.Info("dicom: association released")
	case errors.As(err, &o):
		log.Warn("dicom: association aborted", "err", fmt.Sprintf("unexpected PDU type 0x%02x", o.Type))
		s.aborted.Add(1)
		a.abort(abortSourceProvider, abortUnexpectedPDU)
	default:
		log.Warn("dicom: association aborted", "err", describe(err))
		s.aborted.Add(1)
		a.failWith(err)
	}
}

// readAssociateRQ waits up to Timeouts.Request for the A-ASSOCIATE-RQ.
func (s *Server) readAssociateRQ(a *assoc) (*associate, error) {
	a.nc.SetReadDeadline(time.Now().Add(a.t.Request))
	h, body, err := readPDU(a.br, a.ourMax)
	if err != nil {
		return nil, err
	}
	if h.Type != pduAssociateRQ {
		return nil, violation(abortUnexpectedPDU, "PDU type 0x%02x before A-ASSOCIATE-RQ", h.Type)
	}
	rq, err := decodeAssociate(body, false)
	if err != nil {
		return nil, violation(abortInvalidPDUParameterValue, "%v", err)
	}
	return rq, nil
}

// check returns the rejection for rq, or nil to accept it (the association
// limit is checked when the slot is taken).
func (s *Server) check(rq *associate, a *assoc) *RejectError {
	switch {
	case rq.ProtocolVersion&1 == 0:
		return &RejectError{rejectPermanent, rejectSourceACSE, rejectProtocolVersionUnsupported}
	case rq.ApplicationContext != ApplicationContextName:
		return &RejectError{rejectPermanent, rejectSourceUser, rejectAppContextUnsupported}
	case s.AETitle != "" && rq.CalledAE != s.AETitle:
		return &RejectError{rejectPermanent, rejectSourceUser, rejectCalledAENotRecognized}
	case s.Allow != nil && !s.Allow(peerOf(rq.CallingAE, a)):
		return &RejectError{rejectPermanent, rejectSourceUser, rejectCallingAENotRecognized}
	case len(rq.Contexts) == 0:
		return &RejectError{rejectPermanent, rejectSourceUser, rejectNoReason}
	}
	return nil
}

// peerOf describes who asks on a: over TLS, with the certificate the
// handshake verified.
func peerOf(callingAE string, a *assoc) Peer {
	p := Peer{CallingAE: callingAE, Remote: a.nc.RemoteAddr()}
	if tc, ok := a.nc.(*tls.Conn); ok {
		p.TLS = true
		if st := tc.ConnectionState(); len(st.VerifiedChains) > 0 && len(st.VerifiedChains[0]) > 0 {
			p.Certificate = st.VerifiedChains[0][0]
		}
	}
	return p
}

// Supports reports whether the server accepts abstractSyntax (a SOP class
// UID) with its current configuration.
func (s *Server) Supports(abstractSyntax string) bool {
	return abstractSyntax == VerificationSOPClass || s.Store != nil && IsStorageSOPClass(abstractSyntax) ||
		abstractSyntax == StorageCommitmentPushModelSOPClass && (s.Commitment != nil || s.CommitmentResults != nil)
}

// negotiate builds the A-ASSOCIATE-AC for rq and records the accepted
// contexts and the peer's maximum PDU length in a.
func (s *Server) negotiate(a *assoc, rq *associate) *associate {
	a.peerMax = rq.User.MaxPDULength
	ac := &associate{
		ProtocolVersion:    1,
		CalledAE:           rq.CalledAE,
		CallingAE:          rq.CallingAE,
		ApplicationContext: ApplicationContextName,
		User: userInformation{
			MaxPDULength:           a.ourMax,
			ImplementationClassUID: ImplementationClassUID,
			ImplementationVersion:  ImplementationVersionName,
		},
	}
	if rq.User.AsyncOps != nil {
		// PS3.7 D.3.3.3: the requestor may invoke as many operations as
		// it offered, up to our window (0 offered: no limit of its own);
		// we invoke one at a time (N-EVENT-REPORTs).
		ac.User.AsyncOps = &[2]uint16{uint16(s.asyncWindow(rq)), 1}
	}
	seen := map[byte]bool{}
	for _, pc := range rq.Contexts {
		res := presentationContext{ID: pc.ID, Result: contextAccepted}
		ts := ""
		switch {
		case pc.ID%2 == 0 || seen[pc.ID]:
			res.Result = contextNoReason
		case !s.Supports(pc.AbstractSyntax):
			res.Result = contextAbstractSyntaxUnsupported
		default:
			for _, t := range pc.TransferSyntaxes {
				if t == ImplicitVRLittleEndian || IsStorageSOPClass(pc.AbstractSyntax) && IsStorableTransferSyntax(t) ||
					pc.AbstractSyntax == VerificationSOPClass && (t == ExplicitVRLittleEndian || t == ExplicitVRBigEndian) ||
					pc.AbstractSyntax == StorageCommitmentPushModelSOPClass && t == ExplicitVRLittleEndian {
					ts = t
					break
				}
			}
			if ts == "" {
				res.Result = contextTransferSyntaxUnsupported
			}
		}
		seen[pc.ID] = true
		if ts == "" {
			// Not significant when not accepted, but DCMTK and others
			// expect a sub-item.
			ts = ImplicitVRLittleEndian
		} else {
			a.contexts[pc.ID] = acceptedContext{AbstractSyntax: pc.AbstractSyntax, TransferSyntax: ts}
		}
		res.TransferSyntaxes = []string{ts}
		ac.Contexts = append(ac.Contexts, res)
	}
	for _, r := range rq.User.Roles {
		if !s.Supports(r.SOPClassUID) {
			continue
		}
		ac.User.Roles = append(ac.User.Roles, s.roleAnswer(r))
	}
	return ac
}

// DefaultMaxAsyncOps is Server.MaxAsyncOps when it is 0.
const DefaultMaxAsyncOps = 8

// asyncWindow is how many C-STOREs the requestor of rq may have
// outstanding.
func (s *Server) asyncWindow(rq *associate) int {
	max := s.MaxAsyncOps
	if max <= 0 {
		max = DefaultMaxAsyncOps
	}
	if rq.User.AsyncOps == nil {
		return 1
	}
	if invoked := int(rq.User.AsyncOps[0]); invoked > 0 && invoked < max {
		return invoked
	}
	return max
}

// session is one accepted association on the server side.
type session struct {
	s      *Server
	a      *assoc
	rq     *associate
	remote net.Addr
	log    *slog.Logger
	out    outbound // requests of ours (N-EVENT-REPORT) and the writes they share
	// slots bounds the C-STOREs outstanding (the asynchronous operations
	// window): one is taken when an instance has arrived and is being made
	// durable, given back once it is answered; pending waits for them.
	slots   chan struct{}
	pending sync.WaitGroup
}

// run serves DIMSE messages until the peer releases (nil) or something
// ends the association (an error for serveConn to act on).
func (ss *session) run(ctx context.Context) error {
	a := ss.a
	ss.out.init()
	defer ss.out.end()
	ss.slots = make(chan struct{}, ss.s.asyncWindow(ss.rq))
	// Every instance received is committed and answered (or its answer
	// fails with the connection) before the association ends.
	defer ss.pending.Wait()
	for {
		pcid, cmd, err := a.readCommand()
		if err != nil {
			var o *otherPDU
			if errors.As(err, &o) && o.Type == pduReleaseRQ {
				ss.pending.Wait() // every C-STORE answered before the A-RELEASE-RP
				ss.out.end()      // no report of ours may follow it
				ss.out.wmu.Lock()
				err := a.write(releaseRPPDU)
				ss.out.wmu.Unlock()
				if err != nil {
					return err
				}
				a.closeGracefully()
				return nil
			}
			return err
		}
		switch {
		case cmd.CommandField == cEchoRQ:
			if cmd.hasDataSet() {
				if _, err := io.Copy(io.Discard, a.dataSet(pcid)); err != nil {
					return err
				}
			}
			err = ss.respond(pcid, cmd, cEchoRSP, StatusSuccess, "")
		case cmd.CommandField == cStoreRQ:
			err = ss.store(ctx, pcid, cmd)
		case cmd.CommandField == nActionRQ:
			err = ss.action(ctx, pcid, cmd)
		case cmd.CommandField == nEventReportRQ:
			err = ss.eventReport(ctx, pcid, cmd)
		case cmd.isResponse() || cmd.CommandField == cCancelRQ:
			// Only our N-EVENT-REPORTs are answered; anything else has
			// nothing of ours to answer or cancel: drop it.
			if cmd.hasDataSet() {
				_, err = io.Copy(io.Discard, a.dataSet(pcid))
			}
			if err == nil && cmd.CommandField == nEventReportRSP {
				ss.out.deliver(cmd)
			}
		default:
			if cmd.hasDataSet() {
				if _, err := io.Copy(io.Discard, a.dataSet(pcid)); err != nil {
					return err
				}
			}
			ss.log.Info("dicom: unsupported DIMSE command", "command_field", fmt.Sprintf("0x%04x", cmd.CommandField))
			err = ss.respond(pcid, cmd, cmd.CommandField|0x8000, StatusUnrecognizedOperation, "")
		}
		if err != nil {
			return err
		}
	}
}

func (ss *session) respond(pcid byte, rq *command, field, status uint16, comment string) error {
	return ss.send(pcid, &command{
		AffectedSOPClassUID:       rq.AffectedSOPClassUID,
		CommandField:              field,
		MessageIDBeingRespondedTo: rq.MessageID,
		CommandDataSetType:        noDataSet,
		Status:                    status,
		ErrorComment:              comment,
		AffectedSOPInstanceUID:    rq.AffectedSOPInstanceUID,
	}, nil)
}

// store handles one C-STORE-RQ whose command set has arrived: its data set
// goes to the StoreHandler, its response carries the handler's verdict.
func (ss *session) store(ctx context.Context, pcid byte, cmd *command) error {
	a, s := ss.a, ss.s
	pc := a.contexts[pcid]
	if !cmd.hasDataSet() {
		s.instancesFailed.Add(1)
		return ss.respond(pcid, cmd, cStoreRSP, StatusCannotUnderstand, "C-STORE-RQ without a data set")
	}
	data := a.dataSet(pcid)
	defer func() { s.rxB.Add(uint64(data.n)) }()
	refuse := func(status uint16, comment string) error {
		if _, err := io.Copy(io.Discard, data); err != nil {
			return err
		}
		s.instancesFailed.Add(1)
		return ss.respond(pcid, cmd, cStoreRSP, status, comment)
	}
	switch {
	case s.Store == nil || !IsStorageSOPClass(pc.AbstractSyntax):
		return refuse(StatusSOPClassNotSupported, "not a storage presentation context")
	case cmd.AffectedSOPClassUID != pc.AbstractSyntax:
		return refuse(StatusDataSetMismatch, "SOP class differs from the presentation context's")
	case cmd.AffectedSOPInstanceUID == "":
		return refuse(StatusCannotUnderstand, "no affected SOP instance UID")
	}
	req := StoreRequest{
		CallingAE:         ss.rq.CallingAE,
		CalledAE:          ss.rq.CalledAE,
		Remote:            ss.remote,
		SOPClassUID:       cmd.AffectedSOPClassUID,
		SOPInstanceUID:    cmd.AffectedSOPInstanceUID,
		TransferSyntaxUID: pc.TransferSyntax,
		MessageID:         cmd.MessageID,
	}
	w, err := s.Store.BeginStore(ctx, req)
	if err != nil {
		ss.log.Warn("dicom: instance refused", "sop_class", req.SOPClassUID, "err", err)
		return refuse(StatusForError(err), "")
	}
	sink := &sinkWriter{w: w}
	if _, err := io.Copy(sink, data); err != nil {
		w.Abort()
		return err
	}
	if sink.err != nil {
		w.Abort()
		ss.log.Warn("dicom: writing instance failed", "sop_class", req.SOPClassUID, "err", sink.err)
		s.instancesFailed.Add(1)
		return ss.respond(pcid, cmd, cStoreRSP, StatusForError(sink.err), "")
	}
	n := data.n
	commit := func() error {
		status, err := w.Commit(ctx)
		if err != nil {
			ss.log.Warn("dicom: committing instance failed", "sop_class", req.SOPClassUID, "err", err)
			if status == StatusSuccess {
				status = StatusForError(err)
			}
		}
		if IsFailureStatus(status) {
			s.instancesFailed.Add(1)
		} else {
			s.instancesStored.Add(1)
		}
		ss.log.Debug("dicom: C-STORE", "sop_class", req.SOPClassUID, "status", fmt.Sprintf("0x%04x", status), "bytes", n)
		return ss.respond(pcid, cmd, cStoreRSP, status, "")
	}
	if cap(ss.slots) <= 1 {
		return commit()
	}
	// Within the window, the next instance is read while this one is
	// made durable; its answer follows when it is.
	ss.slots <- struct{}{}
	ss.pending.Add(1)
	go func() {
		defer ss.pending.Done()
		defer func() { <-ss.slots }()
		if err := commit(); err != nil {
			// The connection broke: the read loop finds out too.
			ss.log.Debug("dicom: answering a C-STORE failed", "err", err)
		}
	}()
	return nil
}

// IsFailureStatus reports whether a C-STORE status is a failure (not success, not
// a warning B000/B006/B007, not 0x0107 attribute list warning).
func IsFailureStatus(status uint16) bool {
	return status != StatusSuccess && status&0xF000 != 0xB000 && status != 0x0107 && status != 0x0116
}

// StatusForError is the C-STORE status for a handler's error: A700 (out of
// resources) when it wraps ErrOutOfResources, C000 otherwise.
func StatusForError(err error) uint16 {
	if errors.Is(err, ErrOutOfResources) {
		return StatusOutOfResources
	}
	return StatusCannotUnderstand
}

// sinkWriter keeps the data set flowing after the handler's writer fails,
// so the association stays in step and can still answer.
type sinkWriter struct {
	w   io.Writer
	err error
}

func (s *sinkWriter) Write(b []byte) (int, error) {
	if s.err == nil {
		var n int
		n, s.err = s.w.Write(b)
		if s.err == nil && n < len(b) {
			s.err = io.ErrShortWrite
		}
	}
	return len(b), nil
}

// MaxUnaskedTotal bounds the connections from all addresses together that
// have not been accepted yet.
const MaxUnaskedTotal = 256

// DefaultMaxUnaskedPerPeer is how many connections from one address may
// wait to send their A-ASSOCIATE-RQ at once: a modality opens one or a few
// associations at a time and asks at once.
const DefaultMaxUnaskedPerPeer = 8

func (s *Server) maxUnasked() int {
	if s.MaxUnaskedPerPeer > 0 {
		return s.MaxUnaskedPerPeer
	}
	return DefaultMaxUnaskedPerPeer
}

// peerIP is the address a connection comes from, without its port: an
// IPv4 address, or an IPv6 address's /64 (one host may use any address of
// its /64).
func peerIP(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		if v4 := ta.IP.To4(); v4 != nil {
			return v4.String()
		}
		return ta.IP.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}
