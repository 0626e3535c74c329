package edge

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"sync"
	"time"

	"github.com/wardgate/wardgate/buffer"
)

// Manual associations are what the operator says through the admin API:
// "from now (or from this time), bed 12 holds Patient/456", and later "that
// stay has ended". They come before the static table and the Encounter
// lookup for the time they cover. An association covers [Start, End): a
// reading taken before the end still belongs to that patient however late
// it is looked at (held frames, a slow serial group commit), and one taken
// after the end never does. Outside every manual stay the bed's other
// sources (patients.static, the Encounter lookup) apply again.
//
// They live in data_dir/beds.json (format wardgate-beds/1, formats.go; a
// file without the marker is the same layout), rewritten whole on each change (temp
// file, fsync, rename, fsync of the folder), so a change answered with 2xx
// survives a crash. Ended stays are kept while a reading of their time may
// still be looked at (patients.hold_unassociated, at least a day), and at
// most maxEndedStays of them.

// associationsFile is the file in data_dir that keeps them.
const associationsFile = "beds.json"

const maxEndedStays = 1000

// stay is one manual association of a patient with a bed.
type stay struct {
	Bed     string    `json:"bed"`
	Patient string    `json:"patient"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end,omitzero"` // zero: still in the bed
	By      string    `json:"by,omitempty"` // who set it (free text from the operator, or the API caller's address)
	EndedBy string    `json:"ended_by,omitempty"`
}

func (s stay) covers(at time.Time) bool {
	return !at.Before(s.Start) && (s.End.IsZero() || at.Before(s.End))
}

// associations are the manual stays; safe for concurrent use; the zero of
// a nil *associations is "none".
type associations struct {
	path string
	keep time.Duration // how long an ended stay is kept

	mu    sync.Mutex
	stays []stay // by bed, then start
}

var (
	patientRef = regexp.MustCompile(`^Patient/[A-Za-z0-9\-.]{1,64}$`)
	bedName    = regexp.MustCompile(`^[A-Za-z0-9._\-]{1,64}$`)

	errBadBed         = errors.New("a bed is 1–64 letters, digits, '.', '_' or '-'")
	errBadPatient     = errors.New(`patient must be a reference "Patient/<id>" (id: 1–64 letters, digits, '-' or '.')`)
	errNoManualStay   = errors.New("the bed has no manual association in progress")
	errOverlapsBefore = errors.New("since is before the start or the end of an earlier manual association of this bed")
	errInFuture       = errors.New("since is in the future")
)

// openAssociations loads the stays kept in dir (none when the file does
// not exist yet). A file that is there but cannot be read is an error: the
// gateway does not start rather than chart to the wrong patient.
func openAssociations(dir string, keep time.Duration) (*associations, error) {
	if keep < 24*time.Hour {
		keep = 24 * time.Hour
	}
	a := &associations{path: filepath.Join(dir, associationsFile), keep: keep}
	b, err := os.ReadFile(a.path)
	if errors.Is(err, os.ErrNotExist) {
		return a, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bed associations: %w", err)
	}
	if err := checkJSONFormat(a.path, b, bedsFormat); err != nil {
		return nil, fmt.Errorf("bed associations: %w", err)
	}
	var f struct {
		Stays []stay `json:"stays"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("bed associations %s: %w (fix or move the file; it holds the associations set through the admin API)", a.path, err)
	}
	a.stays = f.Stays
	a.sortLocked()
	return a, nil
}

func (a *associations) sortLocked() {
	sort.SliceStable(a.stays, func(i, j int) bool {
		if a.stays[i].Bed != a.stays[j].Bed {
			return a.stays[i].Bed < a.stays[j].Bed
		}
		return a.stays[i].Start.Before(a.stays[j].Start)
	})
}

// patient is the manual association covering bed at time at, if any.
func (a *associations) patient(bed string, at time.Time) (string, bool) {
	if a == nil {
		return "", false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := len(a.stays) - 1; i >= 0; i-- {
		if s := a.stays[i]; s.Bed == bed && s.covers(at) {
			return s.Patient, true
		}
	}
	return "", false
}

// current is the bed's manual stay in progress at now.
func (a *associations) current(bed string, now time.Time) (stay, bool) {
	if a == nil {
		return stay{}, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := len(a.stays) - 1; i >= 0; i-- {
		if s := a.stays[i]; s.Bed == bed && s.covers(now) {
			return s, true
		}
	}
	return stay{}, false
}

// beds lists the beds with a manual stay, kept or in progress.
func (a *associations) beds() []string {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, s := range a.stays {
		if len(out) == 0 || out[len(out)-1] != s.Bed {
			out = append(out, s.Bed)
		}
	}
	return out
}

// set associates patient with bed from since (zero: now), ending the bed's
// stay in progress at that moment. Setting the patient already in the bed
// changes nothing. It returns the stay in force once it is durable.
func (a *associations) set(bed, patient string, since time.Time, by string) (stay, error) {
	if !bedName.MatchString(bed) {
		return stay{}, errBadBed
	}
	if !patientRef.MatchString(patient) {
		return stay{}, errBadPatient
	}
	now := time.Now()
	if since.IsZero() {
		since = now
	}
	if since.After(now.Add(time.Minute)) {
		return stay{}, errInFuture
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	open := -1
	for i, s := range a.stays {
		if s.Bed != bed {
			continue
		}
		if s.End.IsZero() {
			open = i
			if s.Patient == patient && !since.Before(s.Start) {
				return s, nil
			}
		}
		if since.Before(s.Start) || (!s.End.IsZero() && since.Before(s.End)) {
			return stay{}, errOverlapsBefore
		}
	}
	next := append([]stay(nil), a.stays...)
	if open >= 0 {
		next[open].End, next[open].EndedBy = since, by
	}
	st := stay{Bed: bed, Patient: patient, Start: since, By: by}
	next = append(next, st)
	if err := a.saveLocked(next, now); err != nil {
		return stay{}, err
	}
	return st, nil
}

// end ends the bed's manual stay in progress now.
func (a *associations) end(bed, by string) (stay, error) {
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	next := append([]stay(nil), a.stays...)
	for i, s := range next {
		if s.Bed == bed && s.End.IsZero() {
			next[i].End, next[i].EndedBy = now, by
			if err := a.saveLocked(next, now); err != nil {
				return stay{}, err
			}
			return next[i], nil
		}
	}
	return stay{}, errNoManualStay
}

// saveLocked writes stays (less those past keeping) durably, then makes
// them the ones in force.
func (a *associations) saveLocked(stays []stay, now time.Time) error {
	var kept, ended []stay
	for _, s := range stays {
		switch {
		case s.End.IsZero():
			kept = append(kept, s)
		case now.Sub(s.End) < a.keep:
			ended = append(ended, s)
		}
	}
	if len(ended) > maxEndedStays {
		sort.Slice(ended, func(i, j int) bool { return ended[i].End.After(ended[j].End) })
		ended = ended[:maxEndedStays]
	}
	kept = append(kept, ended...)
	b, err := json.MarshalIndent(struct {
		Format string `json:"format"`
		Stays  []stay `json:"stays"`
	}{bedsFormat.String(), kept}, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileDurably(a.path, b); err != nil {
		return fmt.Errorf("bed associations: %w", err)
	}
	a.stays = kept
	a.sortLocked()
	return nil
}

// writeFileDurably replaces path with b so that a crash leaves the old file
// or the new one, never a mix: temp file, fsync, rename, fsync the folder.
func writeFileDurably(path string, b []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails harmlessly once renamed
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return buffer.SyncDir(dir)
}
