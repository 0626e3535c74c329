package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/wardgate/wardgate/dicom"
	"github.com/wardgate/wardgate/dicom/dataset"

	"github.com/wardgate/wardgate/buffer"
)

// NodeConfig says what a Node is and where its instances go.
type NodeConfig struct {
	AETitle string
	Allow   func(dicom.Peer) bool // nil: everyone
	// TLS is the listener's DICOM TLS (already restricted to the BCP 195
	// profile); Parts wraps its secure listener in it.
	TLS             *tls.Config
	MaxAssociations int
	Timeouts        dicom.Timeouts
	// Spool keeps the instances; LedgerPath names the Ledger's file
	// (the caller lays out the data folder).
	Spool      *buffer.Spool
	LedgerPath string
	// Sink takes stable studies; nil: studies are not handed over (and so
	// never pruned).
	Sink        StudySink
	StableAfter time.Duration
	Forward     []Destination
	// Retention keeps an instance this long after it was received, even
	// when everyone has it.
	Retention time.Duration
	// RefuseSuspectReplacements is the Receiver's (dicom.replacements:
	// refuse).
	RefuseSuspectReplacements bool
	// RefusedForGoodAfter is each Forwarder's DeadAfter (0: 1 h).
	RefusedForGoodAfter time.Duration
	// ShutdownTimeout bounds a graceful stop of the server (0: 30 s).
	ShutdownTimeout time.Duration
	// OnRefused is told of each instance a destination refused for good
	// (see Forwarder.OnRefused).
	OnRefused func(Refusal)
	// Commitment, when set, makes the node a Storage Commitment Push
	// Model SCP (a Committer).
	Commitment *CommitmentConfig
	Logger     *slog.Logger
}

// Node is wardgate's DICOM node: the dicom.Server storing into the spool through
// a Receiver, the StudyAssembler, one Forwarder per destination and the
// Pruner, wired together.
type Node struct {
	Server    *dicom.Server
	Receiver  *Receiver
	Assembler *StudyAssembler
	Pruner    *Pruner
	Ledger    *Ledger
	Committer *Committer // nil: no storage commitment
	// Recent are the last studies received since the Node started.
	Recent *RecentStudies
	// ShutdownTimeout is how long associations in progress may finish
	// once the server's part is stopped (NodeConfig.ShutdownTimeout).
	ShutdownTimeout time.Duration
	tls             *tls.Config
	ln, tlsLn       net.Listener

	// The forwarders, one per destination, as SetForward last left them
	// (forward_live.go).
	cfg NodeConfig
	log *slog.Logger
	fwd atomic.Pointer[[]*Forwarder]
	fw  forwarderRun
}

// NodeStats is a snapshot for the status page.
type NodeStats struct {
	Listening    string            `json:"listening,omitempty"`
	ListeningTLS string            `json:"listening_tls,omitempty"`
	AETitle      string            `json:"ae_title"`
	Server       dicom.ServerStats `json:"associations"`
	Received     ReceiverStats     `json:"instances"`
	Studies      AssemblerStats    `json:"studies"`
	Forward      []ForwardStats    `json:"forward"`
	Pruned       uint64            `json:"pruned"`
	// LedgerUnreadable counts ledger marks that could not be decoded.
	LedgerUnreadable uint64 `json:"ledger_marks_unreadable"`
	// Commitment is nil without storage commitment.
	Commitment *CommitmentStats `json:"commitment,omitempty"`
}

// NewNode opens the Ledger and builds the parts; Parts runs them, Close
// closes the Ledger.
func NewNode(c NodeConfig) (*Node, error) {
	log := c.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "dicom")
	ledger, err := OpenLedger(c.LedgerPath)
	if err != nil {
		return nil, err
	}
	n := &Node{Ledger: ledger, Recent: &RecentStudies{}, ShutdownTimeout: c.ShutdownTimeout, tls: c.TLS, cfg: c, log: log}
	if n.ShutdownTimeout == 0 {
		n.ShutdownTimeout = 30 * time.Second
	}
	if c.Sink != nil {
		sink := handOverNotice{StudySink: c.Sink, recent: n.Recent}
		n.Assembler = &StudyAssembler{Spool: c.Spool, Ledger: ledger, Sink: sink, StableAfter: c.StableAfter, Logger: log}
	}
	fwd := make([]*Forwarder, 0, len(c.Forward))
	for _, d := range c.Forward {
		fwd = append(fwd, n.newForwarder(d))
	}
	n.fwd.Store(&fwd)
	if c.Sink != nil {
		n.Pruner = &Pruner{Spool: c.Spool, Ledger: ledger, Destinations: c.Forward, Retention: c.Retention, Logger: log}
	}
	n.Receiver = &Receiver{Spool: c.Spool, Logger: log, RefuseSuspectReplacements: c.RefuseSuspectReplacements, Stored: func(h dataset.InstanceHeader, in buffer.Instance) {
		n.Recent.received(h, in)
		if n.Assembler != nil {
			n.Assembler.Add(h.StudyInstanceUID)
		}
		for _, f := range n.Forwarders() {
			f.Enqueue(in.Key)
		}
	}}
	n.newCommitter(c, log)
	n.Server = &dicom.Server{
		AETitle: c.AETitle, Allow: c.Allow, MaxAssociations: c.MaxAssociations,
		Timeouts: c.Timeouts, Store: n.Receiver, Logger: log,
	}
	if n.Committer != nil {
		n.Server.Commitment = n.Committer
	}
	return n, nil
}

// Part is one long-running piece of the node: Run works until ctx ends,
// then returns nil having finished or put back what was in flight, or
// returns an error when it cannot go on.
type Part struct {
	Name string
	Run  func(ctx context.Context) error
}

// Parts are the node's pieces in the order to start them — the assembler,
// a forwarder per destination, the pruner (each first finds the work left
// from before), then the server — and so to be stopped in reverse:
// the server first, so that nothing arrives for parts already stopped.
// The server listens on plain and, wrapped in NodeConfig.TLS, on secure;
// either may be nil (not both). The server's part shuts down gracefully
// when its ctx ends: associations in progress may finish for
// ShutdownTimeout, then are aborted (which keeps nothing partial).
func (n *Node) Parts(plain, secure net.Listener) []Part {
	var parts []Part
	if n.Assembler != nil {
		parts = append(parts, Part{"dicom study assembler", n.Assembler.Run})
	}
	parts = append(parts, Part{"dicom forwarders", n.runForwarders})
	if n.Pruner != nil {
		parts = append(parts, Part{"dicom pruner", n.Pruner.Run})
	}
	if n.Committer != nil {
		parts = append(parts, Part{"dicom storage commitment", n.Committer.Run})
	}
	var lns []net.Listener
	if plain != nil {
		n.ln = plain
		lns = append(lns, plain)
	}
	if secure != nil {
		n.tlsLn = secure
		lns = append(lns, tls.NewListener(secure, n.tls))
	}
	return append(parts, Part{"dicom server", func(ctx context.Context) error {
		served := make(chan error, len(lns))
		for _, ln := range lns {
			go func() { served <- n.Server.Serve(ln) }()
		}
		pending := len(lns)
		var err error
		select {
		case err = <-served:
			// A listener failed: the others stop with it.
			pending--
		case <-ctx.Done():
		}
		sctx, cancel := context.WithTimeout(context.Background(), n.ShutdownTimeout)
		defer cancel()
		if e := n.Server.Shutdown(sctx); err == nil {
			err = e
		}
		for ; pending > 0; pending-- {
			if e := <-served; !errors.Is(e, dicom.ErrServerClosed) && err == nil {
				err = e
			}
		}
		return err
	}})
}

// Close closes the Ledger, once every part has stopped.
func (n *Node) Close() error { return n.Ledger.Close() }

// Stats returns a snapshot.
func (n *Node) Stats() NodeStats {
	st := NodeStats{AETitle: n.Server.AETitle, Server: n.Server.Stats(), Received: n.Receiver.Stats(), Forward: []ForwardStats{}}
	if n.ln != nil {
		st.Listening = n.ln.Addr().String()
	}
	if n.tlsLn != nil {
		st.ListeningTLS = n.tlsLn.Addr().String()
	}
	if n.Assembler != nil {
		st.Studies = n.Assembler.Stats()
	}
	for _, f := range n.Forwarders() {
		st.Forward = append(st.Forward, f.Stats())
	}
	if n.Pruner != nil {
		st.Pruned = n.Pruner.Removed()
	}
	st.LedgerUnreadable = n.Ledger.Unreadable()
	if n.Committer != nil {
		cs := n.Committer.Stats()
		st.Commitment = &cs
	}
	return st
}

// RecentStudies returns the last studies received since the Node started
// (at most MaxRecentStudies), newest first.
func (n *Node) RecentStudies() []RecentStudy {
	var dests []string
	for _, f := range n.Forwarders() {
		dests = append(dests, f.Dest.LedgerName())
	}
	return n.Recent.snapshot(n.Ledger, dests)
}

// Refusals lists every destination's refusals for good that wait for a
// retry or a drop.
func (n *Node) Refusals() ([]Refusal, error) {
	var out []Refusal
	for _, f := range n.Forwarders() {
		rs, err := f.Refusals()
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	return out, nil
}

// ErrNoRefusal: the refusal named is not (or no longer) waiting: it was
// retried or dropped, or its instance was replaced or left the spool.
var ErrNoRefusal = errors.New("no such refusal waiting (retried, dropped or replaced meanwhile)")

// RetryRefusal sends a refused instance to its destination again.
func (n *Node) RetryRefusal(r Refusal) error {
	f := n.forwarder(r.Destination)
	if f == nil {
		return fmt.Errorf("destination %s is no longer configured; drop the dead letter instead", r.Destination)
	}
	ok, err := f.Retry(r.Key, r.SHA256)
	if err == nil && !ok {
		err = ErrNoRefusal
	}
	return err
}

// DropRefusal gives up on sending a refused instance to its destination,
// so that it may leave the spool. A destination no longer configured holds
// nothing back: there is nothing to drop.
func (n *Node) DropRefusal(r Refusal) error {
	f := n.forwarder(r.Destination)
	if f == nil {
		return nil
	}
	ok, err := f.Drop(r.Key, r.SHA256)
	if err == nil && !ok {
		err = ErrNoRefusal
	}
	return err
}

// HasDestination reports whether destination (AE@host:port) is one of the
// node's forward destinations.
func (n *Node) HasDestination(destination string) bool { return n.forwarder(destination) != nil }

func (n *Node) forwarder(destination string) *Forwarder {
	for _, f := range n.Forwarders() {
		if f.Dest.LedgerName() == destination {
			return f
		}
	}
	return nil
}

// Rehand hands a study over to the FHIR side again, as if an instance of it
// had just arrived (an operator's retry of a study that was not charted).
func (n *Node) Rehand(study string) {
	if n.Assembler != nil {
		n.Assembler.Add(study)
	}
}

// StudyDelivered records that the record acknowledged an ImagingStudy of
// study that was queued at enqueued, so that the instances it holds may
// leave the spool once every destination has them.
func (n *Node) StudyDelivered(study string, enqueued time.Time) error {
	return n.Ledger.MarkStudyDelivered(study, enqueued)
}
