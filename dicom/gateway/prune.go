package gateway

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/wardgate/wardgate/buffer"
)

// Pruner removes a spooled instance once it is no longer needed: every
// forward destination has it or its refusal was dropped (a refusal that
// waits in the dead letters keeps it, for a retry), the
// record has acknowledged an ImagingStudy of its study with this content,
// and Retention has passed since it was received. With no destination, the
// record's acknowledgement alone decides. It checks every Interval.
type Pruner struct {
	Spool        *buffer.Spool
	Ledger       *Ledger
	Destinations []Destination
	Retention    time.Duration
	Interval     time.Duration // 0: 10 s
	Logger       *slog.Logger
	// Holds, when set, keeps an instance that a storage commitment
	// request still waits for (Committer.Holds). Once a request is
	// decided it holds nothing: under commit_after spooled an instance
	// reported committed may go as soon as everyone has it.
	Holds func(key string) bool

	removed atomic.Uint64
	// dests replaces Destinations once SetDestinations was called.
	dests atomic.Pointer[[]Destination]

	// StudyMemory is how long after its last hand-over a study whose
	// instances have all left the spool is remembered (30 days when 0).
	StudyMemory time.Duration
	lastForget  time.Time
	forgotten   atomic.Uint64
}

// studySweep is how often the ledger is swept for studies to forget.
const studySweep = time.Hour

// SetDestinations changes the destinations that must have an instance
// before it may go (the forward destinations of a reload); the next Prune
// follows them.
func (p *Pruner) SetDestinations(d []Destination) { p.dests.Store(&d) }

func (p *Pruner) destinations() []Destination {
	if d := p.dests.Load(); d != nil {
		return *d
	}
	return p.Destinations
}

// Removed counts the instances the Pruner removed.
func (p *Pruner) Removed() uint64 { return p.removed.Load() }

// Run prunes every Interval until ctx ends.
func (p *Pruner) Run(ctx context.Context) error {
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	if p.Interval == 0 {
		p.Interval = 10 * time.Second
	}
	t := time.NewTicker(p.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := p.Prune(ctx); err != nil && ctx.Err() == nil {
				p.Logger.Warn("dicom: pruning the spool failed", "err", err)
			}
		}
	}
}

// Prune removes every instance no longer needed, once.
func (p *Pruner) Prune(ctx context.Context) error {
	var done []buffer.Instance
	dests := p.destinations()
	marks := make([]map[string]ForwardMark, len(dests))
	for i, d := range dests {
		m, err := p.Ledger.Forwarded(d.LedgerName())
		if err != nil {
			return err
		}
		marks[i] = m
	}
	now := time.Now()
	err := p.Spool.Each(func(in buffer.Instance) bool {
		if now.Sub(in.Stored) < p.Retention {
			return true
		}
		for _, m := range marks {
			if fm, ok := m[in.Key]; !ok || fm.Dead && !fm.Dropped || fm.SHA256 != in.SHA256 {
				return true
			}
		}
		if !p.Ledger.IsDelivered(in.Group, in.Key, in.SHA256) {
			return true
		}
		if p.Holds != nil && p.Holds(in.Key) {
			return true
		}
		done = append(done, in)
		return true
	})
	if err != nil {
		return err
	}
	var keys []string
	for _, in := range done {
		if ctx.Err() != nil {
			break
		}
		if p.Holds != nil && p.Holds(in.Key) {
			continue // a commitment request came in meanwhile
		}
		// Only this content: a copy that replaced it meanwhile stays.
		if err := p.Spool.RemoveVersion(ctx, in.Key, in.SHA256); err != nil {
			if !errors.Is(err, buffer.ErrNotFound) {
				return err
			}
			continue
		}
		keys = append(keys, in.Key)
		p.removed.Add(1)
	}
	if len(keys) > 0 {
		p.Logger.Debug("dicom: removed delivered instances from the spool", "instances", len(keys))
	}
	if err := p.Ledger.ForgetForwarded(keys); err != nil {
		return err
	}
	if time.Since(p.lastForget) >= studySweep {
		p.lastForget = time.Now()
		memory := p.StudyMemory
		if memory == 0 {
			memory = 30 * 24 * time.Hour
		}
		n, err := p.Ledger.ForgetStudies(time.Now().Add(-memory), func(study string) bool {
			in, err := p.Spool.Group(study)
			return err != nil || len(in) > 0 // when unsure, keep
		})
		if err != nil {
			return err
		}
		p.forgotten.Add(uint64(n))
	}
	return nil
}
