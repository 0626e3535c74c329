package edge

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wardgate/wardgate/dicom/gateway"

	"github.com/wardgate/wardgate/buffer"
	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/edge/config"
	"github.com/wardgate/wardgate/edge/fhir"
)

// ShutdownTimeout bounds how long a stop waits for work in flight.
const ShutdownTimeout = 30 * time.Second

// Gateway is one running wardgate.
type Gateway struct {
	// cfg is the config the gateway started with. A reload leaves it as
	// it is (its readers take no lock): what a reload changes is kept
	// apart, in live (reload.go), the monitors and the beds' static map.
	cfg *config.Config
	// LogLevel, when set before Run, is the level the logger given to New
	// filters by: a reload sets it from log.level. Without it a change of
	// log.level is refused as needing a restart.
	LogLevel *slog.LevelVar
	live     liveConfig
	// refusalMu makes listing a PACS refusal among the dead letters
	// check-then-add.
	refusalMu sync.Mutex
	log       *slog.Logger
	version   string

	lock   *dataDirLock
	outbox *buffer.Outbox
	held   *buffer.Outbox // frames waiting for a patient in their bed, or their clock
	chart  *charter       // readings waiting for their charting interval (charting.go)
	seen   *buffer.Seen   // first receipts of MQTT messages without a device time
	clocks *devices.Clocks
	beds   *beds
	adt    *adtStays // the ADT feed's stays (patients.adt); nil without it
	// patientRefs finds the Patient a record number is (patientrefs.go).
	patientRefs *patientRefs
	// pcd is the HL7 results' intake (hl7), hl7Listeners the MLLP
	// listeners (hl7.go); nil without them.
	pcd          *pcd01Intake
	hl7Listeners []*hl7Listener
	// mons are the running monitors (monitors.go): a reload adds, stops
	// and restarts them.
	mons      monitorSet
	mapper    *fhir.Mapper
	deliverer *fhir.Deliverer
	spool     *buffer.Spool
	dicom     *gateway.Node
	httpSrv   *http.Server
	// backupBusy is set while POST /api/backup makes a copy (one at a time).
	backupBusy atomic.Bool
	httpLn     net.Listener
	// auth rate-limits and logs failed admin token attempts (authlimit.go).
	auth *authLimiter
	// httpErrors is the HTTP server's log (serverlog.go).
	httpErrors *serverErrorLog
	started    time.Time

	mu sync.Mutex
	// dicomAddr is where the DICOM node listens (info.go).
	dicomAddr string
	// ready: serving; stopping: the stop has begun (/readyz tells starting
	// from stopping).
	ready, stopping bool
	ingest          ingestCounters
	// heldNotes say why each held frame waits; resolveKick wakes the
	// resolver (held.go).
	heldNotes   heldNotes
	resolveKick chan struct{}
	studyWaits  studyWaits
	studyDead   studyDeadLetters
	// deliveries keeps what the status page and /metrics show of FHIR
	// deliveries (metrics.go).
	deliveries deliveryLog
	// deliveryFailures counts restarts of FHIR delivery after an error.
	deliveryFailures atomic.Uint64
}

// New prepares a gateway for cfg; Run starts it.
func New(cfg *config.Config, log *slog.Logger, version string) *Gateway {
	return &Gateway{cfg: cfg, log: log, version: version, resolveKick: make(chan struct{}, 1),
		auth: newAuthLimiter(log.With("component", "http"))}
}

// Run opens the gateway's stores and listeners, serves until ctx ends, then
// stops taking input, lets work in flight finish and closes everything. An
// error before ctx ends is a failure to start or to keep running.
//
// The long-running parts run under one supervisor, started in this order
// and stopped in the reverse: FHIR delivery, the status server, the held
// frames' resolver, the device clocks' keeper, the DICOM node, the monitor
// sources. Sources stop first, so what they took in is stored before the
// stores close (MQTT messages not yet stored stay unacknowledged at the
// broker); delivery stops last. Under systemd it sends READY=1 once every
// part is started, WATCHDOG=1 while they answer and STOPPING=1 as the stop
// begins (watchdog.go).
func (g *Gateway) Run(ctx context.Context) (err error) {
	if err := g.open(); err != nil {
		g.close()
		return err
	}
	g.started = time.Now()
	dicomParts, closeDICOM, err := g.dicomParts()
	if err != nil {
		g.close()
		return err
	}
	hl7Parts, err := g.hl7Parts()
	if err != nil {
		closeDICOM()
		g.close()
		return err
	}
	sup := newSupervisor(g.log)
	sup.start(part{"fhir delivery", g.deliver})
	sup.start(part{"status server", g.serveHTTP})
	sup.start(part{"held frames", func(ctx context.Context) error { g.resolveHeld(ctx); return nil }})
	sup.start(part{"charting", func(ctx context.Context) error { g.chart.run(ctx); return nil }})
	sup.start(part{"device clocks", func(ctx context.Context) error { g.keepClocks(ctx); return nil }})
	for _, p := range dicomParts {
		sup.start(p)
	}
	for _, p := range hl7Parts {
		sup.start(p)
	}
	sup.start(g.monitorsPart())
	g.setReady(true)
	g.log.Info("wardgate running", "version", g.version, "site", g.cfg.Site,
		"status", g.statusURL(), "data_dir", g.cfg.DataDir)
	g.sdNotify("READY=1\nSTATUS=running; status page " + g.statusURL())
	wdCtx, stopWatchdog := context.WithCancel(context.Background())
	wdDone := g.startWatchdog(wdCtx, sup)

	if err = sup.wait(ctx); err != nil {
		g.log.Error("a part of the gateway failed; stopping", "err", err)
	} else {
		g.log.Info("stopping: no new input; finishing what is in flight")
	}
	stopWatchdog()
	<-wdDone // no ping after STOPPING=1
	g.sdNotify("STOPPING=1\nSTATUS=stopping; finishing what is in flight")
	g.mu.Lock()
	g.ready, g.stopping = false, true
	g.mu.Unlock()
	// The DICOM server's graceful stop and delivery's last request each
	// get ShutdownTimeout.
	sup.stop(2 * ShutdownTimeout)
	if e := closeDICOM(); e != nil && err == nil {
		err = e
	}
	if e := g.close(); e != nil && err == nil {
		err = e
	}
	if err == nil {
		g.log.Info("stopped cleanly")
	}
	return err
}

// statusURL is the status page's address: https with http.tls.
func (g *Gateway) statusURL() string {
	scheme := "http://"
	if g.cfg.HTTP.TLS != nil {
		scheme = "https://"
	}
	return scheme + g.httpLn.Addr().String() + "/"
}

// serveHTTP serves the status page, the API and /metrics until ctx ends,
// then lets requests in progress finish for ShutdownTimeout.
func (g *Gateway) serveHTTP(ctx context.Context) error {
	served := make(chan error, 1)
	go func() { served <- g.httpSrv.Serve(g.httpLn) }()
	summary := time.NewTicker(authSummaryEvery)
	defer summary.Stop()
wait:
	for {
		select {
		case err := <-served:
			return err
		case now := <-summary.C:
			g.auth.summarize(now)
		case <-ctx.Done():
			break wait
		}
	}
	g.auth.summarize(time.Now())
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if err := g.httpSrv.Shutdown(sctx); err != nil {
		g.log.Warn("status server did not stop in time", "err", err)
	}
	<-served
	return nil
}

// open takes the data folder and opens what the config names, in the order
// that lets close undo it.
func (g *Gateway) open() error {
	c := g.cfg
	g.live.applied = c
	g.live.hold.Store(int64(c.Patients.HoldUnassociated.D()))
	if err := checkDataFormats(c.DataDir); err != nil { // formats.go: a newer wardgate's folder is refused before anything in it changes
		return err
	}
	lock, err := lockDataDir(c.DataDir)
	if err != nil {
		return err
	}
	g.lock = lock
	g.outbox, err = buffer.OpenOutbox(c.OutboxPath(), buffer.OutboxOptions{
		QuotaBytes: int64(c.Buffer.OutboxQuota),
		Logger:     g.log,
	})
	if err != nil {
		return err
	}
	g.held, err = buffer.OpenOutbox(filepath.Join(c.DataDir, "held.db"), buffer.OutboxOptions{
		QuotaBytes: int64(c.Buffer.OutboxQuota) / 4,
		Backoff:    holdBackoff,
		// Written only while a reading waits for its patient or its
		// clock: the journal and reserve are made when that first happens.
		Lazy:   true,
		Logger: g.log,
	})
	if err != nil {
		return err
	}
	if g.chart, err = openCharting(g, c); err != nil {
		return err
	}
	if g.seen, err = buffer.OpenSeen(filepath.Join(c.DataDir, "seen.db"), buffer.SeenOptions{}); err != nil {
		return err
	}
	g.clocks = devices.NewClocks()
	g.loadClocks()
	if c.DICOM != nil {
		g.spool, err = buffer.OpenSpool(c.SpoolDir(), buffer.SpoolOptions{
			QuotaBytes: int64(c.Buffer.SpoolQuota),
			Logger:     g.log,
		})
		if err != nil {
			return err
		}
	}
	client, err := fhirClient(c.FHIR)
	if err != nil {
		return err
	}
	g.beds = newBeds(c, client, g.log.With("component", "patients"))
	g.beds.kick = g.kickResolver
	g.patientRefs = &patientRefs{client: client, timeout: max(c.FHIR.Timeout.D(), time.Second),
		refresh: DefaultPatientRefRefresh, kick: g.kickResolver}
	g.beds.loadFirstSeen(filepath.Join(c.DataDir, staysFile))
	if g.beds.manual, err = openAssociations(c.DataDir, c.Patients.HoldUnassociated.D()); err != nil {
		return err
	}
	if c.Patients.ADT != nil {
		if g.adt, err = openADTStays(c.DataDir, c.Patients.HoldUnassociated.D(), g.log.With("component", "adt")); err != nil {
			return err
		}
	}
	g.beds.adt = g.adt
	g.mapper = &fhir.Mapper{
		Site: c.Site, PatientIdentifierSystem: c.FHIR.PatientIdentifierSystem,
		Local: time.Local, ObservationStatus: c.FHIR.ObservationStatus,
	}
	if c.DICOM != nil {
		g.mapper.WADORSBase = c.DICOM.WADORSBase
	}
	g.deliverer = &fhir.Deliverer{
		Outbox: g.outbox, Client: client, BatchSize: c.FHIR.BatchSize, BatchWait: c.FHIR.BatchWait.D(),
		Log: g.log.With("component", "fhir"), OnDelivered: g.delivered,
		OnRefused: func(entries []fhir.Settled) {
			// A Device the record refused: its next reading writes it again,
			// rather than every later Observation referring to nothing.
			for _, e := range entries {
				if e.ResourceType == "Device" {
					g.mapper.Forget(e.Key)
				}
			}
		},
	}

	ln, err := net.Listen("tcp", c.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http.listen %s: %w", c.HTTP.Listen, err)
	}
	if t := c.HTTP.TLS; t != nil {
		cert, err := os.ReadFile(t.CertFile)
		var pair tls.Certificate
		if err == nil {
			pair, err = tls.X509KeyPair(cert, []byte(t.KeyFile.Value()))
		}
		if err != nil {
			ln.Close()
			return fmt.Errorf("http.tls: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12})
	}
	g.httpLn = ln
	g.httpErrors = &serverErrorLog{log: g.log.With("component", "http")}
	g.httpSrv = &http.Server{
		Handler:           g.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(g.httpErrors, "", 0),
	}
	return nil
}

// close releases everything open, in reverse order.
func (g *Gateway) close() error {
	var errs []error
	if g.spool != nil {
		errs = append(errs, g.spool.Close())
	}
	if g.chart != nil {
		errs = append(errs, g.chart.close())
	}
	if g.held != nil {
		errs = append(errs, g.held.Close())
	}
	if g.seen != nil {
		errs = append(errs, g.seen.Close())
	}
	if g.adt != nil {
		errs = append(errs, g.adt.close())
	}
	if g.outbox != nil {
		errs = append(errs, g.outbox.Close())
	}
	if g.httpLn != nil {
		g.httpLn.Close() // already closed after a clean stop; not when starting failed
	}
	if g.lock != nil {
		g.lock.release()
	}
	return errors.Join(errs...)
}

func (g *Gateway) setReady(r bool) {
	g.mu.Lock()
	g.ready = r
	g.mu.Unlock()
}

func (g *Gateway) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{
			"status": "ok", "version": g.version, "site": g.cfg.Site,
			"uptime_seconds": int(time.Since(g.started).Seconds()),
		})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		ready, stopping := g.ready, g.stopping
		g.mu.Unlock()
		if !ready {
			status := "starting"
			if stopping {
				status = "stopping"
			}
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": status})
			return
		}
		// The snapshot, under the same names as /api/status.
		snap, ok := g.viewSnapshot(w, r)
		if !ok {
			return
		}
		writeJSON(w, http.StatusOK, struct {
			Status string `json:"status"`
			*snapshot
		}{"ready", &snap})
	})
	mux.HandleFunc("GET /{$}", g.serveStatusPage)
	mux.HandleFunc("POST /login", g.login)
	mux.HandleFunc("POST /logout", g.logout)
	mux.Handle("GET /metrics", g.metricsHandler())
	g.apiRoutes(mux)
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// deliver runs FHIR delivery until ctx ends. Delivery stops on its own only
// when the outbox fails under it (a disk error); it is then started again
// after a pause, loudly, rather than left stopped behind a ready gateway.
func (g *Gateway) deliver(ctx context.Context) error {
	for {
		err := g.deliverer.Run(ctx)
		if err == nil || ctx.Err() != nil {
			return nil
		}
		g.deliveryFailures.Add(1)
		g.log.Error("fhir delivery stopped; restarting it in 5 s", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(5 * time.Second):
		}
	}
}
