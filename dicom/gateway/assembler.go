package gateway

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wardgate/wardgate/dicom/dataset"

	"github.com/wardgate/wardgate/buffer"
)

// StudySink takes a stable study: every instance header received for it so
// far. It returns nil only once the study is durably on its way (edge's
// Gateway stores its ImagingStudy in the outbox). Calls for the same study
// are repeated when instances arrive later, so the sink must be idempotent.
type StudySink interface {
	IngestStudy(ctx context.Context, instances []dataset.InstanceHeader) error
}

// StudyAssembler hands a study to its StudySink once no new instance has
// arrived for it for StableAfter, again whenever instances arrive later, and
// again after an error (with backoff). What it handed over is recorded in
// the Ledger; at Start it finds every study with an instance that was not,
// so that a study received before a crash or a restart is still handed over.
type StudyAssembler struct {
	Spool       *buffer.Spool
	Ledger      *Ledger
	Sink        StudySink
	StableAfter time.Duration
	// Backoff paces retries after the sink failed; zero: buffer.DefaultBackoff.
	Backoff buffer.Backoff
	Logger  *slog.Logger

	setup   sync.Once
	mu      sync.Mutex
	pending map[string]*pendingStudy
	kick    chan struct{}

	handed, failed, refused atomic.Uint64
}

// ErrStudyRefused is wrapped by a StudySink's error when the study cannot
// be charted as it is (no Patient ID, a resource the record would refuse):
// the assembler does not retry it until another instance of the study
// arrives (or the gateway starts again).
var ErrStudyRefused = errors.New("study refused by the FHIR side")

type pendingStudy struct {
	due      time.Time
	failures int
}

// AssemblerStats counts the studies handed over.
type AssemblerStats struct {
	Pending   int    // studies waiting to become stable or to be retried
	HandedOff uint64 // hand-overs the sink accepted
	Failed    uint64 // hand-overs that failed and are retried
	Refused   uint64 // hand-overs refused for good (ErrStudyRefused)
}

// Stats returns a snapshot.
func (a *StudyAssembler) Stats() AssemblerStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return AssemblerStats{Pending: len(a.pending), HandedOff: a.handed.Load(), Failed: a.failed.Load(), Refused: a.refused.Load()}
}

func (a *StudyAssembler) init() {
	a.setup.Do(func() {
		a.pending = map[string]*pendingStudy{}
		a.kick = make(chan struct{}, 1)
	})
}

// Run finds the studies not yet fully handed over, then hands studies over
// until ctx ends, waiting for a hand-over in progress. Studies still
// pending are found again at the next Run. Add may be called before Run.
func (a *StudyAssembler) Run(ctx context.Context) error {
	if a.Logger == nil {
		a.Logger = slog.Default()
	}
	a.init()
	studies := map[string]bool{}
	err := a.Spool.Each(func(in buffer.Instance) bool {
		// Not yet in an ImagingStudy the record acknowledged: hand over
		// again (the record takes it as an update).
		if in.Group != "" && !studies[in.Group] && !a.Ledger.IsDelivered(in.Group, in.Key, in.SHA256) {
			studies[in.Group] = true
		}
		return true
	})
	if err != nil {
		return err
	}
	for s := range studies {
		a.Add(s)
	}
	if len(studies) > 0 {
		a.Logger.Info("dicom: studies received before the restart will be handed over", "studies", len(studies))
	}
	a.run(ctx)
	return nil
}

// Add notes that study received an instance: its hand-over is (re)scheduled
// StableAfter from now.
func (a *StudyAssembler) Add(study string) {
	a.init()
	a.mu.Lock()
	p := a.pending[study]
	if p == nil {
		p = &pendingStudy{}
		a.pending[study] = p
	}
	p.due = time.Now().Add(a.StableAfter)
	p.failures = 0
	a.mu.Unlock()
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

func (a *StudyAssembler) run(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		var due []string
		next := time.Now().Add(time.Hour)
		now := time.Now()
		a.mu.Lock()
		for s, p := range a.pending {
			if !p.due.After(now) {
				due = append(due, s)
			} else if p.due.Before(next) {
				next = p.due
			}
		}
		a.mu.Unlock()
		for _, s := range due {
			if ctx.Err() != nil {
				return
			}
			a.handOver(ctx, s)
		}
		if len(due) > 0 {
			continue
		}
		t.Reset(time.Until(next))
		select {
		case <-ctx.Done():
			return
		case <-a.kick:
		case <-t.C:
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
	}
}

// handOver gives the sink the study's headers: those handed over before
// (which may have left the spool) updated with those in the spool now.
func (a *StudyAssembler) handOver(ctx context.Context, study string) {
	a.mu.Lock()
	p := a.pending[study]
	a.mu.Unlock()
	if p == nil {
		return
	}
	started := time.Now()
	retry := func(err error) {
		if errors.Is(err, ErrStudyRefused) {
			// The FHIR side cannot make an ImagingStudy of it (no Patient
			// ID, an invalid resource): it has said why, once. Trying again
			// would change nothing until another instance arrives.
			a.refused.Add(1)
			a.mu.Lock()
			if a.pending[study] == p && !p.due.After(started) {
				delete(a.pending, study)
			}
			a.mu.Unlock()
			return
		}
		a.failed.Add(1)
		a.mu.Lock()
		if !p.due.After(started) { // no instance arrived meanwhile
			p.failures++
			p.due = time.Now().Add(a.Backoff.Delay(p.failures))
		}
		a.mu.Unlock()
		// Not the error itself: a sink's error may quote the data set.
		a.Logger.Warn("dicom: study not handed over to the FHIR side; retrying", "failures", p.failures)
	}
	charted, err := a.Ledger.Charted(study)
	if err != nil {
		retry(err)
		return
	}
	byKey := map[string]dataset.InstanceHeader{}
	for k, m := range charted {
		byKey[k] = m.Header
	}
	marks := map[string]ChartedMark{}
	instances, err := a.Spool.Group(study)
	if err != nil {
		retry(err)
		return
	}
	for _, in := range instances {
		// Through the key's lock: an instance whose store is still being
		// committed is waited for, and one whose commit failed is left out.
		if cur, err := a.Spool.Get(in.Key); err != nil || cur.SHA256 != in.SHA256 {
			continue
		}
		h, err := HeaderOf(in)
		if err != nil {
			a.Logger.Error("dicom: a spooled instance has no readable header; it is left out of its study", "err", err)
			continue
		}
		byKey[in.Key] = h
		marks[in.Key] = ChartedMark{SHA256: in.SHA256, Header: h, HandedAt: started}
	}
	if len(byKey) == 0 {
		a.mu.Lock()
		delete(a.pending, study)
		a.mu.Unlock()
		return
	}
	headers := make([]dataset.InstanceHeader, 0, len(byKey))
	for _, h := range byKey {
		headers = append(headers, h)
	}
	sort.Slice(headers, func(i, j int) bool {
		x, y := headers[i], headers[j]
		if x.SeriesNumber != y.SeriesNumber {
			return x.SeriesNumber < y.SeriesNumber
		}
		if x.SeriesInstanceUID != y.SeriesInstanceUID {
			return x.SeriesInstanceUID < y.SeriesInstanceUID
		}
		if x.InstanceNumber != y.InstanceNumber {
			return x.InstanceNumber < y.InstanceNumber
		}
		return x.SOPInstanceUID < y.SOPInstanceUID
	})
	// The marks go first, not delivered: if the process ends before the
	// record acknowledges the study, the next start hands it over again.
	if err := a.Ledger.MarkCharted(study, marks); err != nil {
		retry(err)
		return
	}
	if err := a.Sink.IngestStudy(ctx, headers); err != nil {
		retry(err)
		return
	}
	a.handed.Add(1)
	a.Logger.Debug("dicom: study handed over", "study", study, "instances", len(headers))
	a.mu.Lock()
	if a.pending[study] == p && !p.due.After(started) { // nothing arrived meanwhile
		delete(a.pending, study)
	}
	a.mu.Unlock()
}
