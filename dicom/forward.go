package dicom

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
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

// Forwarder sends every spooled instance to one Destination by C-STORE, in
// the transfer syntax it was received and stored in, many instances per
// association. Its queue is the spool itself: at Start every instance the
// Ledger does not mark as delivered to (or refused for good by) the
// destination is queued again, so the queue survives restarts and SIGKILL;
// Enqueue adds what arrives meanwhile.
//
// A destination that accepts only the other uncompressed Little Endian
// syntax (Implicit ↔ Explicit VR) is not sent to: that would need a
// re-encoded data set, and wardgate keeps and sends what it received. Such
// an instance, like one whose syntax the destination refuses outright,
// waits with the reason in Stats and is proposed again later.
//
// Statuses: Success and the warnings (B000, B006, B007) mean delivered.
// A7xx (out of resources) is transient: retried with backoff, never given
// up. Every other failure (A9xx data set does not match the SOP class, Cxxx
// cannot understand, 0122 SOP class not supported, 0110 processing
// failure) is taken as permanent once it repeats: after MaxAttempts the
// instance is dead-lettered for this destination (kept in the spool, shown
// in Stats, never removed by the Pruner).
type Forwarder struct {
	Dest        Destination
	CallingAE   string
	Spool       *buffer.Spool
	Ledger      *Ledger
	Timeouts    Timeouts
	IdleRelease time.Duration  // release the association after this long without work; 0: 3 s
	MaxAttempts int            // for permanent failures; 0: 5
	Backoff     buffer.Backoff // zero: 1 s doubling to 1 min
	Logger      *slog.Logger

	mu      sync.Mutex
	items   map[string]*fwdItem
	order   []string // FIFO of keys; keys no longer in items are skipped
	lastErr string
	conn    bool
	kick    chan struct{}
	stop    context.CancelFunc
	done    chan struct{}

	delivered, dead, associations atomic.Uint64
}

type fwdItem struct {
	key       string
	attempts  int
	notBefore time.Time
	reason    string
}

// ForwardStats is a destination's queue, for the status page.
type ForwardStats struct {
	Destination  string            `json:"destination"` // AE@host:port
	Waiting      int               `json:"waiting"`
	Delivered    uint64            `json:"delivered"`
	DeadLettered uint64            `json:"dead_lettered"`
	Associations uint64            `json:"associations"`
	Connected    bool              `json:"connected"`
	LastError    string            `json:"last_error,omitempty"`
	Reasons      map[string]int    `json:"reasons,omitempty"` // why instances wait, with how many
	Dead         map[string]string `json:"-"`
}

// LedgerName is the name the destination's marks have in the Ledger.
func (d Destination) LedgerName() string { return d.AETitle }

// Stats returns a snapshot.
func (f *Forwarder) Stats() ForwardStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := ForwardStats{
		Destination: f.Dest.AETitle + "@" + f.Dest.addr(), Waiting: len(f.items),
		Delivered: f.delivered.Load(), DeadLettered: f.dead.Load(), Associations: f.associations.Load(),
		Connected: f.conn, LastError: f.lastErr,
	}
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
	f.Logger = f.Logger.With("destination", f.Dest.AETitle)
	if f.IdleRelease == 0 {
		f.IdleRelease = 3 * time.Second
	}
	if f.MaxAttempts == 0 {
		f.MaxAttempts = 5
	}
	if f.Backoff.Initial == 0 {
		f.Backoff = buffer.Backoff{Initial: time.Second, Max: time.Minute, Multiplier: 2}
	}
	f.items = map[string]*fwdItem{}
	f.kick = make(chan struct{}, 1)
	marks, err := f.Ledger.Forwarded(f.Dest.LedgerName())
	if err != nil {
		return err
	}
	var todo []buffer.Instance
	err = f.Spool.Each(func(in buffer.Instance) bool {
		if m, ok := marks[in.Key]; !ok || m.SHA256 != in.SHA256 {
			todo = append(todo, in)
		}
		return true
	})
	if err != nil {
		return err
	}
	sort.SliceStable(todo, func(i, j int) bool { return todo[i].Stored.Before(todo[j].Stored) })
	for _, in := range todo {
		f.Enqueue(in.Key)
	}
	if len(todo) > 0 {
		f.Logger.Info("dicom: instances queued for forwarding", "instances", len(todo))
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
func (f *Forwarder) Enqueue(key string) {
	f.mu.Lock()
	// A new item even for a queued key: a send in progress then does not
	// take the new content for delivered.
	if _, ok := f.items[key]; !ok {
		f.order = append(f.order, key)
	}
	f.items[key] = &fwdItem{key: key}
	f.mu.Unlock()
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// ready returns up to n keys whose time has come, oldest first, and when
// the next waiting one is due.
func (f *Forwarder) ready(n int) ([]*fwdItem, time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	next := now.Add(time.Hour)
	var out []*fwdItem
	live := f.order[:0]
	for _, k := range f.order {
		it, ok := f.items[k]
		if !ok {
			continue
		}
		live = append(live, k)
		if len(out) < n && !it.notBefore.After(now) {
			out = append(out, it)
		} else if it.notBefore.After(now) && it.notBefore.Before(next) {
			next = it.notBefore
		}
	}
	// Drop duplicates of keys that were delivered and queued again.
	seen := make(map[string]bool, len(live))
	f.order = live[:0]
	for _, k := range live {
		if !seen[k] {
			seen[k] = true
			f.order = append(f.order, k)
		}
	}
	return out, next
}

func (f *Forwarder) setErr(s string, connected bool) {
	f.mu.Lock()
	f.lastErr, f.conn = s, connected
	f.mu.Unlock()
}

// sendable is one instance opened for sending.
type sendable struct {
	it   *fwdItem
	in   buffer.Instance
	meta FileMeta
}

func (f *Forwarder) run(ctx context.Context) {
	defer close(f.done)
	var as *Association
	var proposed map[SOPClassTransfer]bool
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
			f.setErr(f.Stats().LastError, false)
		}
	}
	defer func() {
		release()
		flush()
	}()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for ctx.Err() == nil {
		batch, next := f.ready(64)
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
			s, err := f.open(it)
			if err != nil {
				continue
			}
			items = append(items, s)
		}
		if as == nil && len(items) > 0 {
			var err error
			as, proposed, err = f.dial(ctx, items)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				connFailures++
				d := f.Backoff.Delay(connFailures)
				f.setErr(fmt.Sprintf("cannot associate with %s: %v", f.Dest.addr(), err), false)
				f.Logger.Warn("dicom: forward destination unreachable; retrying", "err", err, "retry_in", d.Round(time.Millisecond))
				select {
				case <-ctx.Done():
				case <-time.After(d):
				}
				continue
			}
			connFailures = 0
			f.associations.Add(1)
			f.setErr("", true)
		}
		for _, s := range items {
			if ctx.Err() != nil {
				return
			}
			ok, err := f.send(ctx, as, proposed, s, marks)
			if err != nil {
				// The association is broken: abort it, back off, dial again.
				as.Abort()
				as = nil
				connFailures++
				f.setErr(fmt.Sprintf("association with %s failed: %v", f.Dest.addr(), err), false)
				f.Logger.Warn("dicom: forwarding interrupted; retrying", "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(f.Backoff.Delay(connFailures)):
				}
				break
			}
			if !ok { // not proposed on this association: negotiate again
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

// open reads the instance's meta header; an instance gone from the spool
// leaves the queue.
func (f *Forwarder) open(it *fwdItem) (sendable, error) {
	file, in, err := f.Spool.Open(it.key)
	if err == nil {
		defer file.Close()
		var m FileMeta
		m, _, err = ReadFileMeta(bufio.NewReader(file))
		if err == nil {
			return sendable{it: it, in: in, meta: m}, nil
		}
		err = fmt.Errorf("spooled file: %w", err)
	}
	f.mu.Lock()
	if f.items[it.key] == it {
		delete(f.items, it.key)
	}
	f.mu.Unlock()
	if !errors.Is(err, buffer.ErrNotFound) {
		f.Logger.Error("dicom: a spooled instance cannot be read; not forwarded", "err", err)
	}
	return sendable{}, err
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
// proposed on as. err: the association failed.
func (f *Forwarder) send(ctx context.Context, as *Association, proposed map[SOPClassTransfer]bool, s sendable, marks map[string]ForwardMark) (ok bool, err error) {
	m := s.meta
	if !proposed[SOPClassTransfer{SOPClassUID: m.SOPClassUID, TransferSyntaxUID: m.TransferSyntaxUID}] {
		return false, nil
	}
	it := s.it
	if !as.AcceptedTransferSyntax(m.SOPClassUID, m.TransferSyntaxUID) {
		reason := fmt.Sprintf("destination PACS accepts none of the transfer syntaxes: stored in %s (SOP class %s)", m.TransferSyntaxUID, m.SOPClassUID)
		if IsUncompressedLittleEndian(m.TransferSyntaxUID) && f.acceptsClass(as, m.SOPClassUID) {
			reason = fmt.Sprintf("destination PACS accepts only the other Little Endian syntax (stored in %s); wardgate does not re-encode", m.TransferSyntaxUID)
		}
		f.mu.Lock()
		it.reason = reason
		it.notBefore = time.Now().Add(time.Minute)
		f.mu.Unlock()
		return true, nil
	}
	file, in, err := f.Spool.Open(it.key)
	if err != nil {
		f.mu.Lock()
		if f.items[it.key] == it {
			delete(f.items, it.key)
		}
		f.mu.Unlock()
		return true, nil
	}
	defer file.Close()
	br := bufio.NewReaderSize(file, 256<<10)
	if _, _, err := ReadFileMeta(br); err != nil {
		return true, nil
	}
	status, err := as.Store(ctx, m.SOPClassUID, m.SOPInstanceUID, m.TransferSyntaxUID, br)
	if err != nil {
		return true, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	current := f.items[it.key] == it
	switch {
	case !isFailure(status):
		marks[it.key] = ForwardMark{SHA256: in.SHA256, At: time.Now().UTC()}
		f.delivered.Add(1)
		if current {
			delete(f.items, it.key)
		}
	case status&0xFF00 == 0xA700:
		it.attempts++
		it.reason = fmt.Sprintf("destination out of resources (status 0x%04X)", status)
		it.notBefore = time.Now().Add(f.Backoff.Delay(it.attempts))
		f.lastErr = it.reason
	default:
		it.attempts++
		it.reason = fmt.Sprintf("destination refused the instance (status 0x%04X)", status)
		f.lastErr = it.reason
		if it.attempts >= f.MaxAttempts {
			marks[it.key] = ForwardMark{SHA256: in.SHA256, Dead: true, Reason: it.reason, At: time.Now().UTC()}
			f.dead.Add(1)
			if current {
				delete(f.items, it.key)
			}
			f.Logger.Error("dicom: destination refused an instance repeatedly; it is dead-lettered for this destination and kept in the spool",
				"status", fmt.Sprintf("0x%04X", status), "attempts", it.attempts)
		} else {
			it.notBefore = time.Now().Add(f.Backoff.Delay(it.attempts))
		}
	}
	return true, nil
}

func (f *Forwarder) acceptsClass(as *Association, sopClass string) bool {
	for _, c := range as.Accepted() {
		if c.AbstractSyntax == sopClass {
			return true
		}
	}
	return false
}
