package fhir

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/wardgate/wardgate/buffer"
)

// Deliverer takes entries from the outbox and writes them to the FHIR server
// as transaction Bundles, one request at a time: while a request is in
// flight, new entries gather, so bundles grow with the load and an idle
// gateway sends each entry at once.
//
//   - 2xx: the entries are acknowledged (removed from the outbox).
//   - no answer, 408, 429, 5xx: the entries wait and are tried again with
//     backoff, never sooner than the server's Retry-After.
//   - 401: the token is renewed and the request made once more; if it is
//     still refused, the entries wait (a credentials problem is not the
//     data's fault).
//   - any other 4xx: the bundle is split in halves until the entries the
//     server refuses are found; the others are delivered, and each refused
//     one goes to the dead letters with the server's OperationOutcome.
//
// Every entry is written idempotently (conditional create or update on its
// identifier), so a retry, a duplicate lease or a second gateway never makes
// a second copy in the record.
type Deliverer struct {
	Outbox *buffer.Outbox
	Client *Client
	// BatchSize bounds the entries of one Bundle.
	BatchSize int
	// BatchWait, when set, holds a small batch this long for more entries.
	BatchWait time.Duration
	Log       *slog.Logger

	mu    sync.Mutex
	stats DeliveryStats
}

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
		d.send(context.WithoutCancel(ctx), items, owner)
	}
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
func (d *Deliverer) send(ctx context.Context, items []buffer.Item, owner map[uint64]*buffer.Batch) bool {
	// An entry that is not JSON can never be delivered: a bug, never sent.
	valid := items[:0:0]
	for _, it := range items {
		var e Entry
		if err := json.Unmarshal(it.Payload, &e); err != nil || len(e.Resource) == 0 || e.Request.Method == "" {
			d.settle(ctx, []buffer.Item{it}, owner, func(b *buffer.Batch, ids []uint64) error {
				return b.DeadLetter(ctx, "not a Bundle entry: "+fmt.Sprint(err), ids...)
			})
			d.count(func(s *DeliveryStats) { s.DeadLettered++ })
			continue
		}
		valid = append(valid, it)
	}
	items = valid
	if len(items) == 0 {
		return true
	}

	resp, err := d.Client.Post(ctx, bundle(items))
	d.count(func(s *DeliveryStats) { s.Requests++ })
	switch {
	case err != nil:
		if ctx.Err() != nil { // stopping: give the items back as they were
			d.settle(context.WithoutCancel(ctx), items, owner, func(b *buffer.Batch, ids []uint64) error {
				return b.Release(context.WithoutCancel(ctx), ids...)
			})
			return false
		}
		d.retry(ctx, items, owner, "no answer from the FHIR server: "+err.Error(), 0, 0)
		return false
	case resp.Status >= 200 && resp.Status < 300:
		d.settle(ctx, items, owner, func(b *buffer.Batch, ids []uint64) error { return b.Ack(ctx, ids...) })
		d.count(func(s *DeliveryStats) {
			s.Delivered += uint64(len(items))
			s.LastStatus, s.LastSuccess = resp.Status, time.Now()
		})
		return true
	case resp.Status == http.StatusRequestTimeout, resp.Status == http.StatusTooManyRequests,
		resp.Status >= 500, resp.Status == http.StatusUnauthorized, resp.Status == http.StatusForbidden:
		d.retry(ctx, items, owner, fmt.Sprintf("HTTP %d: %s", resp.Status, resp.Outcome), resp.RetryAfter, resp.Status)
		return false
	}
	// The server refused something in this Bundle.
	if len(items) == 1 {
		reason := fmt.Sprintf("HTTP %d: %s", resp.Status, resp.Outcome)
		d.settle(ctx, items, owner, func(b *buffer.Batch, ids []uint64) error { return b.DeadLetter(ctx, reason, ids...) })
		d.count(func(s *DeliveryStats) {
			s.DeadLettered++
			s.LastStatus, s.LastError, s.LastErrorAt = resp.Status, fmt.Sprintf("HTTP %d: an entry was refused", resp.Status), time.Now()
		})
		d.Log.Warn("the FHIR server refused an entry; it is in the dead letters", "status", resp.Status, "item", items[0].ID)
		return true
	}
	half := len(items) / 2
	if !d.send(ctx, items[:half], owner) {
		d.retry(ctx, items[half:], owner, "held back behind an entry that waits for a retry", 0, 0)
		return false
	}
	return d.send(ctx, items[half:], owner)
}

// retry puts items back for a retry after the backoff (or after).
func (d *Deliverer) retry(ctx context.Context, items []buffer.Item, owner map[uint64]*buffer.Batch, reason string, after time.Duration, status int) {
	ctx = context.WithoutCancel(ctx)
	d.settle(ctx, items, owner, func(b *buffer.Batch, ids []uint64) error { return b.Nack(ctx, reason, after, ids...) })
	d.count(func(s *DeliveryStats) {
		s.Retried += uint64(len(items))
		s.LastStatus, s.LastError, s.LastErrorAt = status, reason, time.Now()
	})
	d.Log.Warn("FHIR delivery will be retried", "entries", len(items), "status", status, "retry_after", after)
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
