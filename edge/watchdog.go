package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/wardgate/wardgate/buffer"
)

// Under systemd (Type=notify, cmd/wardgate/package/wardgate.service) the
// gateway says where it stands on $NOTIFY_SOCKET: READY=1 once its stores
// and listeners are open and every part is started, STOPPING=1 when a stop
// begins, and, with WatchdogSec=, WATCHDOG=1 only while the pipeline answers
// (see alive). Without NOTIFY_SOCKET nothing is sent; without WATCHDOG_USEC
// (or with a WATCHDOG_PID that is not ours) no watchdog runs.

// sdNotify sends state to the service manager, when there is one.
func (g *Gateway) sdNotify(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		g.log.Warn("systemd notification failed", "state", state, "err", err)
	}
}

// startWatchdog starts the watchdog when systemd asked for one; the channel
// is closed when it has stopped after ctx ended (at once without one).
func (g *Gateway) startWatchdog(ctx context.Context, sup *supervisor) <-chan struct{} {
	done := make(chan struct{})
	every, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		g.log.Warn("systemd watchdog: ignoring WATCHDOG_USEC", "err", err)
	}
	if every <= 0 {
		close(done)
		return done
	}
	w := &watchdog{
		every:  every / 2, // as sd_watchdog_enabled(3) advises
		alive:  func() error { return g.alive(sup) },
		notify: func(s string) error { _, err := daemon.SdNotify(false, s); return err },
		log:    g.log,
	}
	g.log.Info("systemd watchdog on", "timeout", every, "ping_every", w.every)
	go func() {
		defer close(done)
		w.run(ctx)
	}()
	return done
}

// spoolProbeKey is a key no instance ever has (keys are SOP Instance UIDs):
// a Get of it is a round trip through the spool's locks and its index.
const spoolProbeKey = "wardgate-watchdog-probe"

// alive is the watchdog's look at the pipeline. It must be cheap (it runs
// every few seconds) and honest (it fails when restarting would help):
//   - every part the supervisor started is still running: a part that
//     returned early has stopped taking input or delivering;
//   - the outbox and the held frames' store answer Stats, which takes the
//     lock their appends and commits take and opens a bbolt read
//     transaction: a commit stuck in fsync, or a lock never released, holds
//     it up;
//   - the spool answers a Get of a key it never holds, through its key lock,
//     its journal overlay's lock and an index read.
//
// A look that does not answer before the next ping is due counts as a
// failure; the watchdog does not start another until it has. What it does
// not look at, on purpose: whether the FHIR server or a PACS answers, or a
// monitor sends (a restart would not help; the status page shows them).
func (g *Gateway) alive(sup *supervisor) error {
	if name := sup.exited(); name != "" {
		return fmt.Errorf("%s is no longer running", name)
	}
	g.outbox.Stats()
	g.held.Stats()
	if g.spool != nil {
		if _, err := g.spool.Get(spoolProbeKey); err != nil && !errors.Is(err, buffer.ErrNotFound) {
			return fmt.Errorf("spool: %w", err)
		}
	}
	return nil
}

// watchdog pings systemd every interval while alive answers nil in time.
// Looks run one at a time in their own goroutine, so a look that hangs
// stops the pings without stopping the loop, and the pings start again if
// it returns.
type watchdog struct {
	every  time.Duration
	alive  func() error
	notify func(state string) error
	log    *slog.Logger

	// missed counts intervals that passed without a ping (for tests).
	missed atomic.Uint64
}

func (w *watchdog) run(ctx context.Context) {
	t := time.NewTicker(w.every)
	defer t.Stop()
	var look chan error // the look under way; nil: none
	healthy := true
	for {
		if look == nil {
			look = make(chan error, 1)
			go func(c chan<- error) { c <- w.alive() }(look)
		}
		select {
		case <-ctx.Done():
			return
		case err := <-look:
			look = nil
			if err != nil {
				w.missed.Add(1)
				if healthy {
					w.log.Error("systemd watchdog: not pinging; systemd restarts the gateway unless this passes", "err", err)
				}
				healthy = false
			} else {
				if !healthy {
					w.log.Info("systemd watchdog: the pipeline answers again; pinging")
				}
				healthy = true
				if err := w.notify(daemon.SdNotifyWatchdog); err != nil {
					w.log.Warn("systemd watchdog ping failed", "err", err)
				}
			}
			select { // one look per interval
			case <-ctx.Done():
				return
			case <-t.C:
			}
		case <-t.C:
			w.missed.Add(1)
			if healthy {
				w.log.Error("systemd watchdog: the outbox, held store or spool did not answer in time; not pinging")
			}
			healthy = false
		}
	}
}
