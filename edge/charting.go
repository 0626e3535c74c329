package edge

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wardgate/wardgate/buffer"
	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/devices/mdc"
	"github.com/wardgate/wardgate/devices/profile"
	"github.com/wardgate/wardgate/edge/config"
	"github.com/wardgate/wardgate/edge/fhir"
)

// Charting: what reaches the chart. A reading whose patient is resolved
// (ingest.go, held.go) is charted by its parameter's policy
// (config.ChartFor): each (mapped at once, as before), off (counted), or
// every interval. An interval's readings wait in the charting window
// (data_dir/charting.db, an outbox whose items are never leased), one item
// per frame, written before the source is acknowledged; the window in
// memory is rebuilt from it at start. An interval [start, end), aligned to
// the clock by the reading's time on the gateway's clock (its device time
// corrected, so a backlog lands in the intervals it was measured in), is
// charted once close_after has passed since its end and no reading has
// joined it for chartQuiet: its value (median, last, …) of the readings the
// device did not flag, as one Observation named by device, code, interval,
// patient and unit (the members of a blood-pressure panel close together,
// as one panel). The Observation is appended to the outbox before the
// interval's readings leave the window; a crash in between charts it again
// under the same identifier, which the record's conditional create keeps
// once. A reading given twice counts once. A reading for an interval
// already charted is late: counted, or with charting.amend (for
// amendWithin, a "charted" item in the window saying so across a restart),
// the interval is charted again as amended.

// chartQuiet is how long an interval past its close time stays open after
// a reading last joined it: a backlog that streams in closes its intervals
// once it has moved past them, not while it is still filling them.
const chartQuiet = 3 * time.Second

// chartTick is how often the charter looks for intervals to close.
const chartTick = time.Second

// chartRetry spaces the attempts to chart due intervals while the outbox
// refuses them (full, a disk error), up to a minute.
var chartRetry = buffer.Backoff{Initial: 2 * time.Second, Max: time.Minute, Multiplier: 2}

// amendWithin is how long a charted interval can still be amended (with
// charting.amend): its readings stay in the window that long.
const amendWithin = 10 * time.Minute

// chartedMemory bounds the intervals remembered as charted per parameter,
// for telling a late reading (after a restart, the record's conditional
// create still keeps each interval once).
const chartedMemory = 256

// flagged are the qualities that keep a reading out of an interval's value.
const flagged = devices.Questionable | devices.Calibrating

// winKey names one interval of one patient's parameter of one device, in
// one unit.
type winKey struct {
	device  string
	code    uint32
	unit    string
	patient string
	every   time.Duration
	start   int64 // UnixNano
}

// markKey is a winKey without its start: the intervals charted of it are
// remembered by start.
type markKey struct {
	device  string
	code    uint32
	unit    string
	patient string
	every   time.Duration
}

func (k winKey) mark() markKey { return markKey{k.device, k.code, k.unit, k.patient, k.every} }

// panelKey groups the windows of one blood-pressure panel: they are charted
// together.
type panelKey struct {
	device, patient string
	panel           uint32
	every           time.Duration
	start           int64
}

// panel is the panel k's parameter is charted in, when it is a
// blood-pressure member.
func (k winKey) panel() (panelKey, bool) {
	p, ok := fhir.PanelOf(k.code)
	return panelKey{k.device, k.patient, p, k.every, k.start}, ok
}

type sample struct {
	at      int64 // UnixNano, on the gateway's clock
	v       float64
	flagged bool
	// ident and repeat name the measurement as the device did (its own
	// time, how often its clock showed it): a reading given again is
	// known by them even when the clock's offset estimate moved.
	ident  int64
	repeat int
}

// window is one open (or, with amend, recently charted) interval.
type window struct {
	chart      profile.Chart
	start, end time.Time
	rep        fhir.PatientReading // the latest reading: device, unit, patient
	samples    []sample
	items      []uint64 // window items holding its readings
	last       time.Time
	// closing: being charted now (closeDue); readings that join it
	// meanwhile are after its value was taken.
	closing bool
	// wrote: an Observation of it was written; charting it again amends.
	wrote bool
	// chartedAt is when it was charted (with amend: kept until
	// amendWithin after).
	chartedAt time.Time
	// mark is its "charted" window item (with amend), 0 when none: a new
	// one replaces it.
	mark uint64
	// resolved is when its earliest readings' patient was resolved.
	resolved time.Time
}

// setMarkLocked makes id the window's "charted" item, letting go of the
// one it replaces.
func (ch *charter) setMarkLocked(w *window, id uint64) {
	if old := w.mark; old != 0 {
		if i := slices.Index(w.items, old); i >= 0 {
			w.items = slices.Delete(w.items, i, i+1)
			if ch.refs[old]--; ch.refs[old] <= 0 {
				delete(ch.refs, old)
				ch.orphans = append(ch.orphans, old)
			}
		}
	}
	w.mark = id
	w.items = append(w.items, id)
	ch.refs[id]++
}

// has tells whether the window holds the measurement s: one parameter of
// one device measures once at a time.
func (w *window) has(s sample) bool {
	for i := len(w.samples) - 1; i >= 0; i-- {
		if o := w.samples[i]; o.ident == s.ident && o.repeat == s.repeat {
			return true
		}
	}
	return false
}

// closeAt is when the interval is charted, on its own.
func (w *window) closeAt(after time.Duration) time.Time {
	t := w.end.Add(after)
	if q := w.last.Add(chartQuiet); q.After(t) {
		return q
	}
	return t
}

// chartCounts are one device's charting figures, for the page.
type chartCounts struct {
	charted, empty, late, amended, off uint64
	resolvedAgain                      uint64 // intervals sent back after an ADT correction
	lastEmpty                          string
}

type charter struct {
	g     *Gateway
	cfg   atomic.Pointer[config.Config]
	store *buffer.Outbox
	now   func() time.Time
	kick  chan struct{}

	mu      sync.Mutex
	open    map[winKey]*window
	charted map[winKey]*window // with amend: charted windows still amendable
	refs    map[uint64]int     // window item → windows holding its readings
	orphans []uint64           // window items no interval holds: to remove
	marks   map[markKey][]int64
	counts  map[string]*chartCounts
	// failures counts the attempts in a row that the outbox refused;
	// retryAt is when to try again.
	failures int
	retryAt  time.Time
	pruned   time.Time // when marks were last pruned
}

// chartFrame is a window item: one frame's readings of one patient that
// wait for their intervals, with the policy each was put there by.
type chartFrame struct {
	Device, Location, Profile, Patient string
	Serial, Firmware                   string `json:",omitempty"`
	Received                           time.Time
	// Resolved is when the readings' patient was resolved: an ADT
	// correction of their time received since sends them back to be
	// resolved again before they are charted.
	Resolved time.Time
	Readings []chartReading
}

type chartReading struct {
	Code    uint32
	Ref     string
	Value   float64
	Unit    string
	At      int64           // UnixNano: the reading's time on the gateway's clock
	Ident   int64           // UnixNano: its time on the device's clock, or its first receipt
	Repeat  int             `json:",omitempty"`
	Quality devices.Quality `json:",omitempty"`
	Chart   string
}

// openCharting opens the window store and rebuilds the open intervals.
func openCharting(g *Gateway, c *config.Config) (*charter, error) {
	store, err := buffer.OpenOutbox(filepath.Join(c.DataDir, "charting.db"), buffer.OutboxOptions{
		QuotaBytes: int64(c.Buffer.OutboxQuota) / 8,
		// A ward whose readings are all charted each never writes it.
		Lazy:   true,
		Logger: g.log,
	})
	if err != nil {
		return nil, err
	}
	ch := &charter{g: g, store: store, now: time.Now, kick: make(chan struct{}, 1),
		open: map[winKey]*window{}, charted: map[winKey]*window{}, refs: map[uint64]int{},
		marks: map[markKey][]int64{}, counts: map[string]*chartCounts{}}
	ch.cfg.Store(c)
	var broken []uint64
	err = store.Scan(func(it buffer.Item) error {
		if it.Kind == kindCharted {
			var c chartedItem
			if err := json.Unmarshal(it.Payload, &c); err != nil {
				broken = append(broken, it.ID)
				return nil
			}
			ch.applyChartedLocked(it.ID, c, ch.now())
			return nil
		}
		var f chartFrame
		if err := json.Unmarshal(it.Payload, &f); err != nil || len(f.Readings) == 0 {
			broken = append(broken, it.ID)
			return nil
		}
		ch.addLocked(it.ID, f, ch.now())
		return nil
	})
	if err != nil {
		store.Close()
		return nil, err
	}
	if len(broken) > 0 {
		g.log.Error("charting window items that do not read as readings are left in charting.db", "items", len(broken))
	}
	return ch, nil
}

func (ch *charter) close() error { return ch.store.Close() }

// policy is a reading's charting policy now.
func (ch *charter) policy(r fhir.PatientReading) profile.Chart {
	p, _ := ch.cfg.Load().ChartFor(r.Device, r.Location, r.Profile, r.Code.Code)
	return p
}

// route sorts the readings of frames by their policy: those charted each
// come back as frames; those for an interval come back one frame per
// patient as window items to write; off ones come back by device, to be
// counted once stored.
func (ch *charter) route(frames [][]fhir.PatientReading) (each [][]fhir.PatientReading, wait []chartFrame, off []string) {
	for _, f := range frames {
		var now []fhir.PatientReading
		byPatient := map[string]int{}
		for _, r := range f {
			if r.Interval != nil { // an interval's value, charted now
				now = append(now, r)
				continue
			}
			p := ch.policy(r)
			switch p.Mode {
			case profile.ChartOff:
				off = append(off, r.Device)
				continue
			case profile.ChartEvery, profile.ChartSamples:
			default:
				now = append(now, r)
				continue
			}
			i, ok := byPatient[r.Patient]
			if !ok {
				i = len(wait)
				byPatient[r.Patient] = i
				wait = append(wait, chartFrame{Device: r.Device, Location: r.Location, Profile: r.Profile, Patient: r.Patient,
					Serial: r.SerialNumber, Firmware: r.Firmware, Received: r.Received, Resolved: ch.now()})
			}
			// Named as the mapper names a reading (the device's time, or
			// the first receipt), not by the offset estimate.
			ident, repeat := r.Received, 0
			if !r.DeviceTime.IsZero() {
				ident, repeat = r.DeviceTime, r.ClockRepeat
			}
			wait[i].Readings = append(wait[i].Readings, chartReading{Code: r.Code.Code, Ref: r.Code.RefID, Value: r.Value,
				Unit: r.Unit, At: r.Effective().UnixNano(), Ident: ident.UnixNano(), Repeat: repeat,
				Quality: r.Quality, Chart: p.String()})
		}
		if len(now) > 0 {
			each = append(each, now)
		}
	}
	return each, wait, off
}

// countOff counts the readings a policy keeps off the chart.
func (ch *charter) countOff(devices []string) {
	if len(devices) == 0 {
		return
	}
	ch.mu.Lock()
	for _, d := range devices {
		ch.countLocked(d, func(c *chartCounts) { c.off++ })
	}
	ch.mu.Unlock()
}

// add writes frames to the window, durably, then to the intervals in
// memory.
func (ch *charter) add(ctx context.Context, frames []chartFrame) error {
	items := make([]buffer.Item, 0, len(frames))
	for _, f := range frames {
		b, err := json.Marshal(f)
		if err != nil {
			return err
		}
		items = append(items, buffer.Item{Kind: "chart", Payload: b})
	}
	ids, err := ch.store.Append(ctx, items...)
	if err != nil {
		return err
	}
	now := ch.now()
	ch.mu.Lock()
	for i, f := range frames {
		ch.addLocked(ids[i], f, now)
	}
	ch.mu.Unlock()
	return nil
}

// addLocked puts one window item's readings into their intervals. A
// reading of an interval already charted is late: counted, or with amend
// (within amendWithin) it opens the interval again.
func (ch *charter) addLocked(id uint64, f chartFrame, now time.Time) {
	for _, r := range f.Readings {
		p, err := profile.ParseChart(r.Chart)
		if err != nil || (p.Mode != profile.ChartEvery && p.Mode != profile.ChartSamples) {
			p = profile.Chart{Mode: profile.ChartEvery, Every: time.Minute, Value: "median"}
		}
		start, end := interval(time.Unix(0, r.At), p.Every)
		k := winKey{f.Device, r.Code, r.Unit, f.Patient, p.Every, start.UnixNano()}
		s := sample{at: r.At, v: r.Value, flagged: r.Quality&flagged != 0, ident: r.Ident, repeat: r.Repeat}
		w := ch.open[k]
		if w == nil {
			old := ch.charted[k]
			switch {
			case old != nil && old.has(s):
				continue // charted already: a reading given again amends nothing
			case old != nil:
				// A late reading amends a charted interval, and the rest
				// of its panel with it.
				delete(ch.charted, k)
				w = old
				ch.reopenPanelLocked(k)
			case ch.isMarkedLocked(k):
				ch.countLocked(f.Device, func(c *chartCounts) { c.late++ })
				continue
			default:
				w = &window{chart: p, start: start, end: end}
			}
			ch.open[k] = w
		}
		if w.has(s) {
			// The same measurement again (a message the broker delivered
			// twice, a frame given again): it counts once.
			continue
		}
		w.samples = append(w.samples, s)
		w.rep = fhir.PatientReading{Patient: f.Patient, Reading: devices.Reading{
			Device: f.Device, Location: f.Location, Profile: f.Profile, Code: devices.MDC{Code: r.Code, RefID: r.Ref},
			Unit: r.Unit, Received: f.Received, SerialNumber: f.Serial, Firmware: f.Firmware,
		}}
		w.last = now
		if w.resolved.IsZero() || f.Resolved.Before(w.resolved) {
			w.resolved = f.Resolved
		}
		if n := len(w.items); n == 0 || w.items[n-1] != id {
			w.items = append(w.items, id)
			ch.refs[id]++
		}
	}
	if ch.refs[id] == 0 {
		// Nothing of it joined an interval (given again, or late): it
		// leaves the window at the next look.
		ch.orphans = append(ch.orphans, id)
	}
}

// interval is the interval of length every that t falls in, aligned to the
// clock: to multiples of every from the start of t's local day. A day whose
// clocks change (23, 25, 23.5 hours) ends with a shorter interval, cut at
// the next day's start, never one overlapping it; every instant of an
// interval maps back to that interval.
func interval(t time.Time, every time.Duration) (start, end time.Time) {
	y, m, d := t.In(time.Local).Date()
	day, next := dayStart(y, m, d), dayStart(y, m, d+1)
	n := (next.Sub(day) + every - 1) / every // the day's intervals, the last maybe short
	k := min(t.Sub(day)/every, n-1)
	start = day.Add(k * every)
	end = start.Add(every)
	if end.After(next) || k == n-1 {
		end = next
	}
	return start, end
}

// dayStart is the first instant of a local day: midnight, or where the
// clocks jump over midnight (America/Santiago), the jump.
func dayStart(y int, m time.Month, d int) time.Time {
	t := time.Date(y, m, d, 0, 0, 0, 0, time.Local)
	if _, _, ld := t.Date(); ld != time.Date(y, m, d, 12, 0, 0, 0, time.UTC).Day() {
		// Midnight does not exist that day: time.Date gave an instant of
		// the day before; the day starts when its zone period ends.
		if _, end := t.ZoneBounds(); !end.IsZero() {
			return end
		}
	}
	return t
}

// run closes intervals as they come due, until ctx ends.
func (ch *charter) run(ctx context.Context) {
	t := time.NewTicker(chartTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-ch.kick:
		}
		now := ch.now()
		ch.mu.Lock()
		wait := now.Before(ch.retryAt)
		ch.mu.Unlock()
		if wait {
			// Housekeeping goes on while the outbox refuses: the window
			// must not fill with what it no longer needs.
			if err := ch.expireCharted(ctx, now); err != nil && ctx.Err() == nil {
				ch.g.log.Error("charting: the window could not be tidied now", "err", err)
			}
			continue
		}
		if err := ch.closeDue(ctx, now); err != nil && ctx.Err() == nil {
			ch.mu.Lock()
			ch.failures++
			ch.retryAt = now.Add(chartRetry.Delay(ch.failures))
			ch.mu.Unlock()
			ch.g.log.Error("charting: intervals could not be charted now; they stay open and are tried again", "err", err, "retry_in", chartRetry.Delay(ch.failures))
		} else {
			ch.mu.Lock()
			ch.failures, ch.retryAt = 0, time.Time{}
			ch.mu.Unlock()
		}
	}
}

// closing is a window being charted, and what of it was charted.
type closing struct {
	k    winKey
	w    *window
	snap window // its state when its value was taken
}

// dueLocked are the windows due at now, oldest first: a window is due when
// its close time has passed, and the members of a blood-pressure panel when
// every member's has (they are charted as one panel).
func (ch *charter) dueLocked(now time.Time, after time.Duration) []winKey {
	panelAt := map[panelKey]time.Time{}
	for k, w := range ch.open {
		if pk, ok := k.panel(); ok {
			if t := w.closeAt(after); t.After(panelAt[pk]) {
				panelAt[pk] = t
			}
		}
	}
	var due []winKey
	for k, w := range ch.open {
		at := w.closeAt(after)
		if pk, ok := k.panel(); ok {
			at = panelAt[pk]
		}
		if !w.closing && !now.Before(at) {
			due = append(due, k)
		}
	}
	slices.SortFunc(due, func(a, b winKey) int {
		return cmp.Or(cmp.Compare(a.start, b.start), strings.Compare(a.device, b.device), cmp.Compare(a.code, b.code))
	})
	return due
}

// closeDue charts every interval that is due: its Observations go to the
// outbox, then its readings leave the window (with amend: amendWithin
// later). Readings that join an interval while it is being charted are
// late: with amend, the interval stays open and is charted again.
func (ch *charter) closeDue(ctx context.Context, now time.Time) error {
	cfg := ch.cfg.Load()
	after, amend := cfg.Charting.CloseAfterOrDefault(), cfg.Charting.Amend
	ch.mu.Lock()
	due := ch.dueLocked(now, after)
	if len(due) == 0 {
		ch.mu.Unlock()
		return ch.expireCharted(ctx, now)
	}
	var cs, recheck []closing
	for _, k := range due {
		w := ch.open[k]
		w.closing = true
		snap := *w
		snap.samples = slices.Clone(w.samples)
		c := closing{k: k, w: w, snap: snap}
		if ch.g.adt != nil && ch.g.adt.correctedSince(w.rep.Location, w.start, w.end, w.resolved) {
			recheck = append(recheck, c)
			continue
		}
		cs = append(cs, c)
	}
	ch.mu.Unlock()
	if err := ch.resolveAgain(ctx, recheck); err != nil {
		ch.mu.Lock()
		for _, c := range cs {
			c.w.closing = false
		}
		ch.mu.Unlock()
		return err
	}

	var readings []fhir.PatientReading
	whys := make([]string, len(cs))
	for i := range cs {
		rs, why := charted(&cs[i].snap, samplePeriod(cfg, cs[i].snap.rep.Profile))
		readings = append(readings, rs...)
		whys[i] = why
	}
	err := ch.g.storeNow(ctx, groupByDevice(readings))

	ch.mu.Lock()
	// With amend, a panel one of whose members a reading joined while it
	// was charted stays open whole, to be charted again as one.
	reopen := map[panelKey]bool{}
	if amend && err == nil {
		for _, c := range cs {
			if pk, ok := c.k.panel(); ok && len(c.w.samples) > len(c.snap.samples) {
				reopen[pk] = true
			}
		}
	}
	var free []uint64
	var chartedNow []chartedMark
	for i, c := range cs {
		w := c.w
		w.closing = false
		if err != nil {
			continue // open as it was: tried again
		}
		device := c.k.device
		switch {
		case whys[i] != "":
			ch.countLocked(device, func(n *chartCounts) { n.empty++; n.lastEmpty = whys[i] })
		case c.snap.wrote:
			w.wrote = true
			ch.countLocked(device, func(n *chartCounts) { n.amended++ })
		default:
			w.wrote = true
			ch.countLocked(device, func(n *chartCounts) { n.charted++ })
		}
		if amend {
			chartedNow = append(chartedNow, chartedMark{k: c.k, n: len(c.snap.samples), wrote: w.wrote})
		}
		pk, inPanel := c.k.panel()
		if extra := len(w.samples) - len(c.snap.samples); extra > 0 || (inPanel && reopen[pk]) {
			if amend {
				continue // charted again, amended, once they stop coming
			}
			ch.countLocked(device, func(n *chartCounts) { n.late += uint64(extra) })
		}
		delete(ch.open, c.k)
		ch.markLocked(c.k)
		if amend {
			w.chartedAt = now
			ch.charted[c.k] = w
			continue
		}
		free = append(free, ch.releaseLocked(w)...)
	}
	ch.orphans = append(ch.orphans, free...)
	ch.mu.Unlock()
	if err != nil {
		return errors.Join(err, ch.expireCharted(ctx, now))
	}
	if err := ch.persistCharted(ctx, chartedNow); err != nil {
		return err
	}
	return ch.expireCharted(ctx, now)
}

// reopenPanelLocked opens again the charted members of k's panel (with
// amend: a late member charts the whole panel again).
func (ch *charter) reopenPanelLocked(k winKey) {
	panel, ok := fhir.PanelOf(k.code)
	if !ok {
		return
	}
	for member := panel + 1; member <= panel+3; member++ {
		sk := k
		sk.code = member
		if w := ch.charted[sk]; w != nil && ch.open[sk] == nil {
			delete(ch.charted, sk)
			ch.open[sk] = w
			w.last = ch.now()
		}
	}
}

// A charted interval, with amend, is remembered in the window too (a
// "charted" item beside its readings), so that after a restart a late
// reading still amends it: the rebuilt window knows it was written, and how
// many of its readings were charted.

// chartedMark is a charted interval as the window keeps it.
type chartedMark struct {
	k     winKey
	n     int // readings charted
	wrote bool
}

// chartedItem is a chartedMark's window item.
type chartedItem struct {
	Device, Unit, Patient string
	Code                  uint32
	Every, Start          int64 // nanoseconds
	N                     int
	Wrote                 bool
}

// kindCharted marks a window item that says an interval was charted.
const kindCharted = "charted"

// persistCharted writes marks for intervals just charted (with amend); each
// is held by its window like its readings.
func (ch *charter) persistCharted(ctx context.Context, marks []chartedMark) error {
	if len(marks) == 0 {
		return nil
	}
	items := make([]buffer.Item, len(marks))
	for i, m := range marks {
		b, err := json.Marshal(chartedItem{Device: m.k.device, Unit: m.k.unit, Patient: m.k.patient, Code: m.k.code,
			Every: int64(m.k.every), Start: m.k.start, N: m.n, Wrote: m.wrote})
		if err != nil {
			return err
		}
		items[i] = buffer.Item{Kind: kindCharted, Payload: b}
	}
	ids, err := ch.store.Append(ctx, items...)
	if err != nil {
		// Without the mark a restart charts the interval again under the
		// same identifier, which the record keeps once.
		return err
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	for i, m := range marks {
		w := ch.charted[m.k]
		if w == nil {
			w = ch.open[m.k]
		}
		if w == nil {
			ch.orphans = append(ch.orphans, ids[i])
			continue
		}
		ch.setMarkLocked(w, ids[i])
	}
	return nil
}

// applyChartedLocked reads a "charted" item back at start: its interval was
// charted with the first n of its readings.
func (ch *charter) applyChartedLocked(id uint64, c chartedItem, now time.Time) {
	k := winKey{c.Device, c.Code, c.Unit, c.Patient, time.Duration(c.Every), c.Start}
	w := ch.open[k]
	if w == nil {
		ch.orphans = append(ch.orphans, id)
		return
	}
	ch.setMarkLocked(w, id)
	w.wrote = w.wrote || c.Wrote
	ch.markLocked(k)
	if len(w.samples) > c.N {
		return // readings joined after it was charted: charted again, amended
	}
	delete(ch.open, k)
	w.chartedAt = now
	ch.charted[k] = w
}

// resolveAgain sends the readings of intervals whose bed the ADT feed
// corrected since their patient was resolved back to the held store, to
// be resolved (and charted) anew, and lets go of the intervals: a reading
// is charted to whom the feed now says lay in the bed when it was measured.
func (ch *charter) resolveAgain(ctx context.Context, cs []closing) error {
	if len(cs) == 0 {
		return nil
	}
	frames := make([][]devices.Reading, 0, len(cs))
	for _, c := range cs {
		rep := c.snap.rep.Reading
		frame := make([]devices.Reading, 0, len(c.snap.samples))
		for _, s := range c.snap.samples {
			r := rep
			r.Value, r.Quality = s.v, 0
			if s.flagged {
				r.Quality = devices.Questionable
			}
			// The same measurement: its own device time and repeat, and an
			// offset that puts it at the time it was charted by.
			r.DeviceTime, r.ClockRepeat = time.Unix(0, s.ident), s.repeat
			r.ClockOffset = r.DeviceTime.Sub(time.Unix(0, s.at))
			if at := time.Unix(0, s.at); r.Received.Before(at) {
				r.Received = at
			}
			frame = append(frame, r)
		}
		frames = append(frames, frame)
	}
	if err := ch.g.hold(ctx, frames); err != nil {
		ch.mu.Lock()
		for _, c := range cs {
			c.w.closing = false
		}
		ch.mu.Unlock()
		return err
	}
	ch.mu.Lock()
	var free []uint64
	for _, c := range cs {
		c.w.closing = false
		delete(ch.open, c.k)
		free = append(free, ch.releaseLocked(c.w)...)
		ch.countLocked(c.k.device, func(n *chartCounts) { n.resolvedAgain++ })
	}
	ch.orphans = append(ch.orphans, free...)
	ch.mu.Unlock()
	ch.g.log.Warn("charting: the ADT feed corrected a bed's stays for intervals not yet charted; their readings are resolved again", "intervals", len(cs))
	return nil
}

// releaseLocked drops a window's hold on its items, returning those no
// window holds any more.
func (ch *charter) releaseLocked(w *window) []uint64 {
	var free []uint64
	for _, id := range w.items {
		if ch.refs[id]--; ch.refs[id] <= 0 {
			delete(ch.refs, id)
			free = append(free, id)
		}
	}
	return free
}

// expireCharted removes the window items no interval holds any more, and
// lets go of charted intervals that can no longer be amended.
func (ch *charter) expireCharted(ctx context.Context, now time.Time) error {
	ch.mu.Lock()
	ch.pruneMarksLocked(now)
	free := ch.orphans
	ch.orphans = nil
	for k, w := range ch.charted {
		if now.Sub(w.chartedAt) >= amendWithin {
			delete(ch.charted, k)
			free = append(free, ch.releaseLocked(w)...)
		}
	}
	ch.mu.Unlock()
	if err := ch.store.Remove(ctx, free...); err != nil {
		ch.mu.Lock()
		ch.orphans = append(ch.orphans, free...) // tried again at the next look
		ch.mu.Unlock()
		return err
	}
	return nil
}

// markLocked remembers that k's interval was charted; of each parameter
// the latest chartedMemory intervals (by time, not by when they were
// charted: an old backlog does not push out the live ones).
func (ch *charter) markLocked(k winKey) {
	mk := k.mark()
	m := ch.marks[mk]
	i, found := slices.BinarySearch(m, k.start)
	if !found {
		m = slices.Insert(m, i, k.start)
	}
	if len(m) > chartedMemory {
		m = m[len(m)-chartedMemory:]
	}
	ch.marks[mk] = m
}

// isMarkedLocked tells whether k's interval was charted.
func (ch *charter) isMarkedLocked(k winKey) bool {
	_, found := slices.BinarySearch(ch.marks[k.mark()], k.start)
	return found
}

// pruneMarksLocked forgets the parameters that charted nothing for a day.
func (ch *charter) pruneMarksLocked(now time.Time) {
	if now.Sub(ch.pruned) < time.Hour {
		return
	}
	ch.pruned = now
	for k, m := range ch.marks {
		if len(m) == 0 || now.Sub(time.Unix(0, m[len(m)-1])) > 24*time.Hour {
			delete(ch.marks, k)
		}
	}
}

func (ch *charter) countLocked(device string, fn func(*chartCounts)) {
	c := ch.counts[device]
	if c == nil {
		c = &chartCounts{}
		ch.counts[device] = c
	}
	fn(c)
}

// groupByDevice makes frames of charted readings, one per device, so that
// a device's blood-pressure members of one interval form one panel.
func groupByDevice(rs []fhir.PatientReading) [][]fhir.PatientReading {
	idx := map[string]int{}
	var out [][]fhir.PatientReading
	for _, r := range rs {
		i, ok := idx[r.Device]
		if !ok {
			i = len(out)
			idx[r.Device] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], r)
	}
	return out
}

// charted is what an interval charts: its value (and, with samples, its
// series), or nothing and why.
func charted(w *window, period time.Duration) ([]fhir.PatientReading, string) {
	var valid []sample
	nFlagged := 0
	for _, s := range w.samples {
		if s.flagged {
			nFlagged++
		} else {
			valid = append(valid, s)
		}
	}
	if len(valid) == 0 {
		return nil, fmt.Sprintf("an interval of %s had no valid reading (%d flagged by the device)", paramLabel(w.rep.Code.Code, w.rep.Code.RefID), nFlagged)
	}
	slices.SortStableFunc(valid, func(a, b sample) int {
		switch {
		case a.at < b.at:
			return -1
		case a.at > b.at:
			return 1
		}
		return 0
	})
	iv := fhir.Interval{Start: w.start, End: w.end, Every: w.chart.Every, AtEnd: w.chart.AtEnd, N: len(valid), Flagged: nFlagged,
		Amended: w.wrote, Value: w.chart.Value}
	var out []fhir.PatientReading
	if w.chart.Mode == profile.ChartEvery {
		r := w.rep
		v, at := aggregate(w.chart.Value, valid)
		r.Value = v
		one := iv
		if w.chart.Value == "nearest" {
			one.At = time.Unix(0, at)
		}
		r.Interval = &one
		out = append(out, r)
	}
	if w.chart.Mode == profile.ChartSamples || w.chart.Samples {
		r := w.rep
		s := iv
		s.SamplePeriod = period
		s.Samples = series(w.start, w.end, s.SamplePeriod, w.samples)
		r.Interval = &s
		out = append(out, r)
	}
	return out, ""
}

// aggregate makes one value of an interval's valid readings, sorted by
// time; at is the time of the reading chosen (last, nearest).
func aggregate(how string, valid []sample) (v float64, at int64) {
	last := valid[len(valid)-1]
	switch how {
	case "last", "nearest":
		return last.v, last.at
	case "min", "max":
		m := valid[0].v
		for _, s := range valid[1:] {
			if (how == "min" && s.v < m) || (how == "max" && s.v > m) {
				m = s.v
			}
		}
		return m, 0
	case "mean":
		sum := 0.0
		for _, s := range valid {
			sum += s.v
		}
		return roundLike(sum/float64(len(valid)), valid), 0
	}
	vs := make([]float64, len(valid))
	for i, s := range valid {
		vs[i] = s.v
	}
	slices.Sort(vs)
	n := len(vs)
	if n%2 == 1 {
		return vs[n/2], 0
	}
	return roundLike((vs[n/2-1]+vs[n/2])/2, valid), 0
}

// roundLike rounds a computed value to one decimal more than its readings
// carry (at most 3): a mean of whole beats per minute is charted as 72.4,
// not 72.36666666666666.
func roundLike(v float64, readings []sample) float64 {
	d := 0
	for _, s := range readings {
		str := strconv.FormatFloat(s.v, 'f', -1, 64)
		if i := strings.IndexByte(str, '.'); i >= 0 {
			d = max(d, len(str)-i-1)
		}
	}
	d = min(d+1, 3)
	p := math.Pow(10, float64(d))
	return math.Round(v*p) / p
}

// samplePeriod is the period of a device's samples: how often its profile
// says it sends, else a second.
func samplePeriod(c *config.Config, profileName string) time.Duration {
	if c.Profiles != nil {
		if p, ok := c.Profiles.Get(profileName); ok && p.Transport.Interval.D() > 0 {
			return p.Transport.Interval.D()
		}
	}
	return time.Second
}

// series writes an interval's samples as SampledData.data: one slot per
// period from start, the slot's (last) valid value, or E where the device
// flagged it or sent none.
func series(start, end time.Time, period time.Duration, samples []sample) string {
	n := int((end.Sub(start) + period - 1) / period) // a last slot may be short
	slots := make([]string, n)
	for i := range slots {
		slots[i] = "E"
	}
	for _, s := range samples {
		i := int(time.Duration(s.at-start.UnixNano()) / period)
		if i < 0 || i >= n || s.flagged {
			continue
		}
		slots[i] = strconv.FormatFloat(s.v, 'f', -1, 64)
	}
	return strings.Join(slots, " ")
}

// snapshotCounts are a device's charting figures now.
func (ch *charter) snapshotCounts(device string) chartCounts {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if c := ch.counts[device]; c != nil {
		return *c
	}
	return chartCounts{}
}

// chartReport is a monitor's charting on the status page: the policies in
// force, the next time an interval is charted, and what became of its
// intervals.
type chartReport struct {
	Policies []chartPolicyReport `json:"policies"`
	// Next is when its earliest open interval is charted (zero: none open).
	Next    time.Time `json:"next_charting,omitzero"`
	Open    int       `json:"intervals_open"`
	Charted uint64    `json:"intervals_charted"`
	Empty   uint64    `json:"intervals_empty"`
	Late    uint64    `json:"readings_late"`
	Amended uint64    `json:"intervals_amended"`
	// ResolvedAgain are intervals whose readings went back to be resolved
	// after the ADT feed corrected their bed's stays.
	ResolvedAgain uint64 `json:"intervals_resolved_again"`
	NotShown      uint64 `json:"readings_off"`
	// LastEmpty says why the last empty interval charted nothing.
	LastEmpty string `json:"last_empty,omitempty"`
}

// chartPolicyReport is one policy and the parameters it applies to.
type chartPolicyReport struct {
	Policy     string   `json:"policy"`
	From       string   `json:"from"`
	Parameters []string `json:"parameters"`
}

// report is a device's charting at bed, for the parameters of its profile
// and those it was seen to send.
func (ch *charter) report(device, bed, profileName string, seen []devices.MDC) chartReport {
	cfg := ch.cfg.Load()
	codes := make([]uint32, len(seen))
	for i, m := range seen {
		codes[i] = m.Code
	}
	var r chartReport
	for _, p := range cfg.ChartPolicies(device, bed, profileName, codes) {
		pr := chartPolicyReport{Policy: p.Policy.String(), From: string(p.From)}
		for _, c := range p.Codes {
			pr.Parameters = append(pr.Parameters, paramLabel(c, ""))
		}
		r.Policies = append(r.Policies, pr)
	}
	after := cfg.Charting.CloseAfterOrDefault()
	ch.mu.Lock()
	defer ch.mu.Unlock()
	for k, w := range ch.open {
		if k.device != device {
			continue
		}
		r.Open++
		if t := w.closeAt(after); r.Next.IsZero() || t.Before(r.Next) {
			r.Next = t
		}
	}
	if c := ch.counts[device]; c != nil {
		r.Charted, r.Empty, r.Late, r.Amended, r.NotShown, r.LastEmpty = c.charted, c.empty, c.late, c.amended, c.off, c.lastEmpty
		r.ResolvedAgain = c.resolvedAgain
	}
	return r
}

// paramLabel names a parameter for the page: its display name, else its
// reference id (ref when the table has none), else its number.
func paramLabel(code uint32, ref string) string {
	t, ok := mdc.ByCode(code)
	switch {
	case ok && t.Display != "":
		return t.Display
	case ok:
		return t.RefID
	case ref != "":
		return ref
	}
	return strconv.FormatUint(uint64(code), 10)
}
