package edge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/wardgate/wardgate/buffer"
	"github.com/wardgate/wardgate/devices/adt"
	"github.com/wardgate/wardgate/devices/hl7"
)

// The ADT feed (patients.adt): the hospital's HL7 v2 admit, discharge and
// transfer messages, turned into time-bounded stays per bed, which the
// association model asks ahead of the Encounter lookup (patients.go).
//
// What each event does, at its event time At (EVN-6, else MSH-7), which is
// not its arrival: events may come late or out of order, and each is
// placed by At among the stays already known.
//
//	A01, A04  opens a stay of the patient in the bed, ending the patient's
//	          stay at At elsewhere. A bed that has another patient then
//	          holds two: uncertain until the feed corrects it, never a pick.
//	          (A04 without a bed, an outpatient, places nobody.)
//	A02       ends the stay in PV1-6 (else the patient's stay) at At and
//	          opens one in PV1-3.
//	A03       ends the patient's stay at At.
//	A08       moves nobody; one that shows the patient in another bed than
//	          their stay makes both beds uncertain from At until the
//	          patient's next move (A02, A12, ...): a correction of where
//	          someone lies comes as a transfer or its cancellation.
//	A11       removes the stay its admit opened, and re-opens what that
//	          admit ended.
//	A12       removes the transfer's stay (PV1-6, else the open one) and
//	          re-opens the stay it ended (in PV1-3, where the patient
//	          returns to).
//	A13       re-opens the stay the discharge ended.
//	A17       swaps two patients: each PV1-3 is that patient's new bed.
//	A40       the stays of the merged-away record number (MRG-1) become
//	          the surviving one's (PID-3).
//
// A cancellation, swap or merge that changes who lay in a bed for a time
// already past is recorded as a correction (bed and times, no patient):
// readings charted for that time may belong to another patient, and the
// page says so; they are not silently moved.
//
// Durable: each applied event rewrites data_dir/adt-stays.json (temp file,
// fsync, rename, fsync of the folder) before it is acknowledged AA. The
// same sender and control id again is acknowledged AA and changes nothing
// (the last adtMaxApplied are kept in the file). Bounded: ended stays are
// kept for max(patients.hold_unassociated, 7 days) and at most
// adtMaxEnded of them; before what is kept the feed no longer knows a bed.

// adtStaysFile is the file in data_dir that keeps the ADT feed's stays.
const adtStaysFile = "adt-stays.json"

// adtFormat names the file's layout (adtFormatV, formats.go); another is
// refused, never guessed at, and a newer one with a NewerFormatError.
var adtFormat = adtFormatV.String()

// Bounds of what the ADT feed keeps.
const (
	adtMinKeep        = 7 * 24 * time.Hour
	adtMaxEnded       = 10000
	adtMaxApplied     = 10000
	adtMaxCorrections = 200
	adtMaxDoubts      = 1000
	adtMaxBeds        = 10000
)

// adtStay is one patient's stay in a bed as the feed told it: [Start, End),
// End zero while it lasts. OpenedBy and ClosedBy are the events (sender and
// control id) that made it.
type adtStay struct {
	Bed          string    `json:"bed"`
	Patient      string    `json:"patient"`
	Start        time.Time `json:"start"`
	End          time.Time `json:"end,omitzero"`
	OpenedBy     string    `json:"opened_by"`
	OpenTrigger  string    `json:"opened_trigger"`
	ClosedBy     string    `json:"closed_by,omitempty"`
	CloseTrigger string    `json:"closed_trigger,omitempty"`
}

func (s adtStay) covers(at time.Time) bool {
	return !at.Before(s.Start) && (s.End.IsZero() || at.Before(s.End))
}

// adtDoubt makes a bed uncertain from From until Until (zero: until the
// patient's next move): an A08 that contradicts the stays.
type adtDoubt struct {
	Bed     string    `json:"bed"`
	Patient string    `json:"patient"`
	From    time.Time `json:"from"`
	Until   time.Time `json:"until,omitzero"`
	By      string    `json:"by"`
}

func (d adtDoubt) covers(at time.Time) bool {
	return !at.Before(d.From) && (d.Until.IsZero() || at.Before(d.Until))
}

// adtCorrection says that who lay in Bed from From to To changed after the
// fact: readings already charted for that time may belong to another
// patient. No patient data.
type adtCorrection struct {
	Bed      string    `json:"bed"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	Trigger  string    `json:"trigger"`
	Received time.Time `json:"received"`
}

// adtState is what the file holds.
type adtState struct {
	Format string     `json:"format"`
	Stays  []adtStay  `json:"stays"`
	Doubts []adtDoubt `json:"doubts,omitempty"`
	// Beds are the beds the feed knows, each from when: its first event,
	// moved on as ended stays are let go.
	Beds map[string]time.Time `json:"beds"`
	// Applied are the events applied lately (sender|control id), oldest
	// first.
	Applied     []string        `json:"applied"`
	Corrections []adtCorrection `json:"corrections,omitempty"`
}

func (st *adtState) clone() *adtState {
	return &adtState{
		Format: st.Format, Stays: slices.Clone(st.Stays), Doubts: slices.Clone(st.Doubts),
		Beds: maps.Clone(st.Beds), Applied: slices.Clone(st.Applied), Corrections: slices.Clone(st.Corrections),
	}
}

// adtStays are the stays the hospital's ADT feed told of (patients.adt).
// Safe for concurrent use; a nil *adtStays knows no bed.
type adtStays struct {
	path string
	keep time.Duration
	log  *slog.Logger

	applyMu sync.Mutex // one apply at a time, from reading the state to swapping it
	mu      sync.Mutex
	st      *adtState
	byBed   map[string]adtBed // st's stays and doubts by bed, for resolve
	// byPatient are st's stays by patient, for bedsOf.
	byPatient map[string][]adtStay
	applied   map[string]bool
	closed    bool

	eventsApplied, eventsRefused, duplicates, busy uint64
	lastRefusal                                    adtRefusal
}

// adtBed is what the feed keeps of one bed.
type adtBed struct {
	stays  []adtStay
	doubts []adtDoubt
}

// setLocked makes st the state in force.
func (s *adtStays) setLocked(st *adtState) {
	s.st = st
	s.byBed = make(map[string]adtBed, len(st.Beds))
	s.byPatient = make(map[string][]adtStay)
	for _, x := range st.Stays {
		s.byPatient[x.Patient] = append(s.byPatient[x.Patient], x)
		b := s.byBed[x.Bed]
		b.stays = append(b.stays, x)
		s.byBed[x.Bed] = b
	}
	for _, d := range st.Doubts {
		b := s.byBed[d.Bed]
		b.doubts = append(b.doubts, d)
		s.byBed[d.Bed] = b
	}
}

// adtRefusal is the last event refused, for the page.
type adtRefusal struct {
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// openADTStays opens the stays kept in dir (none when the file does not
// exist yet). A file that is there but cannot be read, or is of another
// format, is an error: the gateway does not start rather than chart to the
// wrong patient.
func openADTStays(dir string, keep time.Duration, log *slog.Logger) (*adtStays, error) {
	s := &adtStays{path: filepath.Join(dir, adtStaysFile), keep: max(keep, adtMinKeep), log: log, applied: map[string]bool{}}
	s.setLocked(&adtState{Format: adtFormat, Beds: map[string]time.Time{}})
	b, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ADT stays: %w", err)
	}
	var st adtState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("ADT stays %s: %w (fix or move the file; it holds who the ADT feed placed in which bed)", s.path, err)
	}
	if err := withBuild(adtFormatV.Check(s.path, st.Format)); errors.Is(err, buffer.ErrNewerFormat) {
		return nil, fmt.Errorf("ADT stays: %w", err)
	}
	if st.Format != adtFormat {
		return nil, fmt.Errorf("ADT stays %s: the file is of format %.40q, not %q, which this build reads (move it away to start the feed's history anew)", s.path, st.Format, adtFormat)
	}
	if st.Beds == nil {
		st.Beds = map[string]time.Time{}
	}
	s.setLocked(&st)
	for _, k := range st.Applied {
		s.applied[k] = true
	}
	return s, nil
}

// close stops applying events: every one applied is already durable.
func (s *adtStays) close() error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// adtEvent is an ADT event mapped to wardgate's beds and patients.
type adtEvent struct {
	// key is the sender, the control id and what the event says:
	// MSH-3.1|MSH-4.1|MSH-10|digest. A resend of an event is the same
	// key; a control id reused for another event (a sender's counter
	// restarted) is another key, applied.
	key      string
	trigger  string
	at       time.Time
	received time.Time
	patient  string
	bed      string // PV1-3
	prior    string // PV1-6
	// other and otherBed: A17's second patient and their new bed.
	other, otherBed string
	// merges: A40's merged-away patient → surviving patient.
	merges [][2]string
}

// digest names what the event says, for its key.
func (ev adtEvent) digest() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d\x00%s\x00%s\x00%s\x00%s\x00%s\x00%v", ev.trigger, ev.at.UnixNano(), ev.patient, ev.bed, ev.prior, ev.other, ev.otherBed, ev.merges)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// errADTClosed is apply's error once the gateway is stopping.
var errADTClosed = errors.New("the ADT stays are closed")

// apply makes ev part of the stays, durably. applied is false for an event
// already applied (by its sender and control id), which changes nothing.
// note says, without patient data, what about the event needs attention
// ("" when nothing does).
func (s *adtStays) apply(ev adtEvent) (applied bool, note string, err error) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false, "", errADTClosed
	}
	if s.applied[ev.key] {
		s.duplicates++
		s.mu.Unlock()
		return false, "", nil
	}
	next := s.st.clone()
	s.mu.Unlock()

	note = next.apply(ev)
	next.Applied = append(next.Applied, ev.key)
	var forgotten []string
	if n := len(next.Applied) - adtMaxApplied; n > 0 {
		forgotten = next.Applied[:n]
		next.Applied = slices.Clone(next.Applied[n:])
	}
	next.prune(ev.received, s.keep)
	b, err := json.Marshal(next)
	if err == nil {
		err = writeFileDurably(s.path, b)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.busy++
		return false, "", fmt.Errorf("ADT stays: %w", err)
	}
	s.setLocked(next)
	s.applied[ev.key] = true
	for _, k := range forgotten {
		delete(s.applied, k)
	}
	s.eventsApplied++
	return true, note, nil
}

// refused counts an event that was not applied, and keeps why (no patient
// data) for the page.
func (s *adtStays) refused(reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.eventsRefused++
	s.lastRefusal = adtRefusal{Reason: reason, At: time.Now()}
}

// apply changes st as ev says; it returns a note for the log.
func (st *adtState) apply(ev adtEvent) string {
	note := ""
	for _, bed := range []string{ev.bed, ev.prior, ev.otherBed} {
		if bed == "" {
			continue
		}
		if from, ok := st.Beds[bed]; !ok || ev.at.Before(from) {
			st.Beds[bed] = ev.at
		}
	}
	switch ev.trigger {
	case "A01", "A04":
		if ev.bed == "" {
			return "no bed (PV1-3): nobody placed"
		}
		st.endDoubts(ev.patient, ev.at)
		note = st.admit(ev, ev.patient, ev.bed, "")
	case "A02":
		st.endDoubts(ev.patient, ev.at)
		note = st.admit(ev, ev.patient, ev.bed, ev.prior)
	case "A03":
		st.endDoubts(ev.patient, ev.at)
		i := st.covering(ev.patient, ev.at, ev.bed)
		if i < 0 {
			return "a discharge of a patient without a stay at its time: nothing to end"
		}
		st.cut(i, ev)
	case "A08":
		if ev.bed == "" {
			return ""
		}
		i := st.covering(ev.patient, ev.at, ev.bed)
		if i >= 0 && st.Stays[i].Bed == ev.bed {
			return ""
		}
		st.doubt(ev.bed, ev)
		note = "an update (A08) shows a patient in bed " + ev.bed + ", where the feed has no stay of theirs"
		if i >= 0 {
			st.doubt(st.Stays[i].Bed, ev)
			note += ", while their stay is in bed " + st.Stays[i].Bed
		}
		note += ": uncertain from the event's time until a transfer (A02) or its cancellation (A12) corrects it"
	case "A11":
		st.endDoubts(ev.patient, ev.at)
		i := st.find(func(s adtStay) bool {
			return s.Patient == ev.patient && s.End.IsZero() && (ev.bed == "" || s.Bed == ev.bed)
		})
		if i < 0 {
			return "a cancelled admission without an open stay of the patient" + inBed(ev.bed) + ": nothing to remove"
		}
		st.undo(i, ev, "")
	case "A12":
		st.endDoubts(ev.patient, ev.at)
		i := st.find(func(s adtStay) bool {
			return s.Patient == ev.patient && s.End.IsZero() && (ev.prior == "" || s.Bed == ev.prior)
		})
		if i < 0 && ev.prior != "" {
			i = st.find(func(s adtStay) bool { return s.Patient == ev.patient && s.Bed == ev.prior })
		}
		if i < 0 || st.Stays[i].Bed == ev.bed {
			return "a cancelled transfer without a stay of the patient in the transfer's bed: nothing to undo"
		}
		st.undo(i, ev, ev.bed)
	case "A13":
		st.endDoubts(ev.patient, ev.at)
		i := st.find(func(s adtStay) bool {
			return s.Patient == ev.patient && s.CloseTrigger == "A03" && s.Bed == ev.bed
		})
		if i < 0 {
			i = st.find(func(s adtStay) bool { return s.Patient == ev.patient && s.CloseTrigger == "A03" })
		}
		if i < 0 {
			if st.covering(ev.patient, ev.at, ev.bed) >= 0 {
				return "a cancelled discharge of a patient who has a stay: nothing to re-open"
			}
			st.open(ev, ev.patient, ev.bed)
			return "a cancelled discharge whose discharge the feed does not have: the stay in bed " + ev.bed + " starts at the event's time"
		}
		ended := st.Stays[i].End
		st.reopen(i)
		st.correct(st.Stays[i].Bed, ended, ev.received, ev)
	case "A17":
		st.endDoubts(ev.patient, ev.at)
		st.endDoubts(ev.other, ev.at)
		a := st.covering(ev.patient, ev.at, "")
		b := st.covering(ev.other, ev.at, "")
		st.move(a, ev, ev.patient, ev.bed) // appends: a and b stay where they are
		st.move(b, ev, ev.other, ev.otherBed)
		if ev.at.Before(ev.received) {
			st.correct(ev.bed, ev.at, ev.received, ev)
			st.correct(ev.otherBed, ev.at, ev.received, ev)
		}
	case "A40":
		for _, m := range ev.merges {
			from, into := m[0], m[1]
			for i := range st.Stays {
				if s := &st.Stays[i]; s.Patient == from {
					s.Patient = into
					end := s.End
					if end.IsZero() || end.After(ev.received) {
						end = ev.received
					}
					if s.Start.Before(end) {
						st.correct(s.Bed, s.Start, end, ev)
					}
				}
			}
			for i := range st.Doubts {
				if st.Doubts[i].Patient == from {
					st.Doubts[i].Patient = into
				}
			}
		}
	}
	if note == "" {
		note = st.twoInABed(ev)
	}
	st.sort()
	return note
}

func inBed(bed string) string {
	if bed == "" {
		return ""
	}
	return " in bed " + bed
}

// admit moves patient into bed at ev.at: their stay then (in prefer, when
// it has one there) ends, a stay in bed opens.
func (st *adtState) admit(ev adtEvent, patient, bed, prefer string) string {
	i := st.covering(patient, ev.at, prefer)
	if i >= 0 && st.Stays[i].Bed == bed {
		return "" // already there: a repeated admit or transfer changes nothing
	}
	st.move(i, ev, patient, bed)
	return ""
}

// move ends stay i (when not -1) at ev.at and opens one of patient in bed.
// A move placed late, before the end the feed already had for the stay it
// cuts (a discharge applied first), keeps that end: the patient left the
// new bed then, not never.
func (st *adtState) move(i int, ev adtEvent, patient, bed string) {
	var left adtStay
	if i >= 0 {
		left = st.Stays[i]
		st.cut(i, ev)
	}
	st.open(ev, patient, bed)
	if n := &st.Stays[len(st.Stays)-1]; !left.End.IsZero() && (n.End.IsZero() || left.End.Before(n.End)) {
		n.End, n.ClosedBy, n.CloseTrigger = left.End, left.ClosedBy, left.CloseTrigger
	}
}

// twoInABed says when ev left a bed with two patients at once.
func (st *adtState) twoInABed(ev adtEvent) string {
	for _, bed := range []string{ev.bed, ev.otherBed} {
		if bed == "" {
			continue
		}
		var who []string
		for _, s := range st.Stays {
			if s.Bed == bed && s.covers(ev.at) && !slices.Contains(who, s.Patient) {
				who = append(who, s.Patient)
			}
		}
		if len(who) > 1 {
			return "bed " + bed + " has two patients at once: uncertain until the feed corrects it"
		}
	}
	return ""
}

// covering is the patient's stay at time at (the one in bed prefer when
// there is one there); -1 when none.
func (st *adtState) covering(patient string, at time.Time, prefer string) int {
	found := -1
	for i, s := range st.Stays {
		if s.Patient != patient || !s.covers(at) {
			continue
		}
		if found < 0 {
			found = i
			continue
		}
		here, there := s.Bed == prefer, st.Stays[found].Bed == prefer
		if here && !there || here == there && s.Start.After(st.Stays[found].Start) {
			found = i
		}
	}
	return found
}

// find is the latest-starting stay for which ok holds; -1 when none.
func (st *adtState) find(ok func(adtStay) bool) int {
	found := -1
	for i, s := range st.Stays {
		if ok(s) && (found < 0 || !s.Start.Before(st.Stays[found].Start)) {
			found = i
		}
	}
	return found
}

// nextStart is when the patient's first stay after at begins (zero: none),
// so that a stay placed late ends where the patient's known history goes on.
func (st *adtState) nextStart(patient string, at time.Time, skip int) time.Time {
	var next time.Time
	for i, s := range st.Stays {
		if i != skip && s.Patient == patient && s.Start.After(at) && (next.IsZero() || s.Start.Before(next)) {
			next = s.Start
		}
	}
	return next
}

func (st *adtState) open(ev adtEvent, patient, bed string) {
	st.Stays = append(st.Stays, adtStay{Bed: bed, Patient: patient, Start: ev.at, End: st.nextStart(patient, ev.at, -1),
		OpenedBy: ev.key, OpenTrigger: ev.trigger})
}

func (st *adtState) cut(i int, ev adtEvent) {
	st.Stays[i].End, st.Stays[i].ClosedBy, st.Stays[i].CloseTrigger = ev.at, ev.key, ev.trigger
}

// reopen clears stay i's end, up to the patient's next stay.
func (st *adtState) reopen(i int) {
	s := &st.Stays[i]
	s.End, s.ClosedBy, s.CloseTrigger = st.nextStart(s.Patient, s.Start, i), "", ""
}

// undo removes stay i (a cancelled admit or transfer), re-opens the stays
// the event that opened it ended, and records the corrections. With
// returnTo, a patient whose earlier stay is not known is placed there from
// the removed stay's start.
func (st *adtState) undo(i int, ev adtEvent, returnTo string) {
	gone := st.Stays[i]
	st.Stays = slices.Delete(st.Stays, i, i+1)
	end := gone.End
	if end.IsZero() || end.After(ev.received) {
		end = ev.received
	}
	if gone.Start.Before(end) {
		st.correct(gone.Bed, gone.Start, end, ev)
	}
	// What ended the removed stay (a discharge, a later move) ends the
	// stay that takes its place: the patient's history goes on from there.
	keepEnd := func(j int) {
		if n := &st.Stays[j]; gone.ClosedBy != "" && (n.End.IsZero() || gone.End.Before(n.End)) {
			n.End, n.ClosedBy, n.CloseTrigger = gone.End, gone.ClosedBy, gone.CloseTrigger
		}
	}
	reopened := false
	for j := range st.Stays {
		if s := st.Stays[j]; s.Patient == gone.Patient && s.ClosedBy == gone.OpenedBy && s.ClosedBy != "" {
			st.reopen(j)
			keepEnd(j)
			reopened = true
			if gone.Start.Before(end) {
				st.correct(s.Bed, gone.Start, end, ev)
			}
		}
	}
	if !reopened && returnTo != "" {
		st.Stays = append(st.Stays, adtStay{Bed: returnTo, Patient: gone.Patient, Start: gone.Start,
			End: st.nextStart(gone.Patient, gone.Start, -1), OpenedBy: ev.key, OpenTrigger: ev.trigger})
		keepEnd(len(st.Stays) - 1)
		if gone.Start.Before(end) {
			st.correct(returnTo, gone.Start, end, ev)
		}
	}
}

// doubt makes bed uncertain from ev.at until the patient's next move.
func (st *adtState) doubt(bed string, ev adtEvent) {
	// An update placed late ends where the patient's next move the feed
	// has begins, as that move would have ended it had it come after.
	until := st.nextMove(ev.patient, ev.at)
	if i := slices.IndexFunc(st.Doubts, func(d adtDoubt) bool {
		return d.Bed == bed && d.Patient == ev.patient && d.Until.Equal(until)
	}); i >= 0 {
		// The same contradiction again (an A08 comes with every update),
		// up to the same move: one doubt, from the earliest event that
		// showed it.
		if ev.at.Before(st.Doubts[i].From) {
			st.Doubts[i].From = ev.at
		}
	} else {
		st.Doubts = append(st.Doubts, adtDoubt{Bed: bed, Patient: ev.patient, From: ev.at, Until: until, By: ev.key})
	}
	if from, ok := st.Beds[bed]; !ok || ev.at.Before(from) {
		st.Beds[bed] = ev.at
	}
}

// nextMove is the patient's first move the feed has after at: a stay of
// theirs beginning or ending (zero: none).
func (st *adtState) nextMove(patient string, at time.Time) time.Time {
	var next time.Time
	for _, s := range st.Stays {
		if s.Patient != patient {
			continue
		}
		for _, t := range []time.Time{s.Start, s.End} {
			if t.After(at) && (next.IsZero() || t.Before(next)) {
				next = t
			}
		}
	}
	return next
}

// endDoubts ends the patient's open doubts at at: the feed moved them since.
func (st *adtState) endDoubts(patient string, at time.Time) {
	for i, d := range st.Doubts {
		if d.Patient == patient && d.Until.IsZero() && !at.Before(d.From) {
			st.Doubts[i].Until = at
		}
	}
}

// correctedSince tells whether the feed corrected who lay in bed for a
// part of [from, to) in an event received at or after since: readings of
// that time resolved before it may belong to another patient.
func (a *adtStays) correctedSince(bed string, from, to, since time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.st == nil {
		return false
	}
	for _, c := range a.st.Corrections {
		if c.Bed == bed && !c.Received.Before(since) && c.From.Before(to) && (c.To.IsZero() || c.To.After(from)) {
			return true
		}
	}
	return false
}

func (st *adtState) correct(bed string, from, to time.Time, ev adtEvent) {
	st.Corrections = append(st.Corrections, adtCorrection{Bed: bed, From: from, To: to, Trigger: ev.trigger, Received: ev.received})
	if n := len(st.Corrections) - adtMaxCorrections; n > 0 {
		st.Corrections = slices.Clone(st.Corrections[n:])
	}
}

func (st *adtState) sort() {
	sort.SliceStable(st.Stays, func(i, j int) bool {
		a, b := st.Stays[i], st.Stays[j]
		if !a.Start.Equal(b.Start) {
			return a.Start.Before(b.Start)
		}
		return a.Bed < b.Bed
	})
}

// prune lets go of ended stays and doubts past keeping (and beyond their
// bounds); the feed no longer knows a bed before what it keeps of it.
func (st *adtState) prune(now time.Time, keep time.Duration) {
	horizon := now.Add(-keep)
	var ended []int
	for i, s := range st.Stays {
		if !s.End.IsZero() {
			ended = append(ended, i)
		}
	}
	drop := map[int]bool{}
	for _, i := range ended {
		if st.Stays[i].End.Before(horizon) {
			drop[i] = true
		}
	}
	if n := len(ended) - len(drop) - adtMaxEnded; n > 0 {
		sort.Slice(ended, func(a, b int) bool { return st.Stays[ended[a]].End.Before(st.Stays[ended[b]].End) })
		for _, i := range ended {
			if n == 0 {
				break
			}
			if !drop[i] {
				drop[i], n = true, n-1
			}
		}
	}
	if len(drop) > 0 {
		kept := st.Stays[:0:0]
		for i, s := range st.Stays {
			if !drop[i] {
				kept = append(kept, s)
				continue
			}
			if from, ok := st.Beds[s.Bed]; ok && s.End.After(from) {
				st.Beds[s.Bed] = s.End
			}
		}
		st.Stays = kept
	}
	doubts := st.Doubts[:0:0]
	for _, d := range st.Doubts {
		if d.Until.IsZero() || !d.Until.Before(horizon) {
			doubts = append(doubts, d)
		}
	}
	if n := len(doubts) - adtMaxDoubts; n > 0 {
		// Past the bound, the doubts that ended go first (oldest end
		// first): an open one let go makes its bed certain again.
		sort.SliceStable(doubts, func(i, j int) bool {
			a, b := doubts[i], doubts[j]
			return !a.Until.IsZero() && (b.Until.IsZero() || a.Until.Before(b.Until))
		})
		doubts = doubts[n:]
	}
	st.Doubts = doubts
	if n := len(st.Beds) - adtMaxBeds; n > 0 {
		// Forget the beds that nothing kept names, those known longest first.
		used := map[string]bool{}
		for _, s := range st.Stays {
			used[s.Bed] = true
		}
		for _, d := range st.Doubts {
			used[d.Bed] = true
		}
		var idle []string
		for b := range st.Beds {
			if !used[b] {
				idle = append(idle, b)
			}
		}
		sort.Slice(idle, func(i, j int) bool { return st.Beds[idle[i]].Before(st.Beds[idle[j]]) })
		for _, b := range idle[:min(n, len(idle))] {
			delete(st.Beds, b)
		}
	}
}

// resolve is the ADT feed's verdict for bed at time at; false when the
// feed does not know the bed then (no event named it, or at is before the
// first it keeps).
func (s *adtStays) resolve(bed string, at time.Time) (answer, bool) {
	if s == nil {
		return answer{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	from, ok := s.st.Beds[bed]
	if !ok || at.Before(from) {
		return answer{}, false
	}
	b := s.byBed[bed]
	for _, d := range b.doubts {
		if d.covers(at) {
			return answer{verdict: uncertain, reason: "an ADT update (A08) contradicts the feed's stays in bed " + bed + " at the reading's time; a transfer or its cancellation corrects it"}, true
		}
	}
	var who []string
	for _, st := range b.stays {
		if st.covers(at) && !slices.Contains(who, st.Patient) {
			who = append(who, st.Patient)
		}
	}
	switch len(who) {
	case 0:
		return answer{verdict: vacant, reason: "the ADT feed has nobody in bed " + bed + " at the reading's time"}, true
	case 1:
		return answer{verdict: occupied, patient: who[0]}, true
	}
	return answer{verdict: uncertain, reason: "the ADT feed has two patients in bed " + bed + " at the reading's time"}, true
}

// bedsOf are the beds the feed has patient in at time at (none: the feed
// has no stay of theirs then).
func (s *adtStays) bedsOf(patient string, at time.Time) []string {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var beds []string
	for _, st := range s.byPatient[patient] {
		if st.covers(at) && !slices.Contains(beds, st.Bed) {
			beds = append(beds, st.Bed)
		}
	}
	return beds
}

// knows reports whether the feed knows bed at time at.
func (s *adtStays) knows(bed string, at time.Time) bool {
	_, ok := s.resolve(bed, at)
	return ok
}

// current is who the feed has in bed now, for the status page.
func (s *adtStays) current(bed string) bedSource {
	now := time.Now()
	a, ok := s.resolve(bed, now)
	switch {
	case !ok:
		return bedSource{Bed: bed, Source: "unknown", Reason: "the ADT feed has not named the bed"}
	case a.verdict == uncertain:
		return bedSource{Bed: bed, Source: "uncertain", Reason: a.reason}
	case a.verdict == vacant:
		return bedSource{Bed: bed, Source: "none", Reason: "the ADT feed has nobody in the bed"}
	}
	out := bedSource{Bed: bed, Patient: a.patient, Source: "adt"}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.byBed[bed].stays {
		if st.Patient == a.patient && st.covers(now) {
			out.Since = st.Start
		}
	}
	return out
}

// adtStats is what the page and the API show of the ADT feed.
type adtStats struct {
	EventsApplied uint64          `json:"events_applied"`
	EventsRefused uint64          `json:"events_refused"`
	Duplicates    uint64          `json:"duplicates"`
	NotStored     uint64          `json:"not_stored"` // the file could not be written: the sender was asked to resend
	Beds          int             `json:"beds"`
	OpenStays     int             `json:"open_stays"`
	Corrections   []adtCorrection `json:"corrections"`
	LastRefusal   *adtRefusal     `json:"last_refusal,omitempty"`
}

func (s *adtStays) stats() adtStats {
	if s == nil {
		return adtStats{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := adtStats{
		EventsApplied: s.eventsApplied, EventsRefused: s.eventsRefused, Duplicates: s.duplicates, NotStored: s.busy,
		Beds: len(s.st.Beds), Corrections: slices.Clone(s.st.Corrections),
	}
	for _, st := range s.st.Stays {
		if st.End.IsZero() {
			out.OpenStays++
		}
	}
	if s.lastRefusal.Reason != "" {
		r := s.lastRefusal
		out.LastRefusal = &r
	}
	return out
}

// handleADT takes one message of the ADT feed (hl7.Handler): Accepted
// only once what it changes is durable.
func (g *Gateway) handleADT(ctx context.Context, m *hl7.Message, from hl7.Peer) hl7.Reply {
	s := g.adt
	if s == nil {
		return hl7.Reply{Outcome: hl7.Rejected, Code: hl7.ErrUnsupportedMessageType, Text: "this gateway has no ADT feed (patients.adt)"}
	}
	conf := g.cfg.Patients.ADT
	e, err := adt.Decode(m, conf.Zone)
	if err != nil {
		var de *adt.Error
		if !errors.As(err, &de) {
			de = &adt.Error{Outcome: hl7.Failed, Code: hl7.ErrInternal, Reason: "the event could not be read"}
		}
		s.refused(de.Where.String() + ": " + de.Reason)
		s.log.Warn("ADT event refused", "where", de.Where.String(), "reason", de.Reason)
		return de.Reply()
	}
	ev, refusal := g.adtEventOf(e)
	if refusal != nil {
		s.refused(e.Trigger + ": " + refusal.Where.String() + ": " + refusal.Text)
		s.log.Warn("ADT event refused", "trigger", e.Trigger, "where", refusal.Where.String(), "reason", refusal.Text)
		return *refusal
	}
	ev.key += "|" + ev.digest()
	applied, note, err := s.apply(ev)
	if err != nil {
		s.log.Error("ADT event not stored; the sender is asked to send it again", "trigger", e.Trigger, "err", err)
		return hl7.Reply{Outcome: hl7.Busy, Text: "the event could not be stored now; send it again"}
	}
	beds := slices.DeleteFunc([]string{ev.bed, ev.prior, ev.otherBed}, func(b string) bool { return b == "" })
	switch {
	case !applied:
		s.log.Debug("ADT event already applied; acknowledged again", "trigger", e.Trigger)
	case note != "":
		s.log.Warn("ADT event applied: "+note, "trigger", e.Trigger, "beds", beds)
	default:
		s.log.Debug("ADT event applied", "trigger", e.Trigger, "beds", beds)
	}
	if applied {
		g.kickResolver() // readings waiting for a patient may be placed now
	}
	return hl7.Reply{Outcome: hl7.Accepted}
}

// adtEventOf maps a decoded event to wardgate's beds (patients.adt.bed)
// and patients (record numbers of fhir.patient_identifier_system); a
// refusal names the field it cannot place.
func (g *Gateway) adtEventOf(e *adt.Event) (adtEvent, *hl7.Reply) {
	conf := g.cfg.Patients.ADT
	numbers := newRecordNumbers(g.cfg, conf)
	template := bedTemplate(conf.Bed)
	ev := adtEvent{
		key:     e.SendingApplication.Namespace + "|" + e.SendingFacility.Namespace + "|" + e.ControlID,
		trigger: e.Trigger, at: e.At, received: time.Now(),
	}
	patient := func(ids []hl7.CX, where hl7.Location) (string, *hl7.Reply) {
		p, err := numbers.patient(ids)
		if err != nil {
			return "", &hl7.Reply{Outcome: hl7.Failed, Code: hl7.ErrDataType, Where: where, Text: err.Error()}
		}
		if p == "" {
			return "", &hl7.Reply{Outcome: hl7.Failed, Code: hl7.ErrRequiredFieldMissing, Where: where,
				Text: "no record number of " + g.cfg.FHIR.PatientIdentifierSystem + " (assigning authority " + conf.AssigningAuthority + "): the event cannot be placed"}
		}
		return p, nil
	}
	bed := func(pl hl7.PL, where hl7.Location) (string, *hl7.Reply) {
		if pl.IsZero() {
			return "", nil
		}
		b, err := template.bedOfPL(pl)
		if err != nil {
			return "", &hl7.Reply{Outcome: hl7.Failed, Code: hl7.ErrDataType, Where: where, Text: err.Error()}
		}
		return b, nil
	}
	var r *hl7.Reply
	if e.Trigger == "A40" {
		for _, mg := range e.Merges {
			into, r := patient(mg.Patient, mg.PatientAt)
			if r != nil {
				return ev, r
			}
			away, r := patient(mg.MergedAway, mg.MergedAt)
			if r != nil {
				return ev, r
			}
			if away != into {
				ev.merges = append(ev.merges, [2]string{away, into})
			}
		}
		ev.patient = ev.survivor()
		return ev, nil
	}
	if ev.patient, r = patient(e.Patient, e.PatientAt); r != nil {
		return ev, r
	}
	if ev.bed, r = bed(e.Bed, e.BedAt); r != nil {
		return ev, r
	}
	if ev.prior, r = bed(e.PriorBed, e.PriorBedAt); r != nil {
		return ev, r
	}
	if o := e.Other; o != nil {
		if ev.other, r = patient(o.Patient, o.PatientAt); r != nil {
			return ev, r
		}
		if ev.otherBed, r = bed(o.Bed, o.BedAt); r != nil {
			return ev, r
		}
		if ev.other == ev.patient || ev.otherBed == ev.bed {
			return ev, &hl7.Reply{Outcome: hl7.Failed, Code: hl7.ErrDataType, Where: o.PatientAt, Text: "a swap names one patient or one bed twice"}
		}
	}
	return ev, nil
}

// survivor is the first surviving patient of a merge ("" when none).
func (ev adtEvent) survivor() string {
	if len(ev.merges) == 0 {
		return ""
	}
	return ev.merges[0][1]
}
