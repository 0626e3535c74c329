package edge

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/devices/hl7"
	"github.com/wardgate/wardgate/devices/pcd01"
	"github.com/wardgate/wardgate/edge/config"
)

// HL7 results from central stations (hl7): IHE PCD-01 ORU^R01 over MLLP.
//
// Each message is decoded (devices/pcd01), its readings are given their
// bed (PV1-3 through hl7.bed), their device (the sender and OBX-18 or the
// EUI-64 of MSH-3) and, when PID-3 holds a record number of
// fhir.patient_identifier_system, the patient it names; then they go
// through Ingest like every monitor's: charted when their bed had that one
// patient at their time, held otherwise. The acknowledgement follows only
// then:
//
//   - AA (CA): every reading that could be charted is durable (in the
//     outbox, or waiting in the held store). Demo and test values, and
//     rows that could not be decoded, are counted and shown on the page;
//   - AE (CE): the message could not be read, names a bed the template
//     cannot make, two record numbers, or has no row that decodes;
//   - AE (CE) with ERR-5 RETRY: the outbox did not take the readings now
//     (full, or failing): the sender sends the message again;
//   - AR (CR): not an ORU^R01 of PCD-01, not version 2.x, or a sender not
//     in hl7.allow.
//
// A message sent again (its acknowledgement was lost) maps to the same
// Observations, so the record holds it once; a copy of a message already
// stored — same sender, control id and content — is acknowledged again
// without being stored twice (remembered for the last hl7DedupeSize
// messages). A control id reused with other content is a new message.

// hl7DedupeSize bounds the messages remembered as stored.
const hl7DedupeSize = 100_000

// hl7Listener is one MLLP listener (hl7, patients.adt) with its allow list.
type hl7Listener struct {
	key    string // config key: hl7, patients.adt
	cfg    *config.HL7
	server *hl7.Server
	ln     net.Listener
	hosts  *hosts
}

// hl7Parts listens on hl7.listen and patients.adt.listen when configured,
// and returns the parts that serve them.
func (g *Gateway) hl7Parts() ([]part, error) {
	var parts []part
	type want struct {
		key     string
		cfg     *config.HL7
		handler hl7.Handler
	}
	var wants []want
	if g.cfg.HL7 != nil {
		g.pcd = newPCD01Intake(g)
		wants = append(wants, want{"hl7", g.cfg.HL7, hl7.HandlerFunc(g.pcd.handle)})
	}
	if g.cfg.Patients.ADT != nil {
		wants = append(wants, want{"patients.adt", g.cfg.Patients.ADT, hl7.HandlerFunc(g.handleADT)})
	}
	var opened []*hl7Listener
	for _, w := range wants {
		l, err := g.openHL7Listener(w.key, w.cfg, w.handler)
		if err != nil {
			for _, o := range opened {
				o.ln.Close()
			}
			return nil, err
		}
		opened = append(opened, l)
		g.hl7Listeners = append(g.hl7Listeners, l)
		if l.hosts != nil {
			parts = append(parts, part{w.key + " allow-list resolver", l.hosts.run})
		}
		parts = append(parts, part{w.key + " listener", l.run(g)})
	}
	return parts, nil
}

func (g *Gateway) openHL7Listener(key string, c *config.HL7, h hl7.Handler) (*hl7Listener, error) {
	l := &hl7Listener{key: key, cfg: c}
	var names []string
	for _, a := range c.Allow {
		names = append(names, a.Host)
	}
	if len(c.Allow) > 0 {
		l.hosts = newHosts(key+".allow", names, g.log)
	}
	l.server = &hl7.Server{
		Handler:        h,
		MaxMessage:     int(c.MaxMessage),
		IdleTimeout:    c.IdleTimeout.D(),
		MaxConnections: c.MaxConnections,
		Application:    "WARDGATE",
		Facility:       g.cfg.Site,
		Logger:         g.log.With("component", key),
	}
	if len(c.Allow) > 0 {
		l.server.AllowPeer = l.allowPeer
		l.server.AllowSender = l.allowSender
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return nil, fmt.Errorf("%s.listen %s: %w", key, c.Listen, err)
	}
	if c.TLS != nil {
		t, err := dicomTLS(c.TLS) // the same BCP 195 profile as DICOM TLS
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("%s.tls: %w", key, err)
		}
		ln = tls.NewListener(ln, t)
	}
	l.ln = ln
	return l, nil
}

// run serves until ctx ends, then lets the messages being handled be
// acknowledged (within ShutdownTimeout).
func (l *hl7Listener) run(g *Gateway) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		scheme := "mllp"
		if l.cfg.TLS != nil {
			scheme = "mllp over TLS"
		}
		g.log.Info(l.key+" listening", "listen", l.ln.Addr().String(), "transport", scheme)
		served := make(chan error, 1)
		go func() { served <- l.server.Serve(l.ln) }()
		select {
		case err := <-served:
			return fmt.Errorf("%s: %w", l.key, err)
		case <-ctx.Done():
		}
		sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
		defer cancel()
		l.server.Shutdown(sctx)
		<-served
		return nil
	}
}

// allowPeer admits a connection when some entry could take messages from
// it: its host (when given) is the peer's, and its tls_subject (when
// given) the certificate's. Sending application and facility are checked
// per message (allowSender).
func (l *hl7Listener) allowPeer(p hl7.Peer) bool {
	for i := range l.cfg.Allow {
		if l.peerMatches(i, p) {
			return true
		}
	}
	return false
}

func (l *hl7Listener) peerMatches(i int, p hl7.Peer) bool {
	a := l.cfg.Allow[i]
	if !l.hosts.match(i, p.Remote) {
		return false
	}
	if a.TLSSubject != "" {
		return p.Certificate != nil && canonicalSubject(config.TLSSubjectOf(p.Certificate)) == canonicalSubject(a.TLSSubject)
	}
	return true
}

// allowSender takes a message when one entry matches all it gives.
func (l *hl7Listener) allowSender(s hl7.Sender, p hl7.Peer) bool {
	for i, a := range l.cfg.Allow {
		if !l.peerMatches(i, p) {
			continue
		}
		if a.SendingApplication != "" && a.SendingApplication != s.Application {
			continue
		}
		if a.SendingFacility != "" && a.SendingFacility != s.Facility {
			continue
		}
		return true
	}
	return false
}

// pcd01Intake turns PCD-01 results into readings for Ingest.
type pcd01Intake struct {
	g       *Gateway
	decoder pcd01.Decoder
	beds    bedTemplate
	records recordNumbers

	mu       sync.Mutex
	stored   map[string][32]byte // sender|control id → content hash of a message stored
	order    []string            // stored's keys, a ring: order[next] is the oldest once full
	next     int
	problems map[string]*hl7Problem
	bedsSeen map[string]*hl7Bed

	messages, readings, duplicates, reused atomic.Uint64
	demo, notDecoded, held, busy, refused  atomic.Uint64
}

// hl7Problem is one kind of row or message the gateway could not take,
// with how often: never with content.
type hl7Problem struct {
	Reason string    `json:"reason"`
	Count  uint64    `json:"count"`
	Last   time.Time `json:"last"`
}

// hl7Bed is what the results said of one bed lately.
type hl7Bed struct {
	Bed          string    `json:"bed"`
	Sender       string    `json:"sender"`
	LastMessage  time.Time `json:"last_message"`
	Readings     uint64    `json:"readings"`
	NamesPatient bool      `json:"names_patient"` // PID-3 holds a record number
}

const (
	maxHL7Problems = 64
	maxHL7Beds     = 1024
)

func newPCD01Intake(g *Gateway) *pcd01Intake {
	c := g.cfg.HL7
	return &pcd01Intake{
		g:        g,
		decoder:  pcd01.Decoder{Zone: c.Zone, AllowMissingProfile: c.AcceptMissingProfile},
		beds:     bedTemplate(c.Bed),
		records:  newRecordNumbers(g.cfg, c),
		stored:   map[string][32]byte{},
		problems: map[string]*hl7Problem{},
		bedsSeen: map[string]*hl7Bed{},
	}
}

// handle takes one message (hl7.Handler).
func (p *pcd01Intake) handle(ctx context.Context, m *hl7.Message, from hl7.Peer) hl7.Reply {
	received := time.Now()
	p.messages.Add(1)
	rep, err := p.decoder.Decode(m, received)
	if err != nil {
		var pe *pcd01.Error
		if errors.As(err, &pe) {
			p.problem(pe.Where.String() + ": " + pe.Reason)
			p.refused.Add(1)
			return pe.Reply()
		}
		p.refused.Add(1)
		return hl7.Reply{Outcome: hl7.Failed, Code: hl7.ErrInternal, Text: "the message could not be decoded"}
	}
	sender := rep.SendingApplication.Namespace + "|" + rep.SendingFacility.Namespace
	key := sender + "|" + rep.ControlID
	sum := sha256.Sum256([]byte(m.String()))
	if p.isStored(key, sum) {
		p.duplicates.Add(1)
		return hl7.Reply{Outcome: hl7.Accepted}
	}
	for _, pr := range rep.Problems {
		p.problem(pr.String())
	}
	bed := ""
	if rep.HasBed {
		if bed, err = p.beds.bedOfPL(rep.Bed); err != nil {
			p.problem("PV1-3: " + err.Error())
			p.refused.Add(1)
			return hl7.Reply{Outcome: hl7.Failed, Code: hl7.ErrDataType, Where: pv1Bed(m), Text: err.Error()}
		}
	}
	patient := ""
	if rep.HasPatient {
		if patient, err = p.records.patient(rep.Patient); err != nil {
			p.problem(err.Error())
			p.refused.Add(1)
			where, _ := m.Find("PID", 1)
			return hl7.Reply{Outcome: hl7.Failed, Code: hl7.ErrDataType, Where: where.Location(3), Text: err.Error()}
		}
	}
	if bed == "" && patient == "" {
		p.problem("neither PV1-3 nor a record number in PID-3: the readings have no bed and no patient")
		p.refused.Add(1)
		return hl7.Reply{Outcome: hl7.Failed, Code: hl7.ErrRequiredFieldMissing, Where: pv1Bed(m),
			Text: "no bed (PV1-3) and no record number (PID-3): the readings cannot be placed"}
	}
	frames := p.frames(rep, sender, bed, patient, received)
	n := 0
	for _, f := range frames {
		n += len(f)
	}
	if n == 0 {
		if len(rep.Problems) > 0 {
			p.refused.Add(1)
			pr := rep.Problems[0]
			return hl7.Reply{Outcome: hl7.Failed, Code: hl7.ErrDataType, Where: pr.Where,
				Text: fmt.Sprintf("no value could be decoded (%d problems; the first: %s)", len(rep.Problems), pr.Reason)}
		}
		if len(rep.Observations) > 0 {
			// Demo or test values only: taken, never charted.
			p.remember(key, sum)
			return hl7.Reply{Outcome: hl7.Accepted}
		}
		return hl7.Reply{Outcome: hl7.Accepted} // hierarchy rows only: nothing to chart
	}
	held, err := p.g.ingestFrames(ctx, frames)
	if err != nil {
		p.busy.Add(1)
		if ctx.Err() != nil {
			return hl7.Reply{Outcome: hl7.Busy, Text: "the gateway is stopping; send the message again"}
		}
		return hl7.Reply{Outcome: hl7.Busy, Text: "the gateway could not store the readings now; send the message again"}
	}
	if held > 0 {
		p.held.Add(1)
	}
	p.readings.Add(uint64(n))
	p.remember(key, sum)
	p.sawBed(bed, sender, received, n, patient != "")
	return hl7.Reply{Outcome: hl7.Accepted}
}

// frames groups the chartable readings of a report by device, each group
// stamped by that device's clock with the message's time (MSH-7): a
// central station's clock is watched like a monitor's, and its offset
// corrects every time the message carries.
func (p *pcd01Intake) frames(rep *pcd01.Report, sender, bed, patient string, received time.Time) [][]devices.Reading {
	byDevice := map[string][]devices.Reading{}
	var order []string
	type measurement struct {
		device string
		code   uint32
		at     time.Time
	}
	seen := map[measurement]pcd01.Observation{}
	for _, o := range rep.Observations {
		if !o.Chartable() {
			p.demo.Add(1)
			continue
		}
		r := o.Reading
		r.Device = hl7Device(sender, o.Equipment, rep.Device, bed, patient)
		// An Observation is named by device, code and time: a second
		// value of them (another channel, OBX-4) would be taken for the
		// first and lost without a word.
		k := measurement{r.Device, r.Code.Code, r.DeviceTime.UTC()}
		if first, ok := seen[k]; ok {
			if first.Containment != o.Containment || first.Value != o.Value {
				p.problem(o.Where.String() + ": a second value of " + r.Code.RefID + " from one device at one time (another channel, OBX-4): not charted")
			}
			continue
		}
		seen[k] = o
		r.Location, r.NamedPatient = bed, patient
		if _, ok := byDevice[r.Device]; !ok {
			order = append(order, r.Device)
		}
		byDevice[r.Device] = append(byDevice[r.Device], r)
	}
	frames := make([][]devices.Reading, 0, len(order))
	for _, d := range order {
		rs := byDevice[d]
		p.g.clocks.Clock(d, 0, true).Stamp(rs, rep.Sent, time.Time{}, received, false)
		frames = append(frames, rs)
	}
	return frames
}

// hl7Device names the device of a value: the sender (two central stations
// may both call a monitor "BED1") and the equipment that measured it
// (OBX-18, or of its MDS row) by its EUI-64. Without one the name is
// OBX-18's name (a model's, "B40_GE", may be the same at every bed) or
// MSH-3's (which the decoder gives such rows; for a central station the
// station itself, the same for every bed): the bed (or, without one, the
// patient) is then part of the name, since an
// Observation is named by device, code and time, and two beds' heart rates
// of one second must not be taken for one measurement.
func hl7Device(sender string, equipment, msh3 pcd01.Identity, bed, patient string) string {
	if equipment.EUI64 != "" && equipment != msh3 {
		return "hl7/" + sender + "/" + equipment.EUI64
	}
	// A name without an EUI-64 (OBX-18 "^B40_GE") may be the model's,
	// the same at every bed: scoped like MSH-3's.
	if equipment.Name != "" && equipment != msh3 {
		msh3 = equipment
	}
	scope := bed
	if scope == "" {
		sum := sha256.Sum256([]byte(patient))
		scope = fmt.Sprintf("patient-%x", sum[:8])
	}
	name := msh3.Key()
	if name == "" {
		name = "unnamed"
	}
	return "hl7/" + sender + "/" + name + "@" + scope
}

func pv1Bed(m *hl7.Message) hl7.Location {
	if s, ok := m.Find("PV1", 1); ok {
		return s.Location(3)
	}
	return hl7.Location{Segment: "PV1", Seq: 1, Field: 3}
}

func (p *pcd01Intake) isStored(key string, sum [32]byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	old, ok := p.stored[key]
	if ok && old != sum {
		p.reused.Add(1) // a control id sent again with other content: a new message
	}
	return ok && old == sum
}

func (p *pcd01Intake) remember(key string, sum [32]byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.stored[key]; !ok {
		if len(p.order) < hl7DedupeSize {
			p.order = append(p.order, key)
		} else {
			delete(p.stored, p.order[p.next])
			p.order[p.next] = key
			p.next = (p.next + 1) % hl7DedupeSize
		}
	}
	p.stored[key] = sum
}

// evictOldest makes room for one more in a map bounded to limit: the entry
// whose time is oldest goes.
func evictOldest[V any](m map[string]V, limit int, at func(V) time.Time) {
	if len(m) < limit {
		return
	}
	var oldest string
	for k, v := range m {
		if oldest == "" || at(v).Before(at(m[oldest])) {
			oldest = k
		}
	}
	delete(m, oldest)
}

func (p *pcd01Intake) problem(reason string) {
	p.notDecoded.Add(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	pr := p.problems[reason]
	if pr == nil {
		evictOldest(p.problems, maxHL7Problems, func(v *hl7Problem) time.Time { return v.Last })
		pr = &hl7Problem{Reason: reason}
		p.problems[reason] = pr
	}
	pr.Count++
	pr.Last = time.Now()
}

func (p *pcd01Intake) sawBed(bed, sender string, at time.Time, n int, named bool) {
	if bed == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.bedsSeen[bed]
	if b == nil {
		evictOldest(p.bedsSeen, maxHL7Beds, func(v *hl7Bed) time.Time { return v.LastMessage })
		b = &hl7Bed{Bed: bed}
		p.bedsSeen[bed] = b
	}
	b.Sender, b.LastMessage, b.NamesPatient = strings.TrimSuffix(sender, "|"), at, named
	b.Readings += uint64(n)
}

// hl7Report is the HL7 results' part of the snapshot.
type hl7Report struct {
	Listen     string          `json:"listen"`
	Server     hl7.ServerStats `json:"server"`
	Messages   uint64          `json:"messages"`
	Readings   uint64          `json:"readings"`
	Duplicates uint64          `json:"duplicates"`         // copies of stored messages, acknowledged again
	Reused     uint64          `json:"control_ids_reused"` // a control id sent again with other content
	Demo       uint64          `json:"demo_or_test_values"`
	NotDecoded uint64          `json:"problems"`        // rows or messages not taken
	Held       uint64          `json:"messages_held"`   // messages some of whose readings wait
	Busy       uint64          `json:"busy"`            // answered RETRY: not stored now
	Refused    uint64          `json:"refused"`         // answered AE/AR
	Problems   []hl7Problem    `json:"recent_problems"` // most recent first
	Beds       []hl7Bed        `json:"beds"`
}

func (p *pcd01Intake) report(l *hl7Listener) *hl7Report {
	r := &hl7Report{
		Messages: p.messages.Load(), Readings: p.readings.Load(), Duplicates: p.duplicates.Load(), Reused: p.reused.Load(),
		Demo: p.demo.Load(), NotDecoded: p.notDecoded.Load(), Held: p.held.Load(), Busy: p.busy.Load(), Refused: p.refused.Load(),
		Problems: []hl7Problem{}, Beds: []hl7Bed{},
	}
	if l != nil {
		r.Listen, r.Server = l.ln.Addr().String(), l.server.Stats()
	}
	p.mu.Lock()
	for _, pr := range p.problems {
		r.Problems = append(r.Problems, *pr)
	}
	for _, b := range p.bedsSeen {
		r.Beds = append(r.Beds, *b)
	}
	p.mu.Unlock()
	sort.Slice(r.Problems, func(i, j int) bool { return r.Problems[i].Last.After(r.Problems[j].Last) })
	sort.Slice(r.Beds, func(i, j int) bool { return r.Beds[i].Bed < r.Beds[j].Bed })
	return r
}

// hl7Report is the snapshot's hl7 part; nil without an hl7 section (or
// before it listens).
func (g *Gateway) hl7Report() *hl7Report {
	if g.pcd == nil {
		return nil
	}
	for _, l := range g.hl7Listeners {
		if l.key == "hl7" {
			return g.pcd.report(l)
		}
	}
	return g.pcd.report(nil)
}
