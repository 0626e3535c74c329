package dicom

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// ErrNoPresentationContext is returned when the association has no accepted
// presentation context for the requested SOP class and transfer syntax.
var ErrNoPresentationContext = errors.New("dicom: no accepted presentation context")

// PresentationContextProposal is one presentation context an SCU proposes:
// an abstract syntax (SOP class UID) and the transfer syntaxes it can send,
// preferred first.
type PresentationContextProposal struct {
	AbstractSyntax   string
	TransferSyntaxes []string
}

// AcceptedContext is a presentation context the peer accepted.
type AcceptedContext struct {
	ID             byte
	AbstractSyntax string
	TransferSyntax string
}

// SOPClassTransfer pairs a SOP class with the transfer syntax an instance is
// encoded in.
type SOPClassTransfer struct {
	SOPClassUID       string
	TransferSyntaxUID string
}

// StorageProposals proposes one presentation context per distinct
// (SOP class, transfer syntax) pair. For Implicit and Explicit VR Little
// Endian the other one is offered second, so that the caller learns (from
// Association.Accepted) when the peer takes only the other one; sending in
// it needs a re-encoded data set. Compressed syntaxes are proposed alone:
// wardgate does not transcode them.
func StorageProposals(instances []SOPClassTransfer) []PresentationContextProposal {
	seen := map[SOPClassTransfer]bool{}
	var out []PresentationContextProposal
	for _, in := range instances {
		if seen[in] {
			continue
		}
		seen[in] = true
		ts := []string{in.TransferSyntaxUID}
		switch in.TransferSyntaxUID {
		case ImplicitVRLittleEndian:
			ts = append(ts, ExplicitVRLittleEndian)
		case ExplicitVRLittleEndian:
			ts = append(ts, ImplicitVRLittleEndian)
		}
		out = append(out, PresentationContextProposal{AbstractSyntax: in.SOPClassUID, TransferSyntaxes: ts})
	}
	return out
}

// Dialer opens associations as an SCU.
type Dialer struct {
	CallingAE string // our AE title
	CalledAE  string // the peer's AE title
	// Roles proposes SCP/SCU role selection (PS3.7 D.3.3.4) for these
	// SOP classes: the roles we, the requestor, offer to take.
	Roles map[string]Role
	// MaxOpsInvoked, when not 0, proposes an asynchronous operations
	// window (PS3.7 D.3.3.3): we would have that many operations
	// outstanding. Association.AsyncWindow says what the acceptor
	// granted. (Store itself waits for each answer.)
	MaxOpsInvoked uint16
	// MaxPDULength is the maximum P-DATA-TF length we advertise.
	// 0: DefaultMaxPDULength.
	MaxPDULength uint32
	Timeouts     Timeouts
	// TLS, when set, makes the association DICOM TLS: the connection is
	// wrapped and its handshake done before A-ASSOCIATE-RQ. Pass it
	// through BCP195 for the profile; ServerName defaults to addr's host.
	TLS *tls.Config
}

// Association is an established association on the requestor side. Its
// methods must not be called concurrently, except Abort.
type Association struct {
	a        *assoc
	accepted []AcceptedContext
	msgID    uint16
	broken   error
	roles    []roleSelection // the acceptor's answers to our role selection items
	window   int             // operations we may have outstanding (0: no limit)
}

// Dial connects to addr and negotiates an association proposing contexts.
// A rejection is returned as a *RejectError.
func (d Dialer) Dial(ctx context.Context, addr string, contexts []PresentationContextProposal) (*Association, error) {
	if len(contexts) == 0 || len(contexts) > 128 {
		return nil, fmt.Errorf("dicom: %d presentation contexts proposed, want 1..128", len(contexts))
	}
	for _, ae := range []string{d.CallingAE, d.CalledAE} {
		if ae == "" || len(ae) > 16 {
			return nil, fmt.Errorf("dicom: AE title %q must have 1..16 characters", ae)
		}
	}
	ourMax := d.MaxPDULength
	if ourMax == 0 {
		ourMax = DefaultMaxPDULength
	}
	rq := &associate{
		ProtocolVersion:    1,
		CalledAE:           d.CalledAE,
		CallingAE:          d.CallingAE,
		ApplicationContext: ApplicationContextName,
		User: userInformation{
			MaxPDULength:           ourMax,
			ImplementationClassUID: ImplementationClassUID,
			ImplementationVersion:  ImplementationVersionName,
		},
	}
	if d.MaxOpsInvoked != 0 {
		rq.User.AsyncOps = &[2]uint16{d.MaxOpsInvoked, 1}
	}
	for i, c := range contexts {
		if c.AbstractSyntax == "" || len(c.TransferSyntaxes) == 0 {
			return nil, fmt.Errorf("dicom: presentation context %d needs an abstract syntax and transfer syntaxes", i)
		}
		rq.Contexts = append(rq.Contexts, presentationContext{
			ID: byte(2*i + 1), AbstractSyntax: c.AbstractSyntax, TransferSyntaxes: c.TransferSyntaxes,
		})
	}
	for _, uid := range sortedKeys(d.Roles) {
		rq.User.Roles = append(rq.User.Roles, roleSelection{SOPClassUID: uid, SCU: d.Roles[uid].SCU, SCP: d.Roles[uid].SCP})
	}
	if err := checkAssociateSizes(rq); err != nil {
		return nil, fmt.Errorf("dicom: %w", err)
	}

	var nd net.Dialer
	nc, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dicom: associating with %s at %s: %w", d.CalledAE, addr, err)
	}
	if d.TLS != nil {
		cfg := d.TLS
		if cfg.ServerName == "" {
			cfg = cfg.Clone()
			cfg.ServerName, _, _ = net.SplitHostPort(addr)
		}
		tc := tls.Client(nc, cfg)
		hctx := ctx
		if t := d.Timeouts.withDefaults().ARTIM; t > 0 {
			var cancel context.CancelFunc
			hctx, cancel = context.WithTimeout(ctx, t)
			defer cancel()
		}
		if err := tc.HandshakeContext(hctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("dicom: TLS with %s at %s: %w", d.CalledAE, addr, err)
		}
		nc = tc
	}
	a := newAssoc(nc, d.Timeouts, ourMax)
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	as, err := negotiateAsRequestor(a, rq)
	if err != nil {
		nc.Close()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("dicom: associating with %s at %s: %w", d.CalledAE, addr, err)
	}
	return as, nil
}

func negotiateAsRequestor(a *assoc, rq *associate) (*Association, error) {
	if err := a.write(appendAssociate(nil, pduAssociateRQ, rq)); err != nil {
		return nil, err
	}
	a.nc.SetReadDeadline(time.Now().Add(a.t.ARTIM))
	h, body, err := readPDU(a.br, a.ourMax)
	if err != nil {
		a.failWith(err)
		return nil, err
	}
	switch h.Type {
	case pduAssociateAC:
	case pduAssociateRJ:
		return nil, &RejectError{Result: body[1], Source: body[2], Reason: body[3]}
	case pduAbort:
		return nil, &AbortError{Source: body[2], Reason: body[3]}
	default:
		a.abort(abortSourceProvider, abortUnexpectedPDU)
		return nil, fmt.Errorf("peer answered with PDU type 0x%02x", h.Type)
	}
	ac, err := decodeAssociate(body, true)
	if err != nil {
		a.abort(abortSourceProvider, abortInvalidPDUParameterValue)
		return nil, err
	}
	a.peerMax = ac.User.MaxPDULength
	as := &Association{a: a, roles: ac.User.Roles, window: 1}
	if ac.User.AsyncOps != nil && rq.User.AsyncOps != nil {
		as.window = int(ac.User.AsyncOps[0])
	}
	for _, pc := range ac.Contexts {
		if pc.Result != contextAccepted {
			continue
		}
		i := int(pc.ID-1) / 2
		if pc.ID%2 == 0 || i >= len(rq.Contexts) || !contains(rq.Contexts[i].TransferSyntaxes, pc.TransferSyntaxes[0]) {
			continue // nothing we proposed: ignore rather than misuse it
		}
		ctx := acceptedContext{AbstractSyntax: rq.Contexts[i].AbstractSyntax, TransferSyntax: pc.TransferSyntaxes[0]}
		a.contexts[pc.ID] = ctx
		as.accepted = append(as.accepted, AcceptedContext{ID: pc.ID, AbstractSyntax: ctx.AbstractSyntax, TransferSyntax: ctx.TransferSyntax})
	}
	return as, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Accepted lists the presentation contexts the peer accepted.
func (as *Association) Accepted() []AcceptedContext {
	return append([]AcceptedContext(nil), as.accepted...)
}

// AcceptedTransferSyntax reports whether the peer accepted abstractSyntax
// in transfer syntax ts.
func (as *Association) AcceptedTransferSyntax(abstractSyntax, ts string) bool {
	_, ok := as.context(abstractSyntax, ts)
	return ok
}

func (as *Association) context(abstractSyntax, ts string) (byte, bool) {
	for _, c := range as.accepted {
		if c.AbstractSyntax == abstractSyntax && c.TransferSyntax == ts {
			return c.ID, true
		}
	}
	return 0, false
}

// AsyncWindow is how many operations the acceptor lets us have
// outstanding: 1 unless a window was proposed (MaxOpsInvoked) and granted;
// 0 means no limit.
func (as *Association) AsyncWindow() int { return as.window }

// PeerMaxPDULength is the maximum PDU length the peer accepts (0: unlimited).
func (as *Association) PeerMaxPDULength() uint32 { return as.a.peerMax }

// Echo sends a C-ECHO-RQ and returns the response status.
func (as *Association) Echo(ctx context.Context) (uint16, error) {
	var pcid byte
	for _, c := range as.accepted {
		if c.AbstractSyntax == VerificationSOPClass {
			pcid = c.ID
			break
		}
	}
	if pcid == 0 {
		return 0, fmt.Errorf("C-ECHO: %w for Verification", ErrNoPresentationContext)
	}
	rsp, err := as.exchange(ctx, pcid, &command{
		AffectedSOPClassUID: VerificationSOPClass,
		CommandField:        cEchoRQ,
		CommandDataSetType:  noDataSet,
	}, nil)
	if err != nil {
		return 0, fmt.Errorf("C-ECHO: %w", err)
	}
	return rsp.Status, nil
}

// Store sends one instance with a C-STORE-RQ and returns the response
// status. dataset yields the data set (without Part 10 preamble and meta
// header) encoded in transferSyntax; it is streamed in fragments of the
// peer's maximum length and never held in memory.
func (as *Association) Store(ctx context.Context, sopClass, sopInstance, transferSyntax string, dataset io.Reader) (uint16, error) {
	pcid, ok := as.context(sopClass, transferSyntax)
	if !ok {
		return 0, fmt.Errorf("C-STORE: %w for %s in %s", ErrNoPresentationContext, sopClass, transferSyntax)
	}
	rsp, err := as.exchange(ctx, pcid, &command{
		AffectedSOPClassUID:    sopClass,
		CommandField:           cStoreRQ,
		CommandDataSetType:     0x0000,
		AffectedSOPInstanceUID: sopInstance,
	}, dataset)
	if err != nil {
		return 0, fmt.Errorf("C-STORE: %w", err)
	}
	if rsp.AffectedSOPInstanceUID != "" && rsp.AffectedSOPInstanceUID != sopInstance {
		return rsp.Status, fmt.Errorf("C-STORE: response names instance %q, not the one sent", rsp.AffectedSOPInstanceUID)
	}
	return rsp.Status, nil
}

// exchange sends a request (with its data set, if any) and waits for the
// matching response. Any failure leaves the association aborted.
func (as *Association) exchange(ctx context.Context, pcid byte, rq *command, dataset io.Reader) (rsp *command, err error) {
	if as.broken != nil {
		return nil, fmt.Errorf("association unusable: %w", as.broken)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a := as.a
	stop := context.AfterFunc(ctx, func() { a.nc.Close() })
	defer func() {
		stop()
		if err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			as.broken = err
		}
	}()
	as.msgID++
	rq.MessageID = as.msgID
	if err := a.sendCommand(pcid, rq); err != nil {
		a.nc.Close()
		return nil, err
	}
	if dataset != nil {
		if _, err := a.sendDataSet(pcid, dataset); err != nil {
			var src *DataSetSourceError
			if errors.As(err, &src) {
				a.abort(abortSourceUser, abortReasonNotSpecified)
			} else {
				a.nc.Close()
			}
			return nil, err
		}
	}
	for {
		rpcid, rsp, err := a.readCommand()
		if err != nil {
			var o *otherPDU
			if errors.As(err, &o) {
				err = violation(abortUnexpectedPDU, "PDU type 0x%02x while waiting for a response", o.Type)
			}
			a.failWith(err)
			return nil, err
		}
		if rsp.hasDataSet() {
			if _, err := io.Copy(io.Discard, a.dataSet(rpcid)); err != nil {
				a.failWith(err)
				return nil, err
			}
		}
		if rsp.CommandField != rq.CommandField|0x8000 || rsp.MessageIDBeingRespondedTo != rq.MessageID || rpcid != pcid {
			err := violation(abortUnexpectedPDUParam, "unexpected response (command 0x%04x to message %d on context %d)",
				rsp.CommandField, rsp.MessageIDBeingRespondedTo, rpcid)
			a.failWith(err)
			return nil, err
		}
		if !rsp.has[tagStatus] {
			err := violation(abortInvalidPDUParameterValue, "response without a status")
			a.failWith(err)
			return nil, err
		}
		return rsp, nil
	}
}

// Release ends the association in order (A-RELEASE-RQ, A-RELEASE-RP) and
// closes the connection. A release collision (the peer asking too) is
// answered as PS3.8 has the requestor do.
func (as *Association) Release(ctx context.Context) error {
	a := as.a
	if as.broken != nil {
		a.nc.Close()
		return fmt.Errorf("dicom: release: association unusable: %w", as.broken)
	}
	as.broken = errors.New("association released")
	stop := context.AfterFunc(ctx, func() { a.nc.Close() })
	defer stop()
	defer a.nc.Close()
	if err := a.write(releaseRQPDU); err != nil {
		return fmt.Errorf("dicom: release: %w", err)
	}
	a.idle = false
	a.t.Read = a.t.ARTIM
	for {
		err := a.pdv.nextPDV()
		if err == nil {
			// Late P-DATA is allowed here (PS3.8 Sta7); nobody wants it.
			if _, err := a.pdv.writeTo(io.Discard); err != nil {
				return fmt.Errorf("dicom: release: %w", err)
			}
			continue
		}
		err = a.peerPDU(err)
		var o *otherPDU
		if errors.As(err, &o) {
			switch o.Type {
			case pduReleaseRP:
				return nil
			case pduReleaseRQ:
				if err := a.write(releaseRPPDU); err != nil {
					return fmt.Errorf("dicom: release: %w", err)
				}
				continue
			}
			err = violation(abortUnexpectedPDU, "PDU type 0x%02x while waiting for A-RELEASE-RP", o.Type)
		}
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		a.failWith(err)
		return fmt.Errorf("dicom: release: %w", err)
	}
}

// Abort aborts the association (A-ABORT, source service-user) and closes
// the connection. It may be called from any goroutine.
func (as *Association) Abort() error {
	as.a.abortNow(abortSourceUser, abortReasonNotSpecified)
	return nil
}

// ExactStorageProposals proposes each pair's own transfer syntax in a
// presentation context of its own, so that a peer preferring the other
// Little Endian syntax still accepts the one the data set is in; for
// uncompressed Little Endian the other syntax gets a second context, which
// tells a peer that takes only that one from one that refuses the SOP
// class. Unlike StorageProposals, whatever the peer accepts, a data set can
// be sent unchanged whenever AcceptedTransferSyntax says so.
func ExactStorageProposals(pairs []SOPClassTransfer) []PresentationContextProposal {
	var out []PresentationContextProposal
	for _, p := range pairs {
		out = append(out, PresentationContextProposal{AbstractSyntax: p.SOPClassUID, TransferSyntaxes: []string{p.TransferSyntaxUID}})
		switch p.TransferSyntaxUID {
		case ImplicitVRLittleEndian:
			out = append(out, PresentationContextProposal{AbstractSyntax: p.SOPClassUID, TransferSyntaxes: []string{ExplicitVRLittleEndian}})
		case ExplicitVRLittleEndian:
			out = append(out, PresentationContextProposal{AbstractSyntax: p.SOPClassUID, TransferSyntaxes: []string{ImplicitVRLittleEndian}})
		}
	}
	return out
}
