// Command wardgate is the edge gateway for hospital wards and imaging suites.
//
//	wardgate run -config FILE        run the gateway until SIGINT or SIGTERM; SIGHUP reloads the config
//	wardgate check -config FILE      validate the config; exit 0, or 2 listing every problem
//	wardgate demo                    the whole gateway with simulators, until Ctrl-C
//	wardgate replay -profile P FILE  decode a monitor capture with a firmware profile
//	wardgate simulate -profile P ... simulate a bedside monitor on a serial port or MQTT
//	wardgate replay -hl7 FILE        decode a capture of HL7 PCD-01 results
//	wardgate simulate -hl7 HOST:PORT simulate a central station sending PCD-01 (and ADT)
//	wardgate echo / send ...         C-ECHO a DICOM node; C-STORE files to it
//	wardgate queue -config FILE ...  list, retry or drop a running gateway's dead letters
//	wardgate version                 print the version, commit, Go version and os/arch
//
// Exit codes: 0 success, 1 a runtime failure, 2 a usage or config error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"

	"github.com/wardgate/wardgate/devices/mdc"
	"github.com/wardgate/wardgate/edge"
	"github.com/wardgate/wardgate/edge/build"
	"github.com/wardgate/wardgate/edge/config"
)

const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

const usage = `wardgate: edge gateway for bedside monitors and imaging modalities

Usage:
  wardgate run -config FILE [-log-format json]
                                run the gateway until SIGINT or SIGTERM
  wardgate demo                 the whole gateway with simulated monitors, modality and record
  wardgate check -config FILE   validate the config and print every problem
  wardgate replay -profile VENDOR/MODEL [-fhir] FILE
                                decode a monitor capture; print readings or Observations
  wardgate simulate -profile VENDOR/MODEL (-serial PORT | -mqtt BROKER -topic T | -stdout)
                                simulate a bedside monitor
  wardgate replay -hl7 FILE [-zone ZONE] [-fhir] [-show-patient]
                                decode a capture of HL7 PCD-01 results; print readings or Observations
  wardgate simulate -hl7 HOST:PORT [-adt HOST:PORT] [-beds N] [-every 5s] [-count N] ...
                                simulate a central station sending PCD-01 results and ADT events
  wardgate echo [-aet A] [-aec B] HOST:PORT
                                C-ECHO a DICOM node; print the outcome and round-trip time
  wardgate send [-aet A] [-aec B] HOST:PORT FILE|DIR...
                                C-STORE the DICOM files found, one association; status per file
  wardgate queue -config FILE list|retry|drop [-all | ID...]
                                the dead letters of a running gateway
  wardgate backup -config FILE DIR
                                copy the data folder consistently (the gateway running or not)
  wardgate version              print the version, commit, Go version and os/arch

Exit codes: 0 success, 1 runtime failure, 2 usage or config error.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stderr)
	case "check":
		return cmdCheck(args[1:], stdout, stderr)
	case "replay":
		return replayCommand(args[1:], stdout, stderr)
	case "simulate":
		return simulateCommand(args[1:], stdout, stderr)
	case "echo":
		return cmdEcho(args[1:], stdout, stderr)
	case "send":
		return cmdSend(args[1:], stdout, stderr)
	case "version", "-version", "--version":
		printVersion(stdout)
		return exitOK
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	case "demo":
		return cmdDemo(args[1:], stdout, stderr)
	case "queue":
		return cmdQueue(args[1:], stdout, stderr)
	case "backup":
		return cmdBackup(args[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "wardgate: unknown command %q\n\n%s", args[0], usage)
		return exitUsage
	}
}

// versionString is the version the gateway reports (logs, /healthz, the
// status page): stamped by the release build, else the module's.
func versionString() string { return build.Version() }

// printVersion says what runs: enough to match a box's binary with a
// release and its source.
func printVersion(w io.Writer) {
	fmt.Fprintf(w, "wardgate %s\ncommit   %s\ngo       %s\nos/arch  %s\n",
		build.Version(), build.Commit(), build.GoVersion(), build.Platform())
}

// configFlag parses "-config FILE" and nothing else.
func configFlag(name string, args []string, stderr io.Writer) (string, bool) {
	fs := flag.NewFlagSet("wardgate "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "the gateway's YAML config `FILE`")
	if err := fs.Parse(args); err != nil {
		return "", false
	}
	if *path == "" || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "usage: wardgate %s -config FILE\n", name)
		return "", false
	}
	return *path, true
}

// load reads the config and prints its problems; ok is false when it has
// errors (which were printed).
func load(path string, stderr io.Writer) (*config.Config, *config.Problems, bool) {
	c, ps, err := config.Load(path)
	if err != nil {
		var problems *config.Problems
		if errors.As(err, &problems) {
			for _, p := range problems.List {
				fmt.Fprintln(stderr, p)
			}
			fmt.Fprintf(stderr, "%s: %d error(s)\n", path, len(problems.Errors()))
		} else {
			fmt.Fprintf(stderr, "wardgate: %v\n", err)
		}
		return nil, nil, false
	}
	return c, ps, true
}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	path, ok := configFlag("check", args, stderr)
	if !ok {
		return exitUsage
	}
	c, ps, ok := load(path, stderr)
	if !ok {
		return exitUsage
	}
	for _, w := range ps.Warnings() {
		fmt.Fprintln(stderr, w)
	}
	fmt.Fprintf(stdout, "%s: OK: %s\n", path, c.Summary())
	for _, m := range c.Monitors {
		fmt.Fprintf(stdout, "  %s charts:", m.ID)
		for i, p := range c.ChartPolicies(m.ID, m.Location, m.Profile, nil) {
			sep := " "
			if i > 0 {
				sep = "; "
			}
			var names []string
			for _, code := range p.Codes {
				names = append(names, mdcName(code))
			}
			fmt.Fprintf(stdout, "%s%s %s (%s)", sep, strings.Join(names, ", "), p.Policy, p.From)
		}
		fmt.Fprintln(stdout)
	}
	return exitOK
}

// mdcName is an MDC code's reference id, or its number.
func mdcName(code uint32) string {
	if t, ok := mdc.ByCode(code); ok {
		return t.RefID
	}
	return strconv.FormatUint(uint64(code), 10)
}

func cmdRun(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("wardgate run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "the gateway's YAML config `FILE`")
	format := fs.String("log-format", "", "text or json: overrides log.format")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *path == "" || fs.NArg() > 0 || (*format != "" && *format != "text" && *format != "json") {
		fmt.Fprintln(stderr, "usage: wardgate run -config FILE [-log-format text|json]")
		return exitUsage
	}
	c, ps, ok := load(*path, stderr)
	if !ok {
		return exitUsage
	}
	if *format != "" {
		c.Log.Format = *format
	}
	level := new(slog.LevelVar)
	log := newLoggerAt(c.Log, level, stderr)
	for _, w := range ps.Warnings() {
		log.Warn("config", "problem", w.String())
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal now ends the process at once
	}()
	gw := edge.New(c, log, versionString())
	gw.LogLevel = level
	// SIGHUP reloads the config (systemctl reload): caught from now, so
	// that one sent while starting is refused and logged, not fatal.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				reloadConfig(gw, *path, *format, log)
			}
		}
	}()
	if err := gw.Run(ctx); err != nil {
		log.Error("wardgate failed", "err", err)
		return exitFailure
	}
	return exitOK
}

// reloadConfig reads the config file again and applies it to the running
// gateway (edge.Gateway.Reload), logging each change or why nothing
// changed: a file that `check` would refuse (its problems are logged as
// `check` prints them), or a key that takes a restart. Under systemd it
// says RELOADING=1 as it begins and READY=1 when done, applied or not:
// the gateway runs on either way.
func reloadConfig(gw *edge.Gateway, path, format string, log *slog.Logger) {
	notify(log, fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", monotonicUsec()))
	status := "running; the last reload was refused (see the log)"
	defer func() { notify(log, "READY=1\nSTATUS="+status) }()
	log.Info("SIGHUP: reloading the config", "file", path)
	c, ps, err := config.Load(path)
	if err != nil {
		var problems *config.Problems
		if errors.As(err, &problems) {
			for _, p := range problems.List {
				if p.Warning {
					log.Warn("config", "problem", p.String())
				} else {
					log.Error("config not reloaded", "problem", p.String())
				}
			}
			log.Error("config not reloaded, nothing changed: the file has errors; the running config stays",
				"file", path, "errors", len(problems.Errors()))
		} else {
			log.Error("config not reloaded, nothing changed: the running config stays", "file", path, "err", err)
		}
		return
	}
	for _, w := range ps.Warnings() {
		log.Warn("config", "problem", w.String())
	}
	if format != "" {
		c.Log.Format = format // -log-format stays as given at start
	}
	changes, err := gw.Reload(c)
	for _, ch := range changes {
		log.Info("config reloaded", "change", ch)
	}
	if err != nil && len(changes) > 0 {
		// Only when the gateway began to stop under the reload.
		log.Error("config reloaded in part: the changes above were made", "err", err)
		status = "running; the last reload was applied in part (see the log)"
		return
	}
	if err != nil {
		log.Error("config not reloaded; the running config stays", "err", err)
		return
	}
	if len(changes) == 0 {
		log.Info("config reloaded: nothing changed")
	}
	status = fmt.Sprintf("running; config reloaded (%d change(s))", len(changes))
}

// notify sends state to systemd when it runs the gateway (NOTIFY_SOCKET).
func notify(log *slog.Logger, state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		log.Warn("systemd notification failed", "state", state, "err", err)
	}
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, as systemd (253 and
// later) wants it beside RELOADING=1 to tell this reload from an earlier one.
func monotonicUsec() int64 {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) != nil {
		return 0
	}
	return ts.Nano() / 1000
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	return newLoggerAt(c, new(slog.LevelVar), w)
}

// newLoggerAt is newLogger filtering by level, set from c.Level: a reload
// may change it.
func newLoggerAt(c config.Log, level *slog.LevelVar, w io.Writer) *slog.Logger {
	var l slog.Level
	l.UnmarshalText([]byte(c.Level))
	level.Set(l)
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
