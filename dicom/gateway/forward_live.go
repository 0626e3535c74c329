package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Forward destinations can change while the node runs (a reload of
// dicom.forward). A destination added is what a restart with it would
// make: its Forwarder first queues every spooled instance it does not have
// (its ledger marks say which), then what arrives; the Pruner and the
// storage commitment wait for it from then on. A destination removed is
// stopped (what it was sending is put back, as at a stop) and no longer
// holds an instance in the spool or a commitment back; its ledger marks
// stay, so that adding it again does not send what it has. A destination
// is known by its ledger name (AE@host:port, or the STOW-RS URL): one
// whose port, host or AE title changes is another destination.

// forwarderRun is the state of the node's forwarders part.
type forwarderRun struct {
	mu      sync.Mutex
	ctx     context.Context // nil unless the part runs
	stopped bool            // the part ran and ended
	running map[string]*runningForwarder
	failed  chan error
}

type runningForwarder struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// Forwarders are the node's forwarders now, one per destination, in the
// config's order.
func (n *Node) Forwarders() []*Forwarder {
	if f := n.fwd.Load(); f != nil {
		return *f
	}
	return nil
}

func (n *Node) newForwarder(d Destination) *Forwarder {
	c := n.cfg
	f := &Forwarder{
		Dest: d, CallingAE: c.AETitle, Spool: c.Spool, Ledger: n.Ledger, Timeouts: c.Timeouts, Logger: n.log,
		OnRefused: c.OnRefused, DeadAfter: c.RefusedForGoodAfter,
	}
	if n.Committer != nil && c.Commitment != nil && c.Commitment.After == CommitWhenForwarded {
		f.OnMarked = n.Committer.Kick
	}
	return f
}

// runForwarders is the forwarders' part: every forwarder runs in its own
// goroutine until ctx ends, or one of them fails (then all stop and the
// part returns its error).
func (n *Node) runForwarders(ctx context.Context) error {
	fw := &n.fw
	fw.mu.Lock()
	fw.ctx = ctx
	fw.running = map[string]*runningForwarder{}
	fw.failed = make(chan error, 1)
	for _, f := range n.Forwarders() {
		n.startForwarderLocked(f)
	}
	fw.mu.Unlock()

	var err error
	select {
	case <-ctx.Done():
	case err = <-fw.failed:
	}
	fw.mu.Lock()
	fw.ctx, fw.stopped = nil, true
	running := fw.running
	fw.running = nil
	fw.mu.Unlock()
	for _, r := range running {
		r.cancel()
	}
	for _, r := range running {
		<-r.done
	}
	return err
}

func (n *Node) startForwarderLocked(f *Forwarder) {
	fw := &n.fw
	ctx, cancel := context.WithCancel(fw.ctx)
	r := &runningForwarder{cancel: cancel, done: make(chan struct{})}
	fw.running[f.Dest.LedgerName()] = r
	failed := fw.failed
	go func() {
		defer close(r.done)
		if err := f.Run(ctx); err != nil && ctx.Err() == nil {
			select {
			case failed <- fmt.Errorf("forwarder to %s: %w", f.Dest.LedgerName(), err):
			default:
			}
		}
	}()
}

// ErrForwardersStopped is SetForward's error once the node's forwarders
// part has stopped.
var ErrForwardersStopped = errors.New("the DICOM forwarders are not running")

// SetForward makes dests the node's forward destinations: it stops the
// forwarders of destinations not among them (waiting until what each was
// sending is put back), and starts one for each new destination. The
// destinations named in renew keep their place (the pruner and storage
// commitment wait for them throughout) but their forwarders are started
// again with their new settings (TLS, credentials). It returns what
// changed, one line per destination.
func (n *Node) SetForward(dests []Destination, renew ...string) (changes []string, err error) {
	fw := &n.fw
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if fw.stopped {
		return nil, ErrForwardersStopped
	}
	// Before the part runs (it is about to), only the lists change: it
	// starts the forwarders they hold.
	live := fw.ctx != nil
	cur := map[string]*Forwarder{}
	for _, f := range n.Forwarders() {
		cur[f.Dest.LedgerName()] = f
	}
	want := map[string]bool{}
	next := make([]*Forwarder, 0, len(dests))
	var added, restarted []*Forwarder
	for _, d := range dests {
		name := d.LedgerName()
		if want[name] {
			return nil, fmt.Errorf("dicom.forward: %s twice", name)
		}
		want[name] = true
		if f, ok := cur[name]; ok && !slices.Contains(renew, name) {
			next = append(next, f)
			continue
		}
		if _, ok := cur[name]; ok {
			f := n.newForwarder(d)
			next = append(next, f)
			restarted = append(restarted, f)
			changes = append(changes, "dicom.forward: "+name+" changed: restarted")
			continue
		}
		f := n.newForwarder(d)
		next = append(next, f)
		added = append(added, f)
		changes = append(changes, "dicom.forward: "+name+" added")
	}
	var removed []string
	for name := range cur {
		if !want[name] {
			removed = append(removed, name)
		}
	}
	slices.Sort(removed)
	// From here on arriving instances are queued for the new set, and
	// nothing waits for a removed destination.
	n.fwd.Store(&next)
	if n.Pruner != nil {
		n.Pruner.SetDestinations(dests)
	}
	if n.Committer != nil {
		names := make([]string, 0, len(dests))
		for _, d := range dests {
			names = append(names, d.LedgerName())
		}
		n.Committer.SetDestinations(names)
	}
	for _, name := range removed {
		if r := fw.running[name]; live && r != nil {
			r.cancel()
			<-r.done
			delete(fw.running, name)
		}
		changes = append(changes, "dicom.forward: "+name+" removed")
	}
	if live {
		for _, f := range restarted {
			if r := fw.running[f.Dest.LedgerName()]; r != nil {
				r.cancel()
				<-r.done
			}
			n.startForwarderLocked(f)
		}
		for _, f := range added {
			n.startForwarderLocked(f)
		}
	}
	if n.Committer != nil {
		n.Committer.Kick()
	}
	return changes, nil
}
