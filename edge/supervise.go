package edge

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
)

// part is one long-running piece of the gateway. run works until its ctx
// ends, then returns nil having finished or put back what was in flight
// (what it took in is stored, what it was sending is sent again later); an
// error means it cannot go on, and the gateway stops.
type part struct {
	name string
	run  func(ctx context.Context) error
}

// supervisor runs the gateway's parts, each with a context of its own. They
// are started in order; the first to fail, or the end of the gateway's
// context, stops them all in reverse order, each waited for before the next
// is stopped: what takes input stops before what it hands to, and what
// delivers stops last.
type supervisor struct {
	log     *slog.Logger
	running []*runningPart
	failed  chan error
}

type runningPart struct {
	part
	cancel context.CancelFunc
	done   chan error
	// ended is set when run has returned, for the watchdog's look.
	ended atomic.Bool
}

func newSupervisor(log *slog.Logger) *supervisor {
	return &supervisor{log: log, failed: make(chan error, 1)}
}

// start runs p in its own goroutine.
func (s *supervisor) start(p part) {
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningPart{part: p, cancel: cancel, done: make(chan error, 1)}
	s.running = append(s.running, r)
	go func() {
		err := p.run(ctx)
		r.ended.Store(true)
		if err != nil && ctx.Err() == nil {
			select {
			case s.failed <- fmt.Errorf("%s: %w", p.name, err):
			default:
			}
		}
		r.done <- err
	}()
}

// exited names the first part that has returned, "" while all run. Call it
// between the last start and stop.
func (s *supervisor) exited() string {
	for _, r := range s.running {
		if r.ended.Load() {
			return r.name
		}
	}
	return ""
}

// wait blocks until ctx ends (nil) or a part fails (its error).
func (s *supervisor) wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-s.failed:
		return err
	}
}

// stop stops every part in reverse order of start, each given what is left
// of within; a part that does not return in time is logged and left (its
// work is found again at the next start).
func (s *supervisor) stop(within time.Duration) {
	deadline := time.Now().Add(within)
	for i := len(s.running) - 1; i >= 0; i-- {
		r := s.running[i]
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				s.log.Warn("stopped with an error", "part", r.name, "err", err)
			}
		case <-time.After(time.Until(deadline)):
			s.log.Warn("did not stop in time; what it had in flight is done again after the restart", "part", r.name)
		}
	}
	s.running = nil
}
