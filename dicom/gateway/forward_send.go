package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/wardgate/wardgate/dicom"
	"github.com/wardgate/wardgate/dicom/dataset"

	"github.com/wardgate/wardgate/buffer"
)

// The Forwarder's C-STORE transport: one association at a time, C-STOREs
// of what the queue says is ready, and what each answer means.

// sendable is one instance opened for sending, with the meta header read
// then (which the association is negotiated for).
type sendable struct {
	it   *fwdItem
	meta dicom.FileMeta
}

func itemsOf(ss []sendable) []*fwdItem {
	out := make([]*fwdItem, len(ss))
	for i, s := range ss {
		out[i] = s.it
	}
	return out
}

// cstoreTransport sends by C-STORE, one association at a time, kept
// between batches until it has been idle for IdleRelease.
type cstoreTransport struct {
	f            *Forwarder
	as           *dicom.Association
	proposed     map[dicom.SOPClassTransfer]bool
	connFailures int
}

func (c *cstoreTransport) batchSize() int { return 64 }

func (c *cstoreTransport) release() {
	if c.as != nil {
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := c.as.Release(rctx); err != nil {
			c.as.Abort()
		}
		cancel()
		c.as = nil
		c.f.setConnected(false)
	}
}

func (c *cstoreTransport) close() { c.release() }

func (c *cstoreTransport) idle(idleFor time.Duration) time.Duration {
	if c.as == nil {
		return 0
	}
	if idleFor >= c.f.IdleRelease {
		c.release()
		return 0
	}
	return c.f.IdleRelease - idleFor
}

func (c *cstoreTransport) send(ctx context.Context, batch []*fwdItem, marks *forwardMarks) (carry []*fwdItem, pause time.Duration) {
	f := c.f
	var items []sendable
	for _, it := range batch {
		if s, ok := f.open(it); ok {
			items = append(items, s)
		}
	}
	if len(items) == 0 {
		return nil, 0
	}
	if c.as == nil {
		var err error
		c.as, c.proposed, err = f.dial(ctx, items)
		if err != nil {
			c.as = nil
			if ctx.Err() != nil {
				return nil, 0
			}
			c.connFailures++
			d := f.Backoff.Delay(c.connFailures)
			f.setErr(fmt.Sprintf("cannot associate with %s: %v", f.Dest.addr(), err), false)
			f.Logger.Warn("dicom: forward destination unreachable; retrying", "err", err, "retry_in", d.Round(time.Millisecond))
			return itemsOf(items), d
		}
		c.connFailures = 0
		f.associations.Add(1)
		f.setErr("", true)
	}
	for i, s := range items {
		if ctx.Err() != nil {
			return nil, 0
		}
		ok, err := f.send(ctx, c.as, c.proposed, s, marks)
		if err != nil {
			if ctx.Err() != nil {
				return nil, 0
			}
			// The association is broken: abort it, back off, dial
			// again. The instance it broke on waits its own backoff
			// (send rescheduled it): the others go first.
			c.as.Abort()
			c.as = nil
			c.connFailures++
			reason := sendFailure(err)
			f.setErr(fmt.Sprintf("association with %s failed: %s", f.Dest.addr(), reason), false)
			f.Logger.Warn("dicom: forwarding interrupted; retrying", "reason", reason)
			return itemsOf(items[i+1:]), f.Backoff.Delay(c.connFailures)
		}
		if !ok { // not proposed on this association: negotiate again
			c.release()
			return itemsOf(items[i:]), 0
		}
		if len(marks.m) >= 32 {
			marks.flush()
		}
	}
	return nil, 0
}

// open reads the instance's meta header, which the association is
// negotiated for. An instance gone from the spool leaves the queue; one
// that cannot be read waits with the reason shown.
func (f *Forwarder) open(it *fwdItem) (sendable, bool) {
	f.mu.Lock()
	current := f.items[it.key] == it
	f.mu.Unlock()
	if !current {
		return sendable{}, false
	}
	file, _, err := f.Spool.Open(it.key)
	if err == nil {
		var m dicom.FileMeta
		m, _, err = dicom.ReadFileMeta(bufio.NewReader(file))
		file.Close()
		if err == nil {
			return sendable{it: it, meta: m}, true
		}
		err = fmt.Errorf("spooled file: %w", err)
	}
	f.unreadable(it, err)
	return sendable{}, false
}

// unreadable deals with an item whose spooled instance cannot be opened or
// read: gone from the spool, it leaves the queue; otherwise it waits, with
// backoff and the reason shown (a replacement queues it afresh).
func (f *Forwarder) unreadable(it *fwdItem, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if errors.Is(err, buffer.ErrNotFound) {
		f.dropLocked(it)
		return
	}
	f.failedLocked(it, "the spooled instance cannot be read")
	if it.attempts == 1 {
		f.Logger.Error("dicom: a spooled instance cannot be read; not forwarded for now", "err", err)
	}
}

func (f *Forwarder) dial(ctx context.Context, items []sendable) (*dicom.Association, map[dicom.SOPClassTransfer]bool, error) {
	pairs := map[dicom.SOPClassTransfer]bool{}
	var list []dicom.SOPClassTransfer
	for _, s := range items {
		p := dicom.SOPClassTransfer{SOPClassUID: s.meta.SOPClassUID, TransferSyntaxUID: s.meta.TransferSyntaxUID}
		if !pairs[p] {
			pairs[p] = true
			list = append(list, p)
		}
	}
	d := dicom.Dialer{CallingAE: f.CallingAE, CalledAE: f.Dest.AETitle, Timeouts: f.Timeouts, TLS: f.Dest.TLS}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	as, err := d.Dial(dctx, f.Dest.addr(), dicom.ExactStorageProposals(list))
	return as, pairs, err
}

// send stores one instance. ok false: its (SOP class, syntax) was not
// proposed on as, and it is to be tried on the next association. err: the
// association failed (the item is backed off). Otherwise the item was
// dealt with: delivered, refused, backed off, or dropped.
func (f *Forwarder) send(ctx context.Context, as *dicom.Association, proposed map[dicom.SOPClassTransfer]bool, s sendable, marks *forwardMarks) (ok bool, err error) {
	it := s.it
	file, in, err := f.Spool.Open(it.key)
	if err != nil {
		f.unreadable(it, err)
		return true, nil
	}
	defer file.Close()
	br := bufio.NewReaderSize(file, 256<<10)
	// The meta header of what is sent now: the instance may have been
	// replaced since open, by content of another SOP class or syntax.
	m, _, err := dicom.ReadFileMeta(br)
	if err != nil {
		f.unreadable(it, fmt.Errorf("spooled file: %w", err))
		return true, nil
	}
	if !proposed[dicom.SOPClassTransfer{SOPClassUID: m.SOPClassUID, TransferSyntaxUID: m.TransferSyntaxUID}] {
		if m.SOPClassUID == s.meta.SOPClassUID && m.TransferSyntaxUID == s.meta.TransferSyntaxUID {
			return false, nil
		}
		// Replaced meanwhile, and this association was not negotiated for
		// the new content. It must not go under the old presentation
		// context; the next association that takes it proposes what it is
		// now. A short backoff keeps it from holding up the others here
		// and from being picked again at once.
		f.mu.Lock()
		f.rescheduleLocked(it, f.Backoff.Delay(1), "")
		f.mu.Unlock()
		return true, nil
	}
	ts := m.TransferSyntaxUID
	var ds io.Reader = br
	if !as.AcceptedTransferSyntax(m.SOPClassUID, ts) {
		other := dataset.OtherLittleEndian(ts)
		if other == "" || !as.AcceptedTransferSyntax(m.SOPClassUID, other) {
			reason := fmt.Sprintf("destination PACS accepts none of the transfer syntaxes: stored in %s (SOP class %s)", ts, m.SOPClassUID)
			f.mu.Lock()
			f.rescheduleLocked(it, time.Minute, reason)
			f.mu.Unlock()
			return true, nil
		}
		// The other uncompressed Little Endian syntax: the same content,
		// re-encoded on the fly. The ledger records the stored content.
		conv, done := dataset.NewLEConverter(br, ts, other)
		defer done() // before the deferred file.Close
		ds, ts = conv, other
	}
	status, err := as.Store(ctx, m.SOPClassUID, m.SOPInstanceUID, ts, ds)
	if err != nil {
		var ce *dataset.ConvertError
		if errors.As(err, &ce) && ctx.Err() == nil {
			// The association is aborted (the data set was cut off), but
			// the instance is at fault: it waits, like an instance in a
			// syntax the destination refuses, and is tried again later.
			reason := fmt.Sprintf("cannot be sent in %s, the only Little Endian syntax the destination accepts: %v", ts, ce)
			f.mu.Lock()
			it.attempts++
			f.rescheduleLocked(it, max(time.Minute, f.Backoff.Delay(it.attempts)), reason)
			f.mu.Unlock()
			f.Logger.Warn("dicom: an instance cannot be converted to the transfer syntax the destination accepts; it waits", "err", ce)
			return true, err
		}
		if ctx.Err() == nil {
			reason := sendFailure(err)
			f.mu.Lock()
			f.failedLocked(it, "sending failed: "+reason)
			f.mu.Unlock()
			f.Logger.Debug("dicom: sending an instance failed", "sop_instance_uid", m.SOPInstanceUID, "attempts", it.attempts, "err", err)
		}
		return true, err
	}
	f.mu.Lock()
	f.settleLocked(it, in.SHA256, m.SOPInstanceUID, status, marks)
	f.mu.Unlock()
	return true, nil
}

// isPermanentRefusal reports whether a C-STORE failure status says the
// instance itself is unacceptable to the destination: A9xx (data set does
// not match the SOP class), 0122 (SOP class not supported), 0124 (not
// authorized).
func isPermanentRefusal(status uint16) bool {
	return status&0xFF00 == 0xA900 || status == dicom.StatusSOPClassNotSupported || status == 0x0124
}

// statusReason describes a failure status, for Stats (no patient data).
func statusReason(status uint16) string {
	var what string
	switch {
	case status&0xFF00 == 0xA700:
		what = "destination out of resources"
	case status&0xFF00 == 0xA900:
		what = "destination says the data set does not match its SOP class"
	case status == dicom.StatusSOPClassNotSupported:
		what = "destination does not support the SOP class"
	case status == 0x0124:
		what = "destination refused, not authorized"
	case status == dicom.StatusProcessingFailure:
		what = "destination processing failure"
	case status&0xF000 == 0xC000:
		what = "destination cannot understand the instance"
	default:
		what = "destination refused the instance"
	}
	return fmt.Sprintf("%s (status 0x%04X)", what, status)
}

// sendFailure names what broke an association during a C-STORE, in a few
// words fit for Stats: no UIDs, no addresses.
func sendFailure(err error) string {
	var ab *dicom.AbortError
	var src *dicom.DataSetSourceError
	var ne net.Error
	switch {
	case errors.As(err, new(*dataset.ConvertError)):
		return "the instance could not be converted to the transfer syntax the destination accepts"
	case errors.As(err, &src):
		return "the spooled instance could not be read while sending"
	case errors.As(err, &ab):
		return "the destination aborted the association"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return "timed out waiting for the destination"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return "the destination closed the connection"
	default:
		return "the association failed"
	}
}
