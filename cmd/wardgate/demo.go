package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	dicomsim "github.com/wardgate/wardgate/dicom/sim"

	"github.com/creack/pty"
	paho "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/wardgate/wardgate/devices/sim"
	"github.com/wardgate/wardgate/devices/sim/intellivuesim"
	"github.com/wardgate/wardgate/dicom"
	"github.com/wardgate/wardgate/edge"
	"github.com/wardgate/wardgate/edge/config"
	"github.com/wardgate/wardgate/edge/fhir/fhirserver"
)

const demoUsage = `Usage: wardgate demo [-listen ADDR] [-keep] [-log-format text|json]

Runs the whole gateway on this machine with nothing else installed: a
temporary data folder; an embedded MQTT broker with a simulated monitor
publishing to it; a simulated Masimo monitor on a pseudo-terminal pair, read
as a serial port; a simulated central station sending IHE PCD-01 results
over MLLP for two more beds, whose patients it admits, transfers and
discharges through the ADT feed; a simulated CT that sends a small study; an
in-memory FHIR server standing in for the record; and the status page. Runs
until Ctrl-C.
`

// The simulated CT patient's MRN, and the identifier system of the demo
// ward's beds.
const (
	demoMRNSystem = "urn:oid:1.2.3.4.5"
	demoMRN       = "DEMO-0001"
	demoBeds      = "urn:example:wardgate-demo:beds"
)

func cmdDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, demoUsage) }
	listen := fs.String("listen", "127.0.0.1:8080", "the status page's address (a free port is taken if it is busy)")
	keep := fs.Bool("keep", false, "keep the temporary data folder at the end")
	logFormat := fs.String("log-format", "text", "text or json")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 || (*logFormat != "text" && *logFormat != "json") {
		fs.Usage()
		return exitUsage
	}
	log := newLogger(config.Log{Format: *logFormat, Level: "info"}, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	d, err := startDemo(ctx, *listen, log)
	if err != nil {
		fmt.Fprintln(stderr, "wardgate demo:", err)
		if d != nil {
			d.close(*keep, stderr)
		}
		return exitFailure
	}
	defer d.close(*keep, stderr)
	fmt.Fprintf(stdout, `
wardgate demo is running. Open the status page:

    %s

Within a minute it shows:
  - bed-12: a simulated Masimo Radical-7 on a serial line (%s);
            its patient comes from the config
  - bed-14: a simulated monitor publishing JSON to the embedded MQTT broker
            (%s); its patient is found through the record's
            in-progress Encounter at the bed
  - bed-20: a simulated Philips IntelliVue MX450 on the LAN (udp %s),
            talked to with its Data Export protocol; its clock is
            2 minutes fast, which the gateway corrects
  - %s, %s: a simulated central station sends their
            monitors' results (IHE PCD-01 over MLLP) to the hl7 listener
            (%s) without PID-3: their patients come from the
            ADT feed (patients.adt, %s), which admits them;
            about once a minute one goes home, the other moves to that
            bed and a new patient comes into the bed left free (the
            page's ADT section counts the events)
  - a CT study of 3 instances sent by a simulated modality to %s,
    then in the chart
The record is an in-memory FHIR server at %s
(for example %sPatient/demo-bed-12; the central station's
patients are %sPatient/demo-adt-1, -2, …).
Data folder: %s
Ctrl-C stops it.

`, d.statusURL, d.ptyName, d.brokerURL, d.intellivueAddr, demoHL7Bed(demoHL7Beds[0]), demoHL7Bed(demoHL7Beds[1]), d.hl7Addr, d.adtAddr,
		d.dicomAE, d.fhirURL, d.fhirURL, d.fhirURL, d.dir)
	select {
	case <-ctx.Done():
	case err := <-d.gatewayDone:
		d.gatewayDone <- err // for close
		if err != nil {
			fmt.Fprintln(stderr, "wardgate demo: the gateway stopped:", err)
			return exitFailure
		}
	}
	return exitOK
}

// demo is everything the demo runs, and how to stop it.
type demo struct {
	dir       string
	statusURL string
	fhirURL   string
	brokerURL string
	ptyName   string
	// intellivueAddr is where the simulated IntelliVue answers (UDP).
	intellivueAddr string
	dicomAE        string
	hl7Addr        string
	adtAddr        string
	gatewayDone    chan error
	cleanups       []func()
}

func (d *demo) close(keep bool, stderr io.Writer) {
	for i := len(d.cleanups) - 1; i >= 0; i-- {
		d.cleanups[i]()
	}
	if keep {
		fmt.Fprintln(stderr, "data folder kept:", d.dir)
	} else {
		os.RemoveAll(d.dir)
	}
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func startDemo(ctx context.Context, listen string, log *slog.Logger) (*demo, error) {
	dir, err := os.MkdirTemp("", "wardgate-demo-")
	if err != nil {
		return nil, err
	}
	d := &demo{dir: dir, gatewayDone: make(chan error, 1)}

	// The record: the patients the hospital's registration system would
	// hold, the beds as Locations, an in-progress Encounter at bed 14.
	record := fhirserver.New()
	for _, id := range []string{"demo-bed-12", "demo-bed-14", "demo-bed-20"} {
		record.Put("Patient", id, json.RawMessage(`{"resourceType":"Patient","id":"`+id+`","active":true}`))
	}
	record.Put("Patient", "demo-ct", json.RawMessage(`{"resourceType":"Patient","id":"demo-ct","identifier":[{"system":"`+demoMRNSystem+`","value":"`+demoMRN+`"}]}`))
	for _, bed := range []string{"bed-12", "bed-14"} {
		record.Put("Location", "loc-"+bed, json.RawMessage(`{"resourceType":"Location","id":"loc-`+bed+`","identifier":[{"system":"`+demoBeds+`","value":"`+bed+`"}],"name":"`+bed+`"}`))
	}
	admitted := time.Now().Add(-2 * time.Hour).UTC().Format(time.RFC3339)
	record.Put("Encounter", "enc-bed-14", json.RawMessage(`{"resourceType":"Encounter","id":"enc-bed-14","status":"in-progress",`+
		`"class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"IMP"},"subject":{"reference":"Patient/demo-bed-14"},`+
		`"period":{"start":"`+admitted+`"},"location":[{"location":{"reference":"Location/loc-bed-14"},"status":"active","period":{"start":"`+admitted+`"}}]}`))
	fhirLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return d, err
	}
	fhirSrv := &http.Server{Handler: record, ReadHeaderTimeout: 10 * time.Second}
	go fhirSrv.Serve(fhirLn)
	d.cleanups = append(d.cleanups, func() { fhirSrv.Close() })
	d.fhirURL = "http://" + fhirLn.Addr().String() + "/"

	// The embedded MQTT broker.
	brokerAddr, err := freeAddr()
	if err != nil {
		return d, err
	}
	broker := mochi.New(&mochi.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	broker.AddHook(new(auth.AllowHook), nil)
	if err := broker.AddListener(listeners.NewTCP(listeners.Config{ID: "demo", Address: brokerAddr})); err != nil {
		return d, err
	}
	go broker.Serve()
	d.cleanups = append(d.cleanups, func() { broker.Close() })
	d.brokerURL = "tcp://" + brokerAddr

	// A pseudo-terminal pair: the simulated monitor writes to one end, the
	// gateway reads the other as its serial port.
	master, slave, err := pty.Open()
	if err != nil {
		return d, fmt.Errorf("a pseudo-terminal pair: %w", err)
	}
	d.cleanups = append(d.cleanups, func() { master.Close(); slave.Close() })
	d.ptyName = slave.Name()

	// A Philips IntelliVue on the LAN (loopback UDP), answering before the
	// gateway starts; its clock is two minutes fast.
	ivConn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return d, err
	}
	d.intellivueAddr = ivConn.LocalAddr().String()
	iv := intellivuesim.New(intellivuesim.Config{ClockSkew: 2 * time.Minute, Location: time.UTC,
		Model: "MX450", Manufacturer: "Philips", Serial: "DEMO000020", Software: "M.00.03",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ivCtx, stopIV := context.WithCancel(context.Background())
	go iv.Serve(ivCtx, ivConn.(*net.UDPConn))
	d.cleanups = append(d.cleanups, func() { stopIV(); ivConn.Close() })
	_, ivPort, _ := net.SplitHostPort(d.intellivueAddr)

	// The gateway.
	dicomAddr, err := freeAddr()
	if err != nil {
		return d, err
	}
	if ln, err := net.Listen("tcp", listen); err == nil {
		ln.Close()
	} else {
		listen = "127.0.0.1:0"
	}
	// The demo's patients are simulated: their values show whatever the
	// listen address (http.public_values).
	cfgPath := filepath.Join(dir, "wardgate.yaml")
	cfgText := fmt.Sprintf(`site: demo
data_dir: %s
http: {listen: "%s", public_values: true}
fhir:
  base_url: %s
  patient_identifier_system: %s
monitors:
  - id: bed-12-monitor
    location: bed-12
    profile: masimo/radical-7
    serial: {port: %s}
  - id: bed-14-monitor
    location: bed-14
    profile: generic/json
    mqtt: {broker: "%s", topic: demo/bed-14/vitals, client_id: wg-demo-bed14}
  - id: bed-20-monitor
    location: bed-20
    profile: philips/intellivue-mx
    udp: {host: 127.0.0.1, port: %s}
    time_zone: UTC
patients:
  static: {bed-12: Patient/demo-bed-12, bed-20: Patient/demo-bed-20}
  encounter_lookup: {location_system: "%s", refresh: 5s}
  adt:
    listen: "127.0.0.1:0"
    allow: [{host: 127.0.0.1, sending_application: %s_ADT}]
    time_zone: UTC
    bed: "{point_of_care}-{bed}"
    assigning_authority: %s
hl7:
  listen: "127.0.0.1:0"
  allow: [{host: 127.0.0.1, sending_application: %s}]
  time_zone: UTC
  bed: "{point_of_care}-{bed}"
  assigning_authority: %s
dicom:
  listen: "%s"
  ae_title: WARDGATE
  allow: [{ae_title: DEMO-CT, host: 127.0.0.1}]
  study_stable_after: 5s
`, filepath.Join(dir, "data"), listen, d.fhirURL, demoMRNSystem, d.ptyName, d.brokerURL, ivPort, demoBeds,
		demoStationApp, demoAuthority, demoStationApp, demoAuthority, dicomAddr)
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		return d, err
	}
	cfg, _, err := config.Load(cfgPath)
	if err != nil {
		return d, fmt.Errorf("the demo's config: %w", err)
	}
	gw := edge.New(cfg, log, versionString())
	gwCtx, stopGateway := context.WithCancel(context.Background())
	go func() { d.gatewayDone <- gw.Run(gwCtx) }()
	d.cleanups = append(d.cleanups, func() {
		stopGateway()
		select {
		case <-d.gatewayDone:
		case <-time.After(edge.ShutdownTimeout + 5*time.Second):
		}
	})
	readyCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	d.statusURL, err = gw.WaitReady(readyCtx)
	if err != nil {
		select {
		case e := <-d.gatewayDone:
			d.gatewayDone <- e
			return d, fmt.Errorf("the gateway did not start: %v", e)
		default:
			return d, fmt.Errorf("the gateway did not start: %v", err)
		}
	}
	d.dicomAE = "WARDGATE@" + gw.DICOMAddr()
	d.hl7Addr, d.adtAddr = gw.HL7Addr(), gw.ADTAddr()

	// The simulators.
	simCtx, stopSims := context.WithCancel(context.Background())
	d.cleanups = append(d.cleanups, stopSims)
	go runSerialSimulator(simCtx, master, log)
	go runMQTTSimulator(simCtx, d.brokerURL)
	go runModality(simCtx, gw.DICOMAddr(), log)
	// The central station closes its connections before the gateway
	// stops, as a station told to stop sending would.
	stationDone := make(chan struct{})
	go func() {
		defer close(stationDone)
		runCentralStation(simCtx, d.hl7Addr, d.adtAddr, record, log)
	}()
	d.cleanups = append(d.cleanups, func() {
		stopSims()
		select {
		case <-stationDone:
		case <-time.After(5 * time.Second):
		}
	})
	return d, nil
}

// runSerialSimulator writes a Masimo Radical-7's lines once a second.
func runSerialSimulator(ctx context.Context, w io.Writer, log *slog.Logger) {
	m, _ := sim.New("masimo/radical-7", uint64(time.Now().UnixNano()))
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if f := m.Next(time.Now()); f != nil {
			if _, err := w.Write(f); err != nil {
				if ctx.Err() == nil {
					log.Warn("demo: the serial simulator stopped", "err", err)
				}
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// runMQTTSimulator publishes a generic/json monitor every two seconds.
func runMQTTSimulator(ctx context.Context, broker string) {
	m, _ := sim.New("generic/json", uint64(time.Now().UnixNano())+1)
	c := paho.NewClient(paho.NewClientOptions().AddBroker(broker).SetClientID("demo-monitor-bed14").
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(time.Second))
	c.Connect().Wait()
	defer c.Disconnect(100)
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		if f := m.Next(time.Now()); f != nil {
			c.Publish("demo/bed-14/vitals", 1, false, f)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// runModality sends a small CT study, as a scanner does after an exam.
func runModality(ctx context.Context, addr string, log *slog.Logger) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(3 * time.Second):
	}
	uid := fmt.Sprintf("2.25.%d", time.Now().UnixNano())
	now := time.Now()
	st := dicomsim.SyntheticStudy{StudyUID: uid, SeriesUID: uid + ".1", PatientID: demoMRN, PatientName: "Demo^Patient",
		AccessionNumber: "DEMO-ACC-1", Description: "CT HEAD (demo)", Date: now.Format("20060102"), Time: now.Format("150405")}
	d := dicom.Dialer{CallingAE: "DEMO-CT", CalledAE: "WARDGATE"}
	for attempt := 0; ; attempt++ {
		err := sendStudy(ctx, d, addr, st, 3)
		if err == nil {
			log.Info("demo: the simulated CT sent its study", "instances", 3)
			return
		}
		if ctx.Err() != nil || attempt == 10 {
			log.Warn("demo: the simulated CT could not send its study", "err", err)
			return
		}
		time.Sleep(2 * time.Second)
	}
}

func sendStudy(ctx context.Context, d dicom.Dialer, addr string, st dicomsim.SyntheticStudy, n int) error {
	a, err := d.Dial(ctx, addr, dicom.ExactStorageProposals([]dicom.SOPClassTransfer{{SOPClassUID: dicom.CTImageStorage, TransferSyntaxUID: dicom.ImplicitVRLittleEndian}}))
	if err != nil {
		return err
	}
	for i := 1; i <= n; i++ {
		ds, _ := st.Instance(i, 256, 256)
		status, err := a.Store(ctx, dicom.CTImageStorage, st.InstanceUID(i), dicom.ImplicitVRLittleEndian, ds)
		if err != nil {
			return err
		}
		if status != 0 {
			a.Abort()
			return fmt.Errorf("C-STORE status %04X", status)
		}
	}
	return a.Release(ctx)
}
