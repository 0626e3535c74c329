package edge

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wardgate/wardgate/edge/config"
	"github.com/wardgate/wardgate/edge/fhir"
)

// beds knows which patient lies in which bed at a given time: from the
// config's static table first, then, when configured, from the record (the
// in-progress Encounter at the bed's Location), cached for a TTL. It never
// guesses: an unknown, ambiguous or unreachable answer is "no patient", and
// the readings wait (see held.go).
type beds struct {
	manual *associations // set through the admin API; first (associations.go)
	static map[string]string
	client *fhir.Client
	system string
	ttl    time.Duration
	log    interface {
		Warn(string, ...any)
	}

	mu        sync.Mutex
	cache     map[string]bedAnswer
	firstSeen map[string]time.Time // bed|Encounter → when first seen, for Encounters without a start

	lookups, failures, ambiguous atomic.Uint64
}

type bedAnswer struct {
	p       fhir.BedPatient
	err     error
	expires time.Time
}

// failureTTL is how long a failed lookup is remembered: long enough that a
// FHIR server that is down does not slow every frame, short enough that
// readings wait little once it is back.
const failureTTL = 10 * time.Second

// lookupTimeout bounds one Encounter search made while a frame waits.
const lookupTimeout = 3 * time.Second

func newBeds(c *config.Config, client *fhir.Client, log interface{ Warn(string, ...any) }) *beds {
	b := &beds{static: c.Patients.Static, client: client, log: log, cache: map[string]bedAnswer{}, firstSeen: map[string]time.Time{}}
	if e := c.Patients.EncounterLookup; e != nil {
		b.system, b.ttl = e.LocationSystem, e.TTL.D()
	}
	return b
}

// patient returns the Patient reference for bed at time at, if one is
// known for that time.
func (b *beds) patient(bed string, at time.Time) (string, bool) {
	if ref, ok := b.manual.patient(bed, at); ok {
		return ref, true
	}
	if ref, ok := b.static[bed]; ok {
		return ref, true
	}
	if b.system == "" || b.client == nil {
		return "", false
	}
	a := b.answer(bed)
	if a.err != nil || a.p.Patient == "" {
		return "", false
	}
	// A reading from before this stay began belongs to someone else (or
	// to no one): never to the patient who came after it.
	if at.Before(a.p.Since) {
		return "", false
	}
	return a.p.Patient, true
}

func (b *beds) answer(bed string) bedAnswer {
	now := time.Now()
	b.mu.Lock()
	a, ok := b.cache[bed]
	b.mu.Unlock()
	if ok && now.Before(a.expires) {
		return a
	}
	// Lookups for different beds may run at once; two for the same bed
	// at worst ask twice.
	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	defer cancel()
	b.lookups.Add(1)
	p, err := b.client.FindBedPatient(ctx, b.system, bed)
	a = bedAnswer{p: p, err: err, expires: now.Add(b.ttl)}
	if err != nil {
		a.expires = now.Add(failureTTL)
		if errors.Is(err, fhir.ErrAmbiguousBed) {
			b.ambiguous.Add(1)
			a.expires = now.Add(b.ttl)
			b.log.Warn("two patients' in-progress Encounters are at one bed; its readings wait until the record is corrected", "bed", bed)
		} else {
			b.failures.Add(1)
			b.log.Warn("bed lookup failed; the bed's readings wait", "bed", bed, "err", err)
		}
	}
	b.mu.Lock()
	if err == nil && p.Encounter != "" && p.Since.IsZero() {
		// An Encounter without a start: it counts from when the gateway
		// first saw it at this bed, so that readings held from before (or
		// queued at a broker) do not go to a patient who came later.
		key := bed + "|" + p.Encounter
		first, seen := b.firstSeen[key]
		if !seen {
			if len(b.firstSeen) > 10000 {
				b.firstSeen = map[string]time.Time{}
			}
			first = now
			b.firstSeen[key] = first
		}
		a.p.Since = first
	}
	b.cache[bed] = a
	b.mu.Unlock()
	return a
}
