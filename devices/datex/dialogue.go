package datex

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"sync"
	"time"

	"github.com/wardgate/wardgate/devices"
)

// Dialogue is the client side of the S/5 computer interface: it asks the
// monitor for its displayed values every Interval, decodes each record it
// sends, and hands it over as one frame. It implements devices.Dialogue.
//
// The interface level: a request names the level it is written at, and
// whether a monitor ignores a request at a level it does not speak is not
// documented. A Run writes at the first of Levels; a Run that got no record
// at all before the monitor was deemed silent makes the next Run try the
// next level (round the list); once a level was answered, it is kept.
//
// A Dialogue is used by one Run at a time; it remembers the level across
// Runs.
type Dialogue struct {
	// Interval between records: whole seconds, 5 s when zero; below 5 s
	// it is 5 s, the interface's shortest for displayed values.
	Interval time.Duration
	// Levels are the interface levels to try, in order; when empty,
	// LevelsFrom(Level15).
	Levels []uint8
	// Classes are the request's class bits (0: the basic class only,
	// which is all this package decodes).
	Classes uint32
	// Log receives the dialogue's events (slog.Default when nil); it
	// never logs values.
	Log *slog.Logger
	// Second is how long one second of the protocol lasts: time.Second
	// when zero. Tests and the simulator shorten it together.
	Second time.Duration

	mu       sync.Mutex
	try      int  // index into the levels of the next Run
	answered bool // the level at try was answered
	nibp     nibpSeen
}

// nibpSeen is the NIBP the monitor showed last, and when it was first
// seen.
type nibpSeen struct {
	vals [3]float64 // sys, dia, mean
	old  bool       // the label said older than 60 s
	at   time.Time  // zero: never charted (first seen already old)
	ok   bool
}

// dateNIBP gives the NIBP values of a record their measurement's time.
// Between cuff cycles the monitor shows the last measurement in every
// record (its label saying so once it is older than 60 s), and a record
// carries no time of its own for it unless an auxiliary sub-record does
// (DecodeRecord then sets it). A measurement is new when its values
// change, or when its label turns from old to recent again (a new cuff
// with the same values): it is dated by the first record that shows it,
// at most one interval after the cuff ended. The records that show it
// again carry nothing more: their NIBP values are left out. A
// measurement whose time is not known goes out marked so (never charted
// at a guess, counted as dropped), once: one first seen already older than
// 60 s, and the one a Dialogue sees in its first record (the gateway just
// started or reloaded the monitor: it may have been charted before, at
// the record that first showed it then, and when it was measured is known
// only to within the minute). One dated by the auxiliary sub-record is
// remembered like any other.
func (d *Dialogue) dateNIBP(f *devices.DriverFrame) {
	var idx [4]int
	var vals [3]float64
	var own time.Time
	old, found := false, false
	for i := range idx {
		idx[i] = -1
	}
	for i, v := range f.Values {
		k := -1
		switch v.Field {
		case "nibp.sys":
			k = 0
		case "nibp.dia":
			k = 1
		case "nibp.mean":
			k = 2
		case "nibp.hr":
			idx[3] = i
			continue
		default:
			continue
		}
		if !v.Time.IsZero() {
			own = v.Time
		}
		idx[k], vals[k] = i, v.Value
		old = old || StateLabel(v.State)&NIBPOld != 0
		found = found || !math.IsNaN(v.Value)
	}
	if !found {
		return
	}
	d.mu.Lock()
	prev := d.nibp
	fresh := !prev.ok || !sameValues(prev.vals, vals) || (prev.old && !old)
	var at time.Time
	unknown := false
	switch {
	case !own.IsZero() && prev.ok && prev.at.Equal(own):
		fresh = false // dated by the aux sub-record, shown again
		d.nibp.old = old
	case !own.IsZero():
		fresh = true
		d.nibp = nibpSeen{vals: vals, old: old, ok: true, at: own}
		at = own
	case !fresh:
		d.nibp.old = old
	case !prev.ok || old:
		d.nibp = nibpSeen{vals: vals, old: old, ok: true}
		unknown = true
	default:
		d.nibp = nibpSeen{vals: vals, old: old, ok: true, at: f.DeviceTime}
		at = f.DeviceTime
	}
	d.mu.Unlock()
	keep := f.Values[:0]
	for i, v := range f.Values {
		if i == idx[0] || i == idx[1] || i == idx[2] || i == idx[3] {
			switch {
			case !fresh:
				continue
			case unknown:
				v.Time, v.TimeUnknown = time.Time{}, true
			default:
				v.Time = at
			}
		}
		keep = append(keep, v)
	}
	f.Values = keep
}

func sameValues(a, b [3]float64) bool {
	for i := range a {
		if a[i] != b[i] && !(math.IsNaN(a[i]) && math.IsNaN(b[i])) {
			return false
		}
	}
	return true
}

// LevelsFrom lists the levels to try for a monitor configured at level:
// that level, then 0 (GE's example requests use it, and a B650 answers
// it), then the other levels of the monitors met in wards, newest first.
func LevelsFrom(level uint8) []uint8 {
	out := []uint8{level}
	for _, l := range []uint8{0, Level15, Level09, Level05, Level03, Level02, Level01} {
		if l != level {
			out = append(out, l)
		}
	}
	return out
}

// Silent intervals: the monitor is deemed silent after this many
// intervals without a record, and at least silentMin protocol seconds.
const (
	silentIntervals = 3
	silentMin       = 15
)

// Level is the level the next Run writes its request at.
func (d *Dialogue) Level() uint8 {
	d.mu.Lock()
	defer d.mu.Unlock()
	lv := d.levels()
	return lv[d.try%len(lv)]
}

func (d *Dialogue) levels() []uint8 {
	if len(d.Levels) == 0 {
		return LevelsFrom(Level15)
	}
	return d.Levels
}

// Run holds one session over link (see devices.Dialogue).
func (d *Dialogue) Run(ctx context.Context, link devices.Link, emit func(devices.DriverFrame) error) error {
	log := d.Log
	if log == nil {
		log = slog.Default()
	}
	sec := d.Second
	if sec <= 0 {
		sec = time.Second
	}
	n := int16(min(d.Interval/time.Second, math.MaxInt16))
	if n < 5 {
		n = 5
	}
	every := time.Duration(n) * sec
	silence := max(silentIntervals*every, silentMin*sec)
	level := d.Level()
	req := Request{Type: SubDisplayed, Interval: n, Classes: d.Classes, Level: level}
	if err := link.WriteMessage(req.Marshal()); err != nil {
		return fmt.Errorf("datex: sending the request: %w", err)
	}
	stop := func() {
		s := req
		s.Interval, s.Classes = IntervalStop, 0
		if err := link.WriteMessage(s.Marshal()); err != nil {
			log.Warn("datex: the stop request could not be sent", "err", err)
		}
	}
	start := time.Now()
	last, asked := start, start
	answered := false
	for {
		if ctx.Err() != nil {
			stop()
			return nil
		}
		now := time.Now()
		// A monitor that reset forgets what it was asked: ask again when
		// an interval and a half passed without a record.
		again := every + every/2
		if now.Sub(last) >= again && now.Sub(asked) >= again {
			if err := link.WriteMessage(req.Marshal()); err != nil {
				return fmt.Errorf("datex: sending the request: %w", err)
			}
			asked = now
		}
		deadline := minTime(now.Add(250*time.Millisecond), last.Add(silence), asked.Add(again))
		rec, err := link.ReadMessage(deadline)
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				return err
			}
			// Silence is judged only when nothing waits to be read: an
			// emit that took long is not the monitor's silence.
			if quiet := time.Since(last); quiet >= silence {
				d.silent(answered, log, level)
				if answered {
					return fmt.Errorf("datex: no record for %s: %w", quiet.Round(time.Millisecond), devices.ErrSilent)
				}
				return fmt.Errorf("datex: no record for %s after a request at interface level %s: %w",
					time.Since(start).Round(time.Millisecond), LevelName(level), devices.ErrSilent)
			}
			continue
		}
		f, err := DecodeRecord(rec)
		switch {
		case errors.Is(err, ErrNotPhysiological):
			continue // a record this dialogue did not ask for
		case err != nil:
			// Not a record that can be read: counted, not taken as an
			// answer.
			if err := emit(devices.DriverFrame{Bad: 1}); err != nil {
				stop()
				return err
			}
			continue
		}
		last = time.Now()
		if !answered {
			answered = true
			d.answer(log, level)
		}
		d.dateNIBP(&f)
		if err := emit(f); err != nil {
			stop()
			return err
		}
	}
}

func (d *Dialogue) answer(log *slog.Logger, level uint8) {
	d.mu.Lock()
	first := !d.answered
	d.answered = true
	d.mu.Unlock()
	if first {
		log.Info("datex: the monitor answers", "dri_level", LevelName(level))
	}
}

// silent notes a Run that ended in silence: without any record at its
// level, the next Run tries the next level unless this one was answered
// before.
func (d *Dialogue) silent(answered bool, log *slog.Logger, level uint8) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if answered || d.answered {
		return
	}
	d.try++
	lv := d.levels()
	log.Info("datex: no answer at this interface level; the next session tries another",
		"dri_level", LevelName(level), "next", LevelName(lv[d.try%len(lv)]))
}

func minTime(t time.Time, ts ...time.Time) time.Time {
	for _, u := range ts {
		if u.Before(t) {
			t = u
		}
	}
	return t
}
