package gateway

import (
	"context"
	"fmt"
	"time"

	"github.com/wardgate/wardgate/dicom"
)

// The Forwarder's loop: the queue picks what is ready, a transport sends
// it, and what the destination answered for each instance is settled by
// one set of rules, whatever the transport.

// transport is how a Forwarder's queue reaches its destination: C-STORE
// over DICOM associations (cstoreTransport) or STOW-RS requests to a
// DICOMweb archive (stowTransport). The queue, the backoff, the
// dead-letter rules and the Ledger's marks are the Forwarder's; a
// transport only sends and reports.
type transport interface {
	// batchSize is how many items the next send takes at most.
	batchSize() int
	// send tries batch. Every item it does not return in carry it has
	// dealt with: delivered or refused (settle), backed off, or dropped.
	// carry goes first in the next batch, after pause (the destination
	// cannot be reached: the whole queue waits, not each item).
	send(ctx context.Context, batch []*fwdItem, marks *forwardMarks) (carry []*fwdItem, pause time.Duration)
	// idle is told, while nothing is ready, how long the transport has
	// been idle; it lets connections go and returns when it wants to be
	// asked again (0: not before there is work).
	idle(idleFor time.Duration) time.Duration
	// close lets every connection go, at the end of Run.
	close()
}

// forwardMarks gathers the marks of what a destination answered, written
// to the Ledger in one commit by flush.
type forwardMarks struct {
	f *Forwarder
	m map[string]ForwardMark
}

// flush writes the marks gathered, then tells OnRefused of the refusals
// for good among them. It must not be called with f.mu held.
func (fm *forwardMarks) flush() {
	f := fm.f
	if len(fm.m) == 0 {
		return
	}
	if err := f.Ledger.MarkForwarded(f.Dest.LedgerName(), fm.m); err != nil {
		// The instances stay delivered at the destination; without the
		// marks they are sent again after a restart.
		f.Logger.Error("dicom: recording forwarded instances failed", "err", err)
	} else {
		if f.OnRefused != nil {
			for key, m := range fm.m {
				if m.Dead {
					f.OnRefused(Refusal{Destination: f.Dest.LedgerName(), Key: key, SHA256: m.SHA256, Reason: m.Reason, At: m.At})
				}
			}
		}
		if f.OnMarked != nil {
			f.OnMarked()
		}
	}
	clear(fm.m)
}

func (f *Forwarder) newTransport() transport {
	if f.Dest.STOWRS != "" {
		return &stowTransport{f: f}
	}
	return &cstoreTransport{f: f}
}

func (f *Forwarder) run(ctx context.Context) {
	tr := f.newTransport()
	marks := &forwardMarks{f: f, m: map[string]ForwardMark{}}
	var carry []*fwdItem // taken by ready, not yet tried: first in the next batch
	idleSince := time.Now()
	sleep := func(d time.Duration) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
	defer func() {
		tr.close()
		marks.flush()
	}()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for ctx.Err() == nil {
		batch, next := f.ready(tr.batchSize() - len(carry))
		batch = append(carry, batch...)
		carry = nil
		if len(batch) == 0 {
			marks.flush()
			wait := time.Until(next)
			if d := tr.idle(time.Since(idleSince)); d > 0 && d < wait {
				wait = d
			}
			t.Reset(wait)
			select {
			case <-ctx.Done():
			case <-f.kick:
			case <-t.C:
			}
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
			continue
		}
		var pause time.Duration
		carry, pause = tr.send(ctx, batch, marks)
		if pause > 0 {
			sleep(pause)
		}
		idleSince = time.Now()
	}
}

// settleLocked applies what the destination answered for one instance —
// a C-STORE status, or a STOW-RS FailureReason (Success for an instance
// the archive stored) — with the rules of the Forwarder's doc comment: a
// success or warning is delivered; a permanent refusal dead-letters it
// once refusals have lasted DeadAfter over MaxAttempts tries; anything
// else is retried with backoff. sha is the content sent; uid names the
// instance in debug logs only. The caller holds f.mu.
func (f *Forwarder) settleLocked(it *fwdItem, sha, uid string, status uint16, marks *forwardMarks) {
	now := time.Now()
	switch {
	case !dicom.IsFailureStatus(status):
		marks.m[it.key] = ForwardMark{SHA256: sha, At: now.UTC()}
		f.delivered.Add(1)
		f.dropLocked(it)
	case isPermanentRefusal(status):
		// Dead-lettering needs both a count and a time: a PACS being set up
		// or reconfigured (a SOP class not yet enabled, our AE not yet
		// authorized) or one misreporting a passing fault refuses
		// everything for a while, and a count alone would throw away a
		// whole backlog within seconds. What is refused the same way for an
		// hour is refused for good.
		it.refusals++
		if it.firstRefused.IsZero() {
			it.firstRefused = now
		}
		reason := statusReason(status)
		f.lastErr = reason
		if it.refusals >= f.MaxAttempts && now.Sub(it.firstRefused) >= f.DeadAfter {
			it.attempts++
			marks.m[it.key] = ForwardMark{SHA256: sha, Dead: true, Reason: reason, At: now.UTC()}
			f.refusedTotal.Add(1)
			if f.refused == nil {
				f.refused = map[string]string{}
			}
			f.refused[it.key] = sha
			f.dropLocked(it)
			f.Logger.Error("dicom: destination refused an instance for good; it is dead-lettered for this destination and kept in the spool",
				"status", fmt.Sprintf("0x%04X", status), "attempts", it.attempts, "refused_for", now.Sub(it.firstRefused).Round(time.Second))
			f.Logger.Debug("dicom: instance dead-lettered", "sop_instance_uid", uid)
		} else {
			f.failedLocked(it, reason)
		}
	default:
		// A7xx, 0110, Cxxx and the like: the state of the PACS, not of the
		// instance. Retried forever.
		reason := statusReason(status)
		f.lastErr = reason
		f.failedLocked(it, reason)
	}
}
