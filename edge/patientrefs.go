package edge

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/wardgate/wardgate/edge/fhir"
)

// patientRefs finds which Patient a record number is, so that a patient
// named by record number (an HL7 result's PID-3, the ADT feed) can be
// compared with one named by reference (a manual association,
// patients.static, an Encounter). The record is asked in the background,
// at most once per refresh per number; a number that is no Patient or
// several is no answer, and never a match. Safe for concurrent use.
type patientRefs struct {
	client  *fhir.Client
	timeout time.Duration
	refresh time.Duration
	kick    func()

	mu sync.Mutex
	m  map[string]*patientRefEntry
}

type patientRefEntry struct {
	literal string // "Patient/123"; "" while not known
	why     string // no patient, several, or the record did not answer
	// answered is when the lookup was sent whose answer was no Patient or
	// several (zero: not asked yet, or the last lookup failed).
	answered time.Time
	asked    time.Time
	inflight bool
}

const maxPatientRefs = 10_000

// DefaultPatientRefRefresh is the least time between two lookups of one
// record number.
const DefaultPatientRefRefresh = 5 * time.Second

// literal is the literal reference of a conditional one
// (Patient?identifier=system|value): known, or why not (and whether it is
// being asked now). A reference already literal is itself. asOf, when
// not zero, is when the record was asked for the answer why gives: no
// Patient, or several (an answer, which lets a waiting reading's hold run
// out, unlike a record that did not answer).
func (p *patientRefs) literal(ctx context.Context, ref string) (lit string, why string, asOf time.Time) {
	if !strings.HasPrefix(ref, "Patient?") {
		return ref, "", time.Time{}
	}
	system, value, ok := fhir.ParseConditionalPatient(ref)
	if !ok || p == nil || p.client == nil {
		return "", "the record number cannot be looked up", time.Time{}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]*patientRefEntry{}
	}
	r := p.m[ref]
	if r == nil {
		if len(p.m) >= maxPatientRefs {
			p.m = map[string]*patientRefEntry{}
		}
		r = &patientRefEntry{why: "the record has not been asked which Patient the record number is"}
		p.m[ref] = r
	}
	if r.literal == "" && !r.inflight && time.Since(r.asked) >= p.refresh {
		r.inflight, r.asked = true, time.Now()
		go p.lookup(context.WithoutCancel(ctx), ref, system, value, r)
	}
	return r.literal, r.why, r.answered
}

func (p *patientRefs) lookup(ctx context.Context, ref, system, value string, r *patientRefEntry) {
	lctx, cancel := context.WithTimeout(ctx, p.timeout)
	sent := time.Now()
	refs, err := p.client.FindPatients(lctx, system, value)
	cancel()
	p.mu.Lock()
	r.inflight = false
	switch {
	case err != nil:
		r.why, r.answered = "the record did not answer which Patient the record number is: "+failureClass(err), time.Time{}
	case len(refs) == 0:
		r.why, r.answered = "no Patient in the record carries the record number", sent
	case len(refs) > 1:
		r.why, r.answered = "several Patients in the record carry the record number", sent
	default:
		r.literal, r.why = refs[0], ""
	}
	p.mu.Unlock()
	if p.kick != nil {
		p.kick()
	}
}
