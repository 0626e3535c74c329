package dicom

import (
	"bufio"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wardgate/wardgate/buffer"
)

// Destination is a PACS to forward to.
type Destination struct {
	AETitle string
	Host    string
	Port    int
}

func (d Destination) addr() string { return net.JoinHostPort(d.Host, strconv.Itoa(d.Port)) }

// LedgerName is the name the destination's marks have in the Ledger:
// AE@host:port. The AE title alone is not enough: two PACS may both be
// called PACS, and what one of them has the other does not.
func (d Destination) LedgerName() string { return d.AETitle + "@" + d.addr() }

// Forwarder sends every spooled instance to one Destination by C-STORE, in
// the transfer syntax it was received and stored in, many instances per
// association. Its queue is the spool itself: at Start every instance the
// Ledger does not mark as delivered to (or refused for good by) the
// destination is queued again, so the queue survives restarts and SIGKILL;
// Enqueue adds what arrives meanwhile.
//
// A destination that accepts only the other uncompressed Little Endian
// syntax (Implicit ↔ Explicit VR) gets the data set converted on the fly
// (ConvertLE: the same elements and values, other element headers); the
// Ledger records the stored content as delivered. An instance that cannot
// be converted (a value too long for its explicit VR, a malformed data
// set), like one in a compressed syntax the destination refuses, is never
// altered otherwise: it waits with the reason in Stats and is proposed
// again later.
//
// Statuses: Success and the warnings (B000, B006, B007) mean delivered.
// Failures are retried per instance, with backoff (Backoff, capped), and
// the queue goes on with other instances meanwhile. Only the refusals that
// say something about the instance itself rather than the state of the
// PACS — A9xx (data set does not match the SOP class), 0122 (SOP class not
// supported), 0124 (not authorized) — can dead-letter it, and only once
// they have persisted for DeadAfter and MaxAttempts tries; everything else
// (A7xx out of resources, 0110 processing failure, Cxxx cannot understand,
// other statuses, a broken association) is retried forever. A
// dead-lettered instance is recorded as such for this destination, kept in
// the spool, counted in Stats, and never removed by the Pruner.
type Forwarder struct {
	Dest        Destination
	CallingAE   string
	Spool       *buffer.Spool
	Ledger      *Ledger
	Timeouts    Timeouts
	IdleRelease time.Duration // release the association after this long without work; 0: 3 s
	// MaxAttempts and DeadAfter: a permanent refusal dead-letters an
	// instance only after it was refused this many times (0: 5) over at
	// least this long since the first refusal (0: 1 h).
	MaxAttempts int
	DeadAfter   time.Duration
	Backoff     buffer.Backoff // zero: 1 s doubling to 5 min
	Logger      *slog.Logger

	// Enqueue only appends to pending, under its own small lock: a C-STORE
	// response (the Receiver calls Enqueue) never waits for the queue. The
	// sender goroutine merges pending into the queue.
	pmu     sync.Mutex
	pending []string
	kick    chan struct{}

	mu      sync.Mutex
	items   map[string]*fwdItem // the current item of every queued key
	fresh   []*fwdItem          // not tried yet, FIFO
	delayed fwdHeap             // tried, waiting for their notBefore
	lastErr string
	conn    bool
	stop    context.CancelFunc
	done    chan struct{}

	delivered, dead, associations atomic.Uint64
}

// fwdItem is one queued instance. An item is in fresh, in delayed, or with
// the sender, never in two of them; one no longer in items (delivered,
// dead-lettered, gone from the spool, or superseded by a newer item for
// its key) is skipped wherever it is found.
type fwdItem struct {
	key          string
	attempts     int       // failed tries of any kind, for the backoff
	refusals     int       // permanent refusals (A9xx, 0122, 0124)
	firstRefused time.Time // when the first of them came
	notBefore    time.Time
	reason       string
}

// fwdHeap orders waiting items by notBefore.
type fwdHeap []*fwdItem

func (h fwdHeap) Len() int           { return len(h) }
func (h fwdHeap) Less(i, j int) bool { return h[i].notBefore.Before(h[j].notBefore) }
func (h fwdHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *fwdHeap) Push(x any)        { *h = append(*h, x.(*fwdItem)) }
func (h *fwdHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return it
}

// ForwardStats is a destination's queue, for the status page.
type ForwardStats struct {
	Destination  string            `json:"destination"` // AE@host:port
	Waiting      int               `json:"waiting"`
	Delivered    uint64            `json:"delivered"`
	DeadLettered uint64            `json:"dead_lettered"` // since Start, plus those found in the Ledger at Start
	Associations uint64            `json:"associations"`
	Connected    bool              `json:"connected"`
	LastError    string            `json:"last_error,omitempty"`
	Reasons      map[string]int    `json:"reasons,omitempty"` // why instances wait, with how many
	Dead         map[string]string `json:"-"`
}

// Stats returns a snapshot.
func (f *Forwarder) Stats() ForwardStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := ForwardStats{
		Destination: f.Dest.LedgerName(), Waiting: len(f.items),
		Delivered: f.delivered.Load(), DeadLettered: f.dead.Load(), Associations: f.associations.Load(),
		Connected: f.conn, LastError: f.lastErr,
	}
	f.pmu.Lock()
	if len(f.pending) > 0 {
		seen := map[string]bool{}
		for _, k := range f.pending {
			if _, ok := f.items[k]; !ok && !seen[k] {
				seen[k] = true
				st.Waiting++
			}
		}
	}
	f.pmu.Unlock()
	for _, it := range f.items {
		if it.reason != "" {
			if st.Reasons == nil {
				st.Reasons = map[string]int{}
			}
			st.Reasons[it.reason]++
		}
	}
	return st
}

// Start queues what the destination does not have yet and runs until Stop.
func (f *Forwarder) Start() error {
	if f.Logger == nil {
		f.Logger = slog.Default()
	}
	f.Logger = f.Logger.With("destination", f.Dest.LedgerName())
	if f.IdleRelease == 0 {
		f.IdleRelease = 3 * time.Second
	}
	if f.MaxAttempts == 0 {
		f.MaxAttempts = 5
	}
	if f.DeadAfter == 0 {
		f.DeadAfter = time.Hour
	}
	if f.Backoff.Initial == 0 {
		f.Backoff = buffer.Backoff{Initial: time.Second, Max: 5 * time.Minute, Multiplier: 2}
	}
	f.pmu.Lock()
	if f.kick == nil {
		f.kick = make(chan struct{}, 1)
	}
	f.pmu.Unlock()
	marks, err := f.Ledger.Forwarded(f.Dest.LedgerName())
	if err != nil {
		return err
	}
	// Only what the queue needs: not the instances' header attributes.
	type queued struct {
		key    string
		stored time.Time
	}
	var todo []queued
	var dead uint64
	err = f.Spool.Each(func(in buffer.Instance) bool {
		if m, ok := marks[in.Key]; ok && m.SHA256 == in.SHA256 {
			if m.Dead {
				dead++
			}
			return true
		}
		todo = append(todo, queued{key: in.Key, stored: in.Stored})
		return true
	})
	if err != nil {
		return err
	}
	marks = nil
	// Dead letters from before the restart still are: /readyz shows them.
	f.dead.Store(dead)
	sort.SliceStable(todo, func(i, j int) bool { return todo[i].stored.Before(todo[j].stored) })
	f.mu.Lock()
	f.items = make(map[string]*fwdItem, len(todo))
	f.fresh = make([]*fwdItem, 0, len(todo))
	f.delayed = nil
	for _, q := range todo {
		f.queueLocked(q.key)
	}
	f.mu.Unlock()
	if len(todo) > 0 {
		f.Logger.Info("dicom: instances queued for forwarding", "instances", len(todo))
	}
	if dead > 0 {
		f.Logger.Warn("dicom: instances dead-lettered for this destination are kept in the spool", "instances", dead)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.stop = cancel
	f.done = make(chan struct{})
	go f.run(ctx)
	return nil
}

// Stop ends forwarding (an instance being sent is abandoned and sent again
// after the next Start) and waits for it.
func (f *Forwarder) Stop() {
	if f.stop != nil {
		f.stop()
		<-f.done
	}
}

// Enqueue queues the instance key (again, when its content was replaced).
// It only appends to a list under a lock of its own: it never waits for
// the sender.
func (f *Forwarder) Enqueue(key string) {
	f.pmu.Lock()
	f.pending = append(f.pending, key)
	kick := f.kick
	f.pmu.Unlock()
	if kick != nil {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
}

// merge moves what Enqueue added into the queue.
func (f *Forwarder) merge() {
	f.pmu.Lock()
	keys := f.pending
	f.pending = nil
	f.pmu.Unlock()
	if len(keys) == 0 {
		return
	}
	f.mu.Lock()
	for _, k := range keys {
		f.queueLocked(k)
	}
	f.mu.Unlock()
}

// queueLocked queues key as a new item, even when it is queued already: a
// send in progress then does not take the new content for delivered, and
// a replaced instance starts afresh.
func (f *Forwarder) queueLocked(key string) {
	it := &fwdItem{key: key}
	f.items[key] = it
	f.fresh = append(f.fresh, it)
}

// ready returns up to n items whose time has come — the retried ones that
// are due first, then new ones in the order they came — and when the next
// waiting one is due. The items returned are the caller's until it
// delivers, reschedules or drops them, or hands them to ready's next
// caller (carry).
func (f *Forwarder) ready(n int) ([]*fwdItem, time.Time) {
	f.merge()
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	var out []*fwdItem
	for len(out) < n && len(f.delayed) > 0 && !f.delayed[0].notBefore.After(now) {
		if it := heap.Pop(&f.delayed).(*fwdItem); f.items[it.key] == it {
			out = append(out, it)
		}
	}
	for len(out) < n && len(f.fresh) > 0 {
		it := f.fresh[0]
		f.fresh[0] = nil
		f.fresh = f.fresh[1:]
		if f.items[it.key] == it {
			out = append(out, it)
		}
	}
	if len(f.fresh) == 0 {
		f.fresh = nil
	}
	for len(f.delayed) > 0 && f.items[f.delayed[0].key] != f.delayed[0] {
		heap.Pop(&f.delayed)
	}
	next := now.Add(time.Hour)
	if len(f.delayed) > 0 && f.delayed[0].notBefore.Before(next) {
		next = f.delayed[0].notBefore
	}
	return out, next
}

// rescheduleLocked puts an item taken by ready back to wait delay; a
// failed try (count) adds to its attempts. An item superseded or removed
// meanwhile is let go.
func (f *Forwarder) rescheduleLocked(it *fwdItem, delay time.Duration, reason string) {
	if reason != "" {
		it.reason = reason
	}
	it.notBefore = time.Now().Add(delay)
	if f.items[it.key] == it {
		heap.Push(&f.delayed, it)
	}
}

// failedLocked counts a failed try of it and backs it off.
func (f *Forwarder) failedLocked(it *fwdItem, reason string) {
	it.attempts++
	f.rescheduleLocked(it, f.Backoff.Delay(it.attempts), reason)
}

// dropLocked takes it off the queue, if it is still the key's item.
func (f *Forwarder) dropLocked(it *fwdItem) {
	if f.items[it.key] == it {
		delete(f.items, it.key)
	}
}

func (f *Forwarder) setErr(s string, connected bool) {
	f.mu.Lock()
	f.lastErr, f.conn = s, connected
	f.mu.Unlock()
}

func (f *Forwarder) setConnected(connected bool) {
	f.mu.Lock()
	f.conn = connected
	f.mu.Unlock()
}

// sendable is one instance opened for sending, with the meta header read
// then (which the association is negotiated for).
type sendable struct {
	it   *fwdItem
	meta FileMeta
}

func itemsOf(ss []sendable) []*fwdItem {
	out := make([]*fwdItem, len(ss))
	for i, s := range ss {
		out[i] = s.it
	}
	return out
}

func (f *Forwarder) run(ctx context.Context) {
	defer close(f.done)
	var as *Association
	var proposed map[SOPClassTransfer]bool
	var carry []*fwdItem // taken by ready, not yet tried: first in the next batch
	marks := map[string]ForwardMark{}
	connFailures := 0
	idleSince := time.Now()
	flush := func() {
		if err := f.Ledger.MarkForwarded(f.Dest.LedgerName(), marks); err != nil {
			// The instances stay delivered at the destination; without the
			// marks they are sent again after a restart.
			f.Logger.Error("dicom: recording forwarded instances failed", "err", err)
		}
		clear(marks)
	}
	release := func() {
		if as != nil {
			rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := as.Release(rctx); err != nil {
				as.Abort()
			}
			cancel()
			as = nil
			f.setConnected(false)
		}
	}
	sleep := func(d time.Duration) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
	defer func() {
		release()
		flush()
	}()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for ctx.Err() == nil {
		batch, next := f.ready(64 - len(carry))
		batch = append(carry, batch...)
		carry = nil
		if len(batch) == 0 {
			flush()
			wait := time.Until(next)
			if as != nil {
				if idle := time.Since(idleSince); idle >= f.IdleRelease {
					release()
				} else if f.IdleRelease-idle < wait {
					wait = f.IdleRelease - idle
				}
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
		var items []sendable
		for _, it := range batch {
			if s, ok := f.open(it); ok {
				items = append(items, s)
			}
		}
		if len(items) == 0 {
			continue
		}
		if as == nil {
			var err error
			as, proposed, err = f.dial(ctx, items)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				carry = itemsOf(items)
				connFailures++
				d := f.Backoff.Delay(connFailures)
				f.setErr(fmt.Sprintf("cannot associate with %s: %v", f.Dest.addr(), err), false)
				f.Logger.Warn("dicom: forward destination unreachable; retrying", "err", err, "retry_in", d.Round(time.Millisecond))
				sleep(d)
				continue
			}
			connFailures = 0
			f.associations.Add(1)
			f.setErr("", true)
		}
		for i, s := range items {
			if ctx.Err() != nil {
				return
			}
			ok, err := f.send(ctx, as, proposed, s, marks)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				// The association is broken: abort it, back off, dial
				// again. The instance it broke on waits its own backoff
				// (send rescheduled it): the others go first.
				as.Abort()
				as = nil
				carry = itemsOf(items[i+1:])
				connFailures++
				reason := sendFailure(err)
				f.setErr(fmt.Sprintf("association with %s failed: %s", f.Dest.addr(), reason), false)
				f.Logger.Warn("dicom: forwarding interrupted; retrying", "reason", reason)
				sleep(f.Backoff.Delay(connFailures))
				break
			}
			if !ok { // not proposed on this association: negotiate again
				carry = itemsOf(items[i:])
				release()
				break
			}
			if len(marks) >= 32 {
				flush()
			}
		}
		idleSince = time.Now()
	}
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
		var m FileMeta
		m, _, err = ReadFileMeta(bufio.NewReader(file))
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

func (f *Forwarder) dial(ctx context.Context, items []sendable) (*Association, map[SOPClassTransfer]bool, error) {
	pairs := map[SOPClassTransfer]bool{}
	var list []SOPClassTransfer
	for _, s := range items {
		p := SOPClassTransfer{SOPClassUID: s.meta.SOPClassUID, TransferSyntaxUID: s.meta.TransferSyntaxUID}
		if !pairs[p] {
			pairs[p] = true
			list = append(list, p)
		}
	}
	d := Dialer{CallingAE: f.CallingAE, CalledAE: f.Dest.AETitle, Timeouts: f.Timeouts}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	as, err := d.Dial(dctx, f.Dest.addr(), ExactStorageProposals(list))
	return as, pairs, err
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

// send stores one instance. ok false: its (SOP class, syntax) was not
// proposed on as, and it is to be tried on the next association. err: the
// association failed (the item is backed off). Otherwise the item was
// dealt with: delivered, refused, backed off, or dropped.
func (f *Forwarder) send(ctx context.Context, as *Association, proposed map[SOPClassTransfer]bool, s sendable, marks map[string]ForwardMark) (ok bool, err error) {
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
	m, _, err := ReadFileMeta(br)
	if err != nil {
		f.unreadable(it, fmt.Errorf("spooled file: %w", err))
		return true, nil
	}
	if !proposed[SOPClassTransfer{SOPClassUID: m.SOPClassUID, TransferSyntaxUID: m.TransferSyntaxUID}] {
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
	var dataset io.Reader = br
	if !as.AcceptedTransferSyntax(m.SOPClassUID, ts) {
		other := OtherLittleEndian(ts)
		if other == "" || !as.AcceptedTransferSyntax(m.SOPClassUID, other) {
			reason := fmt.Sprintf("destination PACS accepts none of the transfer syntaxes: stored in %s (SOP class %s)", ts, m.SOPClassUID)
			f.mu.Lock()
			f.rescheduleLocked(it, time.Minute, reason)
			f.mu.Unlock()
			return true, nil
		}
		// The other uncompressed Little Endian syntax: the same content,
		// re-encoded on the fly. The ledger records the stored content.
		conv, done := NewLEConverter(br, ts, other)
		defer done() // before the deferred file.Close
		dataset, ts = conv, other
	}
	status, err := as.Store(ctx, m.SOPClassUID, m.SOPInstanceUID, ts, dataset)
	if err != nil {
		var ce *ConvertError
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
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case !isFailure(status):
		marks[it.key] = ForwardMark{SHA256: in.SHA256, At: now.UTC()}
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
			marks[it.key] = ForwardMark{SHA256: in.SHA256, Dead: true, Reason: reason, At: now.UTC()}
			f.dead.Add(1)
			f.dropLocked(it)
			f.Logger.Error("dicom: destination refused an instance for good; it is dead-lettered for this destination and kept in the spool",
				"status", fmt.Sprintf("0x%04X", status), "attempts", it.attempts, "refused_for", now.Sub(it.firstRefused).Round(time.Second))
			f.Logger.Debug("dicom: instance dead-lettered", "sop_instance_uid", m.SOPInstanceUID)
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
	return true, nil
}

// isPermanentRefusal reports whether a C-STORE failure status says the
// instance itself is unacceptable to the destination: A9xx (data set does
// not match the SOP class), 0122 (SOP class not supported), 0124 (not
// authorized).
func isPermanentRefusal(status uint16) bool {
	return status&0xFF00 == 0xA900 || status == StatusSOPClassNotSupported || status == 0x0124
}

// statusReason describes a failure status, for Stats (no patient data).
func statusReason(status uint16) string {
	var what string
	switch {
	case status&0xFF00 == 0xA700:
		what = "destination out of resources"
	case status&0xFF00 == 0xA900:
		what = "destination says the data set does not match its SOP class"
	case status == StatusSOPClassNotSupported:
		what = "destination does not support the SOP class"
	case status == 0x0124:
		what = "destination refused: not authorized"
	case status == StatusProcessingFailure:
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
	var ab *AbortError
	var src *errDataSetSource
	var ne net.Error
	switch {
	case errors.As(err, new(*ConvertError)):
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
