// Package mqtt reads monitors (or their bridges) that publish to an MQTT
// broker. It subscribes at QoS 1 in a persistent session (a stable client
// id, clean session off), so what is published while the gateway is down
// waits at the broker; and it acknowledges each message (PUBACK) only after
// its readings are committed to the outbox: acknowledged means durable.
//
// Messages are taken from the client in arrival order, decoded with the
// monitor's profile, and handed to the sink in batches (one outbox commit
// for all the messages waiting), then acknowledged in the order they came.
// A payload that cannot be decoded is acknowledged too, after it is kept
// raw among the dead letters: redelivering it forever would help no one,
// and its content never reaches the log.
//
// When the outbox refuses a batch (full, or its disk failing), its
// messages stay unacknowledged and the batch is offered again each second
// until it is stored; meanwhile the source takes nothing new, and the
// broker, which sends no more than its in-flight window without PUBACKs,
// keeps the rest. Nothing is lost (the package comment of devices states
// the policy for every source).
//
// A message whose readings carry no device time is identified by when it
// was first received: that is recorded durably (Seen) before its readings
// are committed, and a message the broker delivers again (DUP) takes its
// first receipt back, so it maps to the same Observations. Two messages
// with equal content are two measurements.
package mqtt

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/wardgate/wardgate/buffer"
	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/devices/profile"
)

// Source reads one configured topic (which may be a wildcard covering many
// beds).
type Source struct {
	ID       string // the monitor's id in the config
	Location string // its bed; empty when LocationLevel names a topic level
	// LocationLevel, when not negative, takes the bed from that level of
	// the topic (0 is the first): ward4/+/vitals with level 1.
	LocationLevel int

	Broker   string // tcp://host:1883, ssl://host:8883
	Topic    string
	QoS      byte
	ClientID string
	Username string
	Password string
	CAFile   string

	Profile *profile.Profile
	Sink    devices.Sink
	Monitor *devices.Monitor
	Log     *slog.Logger
	// Clocks holds each device's clock estimate (a registry of its own when
	// nil).
	Clocks *devices.Clocks
	// Seen remembers when messages without a device time were first
	// received, so that one the broker delivers again (DUP) keeps its
	// first receipt time, its identity. Without it such a message is
	// identified by each receipt.
	Seen FirstSeen

	// MaxBatch bounds the messages committed together (256 when zero).
	MaxBatch int
	// LogContent logs each bad payload (the first 512 bytes): it may hold
	// patient data, so only for debugging a profile (log.patient_data).
	LogContent bool
	// NewClient makes the MQTT client from its options (paho's when nil):
	// tests give a client of their own.
	NewClient func(*paho.ClientOptions) Client

	in   *devices.Intake
	acks *acker
	// For tests: the wait between offers of what the gateway's stores
	// refused (a second), and how long the monitor may be quiet (the
	// profile's).
	retryEvery, silentAfter time.Duration
	// connectedAt is when the client last connected or began to (Unix ns):
	// messages that waited at the broker arrive right after it.
	connectedAt atomic.Int64
	// untimedAt is when the last message without a device time was
	// received, by device and code (for a burst: messages that waited).
	untimedAt      map[string]*untimedKey
	retainedLogged bool
}

// Client is what the Source uses of an MQTT client: paho's Client, or one
// a test drives. The Source subscribes from the options' OnConnect handler
// (at each connect: a session the broker lost is made again), takes
// messages through the subscription's handler and the options' default
// handler, and acknowledges each with Message.Ack.
type Client interface {
	Connect() paho.Token
	Subscribe(topic string, qos byte, callback paho.MessageHandler) paho.Token
	IsConnectionOpen() bool
	Disconnect(quiesce uint)
}

func newPahoClient(o *paho.ClientOptions) Client { return paho.NewClient(o) }

// FirstSeen records deliveries durably and gives each one's first receipt
// time (buffer.Seen).
type FirstSeen interface {
	FirstSeen(ctx context.Context, ds []buffer.Delivery) ([]buffer.Delivery, error)
}

type inbound struct {
	msg      paho.Message
	received time.Time
	// waiting is how many messages were waiting for the gateway when this
	// one came: a backlog being drained.
	waiting int
}

// Run connects, subscribes and reads until ctx ends. It returns an error
// only for settings that cannot work (a bad CA file).
func (s *Source) Run(ctx context.Context) error {
	if s.Monitor == nil {
		s.Monitor = devices.NewMonitor(s.ID, s.Location, s.Profile.Name, "mqtt")
	}
	if s.MaxBatch == 0 {
		s.MaxBatch = 256
	}
	if s.Clocks == nil {
		s.Clocks = devices.NewClocks()
	}
	if s.NewClient == nil {
		s.NewClient = newPahoClient
	}
	log := s.Log.With("monitor", s.ID, "broker", s.Broker, "topic", s.Topic)
	s.in = s.intake(log)
	defer s.in.Stop()
	opts, err := s.options()
	if err != nil {
		s.Monitor.Set(devices.Failed, err.Error())
		log.Error("MQTT settings not usable", "err", err)
		return err
	}
	// The client's handler only queues. The broker sends no more than its
	// in-flight window of unacknowledged messages (20 for Mosquitto), so
	// the queue stays short; only a broker without a window can fill it,
	// and then the client stops reading (flow control, not loss).
	queue := make(chan inbound, 16*s.MaxBatch)
	s.acks = newAcker()
	go s.acks.run(ctx)
	handler := func(_ paho.Client, m paho.Message) {
		select {
		case queue <- inbound{m, time.Now(), len(queue)}:
		case <-ctx.Done():
		}
	}
	opts.SetDefaultPublishHandler(handler) // a persistent session delivers before Subscribe returns
	var client Client
	opts.SetOnConnectHandler(func(paho.Client) {
		s.connectedAt.Store(time.Now().UnixNano())
		tok := client.Subscribe(s.Topic, s.QoS, handler)
		go func() {
			tok.Wait()
			if err := tok.Error(); err != nil {
				s.Monitor.Set(devices.Failed, "subscribe refused: "+err.Error())
				log.Error("the broker refused the subscription", "err", err)
				return
			}
			if st, _ := s.Monitor.State(); st != devices.Connected {
				s.Monitor.Set(devices.Connecting, "")
			}
			log.Info("subscribed; waiting for messages", "profile", s.Profile.Name, "qos", s.QoS)
		}()
	})
	opts.SetConnectionLostHandler(func(_ paho.Client, err error) {
		if s.Monitor.Set(devices.Disconnected, "connection lost: "+err.Error()) {
			log.Warn("broker connection lost; reconnecting", "err", err)
		}
	})
	opts.SetConnectionAttemptHandler(func(_ *url.URL, cfg *tls.Config) *tls.Config {
		s.connectedAt.Store(time.Now().UnixNano()) // what waited comes right after
		return cfg
	})
	opts.SetReconnectingHandler(func(paho.Client, *paho.ClientOptions) {
		s.connectedAt.Store(time.Now().UnixNano())
		s.Monitor.Set(devices.Disconnected, "")
	})
	client = s.NewClient(opts) // before Connect: the handlers use it
	s.connectedAt.Store(time.Now().UnixNano())
	tok := client.Connect() // retries by itself (ConnectRetry)
	go func() {
		tok.Wait()
		if err := tok.Error(); err != nil {
			s.Monitor.Set(devices.Disconnected, err.Error())
			log.Warn("cannot connect to the broker", "err", err)
		}
	}()
	defer client.Disconnect(250)

	silence := time.NewTicker(min(time.Second, s.in.SilentAfter))
	defer silence.Stop()
	var batch []inbound
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-silence.C:
			if client.IsConnectionOpen() {
				s.in.NoticeSilence(time.Unix(0, s.connectedAt.Load()))
			}
			continue
		case in := <-queue:
			batch = s.gather(ctx, queue, append(batch[:0], in))
		}
		s.process(ctx, batch, log)
	}
}

// gather takes whatever else waits, up to MaxBatch, for one commit. For a
// profile without a device time it also waits a little (a quarter of the
// profile's interval, at most a second) for what may follow: the first
// message of a backlog drained from upstream comes alone, and only the
// messages right behind it show it waited (untimed).
func (s *Source) gather(ctx context.Context, queue <-chan inbound, batch []inbound) []inbound {
	var wait <-chan time.Time
	if !s.Profile.HasDeviceTime() {
		t := time.NewTimer(min(s.burstGap(), time.Second))
		defer t.Stop()
		wait = t.C
	}
	for len(batch) < s.MaxBatch {
		select {
		case in := <-queue:
			batch = append(batch, in)
			continue
		default:
		}
		if wait == nil {
			break
		}
		select {
		case in := <-queue:
			batch = append(batch, in)
		case <-wait:
			return batch
		case <-ctx.Done():
			return batch
		}
	}
	return batch
}

// burstGap is how close two messages of one parameter of one device come
// in a backlog being drained: a quarter of the profile's interval.
func (s *Source) burstGap() time.Duration {
	if g := s.Profile.Transport.Interval.D() / 4; g > 0 {
		return g
	}
	return 250 * time.Millisecond
}

// intake is the source's devices.Intake: a broker keeps what is not
// acknowledged, so refused readings are offered until they are stored.
func (s *Source) intake(log *slog.Logger) *devices.Intake {
	if s.Clocks == nil {
		s.Clocks = devices.NewClocks()
	}
	silentAfter := s.silentAfter
	if silentAfter == 0 {
		silentAfter = s.Profile.SilentAfter()
	}
	return &devices.Intake{Sink: s.Sink, Monitor: s.Monitor, Clocks: s.Clocks, Log: log,
		Interval: s.Profile.Transport.Interval.D(), SilentAfter: silentAfter,
		Buffered: true, GiveUpAfter: 0, RetryEvery: s.retryEvery}
}

// retryWait is the wait between two offers of what the gateway's stores
// refused.
func (s *Source) retryWait() time.Duration {
	if s.retryEvery > 0 {
		return s.retryEvery
	}
	return time.Second
}

// process decodes a batch, commits its readings, then acknowledges it in
// order. Whatever the gateway's stores refuse (the record of receipts, the
// dead letters, the outbox) is offered again until it is taken, or ctx
// ends; nothing is acknowledged before, so the broker keeps it.
func (s *Source) process(ctx context.Context, batch []inbound, log *slog.Logger) {
	if s.in == nil {
		s.in = s.intake(log)
	}
	var msgs []decoded
	var rejects []rejection
	for _, in := range batch {
		payload := in.msg.Payload()
		s.Monitor.AddBytes(len(payload))
		loc := s.Location
		if s.LocationLevel >= 0 {
			levels := strings.Split(in.msg.Topic(), "/")
			if s.LocationLevel >= len(levels) || levels[s.LocationLevel] == "" {
				rejects = append(rejects, rejection{in, s.ID, "the topic has no bed at level " + fmt.Sprint(s.LocationLevel)})
				continue
			}
			loc = levels[s.LocationLevel]
		}
		f, err := s.Profile.Decode(payload)
		if err != nil {
			rejects = append(rejects, rejection{in, s.ID, err.Error()})
			continue
		}
		device := s.ID
		if f.DeviceID != "" {
			device = f.DeviceID
		} else if s.LocationLevel >= 0 {
			device = s.ID + "/" + loc
		}
		msgs = append(msgs, decoded{in, device, loc, f})
	}
	msgs = s.untimed(msgs, log)
	// A message whose readings carry no device time is identified by when
	// it was received: first, so that a redelivery keeps the receipt of
	// the first delivery. That is recorded before the readings are
	// committed (a crash in between finds it at the redelivery).
	var untimed []buffer.Delivery
	var untimedAt []int
	for i, m := range msgs {
		if s.Seen != nil && slices.ContainsFunc(m.f.Readings, func(r devices.Reading) bool { return r.DeviceTime.IsZero() }) {
			h := sha256.Sum256(append([]byte(m.in.msg.Topic()+"\n"), m.in.msg.Payload()...))
			untimed = append(untimed, buffer.Delivery{Key: string(h[:16]), At: m.in.received, Redelivered: m.in.msg.Duplicate(),
				Unknown: slices.ContainsFunc(m.f.Readings, func(r devices.Reading) bool { return r.TimeUnknown })})
			untimedAt = append(untimedAt, i)
		}
	}
	for len(untimed) > 0 {
		firsts, err := s.Seen.FirstSeen(ctx, untimed)
		if err == nil {
			// A redelivery is as it was first received: its time, and
			// whether that time was known.
			for j, i := range untimedAt {
				msgs[i].in.received = firsts[j].At
				for k := range msgs[i].f.Readings {
					if r := &msgs[i].f.Readings[k]; r.DeviceTime.IsZero() {
						r.TimeUnknown = firsts[j].Unknown
					}
				}
			}
			break
		}
		if ctx.Err() != nil {
			return
		}
		if s.Monitor.Set(devices.Failed, "the record of received messages does not take them: "+err.Error()) {
			log.Error("cannot record the receipt of MQTT messages; they stay unacknowledged at the broker", "err", err)
		}
		if !devices.Sleep(ctx, s.retryWait()) {
			return
		}
	}
	var frames [][]devices.Reading
	for _, m := range msgs {
		f := m.f
		s.in.Stamp(devices.Receipt{Device: m.device, Location: m.location, At: m.in.received, Redelivered: m.in.msg.Duplicate()},
			f.Readings, f.DeviceTime, f.DeviceTimeAlt, len(f.Dropped))
		if len(f.Readings) > 0 {
			frames = append(frames, f.Readings)
		}
	}
	// Undecodable payloads are kept before they are acknowledged, like
	// readings: a payload the dead letters could not take stays at the
	// broker.
	for len(rejects) > 0 {
		if err := s.reject(ctx, rejects[0], log); err != nil {
			if ctx.Err() != nil {
				return
			}
			if s.Monitor.Set(devices.Failed, "the dead letters do not take a bad payload: "+err.Error()) {
				log.Error("a bad payload cannot be kept among the dead letters; MQTT messages stay unacknowledged at the broker", "err", err)
			}
			if !devices.Sleep(ctx, s.retryWait()) {
				return
			}
			continue
		}
		rejects = rejects[1:]
	}
	// Offered until stored (the intake's policy for a transport that keeps
	// what is not acknowledged); an error means ctx ended, and then nothing
	// is acknowledged: the broker keeps the messages.
	if err := s.in.Ingest(ctx, frames...); err != nil {
		return
	}
	acks := make([]paho.Message, len(batch))
	for i, in := range batch {
		acks[i] = in.msg
	}
	s.acks.push(acks)
}

// decoded is one message with its frame.
type decoded struct {
	in               inbound
	device, location string
	f                profile.Frame
}

// untimedAfterConnect is how soon after a (re)connect a message without a
// device time may be one that waited at the broker; untimedDrainMax how
// long after it what waited may still be arriving.
const (
	untimedAfterConnect = 3 * time.Second
	untimedDrainMax     = 2 * time.Minute
)

// untimedKey is what untimed remembers of one parameter of one device.
type untimedKey struct {
	last     time.Time // receipt of its last message
	draining bool      // since the last (re)connect, not yet seen at its live pace
}

// untimed looks at the messages whose readings carry no device time: their
// receipt is their time, which holds only for a message that did not wait
// at the broker. One that may have waited has no known time (TimeUnknown:
// it is never charted at a guess):
//   - a retained message, which the broker replays at every subscription
//     (it was charted when it was published live): not charted again;
//   - part of a burst: the same parameter of the same device again within a
//     quarter of the device's interval (a backlog draining), before or
//     after it;
//   - after a (re)connect, while what waited may still be arriving (for two
//     minutes at most): a parameter's messages until one comes at its live
//     pace (three quarters of the interval after the one before) without a
//     full batch waiting behind it; its first one only when it came within
//     3 s of the connect or with a full batch waiting.
func (s *Source) untimed(msgs []decoded, log *slog.Logger) []decoded {
	if s.untimedAt == nil || len(s.untimedAt) > 4096 {
		s.untimedAt = map[string]*untimedKey{}
	}
	gap := s.burstGap()
	livePace := 3 * s.Profile.Transport.Interval.D() / 4
	connected := time.Unix(0, s.connectedAt.Load())
	out := msgs[:0]
	for i, m := range msgs {
		if m.in.msg.Retained() && slices.ContainsFunc(m.f.Readings, func(r devices.Reading) bool { return r.DeviceTime.IsZero() }) {
			s.Monitor.Skipped(len(m.f.Readings))
			if !s.retainedLogged {
				s.retainedLogged = true
				log.Info("retained messages without a device time are not charted: the broker replays them at each subscription, and their time is not known")
			}
			continue
		}
		for k := range m.f.Readings {
			r := &m.f.Readings[k]
			if !r.DeviceTime.IsZero() {
				continue
			}
			key := m.device + "|" + fmt.Sprint(r.Code.Code)
			at := m.in.received
			st := s.untimedAt[key]
			if st == nil {
				st = &untimedKey{}
				s.untimedAt[key] = st
			}
			first := st.last.IsZero() || st.last.Before(connected)
			burst := !first && at.Sub(st.last) < gap
			// The next message of the batch with this parameter, when it
			// follows closely, makes this one part of a burst too.
			for _, n := range msgs[i+1:] {
				if n.device != m.device {
					continue
				}
				if j := slices.IndexFunc(n.f.Readings, func(x devices.Reading) bool {
					return x.DeviceTime.IsZero() && x.Code.Code == r.Code.Code
				}); j >= 0 {
					burst = burst || n.in.received.Sub(at) < gap
					break
				}
			}
			backlog := m.in.waiting >= max(s.MaxBatch, 1) // a full batch waiting behind it
			switch {
			case at.Sub(connected) > untimedDrainMax:
				st.draining = false
			case first:
				st.draining = at.Sub(connected) < untimedAfterConnect || backlog
			case st.draining:
				st.draining = at.Sub(st.last) < livePace || backlog
			}
			st.last = at
			r.TimeUnknown = burst || st.draining
		}
		out = append(out, m)
	}
	return out
}

// acker sends PUBACKs in order on its own goroutine: the client may hold
// an acknowledgement while its connection is being torn down, and the
// reading loop must not wait on that (paho drops acknowledgements for a
// connection that is gone; the broker redelivers, and the outbox already
// holds those readings, which map to the same Observations).
type acker struct {
	mu      sync.Mutex
	pending []paho.Message
	wake    chan struct{}
}

func newAcker() *acker { return &acker{wake: make(chan struct{}, 1)} }

func (a *acker) push(msgs []paho.Message) {
	a.mu.Lock()
	a.pending = append(a.pending, msgs...)
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (a *acker) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.wake:
		}
		a.mu.Lock()
		msgs := a.pending
		a.pending = nil
		a.mu.Unlock()
		for _, m := range msgs {
			m.Ack()
		}
	}
}

// rejection is a message that could not be decoded, and why.
type rejection struct {
	in             inbound
	device, reason string
}

func (s *Source) reject(ctx context.Context, rj rejection, log *slog.Logger) error {
	in, device, reason := rj.in, rj.device, rj.reason
	if err := s.Sink.Reject(ctx, device, in.msg.Payload(), reason); err != nil {
		return err
	}
	s.Monitor.BadFrame()
	if s.LogContent {
		p := in.msg.Payload()
		log.Warn("bad payload (log.patient_data is on)", "reason", reason, "payload", string(p[:min(len(p), 512)]))
	}
	log.Warn("bad payload kept among the dead letters (its content is not logged)", "reason", reason, "bytes", len(in.msg.Payload()))
	return nil
}

func (s *Source) options() (*paho.ClientOptions, error) {
	if s.ClientID == "" {
		return nil, errors.New("a client id is needed for a persistent session")
	}
	opts := paho.NewClientOptions().
		AddBroker(s.Broker).
		SetClientID(s.ClientID).
		SetCleanSession(false).
		SetAutoAckDisabled(true).
		SetOrderMatters(true).
		SetResumeSubs(true).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(2 * time.Second).
		SetMaxReconnectInterval(30 * time.Second).
		SetConnectTimeout(10 * time.Second).
		SetKeepAlive(30 * time.Second)
	if s.Username != "" {
		opts.SetUsername(s.Username)
		opts.SetPassword(s.Password)
	}
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", s.CAFile)
		}
		opts.SetTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	}
	return opts, nil
}
