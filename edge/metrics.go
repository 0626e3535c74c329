package edge

import (
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/wardgate/wardgate/dicom/gateway"
	"github.com/wardgate/wardgate/edge/build"
	"github.com/wardgate/wardgate/edge/fhir"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wardgate/wardgate/buffer"
	"github.com/wardgate/wardgate/devices"
)

// deliveryLog keeps what the status page and /metrics show of FHIR
// deliveries beyond the Deliverer's counters: the Append-to-2xx latency,
// the entries delivered in the last minute and when each recent study's
// ImagingStudy reached the record. Its zero value is ready; it is fed by
// the Deliverer's OnDelivered hook and stays bounded.
type deliveryLog struct {
	once    sync.Once
	latency prometheus.Histogram

	mu      sync.Mutex
	perSec  [60]secondCount
	studies map[string]time.Time // study UID → last delivery of its entries
}

type secondCount struct {
	unix int64
	n    int
}

// maxChartedStudies bounds the studies whose delivery time is kept.
const maxChartedStudies = 256

func (d *deliveryLog) init() {
	d.once.Do(func() {
		d.latency = prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "wardgate_delivery_latency_seconds",
			Help: "Time from an entry's commit to the outbox to the FHIR server's 2xx for it.",
			// From an idle gateway's sub-second sends to retries after hours.
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600},
		})
	})
}

// delivered is the Deliverer's OnDelivered hook.
func (d *deliveryLog) delivered(items []fhir.Settled) {
	d.init()
	now := time.Now()
	for _, it := range items {
		if !it.Enqueued.IsZero() {
			d.latency.Observe(now.Sub(it.Enqueued).Seconds())
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	sec := now.Unix()
	slot := &d.perSec[sec%int64(len(d.perSec))]
	if slot.unix != sec {
		*slot = secondCount{unix: sec}
	}
	slot.n += len(items)
	for _, it := range items {
		uid, ok := buffer.StudyOfKey(it.Key)
		if !ok {
			continue
		}
		if d.studies == nil {
			d.studies = map[string]time.Time{}
		}
		if _, known := d.studies[uid]; !known && len(d.studies) >= maxChartedStudies {
			var oldest string
			for k, at := range d.studies {
				if oldest == "" || at.Before(d.studies[oldest]) {
					oldest = k
				}
			}
			delete(d.studies, oldest)
		}
		d.studies[uid] = now
	}
}

// lastMinute is how many entries were delivered in the last 60 s.
func (d *deliveryLog) lastMinute() int {
	now := time.Now().Unix()
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, s := range d.perSec {
		if now-s.unix < int64(len(d.perSec)) {
			n += s.n
		}
	}
	return n
}

// studyDelivered is when entries of study last reached the record (zero:
// not since the start).
func (d *deliveryLog) studyDelivered(uid string) time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.studies[uid]
}

// metricsHandler serves /metrics from a registry of the gateway's own: its
// collector reads the counters the gateway keeps anyway at scrape time,
// plus the delivery latency histogram and the Go and process collectors.
func (g *Gateway) metricsHandler() http.Handler {
	g.deliveries.init()
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		g.deliveries.latency,
		&gatewayCollector{g: g},
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:          promLogger{g},
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: false,
	})
}

type promLogger struct{ g *Gateway }

func (l promLogger) Println(v ...any) {
	l.g.log.Warn("metrics", "err", strings.TrimSpace(sprintln(v...)))
}

func sprintln(v ...any) string {
	var b strings.Builder
	for i, x := range v {
		if i > 0 {
			b.WriteByte(' ')
		}
		if e, ok := x.(error); ok {
			b.WriteString(e.Error())
		} else if s, ok := x.(string); ok {
			b.WriteString(s)
		}
	}
	return b.String()
}

// gatewayCollector turns the gateway's counters into metrics when scraped.
type gatewayCollector struct{ g *Gateway }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	mBuildInfo      = desc("wardgate_build_info", "The gateway's version, commit, Go version and site; always 1.", "version", "commit", "goversion", "site")
	mReadings       = desc("wardgate_readings_total", "Readings handed over by the monitor sources.")
	mEntries        = desc("wardgate_outbox_entries_stored_total", "FHIR entries stored in the outbox.")
	mDelivered      = desc("wardgate_observations_delivered_total", "FHIR entries (Observations, Devices, ImagingStudies) the record acknowledged.")
	mRequests       = desc("wardgate_fhir_requests_total", "Transaction Bundles posted to the FHIR server.")
	mOutboxWaiting  = desc("wardgate_outbox_waiting", "Entries waiting for delivery, including those in flight.")
	mOutboxLeased   = desc("wardgate_outbox_in_flight", "Entries being delivered now.")
	mOutboxDead     = desc("wardgate_outbox_dead_letters", "Dead letters: entries the record refused, invalid resources, undecodable frames.")
	mOutboxOldest   = desc("wardgate_outbox_oldest_waiting_seconds", "Age of the oldest entry waiting (0: none).")
	mOutboxBytes    = desc("wardgate_outbox_bytes", "Bytes the outbox uses.")
	mOutboxQuota    = desc("wardgate_outbox_quota_bytes", "The outbox's quota (buffer.outbox_quota).")
	mHeld           = desc("wardgate_held_frames", "Frames waiting for a patient in their bed, or for their device's clock.")
	mHeldWhy        = desc("wardgate_held_frames_by_verdict", "Held frames by why they wait (as last looked at): vacant, uncertain (both expire after patients.hold_unassociated), unreachable, not yet asked (neither expires).", "verdict")
	mClockOffset    = desc("wardgate_device_clock_offset_seconds", "A device's clock minus the gateway's, as estimated.", "device")
	mClockSteps     = desc("wardgate_device_clock_steps_total", "Times a device's clock was found set (its offset jumped).", "device")
	mClockChecking  = desc("wardgate_device_clock_checking", "1 while frames of the device disagree with its clock estimate (their readings wait).", "device")
	mHeldCharted    = desc("wardgate_held_frames_charted_total", "Held frames charted once their bed had a patient.")
	mSpoolBytes     = desc("wardgate_spool_bytes", "Bytes the DICOM spool uses.")
	mSpoolQuota     = desc("wardgate_spool_quota_bytes", "The spool's quota (buffer.spool_quota).")
	mSpoolInstances = desc("wardgate_spool_instances", "DICOM instances in the spool.")
	mAssocActive    = desc("wardgate_dicom_associations_active", "DICOM associations open now.")
	mAssocTotal     = desc("wardgate_dicom_associations_total", "DICOM associations accepted since the start.")
	mInstances      = desc("wardgate_dicom_instances_received_total", "DICOM instances stored (C-STORE answered with success).")
	mForwarded      = desc("wardgate_dicom_instances_forwarded_total", "DICOM instances a forward destination acknowledged.", "destination")
	mForwardWaiting = desc("wardgate_dicom_forward_waiting", "DICOM instances waiting for a forward destination.", "destination")
	mDICOMBytes     = desc("wardgate_dicom_bytes_received_total", "DICOM data set bytes received by C-STORE.")
	mStudies        = desc("wardgate_dicom_studies_handed_over_total", "Study hand-overs to the FHIR side.")
	mHL7Messages    = desc("wardgate_hl7_messages_total", "HL7 PCD-01 results, by acknowledgement: accepted (AA/CA), duplicate (a copy acknowledged again), refused (AE/AR), busy (AE RETRY).", "outcome")
	mHL7Readings    = desc("wardgate_hl7_readings_total", "Values taken from HL7 PCD-01 results.")
	mHL7Conns       = desc("wardgate_hl7_connections", "MLLP connections open now on hl7.listen.")
	mADTEvents      = desc("wardgate_adt_events_total", "ADT events, by outcome: applied, duplicate, refused, not_stored.", "outcome")
	mErrors         = desc("wardgate_errors_total", "Things that went wrong, by kind; each is also logged (without patient data).", "kind")
	mMonitorState   = desc("wardgate_monitor_state", "1 for the monitor's current state, 0 for the others.", "monitor", "state")
	mMonitorFrames  = desc("wardgate_monitor_frames_total", "Frames decoded from the monitor.", "monitor")
	mMonitorRead    = desc("wardgate_monitor_readings_total", "Readings decoded from the monitor.", "monitor")
	mMonitorBad     = desc("wardgate_monitor_bad_frames_total", "Frames from the monitor that did not decode.", "monitor")
	mChartIntervals = desc("wardgate_monitor_chart_intervals_total", "Charting intervals closed: charted, empty (no valid reading, nothing charted) or amended.", "monitor", "result")
	mChartLate      = desc("wardgate_monitor_chart_late_readings_total", "Readings that came after their interval was charted, and were not charted.", "monitor")
	mMonitorLast    = desc("wardgate_monitor_last_frame_timestamp_seconds", "When the monitor's last decoded frame arrived (Unix time; 0: none yet).", "monitor")
)

var monitorStates = []devices.State{devices.Connecting, devices.Connected, devices.Silent, devices.Disconnected, devices.Failed}

func (c *gatewayCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mBuildInfo, mReadings, mEntries, mDelivered, mRequests, mOutboxWaiting,
		mOutboxLeased, mOutboxDead, mOutboxOldest, mOutboxBytes, mOutboxQuota, mHeld, mHeldWhy, mHeldCharted,
		mClockOffset, mClockSteps, mClockChecking, mSpoolBytes,
		mSpoolQuota, mSpoolInstances, mAssocActive, mAssocTotal, mInstances, mForwarded, mForwardWaiting,
		mDICOMBytes, mStudies, mHL7Messages, mHL7Readings, mHL7Conns, mADTEvents, mErrors, mMonitorState, mMonitorFrames, mMonitorRead, mMonitorBad, mMonitorLast, mChartIntervals, mChartLate} {
		ch <- d
	}
	for _, d := range commitmentDescs {
		ch <- d
	}
}

// Collect reads one snapshot: the names here are the snapshot's, prefixed.
func (c *gatewayCollector) Collect(ch chan<- prometheus.Metric) {
	g := c.g
	s := g.snapshotOf(false) // counts only: no store reads for lists the metrics do not show
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(mBuildInfo, 1, s.Version, build.Commit(), build.GoVersion(), s.Site)
	counter(mReadings, s.Ingest.Readings)
	counter(mEntries, s.Ingest.Entries)
	counter(mDelivered, s.FHIR.Delivered)
	counter(mRequests, s.FHIR.Requests)
	ob := s.Outbox
	gauge(mOutboxWaiting, float64(ob.Waiting))
	gauge(mOutboxLeased, float64(ob.InFlight))
	gauge(mOutboxDead, float64(ob.DeadLetterCount))
	oldest := 0.0
	if !ob.Oldest.IsZero() {
		oldest = s.Now.Sub(ob.Oldest).Seconds()
	}
	gauge(mOutboxOldest, oldest)
	gauge(mOutboxBytes, float64(ob.Bytes))
	gauge(mOutboxQuota, float64(ob.QuotaBytes))
	gauge(mHeld, float64(ob.Held.Waiting))
	counter(mHeldCharted, ob.Held.FramesChartedLater)
	byVerdict := map[string]int{}
	for _, r := range ob.Held.Reasons {
		byVerdict[r.Verdict] += r.Frames
	}
	for _, v := range []verdict{vacant, uncertain, unreachable, notYet} {
		gauge(mHeldWhy, float64(byVerdict[v.String()]), v.String())
	}
	for device, c := range s.Clocks {
		gauge(mClockOffset, float64(c.OffsetMS)/1000, device)
		counter(mClockSteps, c.Steps, device)
		checking := 0.0
		if c.State == "checking" {
			checking = 1
		}
		gauge(mClockChecking, checking, device)
	}
	for _, m := range s.Monitors {
		for _, st := range monitorStates {
			v := 0.0
			if m.State == string(st) {
				v = 1
			}
			gauge(mMonitorState, v, m.ID, string(st))
		}
		counter(mMonitorFrames, m.Counters.Frames, m.ID)
		counter(mMonitorRead, m.Counters.Readings, m.ID)
		counter(mMonitorBad, m.Counters.BadFrames, m.ID)
		counter(mChartIntervals, m.Charting.Charted, m.ID, "charted")
		counter(mChartIntervals, m.Charting.Empty, m.ID, "empty")
		counter(mChartIntervals, m.Charting.Amended, m.ID, "amended")
		counter(mChartLate, m.Charting.Late, m.ID)
		last := 0.0
		if !m.LastFrame.IsZero() {
			last = float64(m.LastFrame.UnixNano()) / 1e9
		}
		gauge(mMonitorLast, last, m.ID)
	}
	if s.Disk.Spool != nil {
		gauge(mSpoolBytes, float64(s.Disk.Spool.Bytes))
		gauge(mSpoolQuota, float64(s.Disk.Spool.QuotaBytes))
		gauge(mSpoolInstances, float64(s.Disk.SpoolInstances))
	}
	if d := s.DICOM; d != nil {
		gauge(mAssocActive, float64(d.AssociationsNow))
		counter(mAssocTotal, d.AssociationsTotal)
		counter(mInstances, d.InstancesReceived)
		counter(mDICOMBytes, d.BytesReceived)
		counter(mStudies, d.StudiesHandedOver)
		for _, f := range d.Destinations {
			counter(mForwarded, f.Delivered, f.Destination)
			gauge(mForwardWaiting, float64(f.Waiting), f.Destination)
		}
		collectCommitment(d.Commitment, gauge, counter)
	}
	if h := s.HL7; h != nil {
		counter(mHL7Messages, h.Server.Accepted-min(h.Duplicates, h.Server.Accepted), "accepted")
		counter(mHL7Messages, h.Duplicates, "duplicate")
		counter(mHL7Messages, h.Server.Failed+h.Server.Rejected, "refused")
		counter(mHL7Messages, h.Server.Busy, "busy")
		counter(mHL7Readings, h.Readings)
		gauge(mHL7Conns, float64(h.Server.Connections))
	}
	if a := s.ADT; a != nil {
		counter(mADTEvents, a.EventsApplied, "applied")
		counter(mADTEvents, a.Duplicates, "duplicate")
		counter(mADTEvents, a.EventsRefused, "refused")
		counter(mADTEvents, a.NotStored, "not_stored")
	}
	for kind, v := range s.Errors {
		counter(mErrors, v, kind)
	}
}

// dicomNode is the running DICOM node, or nil.
func (g *Gateway) dicomNode() *gateway.Node {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.dicom
}
