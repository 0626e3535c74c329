package mqtt

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/devices/profile"
	firmwareprofiles "github.com/wardgate/wardgate/firmware-profiles"
)

// Tests from a second round of a second reader of the rules for MQTT messages
// without a device time (untimed): a message that may have waited at the
// broker (or upstream of it) must not be charted at its receipt.

type fakeMsg struct {
	topic    string
	payload  []byte
	dup, ret bool
}

func (m *fakeMsg) Duplicate() bool   { return m.dup }
func (m *fakeMsg) Qos() byte         { return 1 }
func (m *fakeMsg) Retained() bool    { return m.ret }
func (m *fakeMsg) Topic() string     { return m.topic }
func (m *fakeMsg) MessageID() uint16 { return 1 }
func (m *fakeMsg) Payload() []byte   { return m.payload }
func (m *fakeMsg) Ack()              {}

type captureSink struct {
	mu     sync.Mutex
	frames [][]devices.Reading
}

func (s *captureSink) Ingest(_ context.Context, frames ...[]devices.Reading) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frames = append(s.frames, frames...)
	return nil
}

func (s *captureSink) Reject(context.Context, string, []byte, string) error { return nil }

func flatSource(t *testing.T, seen FirstSeen) (*Source, *captureSink) {
	t.Helper()
	set, err := profile.Load(firmwareprofiles.FS, "")
	if err != nil {
		t.Fatal(err)
	}
	p, ok := set.Get("generic/flat-json")
	if !ok {
		t.Fatal("no generic/flat-json")
	}
	sink := &captureSink{}
	s := &Source{ID: "bridge", Location: "bed-1", LocationLevel: -1, Topic: "ward4b/bed-1/flat", Profile: p,
		Sink: sink, Monitor: devices.NewMonitor("bridge", "bed-1", p.Name, "mqtt"), Clocks: devices.NewClocks(),
		Seen: seen, acks: newAcker()}
	return s, sink
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func untimedMsg(device string, hr int) *fakeMsg {
	return &fakeMsg{topic: "ward4b/bed-1/flat", payload: fmt.Appendf(nil, `{"device":%q,"vitals":{"hr":%d}}`, device, hr)}
}

// A bridge in the bed's room (a Raspberry Pi with its own Mosquitto,
// bridged to the ward's broker) loses its uplink for 10 minutes and keeps
// its device's messages, a message each 5 s; the gateway stays connected
// to the ward's broker all along. When the uplink returns, the backlog
// arrives in a burst. The gateway's loop, idle until then, takes the first
// message of the burst alone (a batch is whatever waits when the first
// message arrives); the rest follow in the next batch. The burst rule
// looks back (the last message of that parameter: 10 minutes ago) and
// ahead within the batch (none): the first message of the backlog, the
// one measured 10 minutes ago, is charted at its receipt, "now", to
// whoever lies in the bed now.
func TestTheFirstMessageOfADrainedBacklogHasNoKnownTime(t *testing.T) {
	s, sink := flatSource(t, nil)
	ctx := context.Background()
	now := time.Now()
	s.connectedAt.Store(now.Add(-time.Hour).UnixNano())
	at := now.Add(-11 * time.Minute)
	hr := 60
	for range 12 { // live, one a batch
		s.process(ctx, []inbound{{msg: untimedMsg("pi-1", hr), received: at}}, quiet)
		at, hr = at.Add(5*time.Second), hr+1
	}
	sink.frames = nil
	at = now // the uplink is back: 120 messages in 150 ms
	first := []inbound{{msg: untimedMsg("pi-1", hr), received: at}}
	var rest []inbound
	for i := 1; i < 120; i++ {
		rest = append(rest, inbound{msg: untimedMsg("pi-1", hr+i), received: at.Add(time.Duration(i) * 1250 * time.Microsecond)})
	}
	// The gateway's loop: the first message, then what arrives right
	// behind it (gather waits a little for a profile without a device time).
	queue := make(chan inbound, len(rest))
	for _, in := range rest {
		queue <- in
	}
	s.MaxBatch = 256
	s.process(ctx, s.gather(ctx, queue, first), quiet)
	known := 0
	for _, f := range sink.frames {
		for _, r := range f {
			if !r.TimeUnknown {
				known++
			}
		}
	}
	if known > 0 {
		t.Fatalf("%d of 120 messages of a drained backlog are charted at their receipt (the first: value %v, measured 10 min before it was received)",
			known, sink.frames[0][0].Value)
	}
}

// The gateway reconnects to a broker that kept a backlog for a wildcard
// subscription of many bridges. The drain (the broker's in-flight window,
// the gateway's commit per batch) takes longer than 3 s and interleaves
// the devices, so one device's messages come 1.5 s apart: further apart
// than a quarter of the 5-s interval. Past the first 3 s none is in a
// "burst" and none is "the first after a connect": each is charted at its
// receipt, though every one of them waited at the broker.
func TestASlowDrainAfterAReconnectIsNotChartedAtReceipt(t *testing.T) {
	s, sink := flatSource(t, nil)
	ctx := context.Background()
	now := time.Now()
	s.connectedAt.Store(now.UnixNano())
	hr := 60
	for i := range 10 {
		at := now.Add(time.Duration(i)*1500*time.Millisecond + 100*time.Millisecond)
		s.process(ctx, []inbound{{msg: untimedMsg("pi-7", hr+i), received: at}}, quiet)
	}
	known := 0
	for _, f := range sink.frames {
		for _, r := range f {
			if !r.TimeUnknown {
				known++
			}
		}
	}
	if known > 0 {
		t.Fatalf("%d of 10 messages that waited at the broker during an outage are charted at their receipt", known)
	}
}
