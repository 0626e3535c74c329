package gateway

import (
	"container/heap"
	"time"
)

// The Forwarder's queue: what is waiting, when each item may be tried
// next, and why the last try failed.

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
		// New content (or a retry): an old refusal of the key no longer
		// waits.
		delete(f.refused, k)
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
