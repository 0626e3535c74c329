package edge

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/wardgate/wardgate/buffer"
	"github.com/wardgate/wardgate/devices"
)

// Readings from a bed with no known patient wait in their own outbox (the
// "held" store, data_dir/held.db), one item per frame, so that they survive
// a restart like everything else accepted. The resolver looks at them
// again every holdRecheck: once the bed has a patient for the frame's time
// they are mapped into the main outbox; after patients.hold_unassociated
// they are dropped and counted. Mapping is deterministic, so a frame mapped
// twice (a crash between the two stores) is still one Observation in the
// record.

const holdRecheck = 15 * time.Second

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
	return nil
}

// resolveHeld runs until ctx ends.
func (g *Gateway) resolveHeld(ctx context.Context) {
	t := time.NewTicker(holdRecheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := g.resolveOnce(ctx); err != nil && ctx.Err() == nil {
			g.log.Error("held readings: cannot look at them now", "err", err)
		}
	}
}

func (g *Gateway) resolveOnce(ctx context.Context) error {
	hold := g.cfg.Patients.HoldUnassociated.D()
	for ctx.Err() == nil {
		lctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		b, err := g.held.Lease(lctx, 1000, time.Minute)
		cancel()
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return nil // nothing waiting
			}
			return err
		}
		var ready [][]devices.Reading
		var readyIDs, dropIDs, waitIDs []uint64
		for _, it := range b.Items {
			var frame []devices.Reading
			if err := json.Unmarshal(it.Payload, &frame); err != nil || len(frame) == 0 {
				dropIDs = append(dropIDs, it.ID)
				continue
			}
			r := frame[0]
			if _, ok := g.beds.patient(r.Location, r.Effective()); ok {
				ready = append(ready, frame)
				readyIDs = append(readyIDs, it.ID)
			} else if time.Since(r.Received) > hold {
				dropIDs = append(dropIDs, it.ID)
				g.ingest.heldDropped.Add(uint64(len(frame)))
			} else {
				waitIDs = append(waitIDs, it.ID)
			}
		}
		if len(ready) > 0 {
			noPatient, err := g.store(ctx, ready)
			if err != nil {
				b.Release(ctx)
				return err
			}
			if len(noPatient) > 0 {
				// The bed's patient changed since the look above: these wait
				// again, as a frame of their own.
				if err := g.hold(ctx, [][]devices.Reading{noPatient}); err != nil {
					b.Release(ctx)
					return err
				}
			}
			g.ingest.heldCharted.Add(uint64(len(ready)))
		}
		if len(readyIDs)+len(dropIDs) > 0 {
			if err := b.Ack(ctx, append(readyIDs, dropIDs...)...); err != nil {
				return err
			}
		}
		if len(dropIDs) > 0 {
			g.log.Warn("readings dropped: no patient was associated with their bed within patients.hold_unassociated", "frames", len(dropIDs), "hold", hold)
		}
		if len(waitIDs) > 0 {
			// Due again after holdBackoff: this pass moves on to the rest.
			if err := b.Nack(ctx, "waiting for a patient in the bed", 0, waitIDs...); err != nil {
				return err
			}
		}
	}
	return nil
}

// holdBackoff spaces the looks at one held frame evenly.
var holdBackoff = buffer.Backoff{Initial: holdRecheck, Max: holdRecheck, Multiplier: 1}
