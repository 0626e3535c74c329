package edge

import (
	"math"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/wardgate/wardgate/buffer"
	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/dicom/gateway"
)

// The gateway's state at one instant: a snapshot is built once per request
// or scrape, and the status page, GET /api/status, GET /readyz and
// /metrics all read it, so each counter has one name everywhere (the JSON
// names below; /metrics prefixes them with wardgate_). It holds no patient
// data: beds show only whether a patient is associated, studies only the
// last characters of their UID, dead letters their kind, key and the first
// words of their reason, never their payload.

type snapshot struct {
	Site          string          `json:"site"`
	Version       string          `json:"version"`
	Now           time.Time       `json:"now"`
	Started       time.Time       `json:"started"`
	UptimeSeconds int64           `json:"uptime_seconds"`
	Ready         bool            `json:"ready"`
	FHIR          fhirReport      `json:"fhir"`
	Disk          diskReport      `json:"disk"`
	Monitors      []monitorReport `json:"monitors"`
	DICOM         *dicomReport    `json:"dicom"` // null: no dicom section
	// HL7 is the PCD-01 results' listener (null: no hl7 section).
	HL7 *hl7Report `json:"hl7"`
	// ADT is the ADT feed (null: no patients.adt).
	ADT    *adtReport   `json:"adt"`
	Outbox outboxReport `json:"outbox"`
	Ingest ingestReport `json:"ingest"`
	// Clocks are the device clocks as estimated, by device.
	Clocks map[string]clockReport `json:"clocks"`
	// Errors counts what went wrong, by kind; each is also logged
	// (without patient data). Never silent: a kind is listed at 0 before
	// it first happens. /metrics: wardgate_errors_total{kind}.
	Errors map[string]uint64 `json:"errors"`
	// ValuesHidden: the monitors' live values and trends are left out, as
	// http.listen is reachable from the ward's network and the request
	// had no admin token (states, counts and reasons stay).
	ValuesHidden bool `json:"values_hidden,omitempty"`
	// SignedIn: the page was asked for with the view cookie.
	SignedIn bool `json:"-"`
}

// hideValues leaves out the monitors' live values and trends.
func (s *snapshot) hideValues() {
	s.ValuesHidden = true
	for i := range s.Monitors {
		s.Monitors[i].Values = []valueReport{}
		s.Monitors[i].Trends = []trendReport{}
	}
}

// adtReport is the ADT feed's part of the snapshot.
type adtReport struct {
	Listen string `json:"listen"`
	adtStats
}

// ingestReport is what the sources handed over and what became of it.
type ingestReport struct {
	Readings uint64 `json:"readings"`       // handed over by the monitor sources
	Entries  uint64 `json:"entries_stored"` // FHIR entries stored in the outbox
}

type fhirReport struct {
	// State: unknown (nothing sent yet), ok (the last request was
	// answered with success), unreachable (no answer), error (an answer
	// other than success).
	State        string    `json:"state"`
	LastStatus   int       `json:"last_status"`
	LastError    string    `json:"last_error,omitempty"`
	LastErrorAt  time.Time `json:"last_error_at,omitzero"`
	LastSuccess  time.Time `json:"last_success,omitzero"`
	Delivered    uint64    `json:"delivered"`
	Retried      uint64    `json:"retried"`
	DeadLettered uint64    `json:"dead_lettered"`
	Requests     uint64    `json:"requests"`
	Restarts     uint64    `json:"restarts"`
}

type usage struct {
	Bytes      int64   `json:"bytes"`
	QuotaBytes int64   `json:"quota_bytes"`
	Percent    float64 `json:"percent"`
}

func newUsage(b, q int64) *usage {
	u := &usage{Bytes: b, QuotaBytes: q}
	if q > 0 {
		u.Percent = math.Round(float64(b)/float64(q)*1000) / 10
	}
	return u
}

type diskReport struct {
	Outbox         *usage `json:"outbox"`
	Held           *usage `json:"held"`
	Charting       *usage `json:"charting"`
	Spool          *usage `json:"spool,omitempty"`
	SpoolInstances int64  `json:"spool_instances"`
}

type monitorReport struct {
	ID            string    `json:"id"`
	Bed           string    `json:"bed"`
	Profile       string    `json:"profile"`
	Transport     string    `json:"transport"`
	State         string    `json:"state"`
	Since         time.Time `json:"since"`
	LastFrame     time.Time `json:"last_frame,omitzero"`
	LastError     string    `json:"last_error,omitempty"`
	ClockOffsetMS int64     `json:"clock_offset_ms"`
	Associated    bool      `json:"associated"` // a patient is associated with the bed now
	// Association is where the bed's patient comes from now (manual,
	// static, encounter), or why there is none (none, uncertain,
	// unreachable, unknown); AssociationNote says more, without patient
	// data.
	Association     string        `json:"association"`
	AssociationNote string        `json:"association_note,omitempty"`
	Clock           clockReport   `json:"clock"`
	Counters        monitorCounts `json:"counters"`
	Values          []valueReport `json:"values"`
	Trends          []trendReport `json:"trends"`
	// Charting is how its readings reach the chart (charting.go).
	Charting chartReport `json:"charting"`
}

// clockReport is the monitor's device clock as estimated (devices.Clock).
type clockReport struct {
	State        string    `json:"state"` // none, tracking, checking
	OffsetMS     int64     `json:"offset_ms"`
	Steps        uint64    `json:"steps"`
	LastStepMS   int64     `json:"last_step_ms,omitempty"`
	LastStepAt   time.Time `json:"last_step_at,omitzero"`
	RecentStep   bool      `json:"recent_step"` // a step in the last 24 hours: the page flags it
	Disagreed    uint64    `json:"frames_disagreed"`
	Redelivered  uint64    `json:"frames_redelivered"`
	UsualDelayMS int64     `json:"usual_delay_ms"`
}

type monitorCounts struct {
	Bytes     uint64 `json:"bytes"`
	Frames    uint64 `json:"frames"`
	BadFrames uint64 `json:"bad_frames"`
	Readings  uint64 `json:"readings"`
	Dropped   uint64 `json:"dropped"`
	Lost      uint64 `json:"lost"`
	// Skipped: retained MQTT messages without a device time, not charted.
	Skipped uint64 `json:"skipped"`
}

type valueReport struct {
	Code         string       `json:"code"` // MDC reference id
	MDC          uint32       `json:"mdc"`
	Label        string       `json:"label"`
	Value        float64      `json:"value"`
	Unit         string       `json:"unit"`
	At           time.Time    `json:"at"` // effective time, gateway clock
	Questionable bool         `json:"questionable,omitempty"`
	Trend        *trendReport `json:"-"`
}

// Text is the value with its unit, as the page shows it.
func (v valueReport) Text() string {
	s := strconv.FormatFloat(v.Value, 'f', -1, 64)
	if v.Unit != "" {
		s += " " + v.Unit
	}
	return s
}

type trendReport struct {
	Code   string               `json:"code"`
	Label  string               `json:"label"`
	Unit   string               `json:"unit"`
	Points []devices.TrendPoint `json:"points"`
	Min    float64              `json:"min"`
	Max    float64              `json:"max"`
	// SVG is the polyline of the sparkline in a 0 0 120 24 box, ending at
	// LastX, LastY.
	SVG          string  `json:"-"`
	LastX, LastY float64 `json:"-"`
}

// mainParameters are the parameters with a sparkline: heart and pulse
// rate, SpO2, respiratory rates, NIBP and cuff systolic.
var mainParameters = []uint32{147842, 149530, 150456, 151562, 151570, 151578, 151594, 150021, 150301}

type dicomReport struct {
	Listening          string          `json:"listening"`
	ListeningTLS       string          `json:"listening_tls,omitempty"`
	AETitle            string          `json:"ae_title"`
	AssociationsNow    int64           `json:"associations_now"`
	AssociationsTotal  uint64          `json:"associations_since_start"`
	Rejected           uint64          `json:"associations_rejected"`
	Aborted            uint64          `json:"associations_aborted"`
	Unasked            int64           `json:"connections_unasked"` // open, no A-ASSOCIATE-RQ yet
	ConnectionsRefused uint64          `json:"connections_refused"` // closed at once: too many unasked from one address
	TLSFailed          uint64          `json:"tls_handshakes_failed"`
	InstancesReceived  uint64          `json:"instances_received"`
	BytesReceived      uint64          `json:"bytes_received"`
	RefusedFull        uint64          `json:"refused_full"`
	RefusedUnparseable uint64          `json:"refused_unparseable"`
	Duplicates         uint64          `json:"instances_duplicate"`
	Replaced           uint64          `json:"instances_replaced"`
	PatientChanged     uint64          `json:"instances_replaced_with_another_patient"`
	SuspectReplaced    uint64          `json:"replacements_suspect"` // from another calling AE, or another patient or study
	RefusedSuspect     uint64          `json:"replacements_refused"` // 0111 under dicom.replacements: refuse
	StoreFailed        uint64          `json:"store_failed"`
	StudiesPending     int             `json:"studies_pending"`
	StudiesHandedOver  uint64          `json:"studies_handed_over"`
	StudiesFailed      uint64          `json:"studies_handover_failed"`
	Pruned             uint64          `json:"pruned"`
	LedgerUnreadable   uint64          `json:"ledger_marks_unreadable"`
	Destinations       []forwardReport `json:"forward"`
	Studies            []studyReport   `json:"recent_studies"`
	// Commitment is null without dicom.commitment.
	Commitment *gateway.CommitmentStats `json:"commitment"`
}

type forwardReport struct {
	Destination  string         `json:"destination"`
	Waiting      int            `json:"waiting"`
	Delivered    uint64         `json:"delivered"`
	DeadLettered int            `json:"dead_lettered"`    // refusals for good waiting for a retry or a drop
	RefusedTotal uint64         `json:"refused_for_good"` // refusals for good since the start
	Connected    bool           `json:"connected"`
	LastError    string         `json:"last_error,omitempty"`
	Reasons      map[string]int `json:"reasons,omitempty"`
}

type studyReport struct {
	// Handle is the last 8 characters of the Study Instance UID.
	Handle     string    `json:"handle"`
	Received   time.Time `json:"received"`
	Last       time.Time `json:"last_received"`
	Modalities []string  `json:"modalities"`
	Instances  int       `json:"instances"`
	HandedOver bool      `json:"handed_over"` // its ImagingStudy is in the outbox
	// Forwarded: every destination has every instance; null when there
	// is no destination.
	Forwarded *bool `json:"forwarded"`
	// Charted: the record acknowledged the ImagingStudy with every
	// instance received.
	Charted bool `json:"charted"`
}

type outboxReport struct {
	Waiting            int                `json:"waiting"`
	InFlight           int                `json:"in_flight"`
	Oldest             time.Time          `json:"oldest,omitzero"`
	OldestAgeSeconds   float64            `json:"oldest_age_seconds"`
	DeliveredPerMinute int                `json:"delivered_last_minute"`
	Bytes              int64              `json:"bytes"`
	QuotaBytes         int64              `json:"quota_bytes"`
	Held               heldReport         `json:"held"`
	DeadLetterCount    int                `json:"dead_letters"`
	DeadLetters        []deadLetterReport `json:"recent_dead_letters"` // the first statusDeadLetters
}

type heldReport struct {
	Waiting            int    `json:"waiting"`
	FramesHeld         uint64 `json:"frames_held"`
	FramesChartedLater uint64 `json:"frames_charted_later"`
	// ReadingsExpired went to the dead letters after
	// patients.hold_unassociated.
	ReadingsExpired uint64 `json:"readings_expired"`
	// Reasons say why frames wait, as the resolver last found (no patient
	// data: beds and verdicts).
	Reasons []heldReason `json:"reasons"`
}

// deadLetterReport is a dead letter without its payload. IDs are strings:
// they do not fit in a JavaScript number.
type deadLetterReport struct {
	ID        uint64    `json:"id,string"`
	Kind      string    `json:"kind"`
	Key       string    `json:"key"`
	Reason    string    `json:"reason"`
	At        time.Time `json:"time"`
	Enqueued  time.Time `json:"enqueued,omitzero"`
	Attempts  int       `json:"attempts"`
	Retryable bool      `json:"retryable"`
	Payload   *string   `json:"payload,omitempty"` // only with ?payload=1 and the admin token
	// Page is the key and reason as the page shows them.
	PageKey, PageReason string `json:"-"`
}

// statusDeadLetters bounds the dead letters in the status report.
const statusDeadLetters = 50

func deadLetterOf(d buffer.DeadLetter) deadLetterReport {
	key, reason := pageKey(d.Key), pageReason(d.Reason)
	if d.Kind == KindForward {
		// An instance's UID names its study as well as the study's does;
		// the reason is our own words (status and destination), whole.
		key = "instance …" + uidHandle(d.Key)
		reason = d.Reason
	}
	return deadLetterReport{
		ID: d.ID, Kind: d.Kind, Key: key, Reason: reason, At: d.At, Enqueued: d.Enqueued,
		Attempts: d.Attempts, Retryable: d.Kind == buffer.KindFHIR || d.Kind == "" || d.Kind == KindHeld || d.Kind == KindStudy || d.Kind == KindForward,
		PageKey: key, PageReason: reason,
	}
}

// snapshot reads everything the gateway counts and shows, once.
func (g *Gateway) snapshot() snapshot { return g.snapshotOf(true) }

// snapshotOf reads the snapshot; without lists it leaves out what only the
// page and the API show and what costs reads of the stores (the recent dead
// letters, the recent studies with their ledger marks, the sparklines), for
// /metrics, which is scraped every few seconds and reads only counts.
func (g *Gateway) snapshotOf(lists bool) snapshot {
	now := time.Now()
	g.mu.Lock()
	ready := g.ready
	g.mu.Unlock()
	r := snapshot{
		Site: g.cfg.Site, Version: g.version, Now: now, Started: g.started,
		UptimeSeconds: int64(now.Sub(g.started).Seconds()), Ready: ready,
		Monitors: []monitorReport{},
	}
	ds := g.deliverer.Stats()
	r.FHIR = fhirReport{
		LastStatus: ds.LastStatus, LastError: ds.LastError, LastErrorAt: ds.LastErrorAt, LastSuccess: ds.LastSuccess,
		Delivered: ds.Delivered, Retried: ds.Retried, DeadLettered: ds.DeadLettered, Requests: ds.Requests,
		Restarts: g.deliveryFailures.Load(),
	}
	switch {
	case ds.Requests == 0:
		r.FHIR.State = "unknown"
	case !ds.LastSuccess.IsZero() && !ds.LastSuccess.Before(ds.LastErrorAt):
		r.FHIR.State = "ok"
	case ds.LastStatus == 0:
		r.FHIR.State = "unreachable"
	default:
		r.FHIR.State = "error"
	}
	st := g.outbox.Stats()
	hs := g.held.Stats()
	cs := g.chart.store.Stats()
	r.Disk = diskReport{Outbox: newUsage(st.Bytes, st.QuotaBytes), Held: newUsage(hs.Bytes, hs.QuotaBytes), Charting: newUsage(cs.Bytes, cs.QuotaBytes)}
	if g.spool != nil {
		ss := g.spool.Stats()
		r.Disk.Spool = newUsage(ss.Bytes+ss.InFlightBytes, ss.QuotaBytes)
		r.Disk.SpoolInstances = ss.Instances
	}
	r.Outbox = outboxReport{
		Waiting: st.Waiting, InFlight: st.Leased, Oldest: st.Oldest,
		DeliveredPerMinute: g.deliveries.lastMinute(), Bytes: st.Bytes, QuotaBytes: st.QuotaBytes,
		DeadLetterCount: st.Dead, DeadLetters: []deadLetterReport{},
		Held: heldReport{Waiting: hs.Waiting, FramesHeld: g.ingest.held.Load(),
			FramesChartedLater: g.ingest.heldCharted.Load(), ReadingsExpired: g.ingest.heldExpired.Load(),
			Reasons: g.heldNotes.summary()},
	}
	if !st.Oldest.IsZero() {
		r.Outbox.OldestAgeSeconds = math.Round(now.Sub(st.Oldest).Seconds()*10) / 10
	}
	if st.Dead > 0 && lists {
		if dls, err := g.outbox.DeadLetters(statusDeadLetters); err == nil {
			for _, d := range dls {
				r.Outbox.DeadLetters = append(r.Outbox.DeadLetters, deadLetterOf(d))
			}
		}
	}
	if ready { // the sources are started before the gateway is ready
		for _, mon := range g.monitorList() {
			var trends map[string][]devices.TrendPoint
			if lists {
				trends = mon.Trends()
			}
			r.Monitors = append(r.Monitors, g.monitorReport(mon.Status(), trends))
		}
	}
	r.DICOM = g.dicomReport(lists)
	r.HL7 = g.hl7Report()
	if g.adt != nil {
		r.ADT = &adtReport{adtStats: g.adt.stats(), Listen: g.ADTAddr()}
	}
	in := &g.ingest
	r.Ingest = ingestReport{Readings: in.readings.Load(), Entries: in.entries.Load()}
	r.Clocks = map[string]clockReport{}
	for device, c := range g.clocks.Status() {
		r.Clocks[device] = clockReportOf(c)
	}
	authFailed, authBlocked := g.auth.counts()
	r.Errors = map[string]uint64{
		"readings_unmappable":               in.unmappable.Load(),
		"resources_invalid":                 in.invalid.Load(),
		"readings_expired_unassigned":       in.heldExpired.Load(),
		"frames_undecodable":                in.rejectedFrames.Load(),
		"studies_not_charted":               in.studyRefused.Load(),
		"outbox_refused_full":               st.Counters.RefusedFull + hs.Counters.RefusedFull,
		"delivery_retried":                  ds.Retried,
		"delivery_refused":                  ds.DeadLettered,
		"delivery_restarts":                 g.deliveryFailures.Load(),
		"bed_lookup_failures":               g.beds.failures.Load(),
		"bad_frames":                        0,
		"readings_lost":                     0,
		"readings_retained_untimed_skipped": 0,
		"http_auth_failed":                  authFailed,
		"http_auth_rate_limited":            authBlocked,
		"http_tls_handshakes_failed":        g.tlsHandshakesFailed(),
	}
	for _, m := range r.Monitors {
		r.Errors["bad_frames"] += m.Counters.BadFrames
		r.Errors["readings_lost"] += m.Counters.Lost
		r.Errors["readings_retained_untimed_skipped"] += m.Counters.Skipped
	}
	if d := r.DICOM; d != nil {
		var fwdDead uint64
		for _, f := range d.Destinations {
			fwdDead += f.RefusedTotal
		}
		r.Errors["dicom_associations_rejected"] = d.Rejected
		r.Errors["dicom_associations_aborted"] = d.Aborted
		r.Errors["dicom_connections_refused"] = d.ConnectionsRefused
		r.Errors["dicom_tls_handshakes_failed"] = d.TLSFailed
		r.Errors["dicom_refused_full"] = d.RefusedFull
		r.Errors["dicom_replaced_with_another_patient"] = d.PatientChanged
		r.Errors["dicom_replacements_suspect"] = d.SuspectReplaced
		r.Errors["dicom_refused_unparseable"] = d.RefusedUnparseable
		r.Errors["dicom_store_failed"] = d.StoreFailed
		r.Errors["dicom_study_handover_failed"] = d.StudiesFailed
		r.Errors["dicom_forward_refused"] = fwdDead
		r.Errors["dicom_ledger_marks_unreadable"] = d.LedgerUnreadable
		commitmentErrors(r.Errors, d.Commitment)
	}
	if h := r.HL7; h != nil {
		r.Errors["hl7_messages_refused"] = h.Refused
		r.Errors["hl7_messages_busy"] = h.Busy
		r.Errors["hl7_problems"] = h.NotDecoded
		r.Errors["hl7_connections_refused"] = h.Server.ConnectionsRefused
		r.Errors["hl7_tls_handshakes_failed"] = h.Server.TLSHandshakeFailed
		r.Errors["hl7_frames_too_large"] = h.Server.FramesTooLarge
		r.Errors["hl7_frames_truncated"] = h.Server.FramesTruncated
	}
	if a := r.ADT; a != nil {
		r.Errors["adt_events_refused"] = a.EventsRefused
		r.Errors["adt_events_not_stored"] = a.NotStored
	}
	return r
}

func (g *Gateway) monitorReport(s devices.Status, trends map[string][]devices.TrendPoint) monitorReport {
	m := monitorReport{
		ID: s.ID, Bed: s.Location, Profile: s.Profile, Transport: s.Transport, State: string(s.State),
		Since: s.Since, LastFrame: s.LastFrame, LastError: s.LastError, ClockOffsetMS: s.ClockOffset.Milliseconds(),
		Counters: monitorCounts{Bytes: s.Bytes, Frames: s.Frames, BadFrames: s.BadFrames, Readings: s.Readings, Dropped: s.Dropped, Lost: s.Lost, Skipped: s.Skipped},
		Values:   []valueReport{}, Trends: []trendReport{},
	}
	if s.Location != "" {
		cur := g.beds.current(s.Location)
		m.Associated = cur.Patient != ""
		m.Association, m.AssociationNote = cur.Source, cur.Reason
	}
	device := s.ID
	for _, rd := range s.Latest {
		device = rd.Device
		break
	}
	var seen []devices.MDC
	for _, rd := range s.Latest {
		seen = append(seen, rd.Code)
	}
	m.Charting = g.chart.report(device, s.Location, s.Profile, seen)
	if c, ok := g.clocks.Status()[device]; ok {
		m.Clock = clockReportOf(c)
	} else {
		m.Clock.State = "none"
	}
	for _, rd := range s.Latest {
		m.Values = append(m.Values, valueReport{
			Code: rd.Code.RefID, MDC: rd.Code.Code, Label: paramLabel(rd.Code.Code, rd.Code.RefID), Value: rd.Value, Unit: rd.Unit,
			At: rd.Effective(), Questionable: rd.Quality&devices.Questionable != 0,
		})
	}
	sort.Slice(m.Values, func(i, j int) bool {
		a, b := slices.Index(mainParameters, m.Values[i].MDC), slices.Index(mainParameters, m.Values[j].MDC)
		if (a < 0) != (b < 0) {
			return a >= 0
		}
		if a != b {
			return a < b
		}
		return m.Values[i].MDC < m.Values[j].MDC
	})
	for _, v := range m.Values {
		pts := trends[v.Code]
		if !slices.Contains(mainParameters, v.MDC) || len(pts) == 0 {
			continue
		}
		t := trendReport{Code: v.Code, Label: v.Label, Unit: v.Unit, Points: pts}
		t.SVG, t.LastX, t.LastY, t.Min, t.Max = sparkline(pts, time.Now())
		m.Trends = append(m.Trends, t)
	}
	for i := range m.Values {
		for j := range m.Trends {
			if m.Trends[j].Code == m.Values[i].Code {
				m.Values[i].Trend = &m.Trends[j]
			}
		}
	}
	return m
}

// dicomReport is the DICOM node's part of the snapshot; the recent studies
// only with lists.
func (g *Gateway) dicomReport(lists bool) *dicomReport {
	node := g.dicomNode()
	if node == nil {
		return nil
	}
	st := node.Stats()
	d := &dicomReport{
		Listening: st.Listening, ListeningTLS: st.ListeningTLS, AETitle: st.AETitle,
		AssociationsNow: st.Server.AssociationsActive, AssociationsTotal: st.Server.AssociationsAccepted,
		Rejected: st.Server.AssociationsRejected, Aborted: st.Server.AssociationsAborted,
		Unasked: st.Server.Unasked, ConnectionsRefused: st.Server.ConnectionsRefused, TLSFailed: st.Server.TLSHandshakesFailed,
		InstancesReceived: st.Server.InstancesStored, BytesReceived: st.Server.BytesReceived,
		RefusedFull: st.Received.RefusedFull, RefusedUnparseable: st.Received.RefusedUnparseable,
		Duplicates: st.Received.Duplicates, Replaced: st.Received.Replaced, PatientChanged: st.Received.PatientChanged,
		SuspectReplaced: st.Received.Suspect, RefusedSuspect: st.Received.RefusedSuspect,
		StoreFailed: st.Received.Failed, StudiesPending: st.Studies.Pending, StudiesHandedOver: st.Studies.HandedOff,
		StudiesFailed: st.Studies.Failed, Pruned: st.Pruned, LedgerUnreadable: st.LedgerUnreadable,
		Destinations: []forwardReport{}, Studies: []studyReport{}, Commitment: st.Commitment,
	}
	for _, f := range st.Forward {
		d.Destinations = append(d.Destinations, forwardReport{
			Destination: f.Destination, Waiting: f.Waiting, Delivered: f.Delivered, DeadLettered: f.DeadLettered, RefusedTotal: f.RefusedTotal,
			Connected: f.Connected, LastError: f.LastError, Reasons: f.Reasons,
		})
	}
	var recent []gateway.RecentStudy
	if lists {
		recent = node.RecentStudies()
	}
	for _, s := range recent {
		sr := studyReport{
			Handle: uidHandle(s.StudyInstanceUID), Received: s.FirstReceived, Last: s.LastReceived,
			Modalities: s.Modalities, Instances: s.Instances, HandedOver: !s.HandedOver.IsZero(),
		}
		if sr.Modalities == nil {
			sr.Modalities = []string{}
		}
		if len(st.Forward) > 0 {
			fw := s.Forwarded
			sr.Forwarded = &fw
		}
		delivered := g.deliveries.studyDelivered(s.StudyInstanceUID)
		sr.Charted = sr.HandedOver && s.HandedInstances >= s.Instances && !delivered.IsZero() && !delivered.Before(s.LastReceived)
		d.Studies = append(d.Studies, sr)
	}
	return d
}

func clockReportOf(c devices.ClockStatus) clockReport {
	return clockReport{State: c.State, OffsetMS: c.Offset.Milliseconds(), Steps: c.Steps,
		LastStepMS: c.LastStep.Milliseconds(), LastStepAt: c.LastStepAt,
		RecentStep: !c.LastStepAt.IsZero() && time.Since(c.LastStepAt) < 24*time.Hour,
		Disagreed:  c.Disagreed, Redelivered: c.Redelivered, UsualDelayMS: c.UsualDelay.Milliseconds()}
}
