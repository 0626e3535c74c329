package edge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/devices/dialogues"
	"github.com/wardgate/wardgate/devices/mqtt"
	"github.com/wardgate/wardgate/devices/profile"
	"github.com/wardgate/wardgate/devices/serial"
	"github.com/wardgate/wardgate/edge/config"
)

// source is one running monitor source.
type source interface {
	Run(ctx context.Context) error
}

// monitorSet is the monitors the gateway runs, in config order: each
// source has a context of its own under the monitors part's, so that a
// reload can stop one or start another while the others go on
// (reload.go).
type monitorSet struct {
	mu sync.Mutex
	// ctx is the monitors part's while it runs: nil before it starts and
	// after it stops, when no source may be started.
	ctx     context.Context
	running []*runningMonitor
	wg      sync.WaitGroup
}

// runningMonitor is one monitor's source and its status on the page.
type runningMonitor struct {
	cfg    config.Monitor
	src    source
	mon    *devices.Monitor
	cancel context.CancelFunc // nil until started
	done   chan struct{}      // closed when src.Run has returned
}

// monitorsPart builds a source for each configured monitor (their status
// is on the page from now) and returns the part that runs them, and those
// a reload adds, until its ctx ends and all have stopped. A source that
// fails is shown failed on the page; the others go on.
func (g *Gateway) monitorsPart() part {
	g.mons.mu.Lock()
	for _, m := range g.cfg.Monitors {
		g.mons.running = append(g.mons.running, g.newRunningMonitor(g.cfg, m))
	}
	g.mons.mu.Unlock()
	return part{"monitors", func(ctx context.Context) error {
		g.mons.mu.Lock()
		g.mons.ctx = ctx
		for _, r := range g.mons.running {
			g.startMonitorLocked(r)
		}
		g.mons.mu.Unlock()
		// Running until the stop, also without monitors, so that the
		// watchdog's look (every part still running) holds and a reload
		// can add one.
		<-ctx.Done()
		g.mons.mu.Lock()
		g.mons.ctx = nil
		g.mons.mu.Unlock()
		g.mons.wg.Wait()
		return nil
	}}
}

func (g *Gateway) newRunningMonitor(c *config.Config, m config.Monitor) *runningMonitor {
	src, mon := g.newSource(c, m)
	return &runningMonitor{cfg: m, src: src, mon: mon, done: make(chan struct{})}
}

// startMonitorLocked runs r's source under the monitors part's context.
func (g *Gateway) startMonitorLocked(r *runningMonitor) {
	ctx, cancel := context.WithCancel(g.mons.ctx)
	r.cancel = cancel
	g.mons.wg.Add(1)
	go func() {
		defer g.mons.wg.Done()
		defer close(r.done)
		if err := r.src.Run(ctx); err != nil {
			g.log.Error("monitor stopped", "monitor", r.cfg.ID, "err", err)
		}
	}()
}

// errMonitorsStopped: the monitors part is not running (the gateway is
// starting or stopping); nothing can be started or stopped by a reload.
var errMonitorsStopped = errors.New("the monitors are not running (the gateway is starting or stopping)")

// stopMonitor stops r's source and waits for it, as a stop of the gateway
// does: what it took in is stored before its Run returns (MQTT messages
// not yet stored stay unacknowledged at the broker).
func (g *Gateway) stopMonitor(r *runningMonitor) error {
	if r.cancel == nil {
		return nil
	}
	r.cancel()
	select {
	case <-r.done:
		return nil
	case <-time.After(ShutdownTimeout):
		return fmt.Errorf("monitor %s did not stop within %s", r.cfg.ID, ShutdownTimeout)
	}
}

// monitorList is the monitors on the page now, in config order.
func (g *Gateway) monitorList() []*devices.Monitor {
	g.mons.mu.Lock()
	defer g.mons.mu.Unlock()
	out := make([]*devices.Monitor, len(g.mons.running))
	for i, r := range g.mons.running {
		out[i] = r.mon
	}
	return out
}

// monitorConfigs is the running monitors' entries, in config order.
func (g *Gateway) monitorConfigs() []config.Monitor {
	g.mons.mu.Lock()
	defer g.mons.mu.Unlock()
	out := make([]config.Monitor, len(g.mons.running))
	for i, r := range g.mons.running {
		out[i] = r.cfg
	}
	return out
}

func (g *Gateway) newSource(c *config.Config, m config.Monitor) (source, *devices.Monitor) {
	p, _ := c.Profiles.Get(m.Profile) // the config checked it exists
	if m.Zone != nil {
		p = p.InZone(m.Zone)
	}
	log := g.log.With("component", "monitors")
	if pr, ok := dialogues.Lookup(p.Format); ok {
		return g.newDialogueSource(c, m, p, pr, log)
	}
	if m.Serial != nil {
		s := m.Serial
		mon := devices.NewMonitor(m.ID, m.Location, p.Name, "serial "+s.Port)
		return &serial.Source{
			ID: m.ID, Location: m.Location, Path: s.Port,
			Settings: serial.Settings{Baud: s.Baud, DataBits: s.DataBits, Parity: s.Parity, StopBits: s.StopBits, FlowControl: s.FlowControl}.Merge(p.Transport.Serial),
			Profile:  p, Sink: g, Monitor: mon, Log: log, LogContent: c.Log.PatientData, Clocks: g.clocks,
		}, mon
	}
	q := m.MQTT
	level := -1
	if q.LocationLevel != nil {
		level = *q.LocationLevel
	}
	mon := devices.NewMonitor(m.ID, m.Location, p.Name, "mqtt "+q.Topic)
	return &mqtt.Source{
		ID: m.ID, Location: m.Location, LocationLevel: level,
		Broker: q.Broker, Topic: q.Topic, QoS: byte(*q.QoS), ClientID: mqttClientID(c.Site, m.ID, q.ClientID),
		Username: q.Username, Password: q.PasswordFile.Value(), CAFile: q.CAFile,
		Profile: p, Sink: g, Monitor: mon, Log: log, LogContent: c.Log.PatientData,
		Clocks: g.clocks, Seen: g.seen,
	}, mon
}

// newDialogueSource is the source of a monitor that is talked to.
func (g *Gateway) newDialogueSource(c *config.Config, m config.Monitor, p *profile.Profile, pr *dialogues.Protocol, log *slog.Logger) (source, *devices.Monitor) {
	src := &dialogues.Source{ID: m.ID, Location: m.Location, Profile: p, Sink: g, Log: log, Clocks: g.clocks}
	if m.UDP != nil {
		src.Transport, src.Address = "udp", net.JoinHostPort(m.UDP.Host, strconv.Itoa(m.UDP.Port))
		src.Open = pr.OpenUDP(m.UDP.Host, m.UDP.Port)
	} else {
		s := m.Serial
		src.Transport, src.Address = "serial", s.Port
		src.Open = pr.OpenSerial(s.Port, serial.Settings{Baud: s.Baud, DataBits: s.DataBits, Parity: s.Parity, StopBits: s.StopBits, FlowControl: s.FlowControl}.Merge(p.Transport.Serial))
	}
	mon := devices.NewMonitor(m.ID, m.Location, p.Name, src.Transport+" "+src.Address)
	src.Monitor = mon
	d, err := pr.New(p, m.UDP != nil, p.Zone(), log.With("monitor", m.ID))
	if err != nil {
		return failedSource{mon: mon, err: err, log: log.With("monitor", m.ID)}, mon
	}
	src.Dialogue = d
	return src, mon
}

// failedSource is a monitor that cannot work as configured: shown so, and
// logged once.
type failedSource struct {
	mon *devices.Monitor
	err error
	log *slog.Logger
}

func (f failedSource) Run(ctx context.Context) error {
	f.mon.Set(devices.Failed, f.err.Error())
	f.log.Error("monitor cannot work as configured", "err", f.err)
	<-ctx.Done()
	return nil
}

// mqttClientID is the configured client id or a stable one derived from
// the site and monitor: the broker keeps the persistent session under it,
// so it must be the same at every start. MQTT 3.1 brokers accept 23
// characters at most.
func mqttClientID(site, monitor, configured string) string {
	if configured != "" {
		return configured
	}
	id := "wg-" + site + "-" + monitor
	if len(id) <= 23 {
		return id
	}
	h := sha256.Sum256([]byte(site + "/" + monitor))
	return fmt.Sprintf("wg-%s", hex.EncodeToString(h[:10]))
}

// MonitorStatus is the live status of every monitor, in config order.
func (g *Gateway) MonitorStatus() []devices.Status {
	mons := g.monitorList()
	out := make([]devices.Status, len(mons))
	for i, m := range mons {
		out[i] = m.Status()
	}
	return out
}
