package gateway

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wardgate/wardgate/dicom"

	"github.com/wardgate/wardgate/buffer"
)

// Destination is a PACS to forward to by C-STORE (AETitle, Host, Port),
// or a DICOMweb archive to forward to by STOW-RS (STOWRS).
type Destination struct {
	AETitle string
	Host    string
	Port    int
	// STOWRS, when set, is the base URL of a DICOMweb archive (PS3.18):
	// instances go there by STOW-RS, POST {STOWRS}/studies/{study}, and
	// AETitle, Host, Port and TLS are not used.
	STOWRS string
	// HTTP makes the STOW-RS requests: its transport carries the TLS
	// settings and the authentication, its Timeout bounds each request
	// (nil: a client with a 5 minute timeout and no authentication).
	HTTP *http.Client
	// STOWBatch and STOWBatchBytes bound one STOW-RS request, which holds
	// instances of one study only (0: 50 instances, 64 MiB; one instance
	// larger than that goes alone).
	STOWBatch      int
	STOWBatchBytes int64
	// TLS, when set, makes the associations DICOM TLS (already restricted
	// to the BCP 195 profile by whoever built it).
	TLS *tls.Config
}

func (d Destination) addr() string { return net.JoinHostPort(d.Host, strconv.Itoa(d.Port)) }

// LedgerName is the name the destination's marks have in the Ledger:
// AE@host:port. The AE title alone is not enough: two PACS may both be
// called PACS, and what one of them has the other does not. A DICOMweb
// archive is named by its base URL, without credentials or a trailing
// slash.
func (d Destination) LedgerName() string {
	if d.STOWRS != "" {
		return stowName(d.STOWRS)
	}
	return d.AETitle + "@" + d.addr()
}

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
//
// A DICOMweb destination (Destination.STOWRS) has the same queue, retries,
// dead letters and Stats; only the transport differs: STOW-RS requests of
// one study each instead of associations (forward_stow.go), whose answers
// are settled per instance by the same rules (forward_transport.go).
type Forwarder struct {
	Dest        Destination
	CallingAE   string
	Spool       *buffer.Spool
	Ledger      *Ledger
	Timeouts    dicom.Timeouts
	IdleRelease time.Duration // release the association after this long without work; 0: 3 s
	// MaxAttempts and DeadAfter: a permanent refusal dead-letters an
	// instance only after it was refused this many times (0: 5) over at
	// least this long since the first refusal (0: 1 h).
	MaxAttempts int
	DeadAfter   time.Duration
	Backoff     buffer.Backoff // zero: 1 s doubling to 5 min
	Logger      *slog.Logger
	// OnRefused, when set, is told of each refusal for good once its mark
	// is durable, so that it joins the gateway's dead letters. It must not
	// block for long. Refusals lists them again (after a restart).
	OnRefused func(Refusal)
	// OnMarked, when set, is called after marks of what the destination
	// answered are durable (a storage commitment may then be decided). It
	// must not block.
	OnMarked func()

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

	// refused are the refusals for good that wait for a retry or a drop
	// (key → content), under mu; refusedTotal counts those found at Run
	// and the refusals since.
	refused  map[string]string
	settling sync.Mutex

	delivered, refusedTotal, associations atomic.Uint64
}

// ForwardStats is a destination's queue, for the status page.
type ForwardStats struct {
	Destination  string            `json:"destination"` // AE@host:port
	Waiting      int               `json:"waiting"`
	Delivered    uint64            `json:"delivered"`
	DeadLettered int               `json:"dead_lettered"`    // refusals for good that wait for a retry or a drop now
	RefusedTotal uint64            `json:"refused_for_good"` // those waiting at the start plus the refusals since: only goes up
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
		Delivered: f.delivered.Load(), DeadLettered: len(f.refused), RefusedTotal: f.refusedTotal.Load(), Associations: f.associations.Load(),
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

// Run queues what the destination does not have yet, then forwards until
// ctx ends; an instance being sent then is abandoned and sent again at the
// next Run. Enqueue may be called before Run.
func (f *Forwarder) Run(ctx context.Context) error {
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
	// No retry or drop of a refusal between reading the marks and keeping
	// the refusals found.
	f.settling.Lock()
	marks, err := f.Ledger.Forwarded(f.Dest.LedgerName())
	if err != nil {
		f.settling.Unlock()
		return err
	}
	// Only what the queue needs: not the instances' header attributes.
	type queued struct {
		key    string
		stored time.Time
	}
	var todo []queued
	refused := map[string]string{}
	err = f.Spool.Each(func(in buffer.Instance) bool {
		if m, ok := marks[in.Key]; ok && m.SHA256 == in.SHA256 {
			if m.Dead && !m.Dropped {
				refused[in.Key] = in.SHA256
			}
			return true
		}
		todo = append(todo, queued{key: in.Key, stored: in.Stored})
		return true
	})
	if err != nil {
		f.settling.Unlock()
		return err
	}
	marks = nil
	sort.SliceStable(todo, func(i, j int) bool { return todo[i].stored.Before(todo[j].stored) })
	f.mu.Lock()
	// Refusals from before the restart still wait: the page shows them,
	// and they count among the refusals (as before the restart).
	f.refused = refused
	f.refusedTotal.Store(uint64(len(refused)))
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
	if len(refused) > 0 {
		f.Logger.Warn("dicom: instances dead-lettered for this destination are kept in the spool", "instances", len(refused))
	}
	f.settling.Unlock()
	f.run(ctx)
	return nil
}

// Refusal is an instance a destination refused for good: it stays in the
// spool until it is retried (sent again) or dropped (never sent there).
// Key is the instance's spool key; SHA256 the content refused.
type Refusal struct {
	Destination string    `json:"destination"` // AE@host:port
	Key         string    `json:"key"`
	SHA256      string    `json:"sha256"`
	Reason      string    `json:"reason"`
	At          time.Time `json:"at"`
}

// Refusals lists the refusals for good that wait for someone to retry or
// drop them: spooled content whose mark is Dead and not Dropped.
func (f *Forwarder) Refusals() ([]Refusal, error) {
	marks, err := f.Ledger.Forwarded(f.Dest.LedgerName())
	if err != nil {
		return nil, err
	}
	var out []Refusal
	err = f.Spool.Each(func(in buffer.Instance) bool {
		if m, ok := marks[in.Key]; ok && m.Dead && !m.Dropped && m.SHA256 == in.SHA256 {
			out = append(out, Refusal{Destination: f.Dest.LedgerName(), Key: in.Key, SHA256: in.SHA256, Reason: m.Reason, At: m.At})
		}
		return true
	})
	return out, err
}

// Retry sends a refused instance again: its refusal mark goes and it joins
// the queue, counted afresh. false: there is no such refusal waiting (it
// was retried or dropped, or the instance was replaced by other content,
// which is queued of its own accord).
func (f *Forwarder) Retry(key, sha string) (bool, error) {
	return f.settleRefusal(key, sha, func() (bool, error) {
		removed, err := f.Ledger.RemoveForwardMark(f.Dest.LedgerName(), key, sha)
		if removed {
			f.Enqueue(key)
		}
		return removed, err
	})
}

// Drop gives up on sending a refused instance to this destination: the
// mark says Dropped, and the instance may leave the spool without it.
// false: there is no such refusal waiting.
func (f *Forwarder) Drop(key, sha string) (bool, error) {
	return f.settleRefusal(key, sha, func() (bool, error) {
		return f.Ledger.DropForwardMark(f.Dest.LedgerName(), key, sha)
	})
}

// settleRefusal runs do for a refusal that waits: content sha of key,
// refused by this destination, and still what the spool holds. One
// settlement at a time, so a retry and a drop of the same refusal cannot
// both happen.
func (f *Forwarder) settleRefusal(key, sha string, do func() (bool, error)) (bool, error) {
	f.settling.Lock()
	defer f.settling.Unlock()
	// The ledger says whether the refusal waits (do checks the mark), the
	// spool whether it is still of what the spool holds.
	if in, err := f.Spool.Get(key); err != nil || in.SHA256 != sha || sha == "" {
		return false, nil // replaced or gone meanwhile: not this refusal
	}
	ok, err := do()
	if ok {
		f.mu.Lock()
		if f.refused[key] == sha {
			delete(f.refused, key)
		}
		f.mu.Unlock()
	}
	return ok, err
}
