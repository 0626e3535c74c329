package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/devices/hl7"
	"github.com/wardgate/wardgate/devices/pcd01"
	"github.com/wardgate/wardgate/devices/sim/hl7sim"
	"github.com/wardgate/wardgate/edge/fhir"
)

// hl7Mode reports whether a replay or simulate command line asks for HL7
// (-hl7): those go to cmdReplayHL7 and cmdSimulateHL7, the rest to the
// monitor profiles' commands.
func hl7Mode(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && name == "hl7" {
			return true
		}
	}
	return false
}

// replayCommand is `wardgate replay`: HL7 captures with -hl7, monitor
// captures with a profile otherwise.
func replayCommand(args []string, stdout, stderr io.Writer) int {
	if hl7Mode(args) {
		return cmdReplayHL7(args, stdout, stderr)
	}
	return cmdReplay(args, stdout, stderr)
}

// simulateCommand is `wardgate simulate`: a central station with -hl7, a
// bedside monitor otherwise.
func simulateCommand(args []string, stdout, stderr io.Writer) int {
	if hl7Mode(args) {
		return cmdSimulateHL7(args, stdout, stderr)
	}
	return cmdSimulate(args, stdout, stderr)
}

const replayHL7Usage = `Usage: wardgate replay -hl7 FILE [-zone ZONE] [-fhir] [-show-patient] [-accept-missing-profile]

Decodes a capture of HL7 v2 IHE PCD-01 results (ORU^R01) as the gateway's
hl7 listener does and prints, for each message, its control id, its bed
(PV1-3 as written), how many patient identifiers PID-3 holds (their values
only with -show-patient), each reading (MDC code, value, unit, time) and
every problem with where it is. With -fhir, prints the Observations the
gateway would write instead (for a patient called Patient/replay).

The capture is MLLP-framed bytes (0x0B … 0x1C 0x0D, as recorded off the
wire), or plain text with one segment per line, each message starting at
its MSH; blank lines are skipped. FILE - reads standard input.
-zone is the sender's zone for times without a UTC offset (as hl7.time_zone:
local, UTC or an IANA name); without it such times are problems.
`

func cmdReplayHL7(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, replayHL7Usage) }
	file := fs.String("hl7", "", "the capture `FILE`")
	zoneName := fs.String("zone", "", "the sender's time zone")
	asFHIR := fs.Bool("fhir", false, "print FHIR Observations instead of readings")
	showPatient := fs.Bool("show-patient", false, "print PID-3's identifiers")
	missingProfile := fs.Bool("accept-missing-profile", false, "take messages whose MSH-21 is empty")
	if err := fs.Parse(args); err != nil || *file == "" || fs.NArg() > 0 {
		fs.Usage()
		return exitUsage
	}
	var zone *time.Location
	switch *zoneName {
	case "":
	case "local":
		zone = time.Local
	default:
		z, err := time.LoadLocation(*zoneName)
		if err != nil {
			fmt.Fprintf(stderr, "wardgate replay: -zone %q is not local, UTC or an IANA zone (such as Europe/Berlin)\n", *zoneName)
			return exitUsage
		}
		zone = z
	}
	var data []byte
	var err error
	if *file == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(*file)
	}
	if err != nil {
		fmt.Fprintln(stderr, "wardgate:", err)
		return exitFailure
	}
	msgs, note := splitCapture(data)
	if note != "" {
		fmt.Fprintln(stderr, note)
	}
	dec := pcd01.Decoder{Zone: zone, AllowMissingProfile: *missingProfile}
	local := zone
	if local == nil {
		local = time.Local
	}
	mapper := &fhir.Mapper{Site: "replay", Local: local}
	received := time.Now()
	var readings, problems, notDecoded int
	for n, raw := range msgs {
		n++
		m, err := hl7.Parse(raw, hl7.Limits{MaxBytes: 64 << 20})
		if err != nil {
			notDecoded++
			fmt.Fprintf(stdout, "message %d: does not parse: %v\n", n, err)
			continue
		}
		r, err := dec.Decode(m, received)
		if err != nil {
			notDecoded++
			fmt.Fprintf(stdout, "message %d (control id %s): not decoded: %v\n", n, m.Field("MSH", 1, 10).Text(), err)
			continue
		}
		readings += len(r.Observations)
		problems += len(r.Problems)
		if *asFHIR {
			replayFHIR(stdout, stderr, mapper, n, r, received)
			continue
		}
		writeReport(stdout, n, m, r, *showPatient)
	}
	fmt.Fprintf(stderr, "%d messages, %d readings, %d problems, %d messages not decoded\n", len(msgs), readings, problems, notDecoded)
	return exitOK
}

// splitCapture cuts a capture into messages: MLLP frames when it holds a
// start block, else lines with each message starting at an MSH. The note
// says what was skipped.
func splitCapture(data []byte) ([][]byte, string) {
	if bytes.IndexByte(data, hl7.StartBlock) >= 0 {
		r := hl7.NewReader(bytes.NewReader(data), 64<<20)
		var out [][]byte
		var err error
		for {
			var b []byte
			b, err = r.ReadMessage()
			if err != nil {
				break
			}
			out = append(out, bytes.Clone(b))
		}
		var notes []string
		if st := r.Stats(); st.GarbageBytes > 0 || st.Abandoned > 0 {
			notes = append(notes, fmt.Sprintf("%d bytes outside frames skipped, %d frames cut short by the next", st.GarbageBytes, st.Abandoned))
		}
		if !errors.Is(err, io.EOF) {
			notes = append(notes, "the capture ends with: "+err.Error())
		}
		return out, strings.Join(notes, "; ")
	}
	var out [][]byte
	var cur []byte
	for _, line := range bytes.FieldsFunc(data, func(r rune) bool { return r == '\r' || r == '\n' }) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if len(line) > 3 && bytes.HasPrefix(line, []byte("MSH")) && cur != nil {
			out = append(out, cur)
			cur = nil
		}
		cur = append(append(cur, line...), '\r')
	}
	if cur != nil {
		out = append(out, cur)
	}
	return out, ""
}

// writeReport prints what one message gave.
func writeReport(w io.Writer, n int, m *hl7.Message, r *pcd01.Report, showPatient bool) {
	bed := "none"
	if r.HasBed {
		bed = m.Field("PV1", 1, 3).Raw()
	}
	patient := "no PID"
	if r.HasPatient {
		patient = fmt.Sprintf("%d patient identifier(s)", len(r.Patient))
	}
	fmt.Fprintf(w, "message %d: control id %s, bed %s, %s, %d readings, %d hierarchy rows, %d problems\n",
		n, r.ControlID, bed, patient, len(r.Observations), r.Hierarchy, len(r.Problems))
	if showPatient {
		for _, id := range r.Patient {
			auth := id.Authority.Namespace
			if u := id.Authority.URI(); u != "" {
				auth = strings.TrimSpace(auth + " " + u)
			}
			fmt.Fprintf(w, "  patient %s (authority %s, type %s)\n", id.Value, auth, id.Type)
		}
	}
	for _, o := range r.Observations {
		var flags []string
		if o.Demo {
			flags = append(flags, "demo: not charted")
		}
		if o.Test {
			flags = append(flags, "test: not charted")
		}
		for _, q := range []struct {
			bit  devices.Quality
			name string
		}{{devices.Questionable, "questionable"}, {devices.Calibrating, "calibrating"}, {devices.Alarm, "in alarm"}} {
			if o.Quality&q.bit != 0 {
				flags = append(flags, q.name)
			}
		}
		extra := ""
		if len(flags) > 0 {
			extra = "  (" + strings.Join(flags, ", ") + ")"
		}
		fmt.Fprintf(w, "  %-8s %-34s %8g %-7s %s  device %s%s\n", fmt.Sprintf("OBX(%d)", o.Where.Seq),
			fmt.Sprintf("%d %s", o.Code.Code, o.Code.RefID), o.Value, o.Unit, o.DeviceTime.Format(time.RFC3339), o.Device, extra)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  problem %s\n", p)
	}
}

// replayFHIR prints the Observations the gateway would write of one
// message's chartable readings, for the placeholder patient.
func replayFHIR(stdout, stderr io.Writer, mapper *fhir.Mapper, n int, r *pcd01.Report, received time.Time) {
	bed := "replay"
	if r.HasBed && r.Bed.PointOfCare != "" && r.Bed.Bed != "" {
		bed = r.Bed.PointOfCare + "-" + r.Bed.Bed // the default hl7.bed template
	}
	var rs []fhir.PatientReading
	held := 0
	for _, o := range r.Observations {
		if !o.Chartable() {
			held++
			continue
		}
		rd := o.Reading
		rd.Location, rd.Received = bed, received
		rs = append(rs, fhir.PatientReading{Reading: rd, Patient: "Patient/replay"})
	}
	printEntries(stdout, stderr, mapper, rs, fmt.Sprintf("message %d", n))
	if held > 0 {
		fmt.Fprintf(stderr, "message %d: %d demo or test readings not charted\n", n, held)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(stderr, "message %d: problem %s\n", n, p)
	}
}

const simulateHL7Usage = `Usage: wardgate simulate -hl7 HOST:PORT [-adt HOST:PORT] [-beds 4] [-every 5s]
                         [-connections 1] [-count N] [-authority HOSP] [-no-pid]
                         [-tls [-ca FILE] [-cert FILE -key FILE]] [-enhanced] [-ucum]
                         [-ward WARD] [-application CENTRAL] [-seed N] [-run-id ID]

A central station for commissioning and tests: sends IHE PCD-01 results
(ORU^R01) for each bed every interval over MLLP, waits for each
acknowledgement, sends a message again after AE with RETRY or a lost
connection, and prints the counts once a second. With -adt, admits a patient
to every bed first (ADT^A01 to the ADT feed), then now and then transfers,
discharges and admits (A02, A03, A01, every -adt-every on average); a bed
left empty sends no results until its next patient (standby). Without
-adt, PID-3 names each bed's patient (MRN^^^AUTHORITY^MR) unless -no-pid.
Beds are PV1-3 WARD^^BEDn (wardgate bed WARD-BEDn with the default bed
template). Stops at Ctrl-C, or after -count results; exits 1 if the
receiver refused any message for good (AE/AR without RETRY).
`

func cmdSimulateHL7(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, simulateHL7Usage) }
	addr := fs.String("hl7", "", "the gateway's hl7 listener, HOST:PORT")
	adtAddr := fs.String("adt", "", "the gateway's ADT listener (patients.adt), HOST:PORT")
	beds := fs.Int("beds", 4, "beds of the ward")
	every := fs.Duration("every", 5*time.Second, "time between two results of a bed")
	adtEvery := fs.Duration("adt-every", 2*time.Minute, "mean time between two ADT events after the admissions")
	conns := fs.Int("connections", 1, "connections to the hl7 listener")
	count := fs.Int("count", 0, "results to send, then stop (0: until interrupted)")
	useTLS := fs.Bool("tls", false, "speak MLLP over TLS")
	caFile := fs.String("ca", "", "CA certificate `FILE` that signed the gateway's certificate (default: the system's)")
	certFile := fs.String("cert", "", "client certificate `FILE`, for a listener that asks for one")
	keyFile := fs.String("key", "", "the client certificate's key `FILE`")
	authority := fs.String("authority", "HOSP", "assigning authority of the record numbers in PID-3 (hl7.assigning_authority)")
	noPID := fs.Bool("no-pid", false, "send results without PID: the gateway learns the patient from the bed")
	enhanced := fs.Bool("enhanced", false, "ask for enhanced-mode acknowledgements (MSH-15 AL, MSH-16 NE)")
	ucum := fs.Bool("ucum", false, "write units as UCUM instead of MDC_DIM codes")
	ward := fs.String("ward", "WARD", "the point of care in PV1-3")
	app := fs.String("application", "CENTRAL", "the sending application, MSH-3")
	seed := fs.Uint64("seed", uint64(time.Now().UnixNano()), "random seed, for repeatable patients")
	runID := fs.String("run-id", "", "prefix of control ids and record numbers, up to 8 letters or digits (default: from the seed)")
	if err := fs.Parse(args); err != nil || *addr == "" || fs.NArg() > 0 {
		fs.Usage()
		return exitUsage
	}
	if *every <= 0 || *adtEvery <= 0 || *conns < 1 || *conns > 64 || *count < 0 {
		fmt.Fprintln(stderr, "wardgate simulate: -every and -adt-every must be positive, -connections from 1 to 64, -count not negative")
		return exitUsage
	}
	if !*useTLS && (*caFile != "" || *certFile != "" || *keyFile != "") || (*certFile == "") != (*keyFile == "") {
		fmt.Fprintln(stderr, "wardgate simulate: -ca, -cert and -key go with -tls; -cert and -key go together")
		return exitUsage
	}
	var tlsConfig *tls.Config
	if *useTLS {
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		if *caFile != "" {
			pem, err := os.ReadFile(*caFile)
			if err != nil {
				fmt.Fprintln(stderr, "wardgate simulate:", err)
				return exitUsage
			}
			tlsConfig.RootCAs = x509.NewCertPool()
			if !tlsConfig.RootCAs.AppendCertsFromPEM(pem) {
				fmt.Fprintf(stderr, "wardgate simulate: %s holds no PEM certificate\n", *caFile)
				return exitUsage
			}
		}
		if *certFile != "" {
			pair, err := tls.LoadX509KeyPair(*certFile, *keyFile)
			if err != nil {
				fmt.Fprintln(stderr, "wardgate simulate:", err)
				return exitUsage
			}
			tlsConfig.Certificates = []tls.Certificate{pair}
		}
	}
	if *runID == "" {
		// Unique per run (the control ids of two runs must differ), short
		// enough for MSH-10's 20 characters.
		*runID = strings.ToUpper(fmt.Sprintf("%07x", *seed&0xFFFFFFF))
	}
	st, err := hl7sim.New(hl7sim.Config{
		Beds: *beds, Ward: *ward, Application: *app, Authority: *authority, NoPatient: *noPID, Standby: *adtAddr != "",
		Enhanced: *enhanced, UCUM: *ucum, Seed: *seed, RunID: *runID,
	})
	if err != nil {
		fmt.Fprintln(stderr, "wardgate simulate:", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	results := &hl7sim.Client{Addr: *addr, TLS: tlsConfig, Connections: *conns}
	defer results.Close()
	var adt *hl7sim.Client
	if *adtAddr != "" {
		adt = &hl7sim.Client{Addr: *adtAddr, TLS: tlsConfig}
		defer adt.Close()
	}
	var refused sync.Map // control id → the refusal, printed once
	report := func(kind string, m hl7sim.Message, err error) {
		var rej *hl7sim.RejectedError
		if errors.As(err, &rej) {
			refused.Store(m.ControlID, true)
			fmt.Fprintf(stderr, "wardgate simulate: %s %s (bed %d) refused: %s %s\n", kind, m.ControlID, m.Bed, rej.Code, rej.Text)
		} else if err != nil && ctx.Err() == nil {
			fmt.Fprintf(stderr, "wardgate simulate: %s %s (bed %d): %v\n", kind, m.ControlID, m.Bed, err)
		}
	}
	sendADT := func(m hl7sim.Message) {
		report(m.Kind, m, adt.Send(ctx, m.Bytes))
	}

	line := func() string {
		s := results.Stats()
		out := fmt.Sprintf("%s results sent %d acked %d retried %d busy %d rejected %d unacked %d reconnects %d",
			time.Now().Format("15:04:05"), s.Sent, s.Acked, s.Retried, s.Busy, s.Rejected, s.Unacked, s.Lost)
		if adt != nil {
			a := adt.Stats()
			out += fmt.Sprintf(" | adt sent %d acked %d rejected %d", a.Sent, a.Acked, a.Rejected)
		}
		lat := results.Latencies()
		return out + fmt.Sprintf(" | ack p50 %s p99 %s", hl7sim.Percentile(lat, 50).Round(10*time.Microsecond), hl7sim.Percentile(lat, 99).Round(10*time.Microsecond))
	}
	printed := make(chan struct{})
	printerCtx, stopPrinter := context.WithCancel(ctx)
	go func() {
		defer close(printed)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-printerCtx.Done():
				return
			case <-t.C:
				fmt.Fprintln(stdout, line())
			}
		}
	}()

	work := make(chan hl7sim.Message, 2**conns)
	var wg sync.WaitGroup
	for range *conns {
		wg.Go(func() {
			for m := range work {
				report("result", m, results.Send(ctx, m.Bytes))
			}
		})
	}

	if adt != nil {
		for i := 1; i <= st.Beds(); i++ {
			m, err := st.Admit(i, time.Now())
			if err == nil {
				sendADT(m)
			}
		}
	} else {
		st.Occupy()
	}
	rng := rand.New(rand.NewPCG(*seed, 1))
	pEvent := min(1, float64(*every)/float64(*adtEvery))
	tick := time.NewTicker(*every)
	sent := 0
loop:
	for {
		now := time.Now()
		if adt != nil && rng.Float64() < pEvent {
			if m, ok := st.Event(now); ok {
				sendADT(m)
			}
		}
		for _, m := range st.Results(now) {
			if *count > 0 && sent >= *count {
				break loop
			}
			select {
			case work <- m:
				sent++
			case <-ctx.Done():
				break loop
			}
		}
		if *count > 0 && sent >= *count {
			break
		}
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
		}
	}
	tick.Stop()
	close(work)
	wg.Wait()
	stopPrinter()
	<-printed
	fmt.Fprintln(stdout, line())
	n := 0
	refused.Range(func(any, any) bool { n++; return true })
	if n > 0 {
		fmt.Fprintf(stderr, "wardgate simulate: %d message(s) refused by the receiver\n", n)
		return exitFailure
	}
	return exitOK
}
