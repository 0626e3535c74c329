package mqtt

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/devices/internal/devicestest"
)

// Tests of the Source against a client the test drives (as Telegraf's
// mqtt_consumer tests do with its client factory): what it acknowledges
// and when, what it rejects, and how it follows the connection. The
// end-to-end tests in test/ run it against Mosquitto.

// broker is a Client the test drives: it connects at once, takes the
// subscription, delivers what the test publishes, and drops and restores
// the connection when told.
type broker struct {
	mu      sync.Mutex
	opts    *paho.ClientOptions
	open    bool
	subs    int
	handler paho.MessageHandler
	subErr  error
}

func (b *broker) client(o *paho.ClientOptions) Client {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.opts = o
	return b
}

func (b *broker) Connect() paho.Token {
	go b.connect()
	return token{}
}

func (b *broker) connect() {
	b.mu.Lock()
	b.open = true
	onConnect := b.opts.OnConnect
	b.mu.Unlock()
	onConnect(nil) // the Source subscribes through its own Client
}

func (b *broker) Subscribe(_ string, _ byte, callback paho.MessageHandler) paho.Token {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.subs++
	if b.subErr != nil {
		return token{b.subErr}
	}
	b.handler = callback
	return token{}
}

func (b *broker) IsConnectionOpen() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.open
}

func (b *broker) Disconnect(uint) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.open = false
}

func (b *broker) subscriptions() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.subs
}

// publish delivers a message to the subscription, as paho's router does
// (one at a time, in order).
func (b *broker) publish(m paho.Message) {
	b.mu.Lock()
	h := b.handler
	b.mu.Unlock()
	h(nil, m)
}

// drop loses the connection; reconnect makes it again, as paho's automatic
// reconnect does.
func (b *broker) drop() {
	b.mu.Lock()
	b.open, b.handler = false, nil
	lost := b.opts.OnConnectionLost
	b.mu.Unlock()
	lost(nil, errors.New("EOF"))
}

func (b *broker) reconnect() {
	b.mu.Lock()
	reconnecting := b.opts.OnReconnecting
	b.mu.Unlock()
	reconnecting(nil, b.opts)
	b.connect()
}

// token is a finished paho.Token.
type token struct{ err error }

func (t token) Wait() bool                     { return true }
func (t token) WaitTimeout(time.Duration) bool { return true }
func (t token) Error() error                   { return t.err }
func (t token) Done() <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// message is a QoS 1 message that counts its acknowledgements (PUBACKs).
type message struct {
	topic   string
	payload []byte
	dup     bool
	acks    atomic.Int32
}

func (m *message) Duplicate() bool   { return m.dup }
func (m *message) Qos() byte         { return 1 }
func (m *message) Retained() bool    { return false }
func (m *message) Topic() string     { return m.topic }
func (m *message) MessageID() uint16 { return 1 }
func (m *message) Payload() []byte   { return m.payload }
func (m *message) Ack()              { m.acks.Add(1) }

const topic = "ward4b/bed-14/vitals"

// vitals is a generic/json message with two readings at second i.
func vitals(i int) *message {
	t := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second)
	return &message{topic: topic, payload: fmt.Appendf(nil, `{"device":{"id":"MX450-1"},"time":%q,"observations":[{"code":"MDC_ECG_HEART_RATE","value":%d,"unit":"MDC_DIM_BEAT_PER_MIN"},{"code":"MDC_PULS_OXIM_SAT_O2","value":%d,"unit":"%%"}]}`,
		t.Format(time.RFC3339), 60+i%50, 90+i%10)}
}

var errFull = errors.New("store is full: outbox holds 10 of its 10 bytes")

type running struct {
	src  *Source
	b    *broker
	sink *devicestest.Sink
	log  *devicestest.Log
	stop func() // cancels Run and waits for it
}

// start runs a Source for the generic/json profile against a broker the
// test drives, and waits for its subscription.
func start(t *testing.T, silentAfter time.Duration) *running {
	t.Helper()
	b := &broker{}
	sink := &devicestest.Sink{}
	log, logger := devicestest.NewLog()
	p := devicestest.Profile(t, "generic/json")
	s := &Source{ID: "bed-14-monitor", Location: "bed-14", LocationLevel: -1,
		Broker: "tcp://broker.test:1883", Topic: topic, QoS: 1, ClientID: "wg-test-bed14",
		Profile: p, Sink: sink, Monitor: devices.NewMonitor("bed-14-monitor", "bed-14", p.Name, "mqtt "+topic),
		Log: logger, NewClient: b.client, retryEvery: 5 * time.Millisecond, silentAfter: silentAfter}
	stop := devicestest.Run(t, s.Run)
	r := &running{src: s, b: b, sink: sink, log: log, stop: stop}
	r.waitFor(t, "the subscription", func() bool { return b.subscriptions() == 1 })
	return r
}

func (r *running) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	devicestest.WaitFor(t, what, cond, func() string {
		st := r.src.Monitor.Status()
		return fmt.Sprintf("monitor %s (%s), %d frames, %d bad; sink: %d readings, %d offers, %d rejects\n%s",
			st.State, st.LastError, st.Frames, st.BadFrames, r.sink.Readings(), r.sink.Ingests(), r.sink.Rejects(), r.log)
	})
}

func (r *running) state() devices.State {
	st, _ := r.src.Monitor.State()
	return st
}

func TestPUBACKOnlyAfterTheReadingsAreDurable(t *testing.T) {
	r := start(t, time.Hour)
	entered, release := r.sink.Hold()
	m := vitals(0)
	r.b.publish(m)
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the readings never reached the sink")
	}
	time.Sleep(20 * time.Millisecond) // room for a wrong early PUBACK to show
	if n := m.acks.Load(); n != 0 {
		t.Fatalf("acknowledged %d times while the outbox was committing", n)
	}
	release()
	r.waitFor(t, "the PUBACK", func() bool { return m.acks.Load() == 1 })
	if r.sink.Readings() != 2 || r.state() != devices.Connected {
		t.Fatalf("%d readings stored, state %s; want 2, connected", r.sink.Readings(), r.state())
	}
}

func TestNoPUBACKWhileTheOutboxRefuses(t *testing.T) {
	r := start(t, time.Hour)
	r.sink.RefuseIngest(errFull)
	m := vitals(0)
	r.b.publish(m)
	r.waitFor(t, "three offers", func() bool { return r.sink.Ingests() >= 3 })
	if n := m.acks.Load(); n != 0 {
		t.Fatalf("acknowledged %d times while the outbox refuses", n)
	}
	if st := r.src.Monitor.Status(); st.State != devices.Failed || !strings.Contains(st.LastError, "outbox") {
		t.Fatalf("state %s (%q) while the outbox refuses, want %s saying so", st.State, st.LastError, devices.Failed)
	}
	later := vitals(1)
	r.b.publish(later) // waits behind the refused batch
	r.sink.RefuseIngest(nil)
	r.waitFor(t, "both PUBACKs", func() bool { return m.acks.Load() == 1 && later.acks.Load() == 1 })
	if st := r.src.Monitor.Status(); r.sink.Readings() != 4 || st.Lost != 0 || st.State != devices.Connected {
		t.Fatalf("%d readings stored, %d lost, state %s; want 4, 0, connected", r.sink.Readings(), st.Lost, st.State)
	}
}

// Stopped while the outbox refuses: nothing is acknowledged, so the broker
// delivers it again at the next start, and nothing is counted lost.
func TestNoPUBACKWhenStoppedWhileTheOutboxRefuses(t *testing.T) {
	r := start(t, time.Hour)
	r.sink.RefuseIngest(errFull)
	m := vitals(0)
	r.b.publish(m)
	r.waitFor(t, "two offers", func() bool { return r.sink.Ingests() >= 2 })
	r.stop()
	if n := m.acks.Load(); n != 0 {
		t.Fatalf("acknowledged %d times, though never stored", n)
	}
	if lost := r.src.Monitor.Status().Lost; lost != 0 {
		t.Fatalf("%d readings counted lost that the broker keeps", lost)
	}
}

// A payload that cannot be decoded is kept raw among the dead letters, then
// acknowledged (redelivering it would help no one); not before the dead
// letters have it, and never in the log.
func TestBadPayloadIsRejectedThenAcknowledged(t *testing.T) {
	r := start(t, time.Hour)
	r.sink.RefuseReject(errFull)
	bad := &message{topic: topic, payload: []byte(`PATIENT SMITH not json`)}
	r.b.publish(bad)
	r.waitFor(t, "two offers to the dead letters", func() bool { return r.sink.Rejects() >= 2 })
	if n := bad.acks.Load(); n != 0 {
		t.Fatalf("a bad payload the dead letters refused was acknowledged %d times", n)
	}
	r.sink.RefuseReject(nil)
	r.waitFor(t, "the PUBACK of the bad payload", func() bool { return bad.acks.Load() == 1 })
	rj := r.sink.Rejected()
	if len(rj) != 1 || string(rj[0].Raw) != string(bad.payload) || rj[0].Device != "bed-14-monitor" || rj[0].Reason == "" {
		t.Fatalf("dead letters: %+v; want the payload, raw, for bed-14-monitor, with a reason", rj)
	}
	good := vitals(1)
	r.b.publish(good)
	r.waitFor(t, "the next message's PUBACK", func() bool { return good.acks.Load() == 1 })
	if st := r.src.Monitor.Status(); st.BadFrames != 1 || st.Frames != 1 || r.sink.Readings() != 2 {
		t.Fatalf("%d bad frames, %d frames, %d readings stored; want 1, 1, 2", st.BadFrames, st.Frames, r.sink.Readings())
	}
	if strings.Contains(r.log.String(), "SMITH") {
		t.Fatalf("a payload reached the log:\n%s", r.log)
	}
}

// The connection drops and comes back: the monitor is shown disconnected
// meanwhile, the subscription is made again, and a message the broker
// delivers again (its PUBACK lost with the connection) is stored again,
// marked as redelivered, and acknowledged.
func TestConnectionLostThenRedeliveredAfterReconnect(t *testing.T) {
	r := start(t, time.Hour)
	m := vitals(0)
	r.b.publish(m)
	r.waitFor(t, "the PUBACK", func() bool { return m.acks.Load() == 1 })
	r.b.drop()
	if st := r.src.Monitor.Status(); st.State != devices.Disconnected || !strings.Contains(st.LastError, "connection lost") {
		t.Fatalf("state %s (%q) after the connection dropped, want %s", st.State, st.LastError, devices.Disconnected)
	}
	if r.log.Count("broker connection lost") != 1 {
		t.Fatalf("the lost connection is not logged:\n%s", r.log)
	}
	r.b.reconnect()
	r.waitFor(t, "the subscription made again", func() bool { return r.b.subscriptions() == 2 })
	again := vitals(0)
	again.dup = true
	r.b.publish(again)
	r.waitFor(t, "the PUBACK of the redelivery", func() bool { return again.acks.Load() == 1 })
	frames := r.sink.Frames()
	if len(frames) != 2 || !frames[1][0].Redelivered || frames[0][0].Redelivered {
		t.Fatalf("frames stored: %d, redelivered flags %v; want 2, the second redelivered", len(frames), redelivered(frames))
	}
	if r.state() != devices.Connected {
		t.Fatalf("state %s after the reconnect, want %s", r.state(), devices.Connected)
	}
}

func redelivered(frames [][]devices.Reading) []bool {
	var out []bool
	for _, f := range frames {
		out = append(out, len(f) > 0 && f[0].Redelivered)
	}
	return out
}

// A monitor that publishes nothing while the connection is up is shown
// silent; while the connection is down it is disconnected, not silent.
func TestSilenceOnAnOpenConnectionOnly(t *testing.T) {
	silentAfter := 50 * time.Millisecond
	r := start(t, silentAfter)
	r.b.publish(vitals(0))
	r.waitFor(t, "the monitor silent", func() bool { return r.state() == devices.Silent })
	if r.log.Count("monitor silent") != 1 {
		t.Fatalf("silence logged %d times, want once:\n%s", r.log.Count("monitor silent"), r.log)
	}
	r.b.publish(vitals(1))
	r.waitFor(t, "the monitor connected again", func() bool { return r.state() == devices.Connected })
	r.b.drop()
	time.Sleep(10 * silentAfter) // ten silence checks
	if r.state() != devices.Disconnected {
		t.Fatalf("state %s with the connection down, want %s", r.state(), devices.Disconnected)
	}
}

// A subscription the broker refuses shows the monitor failing, and silence
// does not hide it.
func TestSubscriptionRefused(t *testing.T) {
	b := &broker{subErr: errors.New("not authorised")}
	sink := &devicestest.Sink{}
	_, logger := devicestest.NewLog()
	p := devicestest.Profile(t, "generic/json")
	s := &Source{ID: "bed-14-monitor", Location: "bed-14", LocationLevel: -1, Topic: topic, QoS: 1, ClientID: "wg-test-bed14",
		Profile: p, Sink: sink, Monitor: devices.NewMonitor("bed-14-monitor", "bed-14", p.Name, "mqtt"), Log: logger,
		NewClient: b.client, silentAfter: time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	devicestest.WaitFor(t, "the subscription refused", func() bool {
		st, _ := s.Monitor.State()
		return st == devices.Failed
	}, func() string { return fmt.Sprint(s.Monitor.Status()) })
	time.Sleep(20 * time.Millisecond) // silence checks
	if st := s.Monitor.Status(); st.State != devices.Failed || !strings.Contains(st.LastError, "not authorised") {
		t.Fatalf("state %s (%q), want %s with the broker's reason", st.State, st.LastError, devices.Failed)
	}
}
