package edge

import (
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wardgate/wardgate/dicom/gateway"
	"github.com/wardgate/wardgate/edge/config"
)

// What a reload (SIGHUP) changes while the gateway runs, and what it does
// not. Live: the monitors (added, removed, changed: a changed one is
// stopped and started again), patients.static, patients.hold_unassociated
// and log.level. Every other key (the listeners, the data folder, the
// record, the DICOM node and its forward destinations, the buffer's
// quotas, the HL7 and ADT listeners...) is read once at start: a config
// that changes one of them is refused whole, naming each such key, and the
// running config stays. So a reload is all or nothing: it applies every
// live change or none (unless the gateway begins to stop under it: then
// the monitors' changes made so far stand, and it says so).
//
// patients.hold_unassociated may grow live up to what the stores keep of
// ended stays (the hold at start, 24 h at least: associations.go); a
// longer one takes a restart. A firmware profile edited in profiles_dir
// applies to a monitor when it is started: at a restart, or at a reload
// that changes the monitor's entry.

// liveConfig is what a reload changed last.
type liveConfig struct {
	// mu makes reloads one at a time.
	mu sync.Mutex
	// applied is the config the running gateway follows: the one it
	// started with, with the live keys of the last reload applied.
	applied *config.Config
	// hold is patients.hold_unassociated (a time.Duration).
	hold atomic.Int64
}

// holdUnassociated is patients.hold_unassociated as last applied.
func (g *Gateway) holdUnassociated() time.Duration {
	return time.Duration(g.live.hold.Load())
}

// RestartNeeded is a reload refused because keys that are read only at
// start differ from the running config; nothing was changed.
type RestartNeeded struct {
	// Keys are the config keys that differ, as the file names them
	// (dicom.forward, http.listen).
	Keys []string
}

func (e *RestartNeeded) Error() string {
	s := "not reloaded, nothing changed: " + strings.Join(e.Keys, ", ") +
		" changed, which takes a restart (systemctl restart wardgate); a reload changes only monitors, patients.static, patients.hold_unassociated (up to 24h, or the value at start), dicom.forward, charting and log.level"
	return s
}

// Reload applies newCfg, a config that config.Load accepted, to the
// running gateway: it compares it with the running config and applies
// what can change live. It returns what it changed, one line each (none
// when newCfg is the running config). A key that cannot change live makes
// it refuse the whole config with a *RestartNeeded naming each such key,
// before anything is changed. A monitor that is stopped (removed or
// changed) stores what it took in before it stops, as at a stop of the
// gateway; the other monitors go on reading throughout.
func (g *Gateway) Reload(newCfg *config.Config) (changes []string, err error) {
	g.live.mu.Lock()
	defer g.live.mu.Unlock()
	old := g.live.applied
	g.mu.Lock()
	ready := g.ready
	g.mu.Unlock()
	if old == nil || !ready {
		return nil, fmt.Errorf("not reloaded: the gateway is not running (starting or stopping)")
	}
	var restart []string
	if g.LogLevel == nil && newCfg.Log.Level != old.Log.Level {
		restart = append(restart, "log.level")
	}
	restart = append(restart, restartKeys(old, newCfg)...)
	if h := newCfg.Patients.HoldUnassociated.D(); h != old.Patients.HoldUnassociated.D() && h > max(g.cfg.Patients.HoldUnassociated.D(), 24*time.Hour) {
		// The ended manual associations are kept for the hold the gateway
		// started with (24 h at least): a longer hold would outlive them.
		restart = append(restart, "patients.hold_unassociated")
	}
	if len(restart) > 0 {
		return nil, &RestartNeeded{Keys: restart}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(newCfg.Log.Level)); err != nil {
		return nil, fmt.Errorf("not reloaded, nothing changed: log.level: %w", err)
	}

	// Forward destinations are built (their TLS files and credentials
	// read) before anything changes.
	var forward []gateway.Destination
	var renew []string
	forwardChanged := old.DICOM != nil && newCfg.DICOM != nil && !reflect.DeepEqual(old.DICOM.Forward, newCfg.DICOM.Forward)
	if forwardChanged {
		if forward, err = forwardDestinations(newCfg.DICOM.Forward); err != nil {
			return nil, fmt.Errorf("not reloaded, nothing changed: %w", err)
		}
		renew = changedForward(old.DICOM.Forward, newCfg.DICOM.Forward)
	}

	// Monitors and forward destinations first: the only changes that can
	// fail (their parts stopping under them); the others cannot.
	monChanges, err := g.reloadMonitors(newCfg)
	changes = append(changes, monChanges...)
	if err != nil {
		return changes, fmt.Errorf("reload cut short: %w", err)
	}
	if forwardChanged {
		g.mu.Lock()
		node := g.dicom
		g.mu.Unlock()
		if node == nil {
			return changes, fmt.Errorf("reload cut short: dicom.forward: %w", gateway.ErrForwardersStopped)
		}
		fwdChanges, err := node.SetForward(forward, renew...)
		changes = append(changes, fwdChanges...)
		if err != nil {
			return changes, fmt.Errorf("reload cut short: dicom.forward: %w", err)
		}
	}
	if !maps.Equal(old.Patients.Static, newCfg.Patients.Static) {
		g.beds.setStatic(maps.Clone(newCfg.Patients.Static))
		changes = append(changes, staticChanges(old.Patients.Static, newCfg.Patients.Static)...)
	}
	if h := newCfg.Patients.HoldUnassociated; h != old.Patients.HoldUnassociated {
		g.live.hold.Store(int64(h.D()))
		changes = append(changes, fmt.Sprintf("patients.hold_unassociated: %s (was %s)", h, old.Patients.HoldUnassociated))
	}
	if newCfg.Log.Level != old.Log.Level {
		g.LogLevel.Set(level)
		changes = append(changes, fmt.Sprintf("log.level: %s (was %s)", newCfg.Log.Level, old.Log.Level))
	}
	if !reflect.DeepEqual(old.Charting, newCfg.Charting) {
		changes = append(changes, "charting: the new policies apply to readings from now on; intervals already open are charted as they began")
	}
	g.live.applied = newCfg
	g.chart.cfg.Store(newCfg)
	// Readings waiting for a patient may be placed now, or expire sooner.
	g.kickResolver()
	return changes, nil
}

// reloadMonitors stops the monitors newCfg removes or changes, then
// starts those it adds or changes, and orders the page as newCfg does.
func (g *Gateway) reloadMonitors(newCfg *config.Config) (changes []string, err error) {
	want := map[string]config.Monitor{}
	for _, m := range newCfg.Monitors {
		want[m.ID] = m
	}
	g.mons.mu.Lock()
	if g.mons.ctx == nil {
		g.mons.mu.Unlock()
		return nil, errMonitorsStopped
	}
	var stop []*runningMonitor
	had := map[string]*runningMonitor{}
	kept := g.mons.running[:0:0]
	for _, r := range g.mons.running {
		if m, ok := want[r.cfg.ID]; ok && sameMonitor(r.cfg, m) {
			had[r.cfg.ID] = r
			kept = append(kept, r)
			continue
		}
		stop = append(stop, r)
	}
	// Off the page as they stop; their sources finish below.
	g.mons.running = kept
	g.mons.mu.Unlock()

	stopped := map[string]bool{}
	for _, r := range stop {
		if err := g.stopMonitor(r); err != nil {
			g.log.Warn("reload: a monitor did not stop in time; it is left to stop on its own", "monitor", r.cfg.ID, "err", err)
		}
		stopped[r.cfg.ID] = true
		if _, ok := want[r.cfg.ID]; !ok {
			changes = append(changes, "monitor "+r.cfg.ID+" removed")
		}
	}

	g.mons.mu.Lock()
	defer g.mons.mu.Unlock()
	running := make([]*runningMonitor, 0, len(newCfg.Monitors))
	for _, m := range newCfg.Monitors {
		if r, ok := had[m.ID]; ok {
			running = append(running, r)
			continue
		}
		r := g.newRunningMonitor(newCfg, m)
		running = append(running, r)
		if g.mons.ctx != nil {
			g.startMonitorLocked(r)
		}
		if stopped[m.ID] {
			changes = append(changes, "monitor "+m.ID+" changed: restarted")
		} else {
			changes = append(changes, "monitor "+m.ID+" added")
		}
	}
	g.mons.running = running
	if g.mons.ctx == nil {
		return changes, errMonitorsStopped
	}
	return changes, nil
}

// sameMonitor tells whether a running monitor's entry is the new one: its
// secrets' contents included, its time zone by name.
func sameMonitor(a, b config.Monitor) bool {
	a.Zone, b.Zone = nil, nil
	return reflect.DeepEqual(a, b)
}

// staticChanges says which beds patients.static adds, removes or
// reassigns, without the patients (no patient data in logs).
func staticChanges(old, new map[string]string) []string {
	var added, removed, changed []string
	for bed, ref := range new {
		switch was, ok := old[bed]; {
		case !ok:
			added = append(added, bed)
		case was != ref:
			changed = append(changed, bed)
		}
	}
	for bed := range old {
		if _, ok := new[bed]; !ok {
			removed = append(removed, bed)
		}
	}
	var out []string
	for _, c := range []struct {
		what string
		beds []string
	}{{"added", added}, {"removed", removed}, {"given another patient", changed}} {
		if len(c.beds) > 0 {
			slices.Sort(c.beds)
			out = append(out, "patients.static: bed(s) "+strings.Join(c.beds, ", ")+" "+c.what)
		}
	}
	return out
}

// liveKeys are the keys a reload applies; restartKeys does not compare
// them.
var liveKeys = map[string]bool{
	"monitors": true, "patients.static": true, "patients.hold_unassociated": true, "log.level": true,
	"dicom.forward": true, "charting": true,
}

// forwardName is a dicom.forward entry's destination as the ledger knows
// it (gateway.Destination.LedgerName).
func forwardName(f config.DICOMPeer) string {
	return gateway.Destination{AETitle: f.AETitle, Host: f.Host, Port: f.Port, STOWRS: f.StowRS}.LedgerName()
}

// changedForward names the destinations in both lists whose entries
// differ (TLS, credentials): their forwarders start again.
func changedForward(old, new []config.DICOMPeer) []string {
	was := map[string]config.DICOMPeer{}
	for _, f := range old {
		was[forwardName(f)] = f
	}
	var out []string
	for _, f := range new {
		if o, ok := was[forwardName(f)]; ok && !reflect.DeepEqual(o, f) {
			out = append(out, forwardName(f))
		}
	}
	return out
}

// restartKeys names each key, outside liveKeys, whose value differs
// between a and b: as deep as the file's sections go, a list or a map as
// one key.
func restartKeys(a, b *config.Config) []string {
	var keys []string
	diffKeys("", reflect.ValueOf(*a), reflect.ValueOf(*b), &keys)
	return keys
}

// scalar is what a config value that the file writes as one scalar (a
// duration, a size, a secret file) implements.
type scalar interface{ ParseScalar(string) error }

var scalarType = reflect.TypeFor[scalar]()

func diffKeys(path string, a, b reflect.Value, keys *[]string) {
	if liveKeys[path] {
		return
	}
	t := a.Type()
	switch {
	case reflect.PointerTo(t).Implements(scalarType):
		// A secret's content is compared too: it is read at start.
	case t.Kind() == reflect.Pointer:
		if a.IsNil() != b.IsNil() {
			*keys = append(*keys, path)
			return
		}
		if !a.IsNil() && t.Elem().Kind() == reflect.Struct {
			diffKeys(path, a.Elem(), b.Elem(), keys)
			return
		}
	case t.Kind() == reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() || name == "-" || name == "" {
				continue
			}
			if path != "" {
				name = path + "." + name
			}
			diffKeys(name, a.Field(i), b.Field(i), keys)
		}
		return
	}
	if !reflect.DeepEqual(a.Interface(), b.Interface()) {
		*keys = append(*keys, path)
	}
}
