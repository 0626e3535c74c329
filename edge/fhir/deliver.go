package fhir

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/wardgate/wardgate/buffer"
)

// Deliverer takes entries from the outbox and writes them to the FHIR server
// as transaction Bundles, one request at a time: while a request is in
// flight, new entries gather, so bundles grow with the load and an idle
// gateway sends each entry at once. Devices and Endpoints go in a Bundle of
// their own before the entries that refer to them, and an entry queued twice
// is sent once.
//
//   - 2xx with a transaction-response whose every entry succeeded: the
//     entries are acknowledged (removed from the outbox). Any other 2xx (a
//     proxy's page; redirects are not followed) proves nothing and is retried.
//   - no answer, 401/403 (after one token renewal), 408, 409, 412, 429, 5xx:
//     the entries wait and are tried again with backoff; a Retry-After holds
//     back every entry, not only those it answered.
//   - 400, 404 or 422 with an OperationOutcome: the record refused something.
//     The Bundle is split in halves until the refused entries are found; the
//     others are delivered, and each refused one goes to the dead letters
//     with the server's OperationOutcome.
//   - 403, 409 or 412 with an OperationOutcome may pass (a role being
//     granted, a conditional create racing its own earlier attempt), so they
//     are retried; once a Bundle so refused holds an entry refused so
//     PermanentAfter times (such answers only: an outage's 503s do not
//     count), they are taken as refusals for good, as 400 is: one entry
//     (412: its conditional create matches several resources) must not
//     stall its device's stream for ever.
//   - any other answer (no OperationOutcome: a wrong base_url, a proxy) is
//     retried, never dead-lettered.
//
// Every entry is written idempotently (conditional create or update on its
// identifier), so a retry, a duplicate lease or a second gateway never makes
// a second copy in the record. Retry reasons and logs carry status and issue
// codes only: an OperationOutcome can quote patient data.
type Deliverer struct {
	Outbox *buffer.Outbox
	Client *Client
	// BatchSize bounds the entries of one Bundle.
	BatchSize int
	// BatchWait, when set, holds a small batch this long for more entries.
	BatchWait time.Duration
	Log       *slog.Logger
	// OnDelivered, when set, is told of the entries each 2xx acknowledged
	// and what each wrote, for the status page, metrics and the DICOM
	// application (a delivered ImagingStudy lets its instances go). It must
	// not block.
	OnDelivered func(entries []Settled)
	// PermanentAfter is how many answers of 403, 409 or 412 an entry gets
	// before they are taken as a refusal for good (5 when zero).
	PermanentAfter int
	// OnRefused, when set, is told of the entries that went to the dead
	// letters (a Device the record refused: its mapper writes it again).
	// It must not block.
	OnRefused func(entries []Settled)

	mu         sync.Mutex
	stats      DeliveryStats
	pauseUntil time.Time      // a server's Retry-After, for all entries
	refusals   map[uint64]int // entry id → 403, 409 and 412 answers so far (this run)
	// retries bounds the retry log during an outage (logRetry).
	retries struct {
		logged     time.Time
		unlogged   int // retries since the last line
		unloggedOf int // entries in them
	}
}

// retryLogEvery is the least time between two "will be retried" lines:
// an outage with many devices' streams failing at once would otherwise log
// a line per stream per attempt.
const retryLogEvery = 10 * time.Second

// DeliveryStats is what the status page shows of delivery.
type DeliveryStats struct {
	Delivered    uint64 // entries acknowledged by the server
	Retried      uint64 // entries put back for a retry
	DeadLettered uint64 // entries the server refused
	Requests     uint64 // Bundles posted
	LastStatus   int    // HTTP status of the last answer (0: none)
	LastError    string // the last failure, without patient data
	LastErrorAt  time.Time
	LastSuccess  time.Time
}

// Stats returns a snapshot.
func (d *Deliverer) Stats() DeliveryStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

const leaseTTL = 10 * time.Minute

// Run delivers until ctx ends or the outbox closes.
func (d *Deliverer) Run(ctx context.Context) error {
	if d.BatchSize <= 0 {
		d.BatchSize = 100
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	for {
		if !d.waitPause(ctx) {
			return nil
		}
		batches, err := d.collect(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, buffer.ErrClosed) {
				return nil
			}
			return err
		}
		var items []buffer.Item
		owner := map[uint64]*buffer.Batch{}
		for _, b := range batches {
			for _, it := range b.Items {
				items = append(items, it)
				owner[it.ID] = b
			}
		}
		// A stop lets the request in flight finish (the client's timeout
		// bounds it) rather than cut it off and send it again later.
		sctx := context.WithoutCancel(ctx)
		keys := make(map[uint64]entryMeta, len(items))
		valid := items[:0:0]
		for _, it := range items {
			m := metaOf(it)
			if it.Kind != "" && it.Kind != buffer.KindFHIR {
				// A raw device frame retried from the dead letters: whatever
				// it holds, it is not ours to post.
				m = entryMeta{}
			}
			if m.method == "" {
				// Not a Bundle entry: it can never be delivered (a bug).
				d.settle(sctx, []buffer.Item{it}, owner, func(b *buffer.Batch, ids []uint64) error {
					return b.DeadLetter(sctx, "not a Bundle entry", ids...)
				})
				d.count(func(s *DeliveryStats) { s.DeadLettered++ })
				continue
			}
			keys[it.ID] = m
			valid = append(valid, it)
		}
		items = d.dedupe(sctx, valid, owner, keys)
		// Devices and Endpoints go first, on their own, so that the
		// conditional references of the Observations and ImagingStudies that
		// follow resolve against the record as it is, on any server.
		first, rest := partition(items, keys)
		if len(first) > 0 && !d.send(sctx, first, owner, keys) {
			if len(rest) > 0 {
				d.holdBack(sctx, rest, owner, "held back behind a Device or Endpoint that waits for a retry")
			}
			continue
		}
		if len(rest) > 0 {
			d.send(sctx, rest, owner, keys)
		}
	}
}

// Settled is an outbox entry the deliverer settled (acknowledged or refused
// by the record), and the resource type it writes.
type Settled struct {
	buffer.Item
	ResourceType string
}

// entryMeta is what delivery needs to know of an entry besides its bytes.
type entryMeta struct {
	key          string // what makes two entries write the same thing
	resourceType string
	method       string
}

func entries(items []buffer.Item, meta map[uint64]entryMeta) []Settled {
	out := make([]Settled, len(items))
	for i, it := range items {
		out[i] = Settled{Item: it, ResourceType: meta[it.ID].resourceType}
	}
	return out
}

// metaOf reads an entry's request; method is empty when the payload is not
// a Bundle entry with a resource.
func metaOf(it buffer.Item) entryMeta {
	var e struct {
		Resource json.RawMessage `json:"resource"`
		Request  Request         `json:"request"`
	}
	if json.Unmarshal(it.Payload, &e) != nil || len(e.Resource) == 0 {
		return entryMeta{}
	}
	typ, _, _ := strings.Cut(e.Request.URL, "?")
	typ, _, _ = strings.Cut(typ, "/")
	return entryMeta{key: e.Request.Method + " " + e.Request.URL + " " + e.Request.IfNoneExist, resourceType: typ, method: e.Request.Method}
}

// dedupe keeps one entry of each group that writes the same thing (a
// reading redelivered by its source, a Device or Endpoint queued twice, an
// ImagingStudy updated twice): the first of conditional creates, the last of
// conditional updates (the newest state). The others are acknowledged now:
// the one kept stays in the outbox until the record has it. Two such entries
// in one transaction would otherwise both be created.
func (d *Deliverer) dedupe(ctx context.Context, items []buffer.Item, owner map[uint64]*buffer.Batch, meta map[uint64]entryMeta) []buffer.Item {
	keep := map[string]int{} // key → index in items of the survivor
	drop := map[int]bool{}
	for i, it := range items {
		key, method := meta[it.ID].key, meta[it.ID].method
		if j, seen := keep[key]; seen {
			if method == "PUT" {
				drop[j] = true
				keep[key] = i
			} else {
				drop[i] = true
			}
			continue
		}
		keep[key] = i
	}
	if len(drop) == 0 {
		return items
	}
	out := make([]buffer.Item, 0, len(items)-len(drop))
	var superseded []buffer.Item
	for i, it := range items {
		if drop[i] {
			superseded = append(superseded, it)
		} else {
			out = append(out, it)
		}
	}
	d.settle(ctx, superseded, owner, func(b *buffer.Batch, ids []uint64) error { return b.Ack(ctx, ids...) })
	return out
}

// partition splits out the resources that others refer to.
func partition(items []buffer.Item, meta map[uint64]entryMeta) (referenced, rest []buffer.Item) {
	for _, it := range items {
		switch meta[it.ID].resourceType {
		case "Device", "Endpoint":
			referenced = append(referenced, it)
		default:
			rest = append(rest, it)
		}
	}
	return referenced, rest
}

// waitPause waits out a server's Retry-After for every entry, not only the
// ones it answered; false when ctx ended.
func (d *Deliverer) waitPause(ctx context.Context) bool {
	d.mu.Lock()
	until := d.pauseUntil
	d.mu.Unlock()
	if wait := time.Until(until); wait > 0 {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
	}
	return ctx.Err() == nil
}

// collect leases the next batch (waiting for one), and with BatchWait set
// tops a small one up once after that wait.
func (d *Deliverer) collect(ctx context.Context) ([]*buffer.Batch, error) {
	b, err := d.Outbox.Lease(ctx, d.BatchSize, leaseTTL)
	if err != nil {
		return nil, err
	}
	batches := []*buffer.Batch{b}
	if n := len(b.Items); n < d.BatchSize && d.BatchWait > 0 {
		wait, cancel := context.WithTimeout(ctx, d.BatchWait)
		more, err := d.Outbox.Lease(wait, d.BatchSize-n, leaseTTL)
		cancel()
		if err == nil {
			batches = append(batches, more)
		}
	}
	return batches, nil
}

// bundle wraps entries (as kept in the outbox) into a transaction Bundle.
func bundle(items []buffer.Item) []byte {
	var buf bytes.Buffer
	buf.WriteString(`{"resourceType":"Bundle","type":"transaction","entry":[`)
	for i, it := range items {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(it.Payload)
	}
	buf.WriteString("]}")
	return buf.Bytes()
}

// send delivers items in one Bundle, splitting it when the server refuses
// some entry. It returns false when delivery must stop for now (the server
// is unavailable): the items it did not settle are then put back.
func (d *Deliverer) send(ctx context.Context, items []buffer.Item, owner map[uint64]*buffer.Batch, meta map[uint64]entryMeta) bool {
	resp, err := d.Client.Post(ctx, bundle(items))
	d.count(func(s *DeliveryStats) { s.Requests++ })
	if err != nil {
		d.retry(ctx, items, owner, "no answer from the FHIR server: "+err.Error(), 0, 0)
		return false
	}
	st := resp.Status
	switch {
	case st >= 200 && st < 300:
		if !resp.TransactionResponse || len(resp.Entries) != len(items) || !all2xx(resp.Entries) {
			// A 2xx that is not the record's answer for each entry (a proxy's
			// page, a redirect target) proves nothing was written.
			d.retry(ctx, items, owner, fmt.Sprintf("HTTP %d without a transaction-response for every entry (a proxy in the way?)", st), 0, st)
			return false
		}
		d.settle(ctx, items, owner, func(b *buffer.Batch, ids []uint64) error { return b.Ack(ctx, ids...) })
		d.forgetRefusals(items)
		d.count(func(s *DeliveryStats) {
			s.Delivered += uint64(len(items))
			s.LastStatus, s.LastSuccess = st, time.Now()
		})
		if d.OnDelivered != nil {
			d.OnDelivered(entries(items, meta))
		}
		return true
	case (st == 400 || st == 404 || st == 422) && resp.IsOutcome:
		// The record refused something in this Bundle: find it below.
	case (st == 403 || st == 409 || st == 412) && resp.IsOutcome && d.refusedEnough(items):
		// Refused again and again: for good. Find it below.
	case st == 408, st == 409, st == 412, st == 429, st >= 500, st == 401, st == 403:
		// 409/412: a conditional create racing its own earlier attempt.
		if resp.RetryAfter > 0 {
			d.mu.Lock()
			d.pauseUntil = time.Now().Add(resp.RetryAfter)
			d.mu.Unlock()
		}
		d.retry(ctx, items, owner, fmt.Sprintf("HTTP %d %s", st, resp.Codes), resp.RetryAfter, st)
		return false
	default:
		d.retry(ctx, items, owner, fmt.Sprintf("HTTP %d without a FHIR OperationOutcome: is fhir.base_url right, or is a proxy answering?", st), 0, st)
		return false
	}
	if len(items) == 1 {
		reason := fmt.Sprintf("HTTP %d: %s", st, resp.Outcome)
		d.settle(ctx, items, owner, func(b *buffer.Batch, ids []uint64) error { return b.DeadLetter(ctx, reason, ids...) })
		d.forgetRefusals(items)
		if d.OnRefused != nil {
			d.OnRefused(entries(items, meta))
		}
		d.count(func(s *DeliveryStats) {
			s.DeadLettered++
			s.LastStatus, s.LastError, s.LastErrorAt = st, fmt.Sprintf("HTTP %d %s: an entry was refused", st, resp.Codes), time.Now()
		})
		d.Log.Warn("the FHIR server refused an entry; it is in the dead letters", "status", st, "item", items[0].ID)
		return true
	}
	half := len(items) / 2
	if !d.send(ctx, items[:half], owner, meta) {
		d.holdBack(ctx, items[half:], owner, "held back behind an entry that waits for a retry")
		return false
	}
	return d.send(ctx, items[half:], owner, meta)
}

// refusedEnough counts a 403, 409 or 412 for each entry of a Bundle and
// tells whether one of them has had PermanentAfter of those.
func (d *Deliverer) refusedEnough(items []buffer.Item) bool {
	n := d.PermanentAfter
	if n <= 0 {
		n = 5
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.refusals == nil {
		d.refusals = map[uint64]int{}
	}
	enough := false
	for _, it := range items {
		d.refusals[it.ID]++
		if d.refusals[it.ID] >= n {
			enough = true
		}
	}
	return enough
}

// forgetRefusals drops the counts of entries that left the outbox.
func (d *Deliverer) forgetRefusals(items []buffer.Item) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, it := range items {
		delete(d.refusals, it.ID)
	}
}

func all2xx(statuses []string) bool {
	for _, s := range statuses {
		if !strings.HasPrefix(s, "2") {
			return false
		}
	}
	return true
}

// holdBack puts items back that were not sent because others before them
// wait for a retry; the cause was recorded with those.
func (d *Deliverer) holdBack(ctx context.Context, items []buffer.Item, owner map[uint64]*buffer.Batch, why string) {
	ctx = context.WithoutCancel(ctx)
	d.settle(ctx, items, owner, func(b *buffer.Batch, ids []uint64) error { return b.Nack(ctx, why, 0, ids...) })
	d.count(func(s *DeliveryStats) { s.Retried += uint64(len(items)) })
}

// logRetry logs a retry at once, then at most every retryLogEvery with how
// many came since.
func (d *Deliverer) logRetry(entries, status int, reason string, after time.Duration) {
	d.mu.Lock()
	now := time.Now()
	if now.Sub(d.retries.logged) < retryLogEvery {
		d.retries.unlogged++
		d.retries.unloggedOf += entries
		d.mu.Unlock()
		return
	}
	n, of := d.retries.unlogged, d.retries.unloggedOf
	d.retries.logged, d.retries.unlogged, d.retries.unloggedOf = now, 0, 0
	d.mu.Unlock()
	attrs := []any{"entries", entries, "status", status, "reason", reason, "retry_after", after}
	if n > 0 {
		attrs = append(attrs, "retries_since_last_line", n, "entries_in_them", of)
	}
	d.Log.Warn("FHIR delivery will be retried", attrs...)
}

// retry puts items back for a retry after the backoff (or after).
func (d *Deliverer) retry(ctx context.Context, items []buffer.Item, owner map[uint64]*buffer.Batch, reason string, after time.Duration, status int) {
	ctx = context.WithoutCancel(ctx)
	d.settle(ctx, items, owner, func(b *buffer.Batch, ids []uint64) error { return b.Nack(ctx, reason, after, ids...) })
	d.count(func(s *DeliveryStats) {
		s.Retried += uint64(len(items))
		s.LastStatus, s.LastError, s.LastErrorAt = status, reason, time.Now()
	})
	d.logRetry(len(items), status, reason, after)
}

// settle applies fn to the items, grouped by the batch that leased them.
func (d *Deliverer) settle(ctx context.Context, items []buffer.Item, owner map[uint64]*buffer.Batch, fn func(*buffer.Batch, []uint64) error) {
	byBatch := map[*buffer.Batch][]uint64{}
	var order []*buffer.Batch
	for _, it := range items {
		b := owner[it.ID]
		if _, ok := byBatch[b]; !ok {
			order = append(order, b)
		}
		byBatch[b] = append(byBatch[b], it.ID)
	}
	for _, b := range order {
		if err := fn(b, byBatch[b]); err != nil {
			d.Log.Error("could not record a delivery result in the outbox; the entries will be delivered again", "err", err)
		}
	}
}

func (d *Deliverer) count(f func(*DeliveryStats)) {
	d.mu.Lock()
	f(&d.stats)
	d.mu.Unlock()
}
