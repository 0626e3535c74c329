package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/wardgate/wardgate/devices/datex"
	"github.com/wardgate/wardgate/devices/serial"
	"github.com/wardgate/wardgate/devices/sim/datexsim"
	"github.com/wardgate/wardgate/devices/sim/intellivuesim"
)

// dialogueSims are the profiles whose monitors must be talked to, with
// the simulator that plays the monitor's side.
var dialogueSims = map[string]string{
	"philips/intellivue-mx": "intellivue",
	"ge/datex-s5":           "datex",
}

// simulateDialogue plays a talking monitor's side until ctx ends: an
// IntelliVue on a UDP address (-udp) or a serial port, a Datex-Ohmeda on a
// serial port. It answers the gateway's requests: the session, the polls,
// the keep-alives.
func simulateDialogue(ctx context.Context, protocol, udp, port string, stderr io.Writer) int {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	switch protocol {
	case "intellivue":
		m := intellivuesim.New(intellivuesim.Config{Model: "MX450", Manufacturer: "Philips", Serial: "SIM0000001", Software: "M.00.03", Logger: log})
		if udp != "" {
			fmt.Fprintf(stderr, "wardgate simulate: an IntelliVue answering on udp %s\n", udp)
			if err := m.ListenAndServe(ctx, intellivuesim.UDPConfig{Listen: udp}); err != nil && ctx.Err() == nil {
				fmt.Fprintln(stderr, "wardgate simulate:", err)
				return exitFailure
			}
			return exitOK
		}
		p, err := serial.OpenDuplex(port, serial.Settings{Baud: 115200, DataBits: 8, Parity: "none", StopBits: "1", FlowControl: "none"})
		if err != nil {
			fmt.Fprintln(stderr, "wardgate simulate:", err)
			return exitFailure
		}
		defer p.Close()
		p.SetReadTimeout(500 * time.Millisecond)
		fmt.Fprintf(stderr, "wardgate simulate: an IntelliVue on %s (115200 8N1)\n", port)
		if err := m.ServeStream(ctx, p); err != nil && ctx.Err() == nil {
			fmt.Fprintln(stderr, "wardgate simulate:", err)
			return exitFailure
		}
		return exitOK
	case "datex":
		if udp != "" {
			fmt.Fprintln(stderr, "wardgate simulate: the Datex-Ohmeda computer interface is a serial line: give -serial")
			return exitUsage
		}
		p, err := serial.OpenDuplex(port, serial.Settings{Baud: 19200, DataBits: 8, Parity: "even", StopBits: "1", FlowControl: "rtscts"})
		if err != nil {
			fmt.Fprintln(stderr, "wardgate simulate:", err)
			return exitFailure
		}
		defer p.Close()
		p.SetReadTimeout(500 * time.Millisecond)
		fmt.Fprintf(stderr, "wardgate simulate: a Datex-Ohmeda S/5 on %s (19200 8E1, RTS/CTS)\n", port)
		m := &datexsim.Monitor{Level: datex.Level15, PlugID: 1, Clock: time.Now()}
		if err := m.Run(ctx, p); err != nil && ctx.Err() == nil {
			fmt.Fprintln(stderr, "wardgate simulate:", err)
			return exitFailure
		}
		return exitOK
	}
	return exitUsage
}
