package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wardgate/wardgate/buffer"
	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/edge/fhir"
)

// Readings that cannot be charted yet wait in their own outbox (the "held"
// store, data_dir/held.db), one item per frame, so that they survive a
// restart like everything else accepted. A reading waits when its device's
// clock has not decided its time (devices.Clock), or when the association
// model does not give one certain patient for it (patients.go).
//
// The resolver looks at waiting frames again and again (every second at
// first, then less often, at most a minute apart, and at once after a
// lookup): a frame whose readings all have their patient is mapped into
// the main outbox; one with some is split, the rest waiting as a frame of
// their own. How long a frame may wait depends on why:
//
//   - vacant or uncertain (an answer: nobody, or no one certain patient, lay
//     in the bed then): patients.hold_unassociated from the first such
//     answer; then the frame goes to the dead letters with the reason,
//     counted and logged without patient data, and can be retried once the
//     bed's patient is known (wardgate queue retry);
//   - the record unreachable, not yet asked, or the clock undecided: it
//     waits within the held store's quota, and never expires for that.
//
// Mapping is deterministic, so a frame mapped twice (a crash between two
// stores) is still one Observation per reading in the record.

// KindHeld marks a dead letter that holds a frame of readings that expired
// while waiting for a patient: retrying puts it back to wait again.
const KindHeld = "held"

// heldRecheck is how often the resolver looks for frames that are due.
const heldRecheck = time.Second

// holdBackoff spaces the looks at one waiting frame.
var holdBackoff = buffer.Backoff{Initial: time.Second, Max: time.Minute, Multiplier: 2}

// heldNote is what the resolver last found of a waiting frame.
type heldNote struct {
	bed     string
	verdict verdict
	reason  string
	since   time.Time // first answer that starts the hold clock (zero: none yet)
}

// heldNotes are the notes of the frames waiting now, by held item id.
type heldNotes struct {
	mu sync.Mutex
	m  map[uint64]heldNote
}

func (n *heldNotes) get(id uint64) heldNote {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.m[id]
}

func (n *heldNotes) set(id uint64, note heldNote) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.m == nil {
		n.m = map[uint64]heldNote{}
	}
	n.m[id] = note
}

func (n *heldNotes) forget(ids ...uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, id := range ids {
		delete(n.m, id)
	}
}

// heldReason is one reason frames wait, with how many.
type heldReason struct {
	Verdict string    `json:"verdict"`
	Reason  string    `json:"reason"`
	Frames  int       `json:"frames"`
	Since   time.Time `json:"hold_clock_since,omitzero"` // the earliest start of the hold clock among them
}

// summary groups the notes by reason, most frames first.
func (n *heldNotes) summary() []heldReason {
	n.mu.Lock()
	by := map[string]*heldReason{}
	for _, note := range n.m {
		k := note.verdict.String() + "\x00" + note.reason
		r := by[k]
		if r == nil {
			r = &heldReason{Verdict: note.verdict.String(), Reason: note.reason}
			by[k] = r
		}
		r.Frames++
		if !note.since.IsZero() && (r.Since.IsZero() || note.since.Before(r.Since)) {
			r.Since = note.since
		}
	}
	n.mu.Unlock()
	out := make([]heldReason, 0, len(by))
	for _, r := range by {
		out = append(out, *r)
	}
	sortHeldReasons(out)
	return out
}

func (g *Gateway) hold(ctx context.Context, frames [][]devices.Reading) error {
	items := make([]buffer.Item, 0, len(frames))
	for _, f := range frames {
		b, err := json.Marshal(f)
		if err != nil {
			return err
		}
		// No key: held frames are independent (their entries are
		// deterministic), so one that cannot be charted yet must not hold
		// back a later one that can.
		items = append(items, buffer.Item{Kind: "readings", Payload: b})
	}
	if _, err := g.held.Append(ctx, items...); err != nil {
		return err
	}
	g.ingest.held.Add(uint64(len(frames)))
	g.kickResolver()
	return nil
}

// kickResolver makes the resolver look at the waiting frames soon.
func (g *Gateway) kickResolver() {
	select {
	case g.resolveKick <- struct{}{}:
	default:
	}
}

// resolveHeld runs until ctx ends.
func (g *Gateway) resolveHeld(ctx context.Context) {
	t := time.NewTicker(heldRecheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-g.resolveKick:
		}
		if err := g.resolveOnce(ctx); err != nil && ctx.Err() == nil {
			g.log.Error("held readings: cannot look at them now", "err", err)
		}
	}
}

// resolveOnce looks at every waiting frame that is due.
func (g *Gateway) resolveOnce(ctx context.Context) error {
	hold := g.holdUnassociated()
	for ctx.Err() == nil {
		lctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		b, err := g.held.Lease(lctx, 1000, time.Minute)
		cancel()
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return nil // nothing due
			}
			return err
		}
		now := time.Now()
		var ready [][]fhir.PatientReading
		var rest [][]devices.Reading
		var done, waiting []uint64
		var expired []buffer.Item
		var expiredWhy []string
		for _, it := range b.Items {
			var frame []devices.Reading
			if err := json.Unmarshal(it.Payload, &frame); err != nil || len(frame) == 0 {
				// Not a frame this gateway wrote: kept, never deleted.
				expired = append(expired, it)
				expiredWhy = append(expiredWhy, "a held frame that does not read as readings")
				continue
			}
			decided := false // a reading's clock decided its time in this look
			for i := range frame {
				was := frame[i].ClockPending
				g.clocks.Settle(&frame[i], now)
				decided = decided || (was && !frame[i].ClockPending)
			}
			// Lookups start in the background: a record that hangs must
			// not hold up the other beds' frames (or the clocks' decisions).
			r, w, why := g.associate(ctx, frame, askInBackground)
			if len(r) > 0 {
				ready = append(ready, r)
			}
			if len(w) == 0 {
				done = append(done, it.ID)
				continue
			}
			if len(r) > 0 || decided {
				// Some readings have their patient: they go on, the rest
				// wait as a frame of their own (its hold clock anew). A
				// frame whose clock decided its time is kept as decided,
				// so that the decision cannot be lost with the clock's
				// bounded history.
				rest = append(rest, w)
				done = append(done, it.ID)
				continue
			}
			note := g.heldNotes.get(it.ID)
			note.bed, note.verdict, note.reason = frame[0].Location, why.verdict, why.reason
			if why.expires() && note.since.IsZero() {
				note.since = now
			}
			// A frame expires on an answer the record gave after its hold
			// ran out, not on one from before (a late admission may have
			// been documented since; the background lookup brings a fresh
			// answer within patients.encounter_lookup.refresh).
			fresh := why.asOf.IsZero() || !why.asOf.Before(note.since.Add(hold))
			if !note.since.IsZero() && now.Sub(note.since) >= hold && why.expires() && fresh {
				expired = append(expired, it)
				expiredWhy = append(expiredWhy, fmt.Sprintf("%s, for patients.hold_unassociated (%s): retry once the bed's patient is known", why.reason, hold))
				continue
			}
			g.heldNotes.set(it.ID, note)
			waiting = append(waiting, it.ID)
		}
		if err := g.store(ctx, ready); err != nil {
			b.Release(ctx)
			return err
		}
		if len(rest) > 0 {
			if err := g.hold(ctx, rest); err != nil {
				b.Release(ctx)
				return err
			}
		}
		g.ingest.heldCharted.Add(uint64(len(ready)))
		for i, it := range expired {
			// Kept among the dead letters first, then taken out of the
			// held store: a crash in between keeps it twice, never none.
			if _, err := g.outbox.AddDeadLetter(ctx, buffer.Item{Key: bedOf(it.Payload), Kind: KindHeld, Payload: it.Payload}, expiredWhy[i]); err != nil {
				b.Release(ctx)
				return fmt.Errorf("an expired held frame could not be kept among the dead letters; it waits: %w", err)
			}
			g.ingest.heldExpired.Add(uint64(readingsIn(it.Payload)))
			done = append(done, it.ID)
		}
		if len(expired) > 0 {
			g.log.Warn("readings waited for a patient for patients.hold_unassociated; they are in the dead letters (wardgate queue list)", "frames", len(expired), "hold", hold)
		}
		if len(done) > 0 {
			if err := b.Ack(ctx, done...); err != nil {
				return err
			}
			g.heldNotes.forget(done...)
		}
		if len(waiting) > 0 {
			if err := b.Nack(ctx, "waiting for a patient in the bed, or for the device's clock", 0, waiting...); err != nil {
				return err
			}
		}
	}
	return nil
}

// bedOf is the bed of a held frame, for its dead letter's key.
func bedOf(payload []byte) string {
	var frame []struct{ Location string }
	if json.Unmarshal(payload, &frame) != nil || len(frame) == 0 {
		return "held"
	}
	return frame[0].Location
}

func readingsIn(payload []byte) int {
	var frame []json.RawMessage
	if json.Unmarshal(payload, &frame) != nil {
		return 0
	}
	return len(frame)
}

// rehold puts a frame from the dead letters back to wait (an operator's
// retry).
func (g *Gateway) rehold(ctx context.Context, payload []byte) error {
	var frame []devices.Reading
	if err := json.Unmarshal(payload, &frame); err != nil || len(frame) == 0 {
		return fmt.Errorf("the dead letter does not hold a frame of readings")
	}
	return g.hold(ctx, [][]devices.Reading{frame})
}

func sortHeldReasons(rs []heldReason) {
	slices.SortFunc(rs, func(a, b heldReason) int {
		if a.Frames != b.Frames {
			return b.Frames - a.Frames
		}
		return strings.Compare(a.Reason, b.Reason)
	})
}
