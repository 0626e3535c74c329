package edge

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices/hl7"
	"github.com/wardgate/wardgate/edge/fhir"
	"github.com/wardgate/wardgate/edge/fhir/fhirserver"
)

// pcdResult is one PCD-01 result as a central station sends it: SpO2 and
// HR for a bed (PV1-3 WARD4^^<bed>), measured at at, with PID-3 holding
// mrn under the authority CITYHOSP when mrn is not empty.
type pcdResult struct {
	control string
	bed     string
	mrn     string
	at      time.Time
	spo2    float64
	demo    bool
	mode    string // MSH-15/16 as "AL|NE"; "" original mode
}

func (p pcdResult) bytes() []byte {
	b := hl7.NewBuilder(hl7.Delimiters{})
	ts := p.at.UTC().Format("20060102150405-0700")
	acc, app := "", ""
	if p.mode != "" {
		acc, app, _ = strings.Cut(p.mode, "|")
	}
	b.MSH("CENTRAL^0019A1FFFE000001^EUI-64", "CITYHOSP", "WARDGATE", "WARD4", ts, "", "ORU^R01^ORU_R01", p.control, "P", "2.6",
		"", "", acc, app, "", "", "", "", "IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO")
	if p.mrn != "" {
		b.Segment("PID", "", "", p.mrn+"^^^CITYHOSP^MR")
	}
	if p.bed != "" {
		b.Segment("PV1", "", "I", "WARD4^^"+p.bed)
	}
	b.Segment("OBR", "1", "", "", "182777000^monitoring of patient^SCT", "", "", ts)
	flag := ""
	if p.demo {
		flag = "DEMO"
	}
	// No OBX-18: the station names no monitor, as many do; the bed then
	// tells the devices apart.
	b.Segment("OBX", "1", "NM", "150456^MDC_PULS_OXIM_SAT_O2^MDC", "1.2.1.1", fmt.Sprint(p.spo2), "262688^MDC_DIM_PERCENT^MDC", "", flag, "", "", "R", "", "", ts)
	b.Segment("OBX", "2", "NM", "147842^MDC_ECG_HEART_RATE^MDC", "1.1.1.1", "72", "264864^MDC_DIM_BEAT_PER_MIN^MDC", "", flag, "", "", "R", "", "", ts)
	return b.Bytes()
}

// mllpPeer is a central station's connection to the gateway.
type mllpPeer struct {
	t    *testing.T
	conn net.Conn
	r    *hl7.Reader
}

func dialMLLP(t *testing.T, addr string) *mllpPeer {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &mllpPeer{t: t, conn: c, r: hl7.NewReader(c, 1<<20)}
}

// send sends one message and returns its acknowledgement, parsed.
func (p *mllpPeer) send(msg []byte) *hl7.Message {
	p.t.Helper()
	p.conn.SetDeadline(time.Now().Add(30 * time.Second))
	if err := hl7.WriteFrame(p.conn, msg); err != nil {
		p.t.Fatal(err)
	}
	raw, err := p.r.ReadMessage()
	if err != nil {
		p.t.Fatalf("no acknowledgement: %v", err)
	}
	m, err := hl7.Parse(raw, hl7.Limits{})
	if err != nil {
		p.t.Fatalf("acknowledgement does not parse: %v", err)
	}
	return m
}

func ackCode(m *hl7.Message) string { return m.Field("MSA", 1, 1).Text() }

// hl7Gateway runs a gateway with an hl7 listener on a free port and the
// given extra config; it returns the listener's address.
func hl7Gateway(t *testing.T, record *fhirserver.Server, extra string) (*Gateway, string) {
	t.Helper()
	g, _ := runGateway(t, record, `hl7:
  listen: "127.0.0.1:0"
  allow_any: true
  assigning_authority: CITYHOSP
  bed: "{point_of_care}-{bed}"
`+extra)
	return g, g.hl7Listeners[0].ln.Addr().String()
}

func putPatient(record *fhirserver.Server, id, mrn string) {
	record.Put("Patient", id, json.RawMessage(`{"resourceType":"Patient","id":"`+id+`","identifier":[{"system":"urn:oid:1.2.3.4","value":"`+mrn+`"}]}`))
}

// A result over MLLP is acknowledged AA once stored, and reaches the
// record under the patient its PID-3 names (a bed no source knows); the
// same message sent again is acknowledged again and charted once; demo
// values are taken and never charted.
func TestPCD01ResultReachesTheRecordOnceAfterAA(t *testing.T) {
	record := fhirserver.New()
	putPatient(record, "p1", "MRN1")
	g, addr := hl7Gateway(t, record, "")
	c := dialMLLP(t, addr)
	at := time.Now().Add(-time.Minute).Truncate(time.Second)
	msg := pcdResult{control: "C1", bed: "B1", mrn: "MRN1", at: at, spo2: 97}.bytes()
	for i := range 2 {
		ack := c.send(msg)
		if ackCode(ack) != "AA" || ack.Field("MSA", 1, 2).Text() != "C1" {
			t.Fatalf("send %d: MSA %q %q, want AA C1", i+1, ackCode(ack), ack.Field("MSA", 1, 2).Text())
		}
	}
	waitFor(t, "two Observations in the record", func() bool { return record.Count("Observation") == 2 })
	for _, raw := range record.Resources("Observation") {
		var o fhir.Observation
		json.Unmarshal(raw, &o)
		if o.Subject.Reference != "Patient/p1" {
			t.Fatalf("subject %q, want Patient/p1 (the record resolves PID-3's record number)", o.Subject.Reference)
		}
		if !strings.HasPrefix(o.EffectiveDateTime, at.UTC().Format("2006-01-02T15:04")) {
			t.Fatalf("effective %s, want the OBX-14 time %s", o.EffectiveDateTime, at.UTC())
		}
	}
	if d := g.pcd.duplicates.Load(); d != 1 {
		t.Fatalf("duplicates %d, want 1", d)
	}
	ack := c.send(pcdResult{control: "C2", bed: "B1", mrn: "MRN1", at: at.Add(time.Second), spo2: 50, demo: true}.bytes())
	if ackCode(ack) != "AA" {
		t.Fatalf("demo values: %s, want AA (taken, not charted)", ackCode(ack))
	}
	time.Sleep(300 * time.Millisecond)
	if n := record.Count("Observation"); n != 2 {
		t.Fatalf("%d Observations after a demo message, want 2", n)
	}
	if rep := g.hl7Report(); rep.Demo != 2 || rep.Server.Accepted != 3 {
		t.Fatalf("report demo %d accepted %d, want 2 and 3", rep.Demo, rep.Server.Accepted)
	}
}

// The bed's stay and PID-3 must agree: a result naming another patient
// than the one the bed holds waits, with the reason, and is charted for
// neither; one naming the bed's patient is charted.
func TestPCD01PatientDisagreeingWithTheBedWaits(t *testing.T) {
	record := fhirserver.New()
	putPatient(record, "p1", "MRN1")
	putPatient(record, "p2", "MRN2")
	g, addr := hl7Gateway(t, record, "patients:\n  static: {WARD4-B1: Patient/p1}\n")
	c := dialMLLP(t, addr)
	at := time.Now().Add(-time.Minute).Truncate(time.Second)
	if a := ackCode(c.send(pcdResult{control: "D1", bed: "B1", mrn: "MRN2", at: at, spo2: 91}.bytes())); a != "AA" {
		t.Fatalf("%s, want AA: the readings are stored, waiting", a)
	}
	waitFor(t, "the frame held", func() bool { return g.ingest.held.Load() == 1 })
	reasons := g.heldNotes.summary()
	waitFor(t, "a reason", func() bool { reasons = g.heldNotes.summary(); return len(reasons) == 1 })
	if !strings.Contains(reasons[0].Reason, "names another patient") {
		t.Fatalf("reason %q", reasons[0].Reason)
	}
	if a := ackCode(c.send(pcdResult{control: "D2", bed: "B1", mrn: "MRN1", at: at.Add(time.Second), spo2: 96}.bytes())); a != "AA" {
		t.Fatal(a)
	}
	waitFor(t, "the agreeing result charted", func() bool { return record.Count("Observation") == 2 })
	for v, who := range chartedAs(record) {
		if v == 91 || who != "Patient/p1" {
			t.Fatalf("charted %v for %s: only the agreeing result may be", v, who)
		}
	}
}

// Bad input gets a clear acknowledgement, and the connection goes on: a
// message that does not parse (AE), another message type (AR), a bed the
// template cannot make (AE naming PV1-3), neither bed nor patient (AE),
// only undecodable rows (AE), a time without an offset and no zone (AE).
func TestPCD01BadMessagesGetClearAcknowledgements(t *testing.T) {
	record := fhirserver.New()
	_, addr := hl7Gateway(t, record, "")
	c := dialMLLP(t, addr)
	at := time.Now().Add(-time.Minute).Truncate(time.Second)
	good := pcdResult{control: "G1", bed: "B1", mrn: "MRN1", at: at, spo2: 97}
	for _, tc := range []struct {
		name, want, where string
		msg               []byte
	}{
		{"garbage", "AE", "", []byte("this is not HL7")},
		{"ADT", "AR", "MSH", []byte(strings.Replace(string(good.bytes()), "ORU^R01^ORU_R01", "ADT^A01^ADT_A01", 1))},
		{"bed with a space", "AE", "PV1", pcdResult{control: "B2", bed: "B 1", mrn: "MRN1", at: at, spo2: 97}.bytes()},
		{"no bed, no patient", "AE", "PV1", pcdResult{control: "B3", at: at, spo2: 97}.bytes()},
		{"no offset, no zone", "AE", "MSH", []byte(strings.ReplaceAll(string(good.bytes()), at.UTC().Format("20060102150405-0700"), at.UTC().Format("20060102150405")))},
	} {
		ack := c.send(tc.msg)
		if got := ackCode(ack); got != tc.want {
			t.Errorf("%s: %s, want %s (%s)", tc.name, got, tc.want, ack.Field("MSA", 1, 3).Text())
		}
		if tc.where != "" && ack.Field("ERR", 1, 2).Comp(1).Text() != tc.where {
			t.Errorf("%s: ERR-2 %q, want the segment %s", tc.name, ack.Field("ERR", 1, 2).Raw(), tc.where)
		}
	}
	if a := ackCode(c.send(good.bytes())); a != "AA" {
		t.Fatalf("a good message after the bad ones: %s", a)
	}
}

// A full outbox: the sender is told to send again (AE with RETRY), never
// AA for what was not stored; once the outbox takes readings again, the
// resent message is charted.
func TestPCD01FullOutboxAsksForAResend(t *testing.T) {
	record := fhirserver.New()
	putPatient(record, "p1", "MRN1")
	record.SetFaults(fhirserver.Faults{Status: 503})
	g, addr := hl7Gateway(t, record, "buffer: {outbox_quota: 1MiB}\n")
	c := dialMLLP(t, addr)
	at := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	var busy []byte
	for i := range 5000 {
		msg := pcdResult{control: fmt.Sprint("F", i), bed: "B1", mrn: "MRN1", at: at.Add(time.Duration(i) * time.Second), spo2: 90}.bytes()
		ack := c.send(msg)
		if ackCode(ack) == "AE" {
			if ack.Field("ERR", 1, 5).Comp(1).Text() != hl7.RetryCode {
				t.Fatalf("AE without RETRY for a full outbox: %q", ack.Field("ERR", 1, 5).Raw())
			}
			busy = msg
			break
		}
	}
	if busy == nil {
		t.Fatal("5000 messages into a 1 MiB outbox, never a RETRY")
	}
	if g.hl7Report().Busy == 0 {
		t.Fatal("busy not counted")
	}
	record.SetFaults(fhirserver.Faults{})
	waitFor(t, "the resent message taken", func() bool { return ackCode(c.send(busy)) == "AA" })
}

// Over both listeners, as a hospital runs them: the ADT feed admits MRN1
// to WARD4-B1, transfers them to WARD4-B2 and admits MRN2 to B1, then
// discharges MRN1; results without PID-3 from both beds are charted for
// whoever lay in their bed at their time, a result from B2 after the
// discharge waits. The page and /metrics show both listeners.
func TestADTAndResultsOverMLLPPlaceValuesByTime(t *testing.T) {
	record := fhirserver.New()
	putPatient(record, "p1", "MRN1")
	putPatient(record, "p2", "MRN2")
	g, addr := hl7Gateway(t, record, `patients:
  adt: {listen: "127.0.0.1:0", allow_any: true, assigning_authority: CITYHOSP, bed: "{point_of_care}-{bed}"}
`)
	adt := dialMLLP(t, g.ADTAddr())
	res := dialMLLP(t, addr)
	t0 := time.Now().Add(-30 * time.Minute).Truncate(time.Second)
	event := func(ctl, trigger string, at time.Time, mrn, bed, prior string) {
		t.Helper()
		b := hl7.NewBuilder(hl7.Delimiters{})
		b.MSH("ADT", "CITYHOSP", "WARDGATE", "WARD4", time.Now().UTC().Format("20060102150405-0700"), "", "ADT^"+trigger+"^ADT_A01", ctl, "P", "2.5")
		b.Segment("EVN", trigger, "", "", "", "", at.UTC().Format("20060102150405-0700"))
		b.Segment("PID", "1", "", mrn+"^^^CITYHOSP^MR")
		b.Segment("PV1", "1", "I", "WARD4^^"+bed, "", "", prior)
		if a := ackCode(adt.send(b.Bytes())); a != "AA" {
			t.Fatalf("ADT %s: %s", ctl, a)
		}
	}
	event("E1", "A01", t0, "MRN1", "B1", "")
	event("E2", "A02", t0.Add(10*time.Minute), "MRN1", "B2", "WARD4^^B1")
	event("E3", "A01", t0.Add(12*time.Minute), "MRN2", "B1", "")
	event("E4", "A03", t0.Add(20*time.Minute), "MRN1", "B2", "")
	for i, r := range []pcdResult{
		{control: "R1", bed: "B1", at: t0.Add(5 * time.Minute), spo2: 91},  // MRN1 in B1
		{control: "R2", bed: "B1", at: t0.Add(11 * time.Minute), spo2: 92}, // B1 empty: waits
		{control: "R3", bed: "B2", at: t0.Add(15 * time.Minute), spo2: 93}, // MRN1 in B2
		{control: "R4", bed: "B1", at: t0.Add(15 * time.Minute), spo2: 94}, // MRN2 in B1
		{control: "R5", bed: "B2", at: t0.Add(25 * time.Minute), spo2: 95}, // after the discharge: waits
	} {
		if a := ackCode(res.send(r.bytes())); a != "AA" {
			t.Fatalf("result %d: %s", i+1, a)
		}
	}
	want := map[float64]string{91: "Patient/p1", 93: "Patient/p1", 94: "Patient/p2"}
	defer func() {
		if t.Failed() {
			dl, _ := g.outbox.DeadLetters(10)
			t.Logf("charted %v; held %v; observations %d; dead %+v; adt %+v; outbox %+v; fhir %+v", chartedAs(record), g.heldNotes.summary(), record.Count("Observation"), dl, g.adt.stats(), g.outbox.Stats(), g.deliverer.Stats())
		}
	}()
	waitFor(t, "three SpO2 values charted", func() bool {
		got := chartedAs(record)
		for v, who := range want {
			if got[v] != who {
				return false
			}
		}
		return true
	})
	got := chartedAs(record)
	for _, v := range []float64{92, 95} {
		if who, ok := got[v]; ok {
			t.Fatalf("SpO2 %v, measured in an empty bed, was charted for %s", v, who)
		}
	}
	if held := g.ingest.held.Load(); held < 2 {
		t.Fatalf("%d frames held, want the two from empty beds", held)
	}
	_, page := get(t, g.statusURL())
	for _, s := range []string{`id="hl7"`, `data-bed="WARD4-B1"`, `id="adt"`, `data-applied="4"`} {
		if !strings.Contains(page, s) {
			t.Errorf("the page lacks %s", s)
		}
	}
	_, metrics := get(t, g.statusURL()+"metrics")
	for _, s := range []string{`wardgate_hl7_messages_total{outcome="accepted"} 5`, `wardgate_adt_events_total{outcome="applied"} 4`} {
		if !strings.Contains(metrics, s) {
			t.Errorf("/metrics lacks %s", s)
		}
	}
}
