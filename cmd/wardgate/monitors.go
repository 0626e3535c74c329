package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	bugst "go.bug.st/serial"

	"github.com/wardgate/wardgate/devices/profile"
	"github.com/wardgate/wardgate/devices/sim"
	"github.com/wardgate/wardgate/edge/fhir"
	firmwareprofiles "github.com/wardgate/wardgate/firmware-profiles"
)

func loadProfile(name, dir string, stderr io.Writer) (*profile.Profile, int) {
	set, err := profile.Load(firmwareprofiles.FS, dir)
	if err != nil {
		fmt.Fprintln(stderr, err)
		var le *profile.LoadError
		if !errors.As(err, &le) {
			return nil, exitUsage
		}
	}
	p, ok := set.Get(name)
	if !ok {
		fmt.Fprintf(stderr, "wardgate: no profile %q (known: %v)\n", name, set.Names())
		return nil, exitUsage
	}
	return p, exitOK
}

const replayUsage = `Usage: wardgate replay -profile VENDOR/MODEL [-profiles-dir DIR] [-fhir] FILE

Decodes a capture (a recording of a monitor's serial output, or one JSON
message per line) with a firmware profile and prints what each frame gives:
readings, values dropped and why, bad frames. With -fhir, prints the FHIR
Observations instead (for a patient called Patient/replay). FILE - reads
standard input. Without FILE, the profile's own capture is replayed.
`

func cmdReplay(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, replayUsage) }
	name := fs.String("profile", "", "firmware profile, vendor/model")
	dir := fs.String("profiles-dir", "", "a folder of profiles that add to or override the built-in ones")
	asFHIR := fs.Bool("fhir", false, "print FHIR Observations instead of readings")
	if err := fs.Parse(args); err != nil || *name == "" || fs.NArg() > 1 {
		fs.Usage()
		return exitUsage
	}
	p, code := loadProfile(*name, *dir, stderr)
	if p == nil {
		return code
	}
	var in io.Reader
	switch {
	case fs.NArg() == 0 && p.Capture != "" && *dir == "":
		f, err := firmwareprofiles.FS.Open(path.Dir(p.Name) + "/" + p.Capture)
		if err != nil {
			fmt.Fprintln(stderr, "wardgate:", err)
			return exitFailure
		}
		defer f.Close()
		in = f
	case fs.NArg() == 0:
		fs.Usage()
		return exitUsage
	case fs.Arg(0) == "-":
		in = os.Stdin
	default:
		f, err := os.Open(fs.Arg(0))
		if err != nil {
			fmt.Fprintln(stderr, "wardgate:", err)
			return exitFailure
		}
		defer f.Close()
		in = f
	}
	mapper := &fhir.Mapper{Site: "replay", Local: time.Local}
	bad, readings := 0, 0
	received := time.Now()
	err := p.Replay(in, func(n int, f profile.Frame, err error) {
		if err != nil {
			bad++
		}
		readings += len(f.Readings)
		if !*asFHIR {
			profile.WriteFrame(stdout, n, f, err)
			return
		}
		if err != nil {
			fmt.Fprintf(stderr, "frame %d: %v\n", n, err)
			return
		}
		var rs []fhir.PatientReading
		for _, r := range f.Readings {
			r.Device, r.Location, r.Received = "replay", "replay", received
			rs = append(rs, fhir.PatientReading{Reading: r, Patient: "Patient/replay"})
		}
		printEntries(stdout, stderr, mapper, rs, fmt.Sprintf("frame %d", n))
	})
	if err != nil {
		fmt.Fprintln(stderr, "wardgate:", err)
		return exitFailure
	}
	fmt.Fprintf(stderr, "%d readings, %d bad frames\n", readings, bad)
	return exitOK
}

const simulateUsage = `Usage: wardgate simulate -profile VENDOR/MODEL (-serial PORT | -mqtt BROKER -topic TOPIC | -stdout)
                         [-interval 1s] [-count N] [-seed N]
       wardgate simulate -profile philips/intellivue-mx (-udp ADDRESS | -serial PORT)
       wardgate simulate -profile ge/datex-s5 -serial PORT

A bedside-monitor simulator for commissioning and tests: a patient whose
vitals trend, with artefacts (probe off, low perfusion), dropouts and a
drifting device clock, written in the profile's own format to a serial port
(9600 8N1, or -baud), published to an MQTT broker at QoS 1, or printed.
Profiles it speaks: %v

A monitor that must be talked to (an IntelliVue, a Datex-Ohmeda) is played
on its side of the protocol: it answers the gateway's session, polls and
keep-alives, on a UDP address (an IntelliVue's LAN port: -udp :24105) or a
serial port, until interrupted.
`

func cmdSimulate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintf(stderr, simulateUsage, sim.Formats()) }
	name := fs.String("profile", "", "firmware profile whose format to speak")
	port := fs.String("serial", "", "serial port to write to")
	baud := fs.Int("baud", 9600, "serial baud rate")
	broker := fs.String("mqtt", "", "MQTT broker to publish to, tcp://host:1883")
	topic := fs.String("topic", "", "MQTT topic")
	toStdout := fs.Bool("stdout", false, "print the frames")
	interval := fs.Duration("interval", time.Second, "time between frames")
	count := fs.Int("count", 0, "frames to send, then stop (0: until interrupted)")
	seed := fs.Uint64("seed", uint64(time.Now().UnixNano()), "random seed, for a repeatable patient")
	udp := fs.String("udp", "", "UDP address to answer on (a monitor on the LAN)")
	if err := fs.Parse(args); err != nil || *name == "" || fs.NArg() > 0 {
		fs.Usage()
		return exitUsage
	}
	if protocol, ok := dialogueSims[*name]; ok {
		if (*udp == "") == (*port == "") || *broker != "" || *toStdout {
			fmt.Fprintln(stderr, "wardgate simulate: give exactly one of -udp, -serial for", *name)
			return exitUsage
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		return simulateDialogue(ctx, protocol, *udp, *port, stderr)
	}
	if *udp != "" {
		fmt.Fprintf(stderr, "wardgate simulate: -udp is for a monitor that is talked to (%s)\n", "philips/intellivue-mx")
		return exitUsage
	}
	outs := 0
	for _, set := range []bool{*port != "", *broker != "", *toStdout} {
		if set {
			outs++
		}
	}
	if outs != 1 || (*broker != "" && *topic == "") {
		fmt.Fprintln(stderr, "wardgate simulate: give exactly one of -serial, -mqtt (with -topic), -stdout")
		return exitUsage
	}
	m, err := sim.New(*name, *seed)
	if err != nil {
		fmt.Fprintln(stderr, "wardgate simulate:", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var send func([]byte) error
	switch {
	case *toStdout:
		send = func(b []byte) error {
			_, err := stdout.Write(b)
			if len(b) > 0 && b[len(b)-1] != '\n' {
				fmt.Fprintln(stdout)
			}
			return err
		}
	case *port != "":
		p, err := bugst.Open(*port, &bugst.Mode{BaudRate: *baud, DataBits: 8, Parity: bugst.NoParity, StopBits: bugst.OneStopBit})
		if err != nil {
			fmt.Fprintln(stderr, "wardgate simulate:", err)
			return exitFailure
		}
		defer p.Close()
		send = func(b []byte) error { _, err := p.Write(b); return err }
	default:
		c := paho.NewClient(paho.NewClientOptions().AddBroker(*broker).
			SetClientID(fmt.Sprintf("wardgate-sim-%d", os.Getpid())).SetConnectTimeout(10 * time.Second))
		if tok := c.Connect(); tok.Wait() && tok.Error() != nil {
			fmt.Fprintln(stderr, "wardgate simulate:", tok.Error())
			return exitFailure
		}
		defer c.Disconnect(500)
		send = func(b []byte) error {
			tok := c.Publish(*topic, 1, false, b)
			tok.Wait()
			return tok.Error()
		}
	}
	t := time.NewTicker(*interval)
	defer t.Stop()
	sent := 0
	for *count == 0 || sent < *count {
		if f := m.Next(time.Now()); f != nil {
			if err := send(f); err != nil {
				fmt.Fprintln(stderr, "wardgate simulate:", err)
				return exitFailure
			}
		}
		sent++
		select {
		case <-ctx.Done():
			return exitOK
		case <-t.C:
		}
	}
	return exitOK
}

// printEntries maps readings as the gateway would and prints the entries
// (replay -fhir); what cannot be mapped goes to stderr under what.
func printEntries(stdout, stderr io.Writer, mapper *fhir.Mapper, rs []fhir.PatientReading, what string) {
	entries, rejected := mapper.MapReadings(rs)
	mapper.ConfirmDevices(entries)
	for _, e := range entries {
		b, _ := json.MarshalIndent(e, "", "  ")
		fmt.Fprintf(stdout, "%s\n", b)
	}
	for _, r := range rejected {
		fmt.Fprintf(stderr, "%s: %s not mapped: %v\n", what, r.What, r.Reason)
	}
}
