package dialogues

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/devices/datex"
	"github.com/wardgate/wardgate/devices/intellivue"
	"github.com/wardgate/wardgate/devices/profile"
	"github.com/wardgate/wardgate/devices/serial"
)

// Protocol is one dialogue built into wardgate: a profile's format names it.
type Protocol struct {
	Name string
	// Serial and UDP are the transports it speaks; UDPPort is the
	// monitor's port when the config gives none.
	Serial, UDP bool
	UDPPort     int
	// New makes the client of one monitor's sessions: over UDP or a
	// serial line, polling at the profile's interval, reading the
	// monitor's clock in zone (nil: the gateway's).
	New func(p *profile.Profile, udp bool, zone *time.Location, log *slog.Logger) (devices.Dialogue, error)
	// SerialLink frames the protocol's messages on an open port.
	SerialLink func(port io.ReadWriter) devices.Link
	// DialUDP opens a link to a monitor at host:port.
	DialUDP func(address string) (devices.Link, io.Closer, error)
	// Options are the profile options it takes, with what each means.
	Options map[string]string
}

var protocols = map[string]*Protocol{
	"intellivue": {
		Name: "intellivue", Serial: true, UDP: true, UDPPort: 24105,
		New: func(p *profile.Profile, udp bool, zone *time.Location, log *slog.Logger) (devices.Dialogue, error) {
			opts := intellivue.Options{Transport: intellivue.Serial, PollPeriod: p.Transport.Interval.D(), Location: zone, Logger: log}
			if udp {
				opts.Transport = intellivue.LAN
			}
			return intellivue.New(opts)
		},
		SerialLink: func(port io.ReadWriter) devices.Link { return intellivue.NewSerialLink(port, 0) },
		DialUDP: func(address string) (devices.Link, io.Closer, error) {
			l, err := intellivue.DialUDP(address)
			if err != nil {
				return nil, nil, err
			}
			return l, l, nil
		},
	},
	"datex": {
		Name: "datex", Serial: true,
		New: func(p *profile.Profile, udp bool, zone *time.Location, log *slog.Logger) (devices.Dialogue, error) {
			if udp {
				return nil, fmt.Errorf("the Datex-Ohmeda computer interface is a serial line")
			}
			d := &datex.Dialogue{Interval: p.Transport.Interval.D(), Log: log}
			if l, ok := p.Options["level"]; ok {
				d.Levels = datex.LevelsFrom(datexLevels[l])
			}
			return d, nil
		},
		Options:    map[string]string{"level": "the interface level tried first: " + strings.Join(slices.Sorted(maps.Keys(datexLevels)), ", ")},
		SerialLink: func(port io.ReadWriter) devices.Link { return datex.NewSerialLink(port) },
	},
}

// datexLevels are the Datex-Ohmeda interface levels by their names.
var datexLevels = map[string]uint8{
	"0": 0, "01": datex.Level01, "02": datex.Level02, "03": datex.Level03,
	"05": datex.Level05, "09": datex.Level09, "15": datex.Level15,
}

func init() {
	for name := range protocols {
		if !profile.Decoders[name] {
			panic("dialogues: " + name + " is not among profile.Decoders")
		}
	}
	profile.DialogueOptions = checkOptions
}

// checkOptions checks a profile's options against its protocol's.
func checkOptions(format string, opts map[string]string) error {
	pr, ok := protocols[format]
	if !ok {
		return nil
	}
	for k, v := range opts {
		if _, known := pr.Options[k]; !known {
			return fmt.Errorf("%s takes no option %q", format, k)
		}
		if format == "datex" && k == "level" {
			if _, ok := datexLevels[v]; !ok {
				return fmt.Errorf("level %q: %s", v, pr.Options[k])
			}
		}
	}
	return nil
}

// Lookup finds the protocol a profile's format names.
func Lookup(format string) (*Protocol, bool) {
	p, ok := protocols[format]
	return p, ok
}

// Names lists the protocols built in.
func Names() []string {
	var out []string
	for n := range protocols {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// OpenSerial is a Source's Open for a monitor on a serial port.
func (pr *Protocol) OpenSerial(path string, s serial.Settings) func(ctx context.Context) (devices.Link, io.Closer, error) {
	return func(ctx context.Context) (devices.Link, io.Closer, error) {
		port, err := serial.OpenDuplex(path, s)
		if err != nil {
			return nil, nil, err
		}
		// The link's reader wakes at least this often, and ends once the
		// port is closed.
		if err := port.SetReadTimeout(500 * time.Millisecond); err != nil {
			port.Close()
			return nil, nil, err
		}
		return pr.SerialLink(port), port, nil
	}
}

// OpenUDP is a Source's Open for a monitor on the LAN.
func (pr *Protocol) OpenUDP(host string, port int) func(ctx context.Context) (devices.Link, io.Closer, error) {
	address := net.JoinHostPort(host, strconv.Itoa(port))
	return func(ctx context.Context) (devices.Link, io.Closer, error) {
		return pr.DialUDP(address)
	}
}

// Transports says how the protocol's monitors are reached, for messages.
func (pr *Protocol) Transports() string {
	switch {
	case pr.Serial && pr.UDP:
		return "serial or udp"
	case pr.UDP:
		return "udp"
	}
	return "serial"
}
