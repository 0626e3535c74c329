package edge

import (
	"context"
	"errors"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wardgate/wardgate/edge/config"
	"github.com/wardgate/wardgate/edge/fhir"
)

// The association model: a reading belongs to the patient who lay in its
// bed at the reading's time (its device time corrected by the device's
// clock offset). Who lay where, and when, comes from time-bounded stays:
//
//   - manual associations, set through the admin API (associations.go);
//   - patients.static, a bed's patient at every time;
//   - with patients.adt, the stays the hospital's ADT feed told of
//     (adt.go): where the feed knows the bed at the reading's time, its
//     answer is used and the record is not asked;
//   - with patients.encounter_lookup, the record's Encounters: each
//     location entry that names the bed, with that entry's own period
//     (fhir.BedStay), ended stays included, so that a backlog is charted to
//     the patient who was there then.
//
// Every source that knows the bed must agree. One patient: the reading is
// charted for them. Two different patients (two sources, or the record
// naming two at once), or a stay whose start or end the record does not
// give: uncertain, the reading waits and the page says why. Nobody: vacant.
// Uncertain and vacant are answers, and only answers start the
// patients.hold_unassociated clock; a record that cannot be reached, or a
// reading measured after the last lookup, waits without expiring (held.go).

// verdict is what the association model says of one reading.
type verdict uint8

const (
	occupied    verdict = iota // one patient: chart
	vacant                     // every source answered: nobody lay in the bed then
	uncertain                  // the sources answered, but not with one certain patient
	unreachable                // the record could not be asked
	notYet                     // the record was last asked before the reading's time
)

func (v verdict) String() string {
	return [...]string{"occupied", "vacant", "uncertain", "unreachable", "not yet asked"}[v]
}

// answer is the association model's verdict for one reading. reason says
// why, for the page and the log: it never holds patient data.
type answer struct {
	verdict verdict
	patient string
	reason  string
	// asOf is when the record was asked for this answer (zero: not the
	// record's): an answer older than the hold's end cannot expire a
	// reading (the record may have been corrected since).
	asOf time.Time
}

// expires tells whether waiting with this answer counts towards
// patients.hold_unassociated.
func (a answer) expires() bool { return a.verdict == vacant || a.verdict == uncertain }

// beds answers, for a bed and a time, who lay in it. Safe for concurrent
// use.
type beds struct {
	manual *associations // set through the admin API
	// static is patients.static, with the tables a reload replaced and
	// when; a reload swaps it whole (never changes a table in place), so
	// a resolve reads one or the other.
	static  atomic.Pointer[staticTables]
	adt     *adtStays // the ADT feed's stays (patients.adt); nil without it
	client  *fhir.Client
	system  string
	refresh time.Duration
	timeout time.Duration // bounds a whole lookup (its searches and pages): fhir.timeout
	log     interface{ Warn(string, ...any) }
	// kick, when set, is told after each lookup: readings waiting for one
	// may be decided now. It must not block.
	kick func()

	mu        sync.Mutex
	saveMu    sync.Mutex
	records   map[string]*bedRecord
	firstSeen map[string]time.Time // Encounter|bed → when a stay without a start was first seen

	// seenPath keeps firstSeen across restarts (stays.json).
	seenPath string

	lookups, failures atomic.Uint64
}

// bedRecord is what the record last said of one bed.
type bedRecord struct {
	answered bool
	asked    time.Time // when the last answered lookup was sent: it covers readings up to then
	from     time.Time // and from then
	stays    []fhir.BedStay
	err      error     // the last lookup's failure, until one succeeds
	lastTry  time.Time // when the last lookup was started
	needFrom time.Time // the earliest reading time asked for lately
	needAt   time.Time // when needFrom was last moved
	inflight chan struct{}
	used     time.Time
}

// lookback is how far before now a lookup asks for stays, at least;
// maxLookback how far at most.
const (
	lookback    = time.Hour
	maxLookback = 7 * 24 * time.Hour
)

// maxBedRecords bounds the beds the record is remembered for (a wildcard
// topic can name any number).
const maxBedRecords = 4096

func newBeds(c *config.Config, client *fhir.Client, log interface{ Warn(string, ...any) }) *beds {
	b := &beds{client: client, log: log, timeout: max(c.FHIR.Timeout.D(), time.Second),
		records: map[string]*bedRecord{}, firstSeen: map[string]time.Time{}}
	b.setStatic(c.Patients.Static)
	if e := c.Patients.EncounterLookup; e != nil {
		b.system, b.refresh = e.LocationSystem, e.Refresh.D()
	}
	return b
}

// staticTables are patients.static now, and the tables reloads replaced:
// a reload changes a bed's static patient from the moment it is applied,
// so a reading measured before (held, or a backlog) keeps the patient the
// table named then. A restart forgets the history: patients.static then
// names the bed's patient at every time, as documented.
type staticTables struct {
	now  map[string]string
	past []staticTable // oldest first, each in force until its until
}

type staticTable struct {
	m     map[string]string
	until time.Time
}

// maxStaticHistory bounds the replaced tables kept.
const maxStaticHistory = 64

// setStatic makes static the beds' patients.static from now on.
func (b *beds) setStatic(static map[string]string) {
	next := &staticTables{now: static}
	if old := b.static.Load(); old != nil {
		next.past = append(slices.Clone(old.past), staticTable{m: old.now, until: time.Now()})
		if n := len(next.past) - maxStaticHistory; n > 0 {
			next.past = next.past[n:]
		}
	}
	b.static.Store(next)
}

// staticPatient is bed's patient in patients.static now.
func (b *beds) staticPatient(bed string) (string, bool) {
	return b.staticPatientAt(bed, time.Now())
}

// staticPatientAt is bed's patient in the patients.static in force at at.
func (b *beds) staticPatientAt(bed string, at time.Time) (string, bool) {
	t := b.static.Load()
	if t == nil {
		return "", false
	}
	m := t.now
	for _, p := range t.past {
		if at.Before(p.until) {
			m = p.m
			break
		}
	}
	ref, ok := m[bed]
	return ref, ok
}

// staticBeds are the beds patients.static names now.
func (b *beds) staticBeds() []string {
	t := b.static.Load()
	if t == nil {
		return nil
	}
	return slices.Collect(maps.Keys(t.now))
}

// asking says whether a resolve may ask the record.
type asking uint8

const (
	// cachedOnly decides from the record's last answer.
	cachedOnly asking = iota
	// askAndWait asks the record when a lookup is due (at most once per
	// refresh per bed, one at a time) and waits for the answer.
	askAndWait
	// askInBackground starts a due lookup without waiting for it, so that
	// neither a source nor the resolver is held up by the record: the
	// readings it cannot decide wait in the held store, and the resolver
	// is woken when the answer comes.
	askInBackground
)

// resolve gives the verdict for a reading from bed at time at.
func (b *beds) resolve(ctx context.Context, bed string, at time.Time, ask asking) answer {
	type claim struct{ patient, source string }
	var claims []claim
	if ref, ok := b.manual.patient(bed, at); ok {
		claims = append(claims, claim{ref, "a manual association"})
	}
	if ref, ok := b.staticPatientAt(bed, at); ok {
		claims = append(claims, claim{ref, "patients.static"})
	}
	none := answer{verdict: vacant, reason: "no patient is associated with bed " + bed + " at the reading's time"}
	// The ADT feed, where it knows the bed at that time, comes ahead of the
	// Encounter lookup, which is then not asked for this reading.
	fromADT := false
	if a, ok := b.adt.resolve(bed, at); ok {
		fromADT = true
		switch a.verdict {
		case occupied:
			claims = append(claims, claim{a.patient, "the ADT feed"})
		case vacant:
			none = a
		default:
			return a
		}
	}
	if !fromADT && b.system != "" && b.client != nil {
		rec := b.fromRecord(ctx, bed, at, ask)
		switch rec.verdict {
		case occupied:
			claims = append(claims, claim{rec.patient, "the record"})
		case vacant:
			none = rec
		default:
			return rec
		}
	}
	if len(claims) == 0 {
		return none
	}
	for _, c := range claims[1:] {
		if c.patient != claims[0].patient {
			return answer{verdict: uncertain, reason: claims[0].source + " and " + c.source + " name different patients in bed " + bed + " at the reading's time"}
		}
	}
	return answer{verdict: occupied, patient: claims[0].patient}
}

// fromRecord answers from what the record said of the bed, asking it again
// (as ask allows) when its last answer does not cover at, or covers it
// without a patient.
func (b *beds) fromRecord(ctx context.Context, bed string, at time.Time, ask asking) answer {
	// What a reading waits with while a lookup runs: the last answer when
	// it covers the reading, else "not yet asked" (or the last failure).
	waiting := answer{verdict: notYet, reason: "waiting for the record's answer on bed " + bed}
	if time.Since(at) > maxLookback {
		// A lookup does not reach that far back (a garbage time, or a
		// backlog older than a week): it must not make every later lookup
		// of the bed ask for its whole history.
		return answer{verdict: uncertain, reason: "the reading was measured more than " + maxLookback.String() + " ago, further back than a lookup of bed " + bed + " asks"}
	}
	for {
		now := time.Now()
		b.mu.Lock()
		r := b.records[bed]
		if r == nil {
			r = b.newRecordLocked(bed)
		}
		r.used = now
		due := ask != cachedOnly && r.inflight == nil && now.Sub(r.lastTry) >= b.refresh
		covered := r.answered && !at.After(r.asked) && !at.Before(r.from)
		if covered {
			a := b.fromStaysLocked(bed, r, at)
			// An answer without a patient is asked again (at most once
			// per refresh) while readings wait on it: the record may be
			// corrected, an admission documented late. Until the new
			// answer comes, the last one stands.
			if a.verdict != occupied && ask == askAndWait && r.inflight != nil {
				wait := r.inflight
				b.mu.Unlock()
				select {
				case <-wait:
					continue
				case <-ctx.Done():
					return a
				}
			}
			if a.verdict == occupied || !due {
				b.mu.Unlock()
				return a
			}
			waiting = a
		} else if r.err != nil && !errors.Is(r.err, fhir.ErrTooManyEncounters) {
			// Asking again, the last time in vain: say so meanwhile.
			waiting = answer{verdict: unreachable, reason: "the record did not answer a lookup of bed " + bed + ": " + failureClass(r.err)}
		}
		if need := at.Add(-time.Minute); r.needFrom.IsZero() || need.Before(r.needFrom) || now.Sub(r.needAt) > 10*time.Minute {
			r.needFrom, r.needAt = need, now
		}
		if r.inflight != nil {
			wait := r.inflight
			b.mu.Unlock()
			if ask != askAndWait {
				return waiting
			}
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return waiting
			}
		}
		if !due {
			failed := r.err
			b.mu.Unlock()
			if errors.Is(failed, fhir.ErrTooManyEncounters) {
				return answer{verdict: uncertain, reason: "bed " + bed + ": " + failed.Error()}
			}
			if failed != nil {
				return answer{verdict: unreachable, reason: "the record did not answer a lookup of bed " + bed + ": " + failureClass(failed)}
			}
			return answer{verdict: notYet, reason: "bed " + bed + " is looked up again within " + b.refresh.String()}
		}
		from := now.Add(-lookback)
		if !r.needFrom.IsZero() && r.needFrom.Before(from) {
			from = r.needFrom
		}
		done := make(chan struct{})
		r.inflight, r.lastTry = done, now
		b.mu.Unlock()
		if ask == askInBackground {
			go b.lookup(context.WithoutCancel(ctx), bed, r, from.Truncate(time.Minute), done)
			return waiting
		}
		b.lookup(ctx, bed, r, from.Truncate(time.Minute), done)
		ask = cachedOnly // answered: decide from it (a reading after it waits)
	}
}

// lookup asks the record for the bed's stays and keeps the answer (or the
// failure) in r; done is closed after.
func (b *beds) lookup(ctx context.Context, bed string, r *bedRecord, from time.Time, done chan struct{}) {
	b.lookups.Add(1)
	lctx, cancel := context.WithTimeout(ctx, b.timeout)
	sent := time.Now()
	stays, err := b.client.FindBedStays(lctx, b.system, bed, from)
	cancel()
	b.mu.Lock()
	r.inflight = nil
	close(done)
	save := false
	if err != nil {
		r.err = err
		b.failures.Add(1)
	} else {
		r.answered, r.asked, r.from, r.stays, r.err = true, sent, from, stays, nil
		save = b.noteFirstSeenLocked(bed, stays, sent)
	}
	b.mu.Unlock()
	if save {
		b.saveFirstSeen()
	}
	if err != nil {
		b.log.Warn("bed lookup failed; the bed's readings wait (they do not expire for this)", "bed", bed, "err", failureClass(err))
	}
	if b.kick != nil {
		b.kick()
	}
}

// staysFile is the file in data_dir that keeps when the record's stays
// without a start were first seen.
const staysFile = "stays.json"

// maxFirstSeen bounds the stays without a start that are remembered.
const maxFirstSeen = 10000

// noteFirstSeenLocked remembers when each stay without a start was first
// seen, and when each stay that ended without an end was first seen ended
// (the patient had left by then); it reports whether one was new.
func (b *beds) noteFirstSeenLocked(bed string, stays []fhir.BedStay, at time.Time) bool {
	changed := false
	note := func(key string) {
		if _, ok := b.firstSeen[key]; ok {
			return
		}
		if len(b.firstSeen) >= maxFirstSeen {
			var oldest string
			for k, t := range b.firstSeen {
				if oldest == "" || t.Before(b.firstSeen[oldest]) {
					oldest = k
				}
			}
			delete(b.firstSeen, oldest)
		}
		b.firstSeen[key], changed = at, true
	}
	for _, s := range stays {
		key := s.Encounter + "|" + bed
		if s.StartUnknown {
			note(key)
		}
		if s.EndUnknown {
			note(key + "|ended")
		}
	}
	return changed && b.seenPath != ""
}

// saveFirstSeen keeps firstSeen as it is now, so that a restart does not
// make the readings of an outage uncertain. Saves are one at a time, each
// of the latest state.
func (b *beds) saveFirstSeen() {
	b.saveMu.Lock()
	defer b.saveMu.Unlock()
	b.mu.Lock()
	seen := maps.Clone(b.firstSeen)
	b.mu.Unlock()
	data, err := encodeStaysFile(seen)
	if err == nil {
		err = writeFileDurably(b.seenPath, data)
	}
	if err != nil {
		b.log.Warn("when the record's stays without a start were first seen could not be kept", "err", err)
	}
}

// loadFirstSeen reads what saveFirstSeen kept (nothing when there is no
// file; an unreadable one starts anew, which only makes more readings wait).
func (b *beds) loadFirstSeen(path string) {
	b.seenPath = path
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	var f struct{ FirstSeen map[string]time.Time }
	if err == nil {
		f.FirstSeen, err = decodeStaysFile(path, data)
	}
	if err != nil {
		b.log.Warn("when the record's stays without a start were first seen cannot be read; it starts anew", "file", path, "err", err)
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	maps.Copy(b.firstSeen, f.FirstSeen)
}

func (b *beds) newRecordLocked(bed string) *bedRecord {
	if len(b.records) >= maxBedRecords {
		var oldest string
		var at time.Time
		for k, r := range b.records {
			if r.inflight == nil && (oldest == "" || r.used.Before(at)) {
				oldest, at = k, r.used
			}
		}
		delete(b.records, oldest)
	}
	r := &bedRecord{}
	b.records[bed] = r
	return r
}

// fromStaysLocked is the record's verdict for at from the stays of its
// last answer.
func (b *beds) fromStaysLocked(bed string, r *bedRecord, at time.Time) answer {
	var sure, maybe []string
	for _, s := range r.stays {
		if !s.End.IsZero() && !at.Before(s.End) {
			continue // over by then, whenever it began
		}
		start := s.Start
		if s.StartUnknown {
			// The record does not say since when: from the first lookup
			// that showed the stay, never earlier.
			start = r.asked
			if first, ok := b.firstSeen[s.Encounter+"|"+bed]; ok {
				start = first
			}
		}
		ended, endSeen := time.Time{}, false
		if s.EndUnknown {
			// Over, the record says, but not when: before the first
			// lookup that showed it over, at the latest.
			ended, endSeen = b.firstSeen[s.Encounter+"|"+bed+"|ended"]
		}
		switch {
		case endSeen && !at.Before(ended):
			// Gone by then.
		case at.Before(start) && s.StartUnknown:
			maybe = append(maybe, s.Patient) // there already, or not yet?
		case at.Before(start):
		case s.EndUnknown, s.Planned:
			// Over at a time the record does not give; or a move that
			// was planned, which says nothing of whether it happened.
			maybe = append(maybe, s.Patient)
		case !slices.Contains(sure, s.Patient):
			sure = append(sure, s.Patient)
		}
	}
	switch {
	case len(sure) > 1:
		return answer{verdict: uncertain, reason: "the record has two patients in bed " + bed + " at the reading's time", asOf: r.asked}
	case len(sure) == 1 && !slices.ContainsFunc(maybe, func(p string) bool { return p != sure[0] }):
		return answer{verdict: occupied, patient: sure[0], asOf: r.asked}
	case len(maybe) > 0:
		return answer{verdict: uncertain, reason: "the record has a stay in bed " + bed + " that may cover the reading's time, without saying when it began or ended, or only planned", asOf: r.asked}
	}
	return answer{verdict: vacant, reason: "the record has nobody in bed " + bed + " at the reading's time", asOf: r.asked}
}

// failureClass says what kind of failure a lookup met, without anything
// the record said.
func failureClass(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "no answer in time"
	case errors.Is(err, fhir.ErrTooManyEncounters):
		return err.Error()
	}
	s := err.Error()
	if i := strings.Index(s, "HTTP "); i >= 0 {
		return strings.TrimSpace(s[i:])
	}
	return "no answer"
}

// bedSource says who is associated with a bed now, and from where, without
// asking the record (its last answer only): for the status page and GET
// /api/beds.
type bedSource struct {
	Bed     string    `json:"bed"`
	Patient string    `json:"patient,omitempty"`
	Source  string    `json:"source"` // manual, static, adt, encounter, none, uncertain, unreachable, unknown
	Since   time.Time `json:"since,omitzero"`
	By      string    `json:"by,omitempty"`
	// AsOf is when the record was last asked (for source encounter).
	AsOf time.Time `json:"as_of,omitzero"`
	// Reason says why no patient is shown, when there is none.
	Reason string `json:"reason,omitempty"`
}

func (b *beds) current(bed string) bedSource {
	now := time.Now()
	if s, ok := b.manual.current(bed, now); ok {
		return bedSource{Bed: bed, Patient: s.Patient, Source: "manual", Since: s.Start, By: s.By}
	}
	if ref, ok := b.staticPatient(bed); ok {
		return bedSource{Bed: bed, Patient: ref, Source: "static"}
	}
	if b.adt.knows(bed, now) {
		return b.adt.current(bed)
	}
	if b.system == "" {
		return bedSource{Bed: bed, Source: "none"}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.records[bed]
	switch {
	case r == nil:
		return bedSource{Bed: bed, Source: "unknown", Reason: "the record has not been asked yet"}
	case r.err != nil:
		return bedSource{Bed: bed, Source: "unreachable", Reason: failureClass(r.err)}
	case !r.answered:
		return bedSource{Bed: bed, Source: "unknown", Reason: "the record has not answered yet"}
	}
	a := b.fromStaysLocked(bed, r, r.asked)
	switch a.verdict {
	case occupied:
		out := bedSource{Bed: bed, Patient: a.patient, Source: "encounter", AsOf: r.asked}
		for _, s := range r.stays {
			if s.Patient == a.patient && !s.Start.IsZero() && !s.Start.After(r.asked) && (out.Since.IsZero() || s.Start.After(out.Since)) {
				out.Since = s.Start
			}
		}
		return out
	case uncertain:
		return bedSource{Bed: bed, Source: "uncertain", AsOf: r.asked, Reason: a.reason}
	}
	return bedSource{Bed: bed, Source: "none", AsOf: r.asked}
}
