package edge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"

	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/devices/mqtt"
	"github.com/wardgate/wardgate/devices/serial"
	"github.com/wardgate/wardgate/edge/config"
)

// source is one running monitor source.
type source interface {
	Run(ctx context.Context) error
}

// monitorsPart builds a source for each configured monitor (their status
// is on the page from now) and returns the part that runs them all until
// its ctx ends and all have stopped. A source that fails is shown failed on
// the page; the others go on.
func (g *Gateway) monitorsPart() part {
	var sources []source
	for _, m := range g.cfg.Monitors {
		src, mon := g.newSource(m)
		g.monitors = append(g.monitors, mon)
		sources = append(sources, src)
	}
	return part{"monitors", func(ctx context.Context) error {
		if len(sources) == 0 {
			// Running until the stop, so that the watchdog's look (every
			// part still running) holds for a gateway without monitors.
			<-ctx.Done()
			return nil
		}
		var wg sync.WaitGroup
		for i, src := range sources {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := src.Run(ctx); err != nil {
					g.log.Error("monitor stopped", "monitor", g.cfg.Monitors[i].ID, "err", err)
				}
			}()
		}
		wg.Wait()
		return nil
	}}
}

func (g *Gateway) newSource(m config.Monitor) (source, *devices.Monitor) {
	p, _ := g.cfg.Profiles.Get(m.Profile) // the config checked it exists
	if m.Zone != nil {
		p = p.InZone(m.Zone)
	}
	log := g.log.With("component", "monitors")
	if m.Serial != nil {
		s := m.Serial
		mon := devices.NewMonitor(m.ID, m.Location, p.Name, "serial "+s.Port)
		return &serial.Source{
			ID: m.ID, Location: m.Location, Path: s.Port,
			Settings: serial.Settings{Baud: s.Baud, DataBits: s.DataBits, Parity: s.Parity, StopBits: s.StopBits, FlowControl: s.FlowControl}.Merge(p.Transport.Serial),
			Profile:  p, Sink: g, Monitor: mon, Log: log, LogContent: g.cfg.Log.PatientData, Clocks: g.clocks,
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
		Broker: q.Broker, Topic: q.Topic, QoS: byte(*q.QoS), ClientID: mqttClientID(g.cfg.Site, m.ID, q.ClientID),
		Username: q.Username, Password: q.PasswordFile.Value(), CAFile: q.CAFile,
		Profile: p, Sink: g, Monitor: mon, Log: log, LogContent: g.cfg.Log.PatientData,
		Clocks: g.clocks, Seen: g.seen,
	}, mon
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
	out := make([]devices.Status, len(g.monitors))
	for i, m := range g.monitors {
		out[i] = m.Status()
	}
	return out
}
