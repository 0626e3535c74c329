package gateway

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wardgate/wardgate/dicom"

	"github.com/wardgate/wardgate/buffer"
	bolt "go.etcd.io/bbolt"
)

// CommitAfter says when an instance counts as committed.
type CommitAfter int

const (
	// CommitWhenSpooled: the instance is in the spool's index (durable,
	// fsynced) with the SOP class the request names.
	CommitWhenSpooled CommitAfter = iota
	// CommitWhenForwarded: and every forward destination has this very
	// content (the Ledger's marks).
	CommitWhenForwarded
)

// Defaults of a Committer.
const (
	DefaultCommitTimeout     = 24 * time.Hour
	DefaultMaxCommitments    = 1000
	DefaultCommitInterval    = 5 * time.Second
	DefaultReportGiveUp      = 7 * 24 * time.Hour
	commitmentDialTimeout    = 30 * time.Second
	commitmentReportTimeout  = 2 * time.Minute
	commitmentBucketName     = "commitment"
	refPending, refCommitted = 0, 1
	refFailed                = 2
)

var commitmentBucket = []byte(commitmentBucketName) // calling AE + " " + Transaction UID → commitmentRecord

// Committer is the Storage Commitment Push Model SCP's application (PS3.4
// Annex J): it is the dicom.CommitmentHandler of the Node's server.
//
// A request is decided against the spool and the Ledger, recorded in the
// Ledger's store (fsync) and only then answered Success. References that
// are decided at once (under CommitWhenSpooled all of them: an instance not
// in the spool when asked fails with 0112 at once, as Orthanc and dcm4chee
// do; a modality asks after its C-STOREs were answered, so what is not here
// then was never received) are kept with the request; under
// CommitWhenForwarded the others wait until every destination has them,
// re-evaluated when a forwarder records what its destination holds (at
// most every 500 ms) and every Interval, and fail with 0110
// after Timeout (a destination that refused one for good fails it at once).
//
// Once every reference is decided the N-EVENT-REPORT goes out: on the
// association the request came on while it is open, else on the latest
// open one from the same calling AE that asked too, else on a new
// association to the requester's address (Peers), as SCU proposing the SCP
// role (PS3.4 J.3.3). A report that cannot be delivered is retried with
// Backoff; the request is removed only once the requester answered the
// N-EVENT-REPORT (a failure status is logged and counted, and the report
// is not sent again: the requester has heard it). One undeliverable for
// GiveUpAfter is dropped, counted and logged as an error. Requests survive
// restarts: they live in the Ledger's bbolt store.
//
// Bounds: at most MaxPending requests wait (more are refused with 0213),
// each with at most dicom.MaxCommitmentReferences references. The Pruner
// keeps every instance a reference still waits for (Holds).
type Committer struct {
	Spool  *buffer.Spool
	Ledger *Ledger
	After  CommitAfter
	// Destinations are the Ledger names of every forward destination
	// (CommitWhenForwarded).
	Destinations []string
	// Timeout bounds how long a reference waits to be forwarded (0:
	// DefaultCommitTimeout).
	Timeout time.Duration
	// Peers maps a requester's calling AE title to its address
	// (host:port) for reports on a new association. Nil or absent: only
	// the requester's own associations can carry its reports.
	Peers map[string]string
	// PeerTLS maps a requester's calling AE title to the DICOM TLS of a
	// new association to its address (a modality that speaks only TLS);
	// absent: plain.
	PeerTLS map[string]*tls.Config
	// RequesterTLS is the DICOM TLS of a new association to a requester
	// that asked over TLS and has no PeerTLS entry (verified by its host
	// name); nil: such a report waits for an association of the
	// requester's own rather than go in the clear.
	RequesterTLS *tls.Config
	AETitle      string // ours: the calling AE title of report associations
	Timeouts     dicom.Timeouts
	MaxPending   int            // 0: DefaultMaxCommitments
	Interval     time.Duration  // re-evaluation; 0: DefaultCommitInterval
	Backoff      buffer.Backoff // for undeliverable reports; zero: buffer.DefaultBackoff
	GiveUpAfter  time.Duration  // 0: DefaultReportGiveUp
	Logger       *slog.Logger

	recMu     sync.Mutex // serialises the read-modify-writes of records
	mu        sync.Mutex
	reporters map[string]*dicom.Reporter // record key → the association it came on
	byAE      map[string]*dicom.Reporter // calling AE → its latest asking association
	held      map[string]int             // SOP Instance UID → undecided references to it
	sending   map[string]bool            // record keys whose report is in flight
	pending   int
	waiting   int
	retrying  map[string]bool
	kick      chan struct{}
	wg        sync.WaitGroup
	started   atomic.Bool
	// dests replaces Destinations once SetDestinations was called.
	dests atomic.Pointer[[]string]

	requests, refused, committed, failed, reportsSent, reportsRefused, abandoned atomic.Uint64
}

// CommitmentStats are the Committer's counts for the status page and
// metrics.
type CommitmentStats struct {
	Pending          int    `json:"pending"`           // requests not yet reported and answered
	Waiting          int    `json:"waiting"`           // references not decided yet (waiting to be forwarded)
	Retrying         int    `json:"reports_retrying"`  // requests whose report could not be delivered yet
	Requests         uint64 `json:"requests"`          // requests recorded since the start
	Refused          uint64 `json:"refused"`           // requests refused (too many pending, store failure)
	Committed        uint64 `json:"committed"`         // references reported committed
	Failed           uint64 `json:"failed"`            // references reported failed
	ReportsSent      uint64 `json:"reports_sent"`      // reports the requester answered
	ReportsRefused   uint64 `json:"reports_refused"`   // of those, answered with a failure status
	ReportsAbandoned uint64 `json:"reports_abandoned"` // undeliverable for GiveUpAfter, dropped
}

// commitRef is one reference of a request and what became of it.
type commitRef struct {
	dicom.SOPReference
	State  int       `json:"state"`
	Reason uint16    `json:"reason,omitempty"`
	At     time.Time `json:"at,omitzero"`
}

// commitmentRecord is a request as kept in the store.
type commitmentRecord struct {
	CallingAE      string      `json:"calling_ae"`
	CalledAE       string      `json:"called_ae"`
	TransactionUID string      `json:"transaction_uid"`
	Received       time.Time   `json:"received"`
	Refs           []commitRef `json:"refs"`
	Decided        time.Time   `json:"decided,omitzero"`
	Attempts       int         `json:"attempts,omitempty"`
	NextTry        time.Time   `json:"next_try,omitzero"`
	LastError      string      `json:"last_error,omitempty"`
	// TLS: the request came over DICOM TLS; a report on a new association
	// goes over TLS too.
	TLS bool `json:"tls,omitempty"`
}

func (r *commitmentRecord) key() string { return r.CallingAE + " " + r.TransactionUID }

func (r *commitmentRecord) undecided() int {
	n := 0
	for _, ref := range r.Refs {
		if ref.State == refPending {
			n++
		}
	}
	return n
}

func (r *commitmentRecord) result() dicom.CommitmentResult {
	res := dicom.CommitmentResult{TransactionUID: r.TransactionUID}
	for _, ref := range r.Refs {
		if ref.State == refCommitted {
			res.Committed = append(res.Committed, ref.SOPReference)
		} else {
			res.Failed = append(res.Failed, dicom.FailedReference{SOPReference: ref.SOPReference, Reason: ref.Reason})
		}
	}
	return res
}

func (c *Committer) log() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

func (c *Committer) init() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.kick == nil {
		c.kick = make(chan struct{}, 1)
		c.reporters = map[string]*dicom.Reporter{}
		c.byAE = map[string]*dicom.Reporter{}
		c.held = map[string]int{}
		c.sending = map[string]bool{}
		c.retrying = map[string]bool{}
	}
}

// Kick asks for the waiting references to be looked at again soon (a
// destination recorded what it holds, a request came).
func (c *Committer) Kick() {
	c.init()
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Holds reports whether a reference still waits for the instance key: the
// Pruner must keep it.
func (c *Committer) Holds(key string) bool {
	c.init()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.held[key] > 0
}

// Stats returns a snapshot.
func (c *Committer) Stats() CommitmentStats {
	c.init()
	c.mu.Lock()
	st := CommitmentStats{Pending: c.pending, Waiting: c.waiting, Retrying: len(c.retrying)}
	c.mu.Unlock()
	st.Requests, st.Refused = c.requests.Load(), c.refused.Load()
	st.Committed, st.Failed = c.committed.Load(), c.failed.Load()
	st.ReportsSent, st.ReportsRefused, st.ReportsAbandoned = c.reportsSent.Load(), c.reportsRefused.Load(), c.abandoned.Load()
	return st
}

// RequestCommitment implements dicom.CommitmentHandler.
func (c *Committer) RequestCommitment(ctx context.Context, req dicom.CommitmentRequest, rep *dicom.Reporter) (uint16, error) {
	c.init()
	rec := &commitmentRecord{CallingAE: req.CallingAE, CalledAE: req.CalledAE, TransactionUID: req.TransactionUID, Received: time.Now().UTC(), TLS: req.TLS}
	for _, r := range req.References {
		rec.Refs = append(rec.Refs, commitRef{SOPReference: r})
	}
	c.evaluate(rec, rec.Received)

	c.recMu.Lock()
	defer c.recMu.Unlock()
	old, err := c.read(rec.key())
	if err != nil {
		c.refused.Add(1)
		return dicom.StatusProcessingFailure, fmt.Errorf("storage commitment: reading the pending requests: %w", err)
	}
	c.mu.Lock()
	full := old == nil && c.pending >= c.maxPending()
	c.mu.Unlock()
	if full {
		c.refused.Add(1)
		return dicom.StatusResourceLimitation, fmt.Errorf("storage commitment: %d requests wait already: %w", c.maxPending(), dicom.ErrOutOfResources)
	}
	// A request sent again under its Transaction UID (the requester missed
	// our answer) replaces the first: one report answers both.
	if err := c.write(rec); err != nil {
		c.refused.Add(1)
		return dicom.StatusProcessingFailure, fmt.Errorf("storage commitment: recording the request: %w", err)
	}
	c.mu.Lock()
	if old != nil {
		c.forget(old)
	}
	c.track(rec)
	c.reporters[rec.key()] = rep
	c.byAE[rec.CallingAE] = rep
	c.mu.Unlock()
	c.requests.Add(1)
	c.log().Info("dicom: storage commitment requested", "calling", req.CallingAE, "references", len(rec.Refs), "waiting", rec.undecided())
	c.Kick()
	return dicom.StatusSuccess, nil
}

func (c *Committer) maxPending() int {
	if c.MaxPending > 0 {
		return c.MaxPending
	}
	return DefaultMaxCommitments
}

// track and forget count a record in (out of) the in-memory view: pending
// requests, undecided references and the instances they hold. Under mu.
func (c *Committer) track(r *commitmentRecord) {
	c.pending++
	for _, ref := range r.Refs {
		if ref.State == refPending {
			c.waiting++
			c.held[ref.SOPInstanceUID]++
		}
	}
}

func (c *Committer) forget(r *commitmentRecord) {
	c.pending--
	for _, ref := range r.Refs {
		if ref.State == refPending {
			c.waiting--
			if c.held[ref.SOPInstanceUID]--; c.held[ref.SOPInstanceUID] <= 0 {
				delete(c.held, ref.SOPInstanceUID)
			}
		}
	}
}

// evaluate decides the undecided references of r that can be decided now,
// and reports whether any was.
func (c *Committer) evaluate(r *commitmentRecord, now time.Time) bool {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultCommitTimeout
	}
	changed := false
	for i := range r.Refs {
		ref := &r.Refs[i]
		if ref.State != refPending {
			continue
		}
		state, reason := c.decide(ref.SOPReference)
		if state == refPending && now.Sub(r.Received) >= timeout {
			state, reason = refFailed, dicom.FailureProcessing
		}
		if state != refPending {
			ref.State, ref.Reason, ref.At = state, reason, now
			changed = true
		}
	}
	if changed && r.undecided() == 0 {
		r.Decided = now
	}
	return changed
}

// decide says what ref is now: committed, failed (with a reason), or
// pending (not yet held by every destination, or the spool could not be
// read: looked at again later).
func (c *Committer) decide(ref dicom.SOPReference) (int, uint16) {
	if !dicom.IsStorageSOPClass(ref.SOPClassUID) {
		return refFailed, dicom.FailureSOPClassUnsupported
	}
	in, err := c.Spool.Get(ref.SOPInstanceUID)
	if errors.Is(err, buffer.ErrNotFound) {
		return refFailed, dicom.FailureNoSuchObject
	}
	if err != nil {
		return refPending, 0
	}
	if h, err := HeaderOf(in); err == nil && h.SOPClassUID != "" && h.SOPClassUID != ref.SOPClassUID {
		return refFailed, dicom.FailureClassConflict
	}
	if c.After == CommitWhenSpooled {
		return refCommitted, 0
	}
	for _, d := range c.destinations() {
		m, ok := c.Ledger.ForwardMarkOf(d, in.Key)
		switch {
		case !ok || m.SHA256 != in.SHA256:
			return refPending, 0
		case m.Dead:
			// Refused for good by a destination: it will not have it
			// unless someone retries, which is not worth a modality's
			// wait.
			return refFailed, dicom.FailureProcessing
		}
	}
	return refCommitted, 0
}

// SetDestinations changes the destinations a reference waits for under
// commit_after: forwarded (a reload's); Kick then decides again what
// waits.
func (c *Committer) SetDestinations(d []string) { c.dests.Store(&d) }

func (c *Committer) destinations() []string {
	if d := c.dests.Load(); d != nil {
		return *d
	}
	return c.Destinations
}

// read returns the record under key, or nil.
func (c *Committer) read(key string) (*commitmentRecord, error) {
	var rec *commitmentRecord
	err := c.Ledger.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(commitmentBucket)
		if b == nil {
			return nil
		}
		if v := b.Get([]byte(key)); v != nil {
			rec = &commitmentRecord{}
			if err := json.Unmarshal(v, rec); err != nil {
				return fmt.Errorf("storage commitment record unreadable: %w", err)
			}
		}
		return nil
	})
	return rec, err
}

// write records r durably.
func (c *Committer) write(r *commitmentRecord) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return c.Ledger.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(commitmentBucket)
		if err != nil {
			return err
		}
		return b.Put([]byte(r.key()), v)
	})
}

// remove deletes the record under key when it is still the one received
// at received (not a newer request under the same Transaction UID).
func (c *Committer) remove(key string, received time.Time) (bool, error) {
	removed := false
	err := c.Ledger.db.Update(func(tx *bolt.Tx) error {
		removed = false
		b := tx.Bucket(commitmentBucket)
		if b == nil {
			return nil
		}
		v := b.Get([]byte(key))
		var r commitmentRecord
		if v == nil || json.Unmarshal(v, &r) != nil || !r.Received.Equal(received) {
			return nil
		}
		removed = true
		return b.Delete([]byte(key))
	})
	return removed && err == nil, err
}

// all returns every record; unreadable ones are counted in the Ledger and
// skipped.
func (c *Committer) all() ([]*commitmentRecord, error) {
	var out []*commitmentRecord
	err := c.Ledger.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(commitmentBucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, v []byte) error {
			r := &commitmentRecord{}
			if json.Unmarshal(v, r) != nil {
				c.Ledger.unreadable.Add(1)
				return nil
			}
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

// Run finds the requests left from before, then decides and reports until
// ctx ends; reports in flight are given up (and sent again after a restart).
func (c *Committer) Run(ctx context.Context) error {
	c.init()
	recs, err := c.all()
	if err != nil {
		return fmt.Errorf("storage commitment: reading the pending requests: %w", err)
	}
	c.mu.Lock()
	c.pending, c.waiting, c.held = 0, 0, map[string]int{}
	for _, r := range recs {
		c.track(r)
		if r.Attempts > 0 {
			c.retrying[r.key()] = true
		}
	}
	c.mu.Unlock()
	if len(recs) > 0 {
		c.log().Info("dicom: storage commitment requests waiting from before", "requests", len(recs))
	}
	interval := c.Interval
	if interval <= 0 {
		interval = DefaultCommitInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	defer c.wg.Wait()
	for {
		start := time.Now()
		if err := c.pass(ctx); err != nil && ctx.Err() == nil {
			c.log().Warn("dicom: storage commitment: reading the pending requests failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-c.kick:
		}
		// A pass looks at every undecided reference: however often
		// forwarders record marks, passes start at most every
		// minCommitPassGap.
		if wait := minCommitPassGap - time.Since(start); wait > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
		}
	}
}

// minCommitPassGap is the least time between the starts of two passes.
const minCommitPassGap = 500 * time.Millisecond

// pass decides what can be decided and starts the reports that are due.
func (c *Committer) pass(ctx context.Context) error {
	recs, err := c.all()
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	for _, r := range recs {
		if r.undecided() > 0 {
			if r = c.reevaluate(r.key(), now); r == nil {
				continue
			}
		}
		// No backoff is longer than its maximum: a next try further away
		// was written before the wall clock went back, and is due now.
		if r.undecided() > 0 || now.Before(r.NextTry) && r.NextTry.Sub(now) <= c.maxBackoff() {
			continue
		}
		c.mu.Lock()
		busy := c.sending[r.key()]
		c.sending[r.key()] = true
		c.mu.Unlock()
		if busy {
			continue
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.report(ctx, r)
			c.mu.Lock()
			delete(c.sending, r.key())
			c.mu.Unlock()
		}()
	}
	return nil
}

// maxBackoff is the longest wait between two tries of a report.
func (c *Committer) maxBackoff() time.Duration {
	b := c.Backoff
	if b.Initial <= 0 {
		b = buffer.DefaultBackoff
	}
	if b.Max > 0 {
		return b.Max
	}
	return DefaultReportGiveUp
}

// reevaluate decides what it can of the record under key, as stored now,
// and returns it (nil: gone).
func (c *Committer) reevaluate(key string, now time.Time) *commitmentRecord {
	c.recMu.Lock()
	defer c.recMu.Unlock()
	r, err := c.read(key)
	if err != nil || r == nil {
		return nil
	}
	before := *r
	before.Refs = append([]commitRef(nil), r.Refs...)
	if !c.evaluate(r, now) {
		return r
	}
	if err := c.write(r); err != nil {
		c.log().Warn("dicom: storage commitment: recording decided references failed; they are decided again", "err", err)
		return nil
	}
	c.mu.Lock()
	c.forget(&before)
	c.track(r)
	c.mu.Unlock()
	return r
}

// report sends r's N-EVENT-REPORT, and removes r once the requester
// answered it, or records the failure for a later attempt.
func (c *Committer) report(ctx context.Context, r *commitmentRecord) {
	res := r.result()
	status, via, err := c.deliver(ctx, r, res)
	if ctx.Err() != nil {
		return
	}
	c.recMu.Lock()
	defer c.recMu.Unlock()
	if err != nil {
		c.retry(r, err)
		return
	}
	removed, rerr := c.remove(r.key(), r.Received)
	if rerr != nil {
		// Sent again after the next failure or restart: the requester
		// takes a second report of the same transaction.
		c.log().Warn("dicom: storage commitment: removing a reported request failed", "err", rerr)
		return
	}
	c.reportsSent.Add(1)
	c.committed.Add(uint64(len(res.Committed)))
	c.failed.Add(uint64(len(res.Failed)))
	if status != dicom.StatusSuccess {
		c.reportsRefused.Add(1)
		c.log().Warn("dicom: storage commitment report answered with a failure; not sent again", "calling", r.CallingAE, "status", fmt.Sprintf("0x%04x", status))
	}
	c.log().Info("dicom: storage commitment reported", "calling", r.CallingAE, "via", via, "committed", len(res.Committed), "failed", len(res.Failed))
	c.mu.Lock()
	if removed {
		c.forget(r)
		delete(c.reporters, r.key())
	}
	delete(c.retrying, r.key())
	c.mu.Unlock()
}

// deliver sends res on an association of the requester if one is open,
// else on a new one to its address.
func (c *Committer) deliver(ctx context.Context, r *commitmentRecord, res dicom.CommitmentResult) (status uint16, via string, err error) {
	c.mu.Lock()
	var reps []*dicom.Reporter
	for _, rep := range []*dicom.Reporter{c.reporters[r.key()], c.byAE[r.CallingAE]} {
		if rep != nil && rep.Open() {
			reps = append(reps, rep)
		}
	}
	c.mu.Unlock()
	for _, rep := range reps {
		rctx, cancel := context.WithTimeout(ctx, commitmentReportTimeout)
		status, err = rep.Report(rctx, res)
		cancel()
		if err == nil {
			return status, "the requesting association", nil
		}
	}
	addr, ok := c.Peers[r.CallingAE]
	if !ok {
		return 0, "", fmt.Errorf("the requester's association has ended and dicom.allow gives no port for %s", r.CallingAE)
	}
	if r.TLS && c.reportTLS(r) == nil {
		return 0, "", fmt.Errorf("%s asked over DICOM TLS and no TLS is configured for a report to %s: it waits for an association of the requester's own", r.CallingAE, addr)
	}
	dctx, cancel := context.WithTimeout(ctx, commitmentDialTimeout)
	defer cancel()
	d := dicom.Dialer{
		CallingAE: c.AETitle, CalledAE: r.CallingAE, Timeouts: c.Timeouts, TLS: c.reportTLS(r),
		Roles: map[string]dicom.Role{dicom.StorageCommitmentPushModelSOPClass: {SCP: true}},
	}
	as, err := d.Dial(dctx, addr, []dicom.PresentationContextProposal{dicom.CommitmentProposal()})
	if err != nil {
		return 0, "", err
	}
	defer as.Abort()
	if as.TransferSyntaxFor(dicom.StorageCommitmentPushModelSOPClass) == "" {
		return 0, "", fmt.Errorf("%s at %s does not accept Storage Commitment", r.CallingAE, addr)
	}
	// A requester that answers our role selection with "not the SCP" is
	// taken at its word. One that ignores role selection (no item back:
	// the default roles) still gets the report: it accepted the SOP
	// class on an association we asked for, and a report it can take is
	// worth more to a modality deleting its copy than the letter of
	// PS3.7 D.3.3.4.
	if role, answered := as.AcceptedRole(dicom.StorageCommitmentPushModelSOPClass); answered && !role.SCP {
		return 0, "", fmt.Errorf("%s at %s refuses us the SCP role of Storage Commitment", r.CallingAE, addr)
	}
	rctx, rcancel := context.WithTimeout(ctx, commitmentReportTimeout)
	defer rcancel()
	status, err = as.ReportCommitment(rctx, res)
	if err != nil {
		return 0, "", err
	}
	as.Release(rctx)
	return status, "a new association to " + addr, nil
}

// reportTLS is the DICOM TLS of a new association to r's requester: its
// own (PeerTLS), or, when it asked over TLS, RequesterTLS; nil: plain.
func (c *Committer) reportTLS(r *commitmentRecord) *tls.Config {
	if t := c.PeerTLS[r.CallingAE]; t != nil {
		return t
	}
	if r.TLS {
		return c.RequesterTLS
	}
	return nil
}

// retry records a failed delivery: the next attempt after Backoff, or, past
// GiveUpAfter, the request dropped. Under recMu.
func (c *Committer) retry(r *commitmentRecord, err error) {
	cur, rerr := c.read(r.key())
	if rerr != nil || cur == nil || !cur.Received.Equal(r.Received) {
		return // replaced or gone meanwhile
	}
	giveUp := c.GiveUpAfter
	if giveUp <= 0 {
		giveUp = DefaultReportGiveUp
	}
	now := time.Now().UTC()
	if now.Sub(cur.Decided) >= giveUp {
		if removed, _ := c.remove(cur.key(), cur.Received); removed {
			c.abandoned.Add(1)
			c.log().Error("dicom: storage commitment report given up: the requester could not be reached", "calling", cur.CallingAE, "for", giveUp, "err", err.Error())
			c.mu.Lock()
			c.forget(cur)
			delete(c.retrying, cur.key())
			delete(c.reporters, cur.key())
			c.mu.Unlock()
		}
		return
	}
	cur.Attempts++
	cur.NextTry = now.Add(c.Backoff.Delay(cur.Attempts))
	cur.LastError = err.Error()
	if werr := c.write(cur); werr != nil {
		c.log().Warn("dicom: storage commitment: recording a failed report failed", "err", werr)
	}
	c.mu.Lock()
	c.retrying[cur.key()] = true
	c.mu.Unlock()
	if a := cur.Attempts; a&(a-1) == 0 { // attempts 1, 2, 4, 8…: a requester away for hours logs little
		c.log().Warn("dicom: storage commitment report not delivered; retrying", "calling", cur.CallingAE, "attempts", a, "next_in", cur.NextTry.Sub(now).Round(time.Second), "err", err.Error())
	}
}

// CommitmentConfig is a Node's storage commitment (NodeConfig.Commitment).
type CommitmentConfig struct {
	After   CommitAfter
	Timeout time.Duration // 0: DefaultCommitTimeout
	// Peers maps calling AE titles to the addresses (host:port) their
	// reports go to on a new association.
	Peers map[string]string
	// PeerTLS maps calling AE titles to the DICOM TLS of those new
	// associations; absent: plain.
	PeerTLS map[string]*tls.Config
	// RequesterTLS is Committer.RequesterTLS.
	RequesterTLS *tls.Config
	// MaxPending bounds the requests that wait (0: DefaultMaxCommitments).
	MaxPending int
}

// newCommitter builds the node's Committer when c asks for one, after the
// forwarders (whose destinations it waits for) and the pruner (which must
// keep what it waits for).
func (n *Node) newCommitter(c NodeConfig, log *slog.Logger) {
	if c.Commitment == nil {
		return
	}
	var dests []string
	for _, f := range n.Forwarders() {
		dests = append(dests, f.Dest.LedgerName())
	}
	n.Committer = &Committer{
		Spool: c.Spool, Ledger: n.Ledger, After: c.Commitment.After, Destinations: dests,
		Timeout: c.Commitment.Timeout, Peers: c.Commitment.Peers, PeerTLS: c.Commitment.PeerTLS, RequesterTLS: c.Commitment.RequesterTLS, AETitle: c.AETitle, Timeouts: c.Timeouts, Logger: log,
		MaxPending: c.Commitment.MaxPending,
	}
	if n.Pruner != nil {
		n.Pruner.Holds = n.Committer.Holds
	}
	// What a destination has is what decides a reference under
	// commit_after: forwarded; an arriving instance decides nothing (one
	// not in the spool when asked for failed then).
	if c.Commitment.After == CommitWhenForwarded {
		for _, f := range n.Forwarders() {
			f.OnMarked = n.Committer.Kick
		}
	}
}
