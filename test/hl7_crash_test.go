package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices/hl7"
	"github.com/wardgate/wardgate/devices/sim/hl7sim"
	"github.com/wardgate/wardgate/edge/fhir"
	"github.com/wardgate/wardgate/edge/fhir/fhirserver"
)

// Issue 12, "Tests": SIGKILL during a stream of HL7 PCD-01 results on
// several connections → every message that got AA is charted exactly once;
// the same message sent twice → charted once, acknowledged twice.
//
// A reading is named here by what the sender wrote, not by the gateway's
// identifier scheme: the patient (PID-3, one per bed), the MDC code (the
// NIBP members 150021–150023 are charted as one panel, 150020) and the
// OBX-14 time. Each simulated bed sends one result per second of its own
// clock, so within a bed every (code, time) is one measurement; the
// central station repeats the last NIBP with its own time in every result,
// and that is one measurement too, however many messages carry it.

// hl7Config is the hl7 section of the gateway under test: PID-3 record
// numbers of the authority HOSP are fhir.patient_identifier_system's
// (urn:oid:1.2.3.4 in gatewayConfig).
func hl7Config(port int) string {
	return fmt.Sprintf(`hl7:
  listen: "127.0.0.1:%d"
  allow_any: true
  time_zone: UTC
  assigning_authority: HOSP
  bed: "{point_of_care}-{bed}"
`, port)
}

// putHL7Patient puts the Patient of a record number into the record, with
// the record number as its id, so that the gateway's conditional reference
// (Patient?identifier=urn:oid:1.2.3.4|MRN) resolves and Patient/MRN is the
// subject charted.
func putHL7Patient(record *fhirserver.Server, mrn string) {
	record.Put("Patient", mrn, json.RawMessage(`{"resourceType":"Patient","id":"`+mrn+
		`","identifier":[{"system":"urn:oid:1.2.3.4","value":"`+mrn+`"}]}`))
}

// hl7ReadingKeys are the readings a PCD-01 result carries, as
// "MRN|code|time" (time as the record writes it, UTC): every numeric OBX
// row that is not a hierarchy row.
func hl7ReadingKeys(t testing.TB, msg []byte) []string {
	t.Helper()
	m, err := hl7.Parse(msg, hl7.Limits{})
	if err != nil {
		t.Fatalf("a message the station wrote does not parse: %v", err)
	}
	mrn := m.Field("PID", 1, 3).Comp(1).Text()
	if mrn == "" {
		t.Fatalf("a message without a record number in PID-3:\n%s", msg)
	}
	var keys []string
	for n := 1; ; n++ {
		s, ok := m.Find("OBX", n)
		if !ok {
			break
		}
		if s.Field(2).Text() != "NM" || s.Field(11).Text() == "X" {
			continue
		}
		code := s.Field(3).Comp(1).Text()
		switch code { // NIBP members: one panel Observation
		case "150021", "150022", "150023":
			code = "150020"
		}
		at, err := time.Parse("20060102150405-0700", s.Field(14).Text())
		if err != nil {
			t.Fatalf("OBX-14 %q: %v", s.Field(14).Text(), err)
		}
		k := mrn + "|" + code + "|" + at.UTC().Format(time.RFC3339)
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	return keys
}

// identityTail is the end of an Observation's identifier: the code and the
// device time that name the measurement, and a repeat mark when the
// gateway took the device's clock to have been set back over that time.
var identityTail = regexp.MustCompile(`/(\d+)/([0-9T:.\-]+(?:Z|[+-]\d\d:\d\d))(/repeat\d+)?$`)

// chartedReading is one Observation of the record, read back.
type chartedReading struct {
	key, identifier, effective string
}

// hl7Charted reads the record's Observations back as readings; t fails on
// one whose identifier or subject cannot be read.
func hl7Charted(t testing.TB, record *fhirserver.Server) []chartedReading {
	t.Helper()
	var out []chartedReading
	for _, raw := range record.Resources("Observation") {
		var o fhir.Observation
		if err := json.Unmarshal(raw, &o); err != nil {
			t.Fatalf("an Observation in the record does not read: %v\n%s", err, raw)
		}
		if len(o.Identifier) == 0 || o.Subject == nil {
			t.Fatalf("an Observation without identifier or subject:\n%s", raw)
		}
		id := o.Identifier[0].Value
		m := identityTail.FindStringSubmatch(id)
		if m == nil {
			t.Fatalf("an Observation's identifier %q does not end in /code/time", id)
		}
		at, err := time.Parse(time.RFC3339Nano, m[2])
		if err != nil {
			t.Fatalf("identifier %q: time %q: %v", id, m[2], err)
		}
		mrn := strings.TrimPrefix(o.Subject.Reference, "Patient/")
		out = append(out, chartedReading{
			key:        mrn + "|" + m[1] + "|" + at.UTC().Format(time.RFC3339),
			identifier: id, effective: o.EffectiveDateTime,
		})
	}
	return out
}

// checkHL7Record compares the record with the readings expected (every
// reading of every acknowledged message): each exactly once, under one
// identifier, and nothing else. It returns what it found wrong.
func checkHL7Record(t testing.TB, record *fhirserver.Server, expected map[string]bool) (problems []string, charted int) {
	t.Helper()
	got := hl7Charted(t, record)
	byIdentifier := map[string]int{}
	byKey := map[string][]string{}
	for _, c := range got {
		byIdentifier[c.identifier]++
		byKey[c.key] = append(byKey[c.key], c.identifier)
	}
	var twice, doubled, unsent, missing []string
	for id, n := range byIdentifier {
		if n > 1 {
			twice = append(twice, fmt.Sprintf("%s ×%d", id, n))
		}
	}
	for k, ids := range byKey {
		if !expected[k] {
			unsent = append(unsent, k)
		}
		if len(ids) > 1 {
			doubled = append(doubled, fmt.Sprintf("%s under %d identifiers %q", k, len(ids), ids))
		}
	}
	for k := range expected {
		if len(byKey[k]) == 0 {
			missing = append(missing, k)
		}
	}
	report := func(what string, l []string) {
		if len(l) == 0 {
			return
		}
		sort.Strings(l)
		problems = append(problems, fmt.Sprintf("%d %s; the first: %s", len(l), what, strings.Join(l[:min(len(l), 10)], "; ")))
	}
	report("identifiers in the record more than once", twice)
	report("readings charted as more than one Observation", doubled)
	report("readings charted that no acknowledged message carried", unsent)
	report("readings of acknowledged messages missing from the record", missing)
	if len(got) != len(expected) {
		problems = append(problems, fmt.Sprintf("the record holds %d Observations, want %d", len(got), len(expected)))
	}
	return problems, len(got)
}

// hl7Status is what the tests read of /readyz.
type hl7Status struct {
	Outbox struct {
		Waiting     int `json:"waiting"`
		InFlight    int `json:"in_flight"`
		DeadLetters int `json:"dead_letters"`
		Held        struct {
			Waiting    int    `json:"waiting"`
			FramesHeld uint64 `json:"frames_held"`
		} `json:"held"`
		RecentDeadLetters []struct {
			Kind, Key, Reason string
		} `json:"recent_dead_letters"`
	} `json:"outbox"`
	HL7 *struct {
		Messages   uint64 `json:"messages"`
		Readings   uint64 `json:"readings"`
		Duplicates uint64 `json:"duplicates"`
		Busy       uint64 `json:"busy"`
		Refused    uint64 `json:"refused"`
		Held       uint64 `json:"messages_held"`
		NotDecoded uint64 `json:"problems"`
		Problems   []struct {
			Reason string `json:"reason"`
			Count  uint64 `json:"count"`
		} `json:"recent_problems"`
	} `json:"hl7"`
}

func readHL7Status(t testing.TB, addr string) (hl7Status, string) {
	t.Helper()
	var s hl7Status
	code, v := getJSON(t, "http://"+addr+"/readyz")
	b, _ := json.Marshal(v)
	if code != 200 {
		t.Fatalf("/readyz answered %d: %s", code, b)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("/readyz: %v", err)
	}
	return s, string(b)
}

// waitHL7Drained waits until nothing waits in the outbox or the held store
// and the record's Observation count has stopped moving, then returns the
// last status.
func waitHL7Drained(t testing.TB, gw *Process, addr string, record *fhirserver.Server, within time.Duration) hl7Status {
	t.Helper()
	deadline := time.Now().Add(within)
	last, stable := -1, 0
	for {
		s, raw := readHL7Status(t, addr)
		n := record.Count("Observation")
		empty := s.Outbox.Waiting == 0 && s.Outbox.InFlight == 0 && s.Outbox.Held.Waiting == 0
		if empty && n == last {
			stable++
		} else {
			stable = 0
		}
		last = n
		if stable >= 3 {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("the outbox did not drain within %v: %d Observations in the record; status %s\nwardgate log:\n%s", within, n, raw, gw.Log())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// hl7Message is one message of the stream and what became of it.
type hl7Message struct {
	id    string
	at    time.Time // MSH-7: not sent before then
	bytes []byte
	keys  []string

	sendStart, acked time.Time
	err              error
}

// SIGKILL in the middle of a stream of 10,000 PCD-01 results from four
// central stations (one connection each, 100 beds each, one result per bed
// per second, each waiting for its ACK as a station does): after a restart
// on the same data folder the stations reconnect and send again, the same
// bytes, what was not acknowledged. Every reading of every message that got
// AA is in the record exactly once, and nothing else is.
func TestHL7CrashDuringStreamChartsEveryAcknowledgedReadingOnce(t *testing.T) {
	const (
		stations    = 4
		bedsEach    = 100
		perStation  = 2500 // 10,000 messages in all
		killAfterAA = 4000
	)
	began := time.Now()
	port := freePort(t)
	record, cfg, _ := recordWith(t, hl7Config(port))

	// The stations' results, one cycle a second from the next second on:
	// each bed's OBX-14 times are its own seconds, so every reading of the
	// stream is its own measurement. A result is not sent before its time,
	// as a station sends what it has measured.
	start := time.Now().Truncate(time.Second).Add(time.Second)
	streams := make([][]*hl7Message, stations)
	expected := map[string]bool{}
	byID := map[string]*hl7Message{}
	for s := range stations {
		st, err := hl7sim.New(hl7sim.Config{
			Beds: bedsEach, Ward: fmt.Sprintf("WARD%d", s+1), Application: fmt.Sprintf("CENTRAL%d", s+1),
			Authority: "HOSP", Seed: uint64(1200 + s), RunID: fmt.Sprintf("K%dX", s+1),
		})
		if err != nil {
			t.Fatal(err)
		}
		st.Occupy()
		for b := 1; b <= bedsEach; b++ {
			putHL7Patient(record, st.Patient(b))
		}
		for c := 0; len(streams[s]) < perStation; c++ {
			at := start.Add(time.Duration(c) * time.Second)
			for _, m := range st.Results(at) {
				if len(streams[s]) == perStation {
					break
				}
				msg := &hl7Message{id: m.ControlID, at: at, bytes: m.Bytes, keys: hl7ReadingKeys(t, m.Bytes)}
				if byID[msg.id] != nil {
					t.Fatalf("control id %s twice in the stream", msg.id)
				}
				byID[msg.id] = msg
				streams[s] = append(streams[s], msg)
			}
		}
	}

	gw := Start(t, "run", "-config", cfg)
	gw.WaitLog(t, `hl7 listening`, 30*time.Second)
	gw.WaitLog(t, statusRe, 30*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var acked atomic.Int64
	var mu sync.Mutex // guards the messages' sendStart, acked and err
	clients := make([]*hl7sim.Client, stations)
	var wg sync.WaitGroup
	for s := range stations {
		c := &hl7sim.Client{Addr: fmt.Sprintf("127.0.0.1:%d", port), Connections: 1,
			AckTimeout: 20 * time.Second, MinBackoff: 20 * time.Millisecond, MaxBackoff: 300 * time.Millisecond}
		clients[s] = c
		wg.Go(func() {
			defer c.Close()
			for _, m := range streams[s] {
				if d := time.Until(m.at); d > 0 {
					select {
					case <-time.After(d):
					case <-ctx.Done():
						return
					}
				}
				mu.Lock()
				m.sendStart = time.Now()
				mu.Unlock()
				err := c.Send(ctx, m.bytes)
				mu.Lock()
				if err == nil {
					m.acked = time.Now()
					acked.Add(1)
				} else {
					m.err = err
				}
				mu.Unlock()
				if err != nil && ctx.Err() != nil {
					return
				}
			}
		})
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	defer func() { cancel(); <-finished }()

	// The kill, in the middle of the stream.
	Eventually(t, 60*time.Second, func() bool { return acked.Load() >= killAfterAA },
		func() string {
			return fmt.Sprintf("only %d messages acknowledged before the kill\n%s", acked.Load(), gw.Log())
		})
	gw.Cmd.Process.Signal(syscall.SIGKILL)
	gw.Wait(t, 30*time.Second)
	killedAt := time.Now()
	ackedAtKill := acked.Load()
	chartedAtKill := record.Count("Observation")

	again := Start(t, "run", "-config", cfg)
	again.WaitLog(t, `hl7 listening`, 30*time.Second)
	addr := again.WaitLog(t, statusRe, 30*time.Second)
	restartedAt := time.Now()

	select {
	case <-finished:
	case <-ctx.Done():
		t.Fatalf("the stream did not finish: %d of %d acknowledged\n%s", acked.Load(), stations*perStation, again.Log())
	}
	streamDone := time.Now()

	// Every message got its AA in the end: the stations send again until it
	// comes.
	var notAcked []string
	crossed := 0 // sent before the kill, acknowledged after the restart
	for _, s := range streams {
		for _, m := range s {
			if m.acked.IsZero() {
				notAcked = append(notAcked, fmt.Sprintf("%s: %v", m.id, m.err))
				continue
			}
			for _, k := range m.keys {
				expected[k] = true
			}
			if m.sendStart.Before(killedAt) && m.acked.After(killedAt) {
				crossed++
			}
		}
	}
	if len(notAcked) > 0 {
		t.Fatalf("%d messages were never acknowledged; the first: %s\nwardgate log after the restart:\n%s",
			len(notAcked), strings.Join(notAcked[:min(10, len(notAcked))], "; "), again.Log())
	}

	st := waitHL7Drained(t, again, addr, record, 60*time.Second)
	drained := time.Now()
	if st.Outbox.DeadLetters != 0 {
		t.Fatalf("%d dead letters (readings the record refused): %+v\nwardgate log:\n%s", st.Outbox.DeadLetters, st.Outbox.RecentDeadLetters, again.Log())
	}
	if st.HL7 == nil {
		t.Fatalf("/readyz has no hl7 part\n%s", again.Log())
	}
	problems, charted := checkHL7Record(t, record, expected)
	var stats []string
	for s, c := range clients {
		x := c.Stats()
		stats = append(stats, fmt.Sprintf("station %d: acked %d, sent again %d (busy %d), connections lost %d, dials %d (failed %d), rejected %d",
			s+1, x.Acked, x.Retried, x.Busy, x.Lost, x.Dials, x.FailedDials, x.Rejected))
	}
	summary := fmt.Sprintf("%d messages acknowledged (%d before the kill, %d sent before it and acknowledged after the restart), "+
		"%d Observations in the record (%d at the kill), %d expected; after the restart the gateway saw %d messages, %d copies, %d busy, %d refused, %d held\n%s",
		acked.Load(), ackedAtKill, crossed, charted, chartedAtKill, len(expected),
		st.HL7.Messages, st.HL7.Duplicates, st.HL7.Busy, st.HL7.Refused, st.HL7.Held, strings.Join(stats, "\n"))
	if len(problems) > 0 {
		t.Fatalf("the record after a SIGKILL mid-stream:\n%s\n%s\nwardgate log before the kill:\n%s\nwardgate log after the restart:\n%s",
			strings.Join(problems, "\n"), summary, gw.Log(), again.Log())
	}
	if st.HL7.Refused != 0 || st.HL7.NotDecoded != 0 {
		t.Fatalf("the gateway refused %d messages and could not decode %d rows: %+v", st.HL7.Refused, st.HL7.NotDecoded, st.HL7.Problems)
	}
	t.Logf("%s", summary)
	t.Logf("timeline: kill at %.1fs, listening again %.1fs later, stream done at %.1fs, record complete at %.1fs",
		killedAt.Sub(began).Seconds(), restartedAt.Sub(killedAt).Seconds(), streamDone.Sub(began).Seconds(), drained.Sub(began).Seconds())

	again.Cmd.Process.Signal(syscall.SIGTERM)
	if code := again.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM\n%s", code, again.Log())
	}
}

// mllpSend writes msg on c and returns MSA-1 and MSA-2 of its
// acknowledgement.
func mllpSend(t *testing.T, c net.Conn, r *hl7.Reader, msg []byte) (code, echoed string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if err := hl7.WriteFrame(c, msg); err != nil {
		t.Fatalf("sending: %v", err)
	}
	raw, err := r.ReadMessage()
	if err != nil {
		t.Fatalf("no acknowledgement: %v", err)
	}
	ack, err := hl7.Parse(raw, hl7.Limits{})
	if err != nil {
		t.Fatalf("the acknowledgement does not parse: %v\n%q", err, raw)
	}
	return ack.Field("MSA", 1, 1).Text(), ack.Field("MSA", 1, 2).Text()
}

// The same message sent twice on one connection is acknowledged twice and
// charted once; sent a third time after a SIGKILL and a restart (the
// gateway no longer remembers it) it is acknowledged again and still
// charted once.
func TestHL7CrashSameMessageTwiceChartedOnce(t *testing.T) {
	port := freePort(t)
	record, cfg, _ := recordWith(t, hl7Config(port))
	st, err := hl7sim.New(hl7sim.Config{Beds: 1, Ward: "WARD9", Application: "CENTRAL9", Authority: "HOSP", Seed: 99, RunID: "TWICE"})
	if err != nil {
		t.Fatal(err)
	}
	st.Occupy()
	putHL7Patient(record, st.Patient(1))
	// A few results of the past, the first sent twice; the last carries
	// the NIBP the station repeats.
	at := time.Now().Add(-10 * time.Second).Truncate(time.Second)
	var msgs []hl7sim.Message
	for c := 0; len(msgs) < 3; c++ {
		if m, ok := st.Result(1, at.Add(time.Duration(c)*time.Second)); ok {
			msgs = append(msgs, m)
		}
	}
	twice := msgs[0]
	expected := map[string]bool{}
	for _, m := range msgs {
		for _, k := range hl7ReadingKeys(t, m.Bytes) {
			expected[k] = true
		}
	}

	gw := Start(t, "run", "-config", cfg)
	gw.WaitLog(t, `hl7 listening`, 30*time.Second)
	addr := gw.WaitLog(t, statusRe, 30*time.Second)
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := hl7.NewReader(c, hl7.DefaultMaxBytes)
	for i, m := range [][]byte{twice.Bytes, twice.Bytes, msgs[1].Bytes, msgs[2].Bytes} {
		if code, echoed := mllpSend(t, c, r, m); code != "AA" || (i < 2 && echoed != twice.ControlID) {
			t.Fatalf("message %d: MSA %s %s, want AA (control id %s for the first two)\n%s", i+1, code, echoed, twice.ControlID, gw.Log())
		}
	}
	s := waitHL7Drained(t, gw, addr, record, 30*time.Second)
	if s.HL7 == nil || s.HL7.Duplicates != 1 || s.HL7.Messages != 4 {
		t.Fatalf("the gateway's hl7 counters: %+v; want 4 messages, 1 a copy", s.HL7)
	}
	if problems, n := checkHL7Record(t, record, expected); len(problems) > 0 {
		t.Fatalf("after the same message twice (%d Observations):\n%s\n%s", n, strings.Join(problems, "\n"), gw.Log())
	}
	before := record.Count("Observation")

	// The gateway killed and started again: its memory of stored messages
	// is gone, and the record still holds the message once.
	c.Close()
	gw.Cmd.Process.Signal(syscall.SIGKILL)
	gw.Wait(t, 30*time.Second)
	again := Start(t, "run", "-config", cfg)
	again.WaitLog(t, `hl7 listening`, 30*time.Second)
	addr = again.WaitLog(t, statusRe, 30*time.Second)
	c2, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if code, echoed := mllpSend(t, c2, hl7.NewReader(c2, hl7.DefaultMaxBytes), twice.Bytes); code != "AA" || echoed != twice.ControlID {
		t.Fatalf("after the restart: MSA %s %s, want AA %s\n%s", code, echoed, twice.ControlID, again.Log())
	}
	waitHL7Drained(t, again, addr, record, 30*time.Second)
	if problems, n := checkHL7Record(t, record, expected); len(problems) > 0 {
		t.Fatalf("after the same message a third time, after a restart (%d Observations, %d before):\n%s\n%s", n, before, strings.Join(problems, "\n"), again.Log())
	}
	t.Logf("%d messages, one of them three times (twice, then after a SIGKILL): %d Observations, each once", len(msgs), before)
}
