package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/wardgate/wardgate/devices/sim/hl7sim"
	"github.com/wardgate/wardgate/edge/fhir/fhirserver"
)

// The demo's central station: two more beds whose monitors report through
// a central station (IHE PCD-01 results over MLLP, as most monitored beds
// do) and whose patients come from the hospital's ADT feed. Its results
// carry no PID-3, so the feed alone says whose values they are.
const (
	demoStationWard = "WARD4B" // PV1-3.1; with the bed template {point_of_care}-{bed}, bed 16 is WARD4B-BED16
	// demoStationBeds are the station's beds, BED1 … BED18: the demo's
	// patients lie in demoHL7Beds; the other beds stay empty and, in
	// standby, send nothing.
	demoStationBeds = 18
	// demoStationApp is MSH-3.1 of the results; the station's ADT feed is
	// demoStationApp_ADT (hl7sim names it so). The listeners' allow lists
	// name both.
	demoStationApp = "CENTRAL"
	// demoAuthority is the assigning authority of the record numbers in
	// PID-3 (hl7.assigning_authority, patients.adt.assigning_authority).
	demoAuthority = "HOSP"
	// demoResultsEvery is the time between two results of a bed.
	demoResultsEvery = 5 * time.Second
	// demoADTEvery is the time between two rounds of ADT events after the
	// admissions: a discharge, a transfer and an admission, a result
	// cycle apart, so each bed is empty for one cycle only.
	demoADTEvery = time.Minute
)

// demoHL7Beds are the station's beds the demo's patients lie in (from 1).
var demoHL7Beds = [2]int{16, 18}

// demoHL7Bed is the wardgate bed id the demo's hl7 bed template makes of
// the station's bed n.
func demoHL7Bed(n int) string { return fmt.Sprintf("%s-BED%d", demoStationWard, n) }

// centralStation is the demo's simulated central station and the record
// it admits its patients into.
type centralStation struct {
	station  *hl7sim.Station
	results  *hl7sim.Client
	adt      *hl7sim.Client
	record   *fhirserver.Server
	log      *slog.Logger
	admitted int // patients admitted so far: the record's ids demo-adt-1 …
}

// runCentralStation admits a patient to each of demoHL7Beds through the
// ADT feed at adtAddr, then sends their results to hl7Addr every
// demoResultsEvery, and every demoADTEvery a round of ADT events: the
// patient of bed 16 goes home, the patient of bed 18 moves to bed 16, a
// new patient comes into bed 18. Each patient is in the record before the
// feed names them, as the registration system makes sure. An ADT event is
// acknowledged before the results of its time are sent, so they are
// placed by it. It returns when ctx ends.
func runCentralStation(ctx context.Context, hl7Addr, adtAddr string, record *fhirserver.Server, log *slog.Logger) {
	st, err := hl7sim.New(hl7sim.Config{
		Beds: demoStationBeds, Ward: demoStationWard, Application: demoStationApp, Authority: demoAuthority,
		NoPatient: true, Standby: true, Seed: uint64(time.Now().UnixNano()) + 2, RunID: "DEMO",
	})
	if err != nil {
		log.Warn("demo: the simulated central station did not start", "err", err)
		return
	}
	c := &centralStation{station: st, results: &hl7sim.Client{Addr: hl7Addr}, adt: &hl7sim.Client{Addr: adtAddr}, record: record, log: log}
	defer c.results.Close()
	defer c.adt.Close()
	log.Info("demo: the simulated central station started", "hl7", hl7Addr, "adt", adtAddr,
		"beds", demoHL7Bed(demoHL7Beds[0])+" "+demoHL7Bed(demoHL7Beds[1]), "every", demoResultsEvery)

	now := time.Now()
	for _, b := range demoHL7Beds {
		if !c.event(ctx, func() (hl7sim.Message, error) { return c.admit(b, now) }) {
			return
		}
	}
	round := []func(at time.Time) (hl7sim.Message, error){
		func(at time.Time) (hl7sim.Message, error) { return st.Discharge(demoHL7Beds[0], at) },
		func(at time.Time) (hl7sim.Message, error) { return st.Transfer(demoHL7Beds[1], demoHL7Beds[0], at) },
		func(at time.Time) (hl7sim.Message, error) { return c.admit(demoHL7Beds[1], at) },
	}
	step, nextRound := 0, now.Add(demoADTEvery)
	tick := time.NewTicker(demoResultsEvery)
	defer tick.Stop()
	for {
		if step > 0 || !now.Before(nextRound) {
			at := now
			if !c.event(ctx, func() (hl7sim.Message, error) { return round[step](at) }) {
				return
			}
			if step = (step + 1) % len(round); step == 0 {
				nextRound = now.Add(demoADTEvery)
			}
		}
		for _, m := range st.Results(now) {
			if !c.send(ctx, c.results, m) {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case now = <-tick.C:
		}
	}
}

// admit puts a new patient into the record, then into bed n.
func (c *centralStation) admit(n int, at time.Time) (hl7sim.Message, error) {
	m, err := c.station.Admit(n, at)
	if err != nil {
		return m, err
	}
	c.admitted++
	id := fmt.Sprintf("demo-adt-%d", c.admitted)
	c.record.Put("Patient", id, json.RawMessage(`{"resourceType":"Patient","id":"`+id+`","active":true,`+
		`"identifier":[{"system":"`+demoMRNSystem+`","value":"`+c.station.Patient(n)+`"}]}`))
	return m, nil
}

// event makes one ADT event and sends it; false when ctx ended.
func (c *centralStation) event(ctx context.Context, next func() (hl7sim.Message, error)) bool {
	m, err := next()
	if err != nil { // the station's beds are not as the round expects: a bug here
		c.log.Warn("demo: the simulated central station's ADT event", "err", err)
		return true
	}
	if !c.send(ctx, c.adt, m) {
		return false
	}
	c.log.Info("demo: the simulated central station's ADT feed sent an event", "event", m.Kind, "bed", demoHL7Bed(m.Bed))
	return true
}

// send sends m and waits for its acknowledgement; false when ctx ended. A
// refusal is logged (the message's bed and kind only: no patient data)
// and the station goes on, as a central station does.
func (c *centralStation) send(ctx context.Context, to *hl7sim.Client, m hl7sim.Message) bool {
	err := to.Send(ctx, m.Bytes)
	if ctx.Err() != nil {
		return false
	}
	var rej *hl7sim.RejectedError
	switch {
	case errors.As(err, &rej):
		c.log.Warn("demo: the gateway refused a message of the simulated central station", "kind", m.Kind, "bed", demoHL7Bed(m.Bed), "ack", rej.Code, "reason", rej.Text)
	case err != nil:
		c.log.Warn("demo: the simulated central station could not send a message", "kind", m.Kind, "bed", demoHL7Bed(m.Bed), "err", err)
	}
	return true
}
