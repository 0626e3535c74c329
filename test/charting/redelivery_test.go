package charting

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/wardgate/wardgate/edge/fhir"
	"github.com/wardgate/wardgate/test"
)

// ackLosingProxy stands between the gateway and the broker; while lose is
// set it drops the gateway's PUBACKs (the gateway has committed the
// messages and acknowledged them, the acknowledgements never arrive: a
// crash or a broken connection right after the commit), and cut breaks
// the connections, so that the broker delivers those messages again (DUP).
type ackLosingProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	lose  bool
	lost  int
	conns []net.Conn
}

func startAckLosingProxy(t *testing.T, brokerPort int) *ackLosingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &ackLosingProxy{ln: ln}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", brokerPort))
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, b)
			p.mu.Unlock()
			go func() { io.Copy(c, b); c.Close() }()
			go func() { p.forward(c, b); b.Close() }()
		}
	}()
	return p
}

func (p *ackLosingProxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// forward copies the client's MQTT packets to the broker, but PUBACKs
// while lose is set.
func (p *ackLosingProxy) forward(from io.Reader, to io.Writer) {
	for {
		var h [1]byte
		if _, err := io.ReadFull(from, h[:]); err != nil {
			return
		}
		// The remaining length: a varint of up to four bytes.
		var lenBytes []byte
		n, shift := 0, 0
		for {
			var b [1]byte
			if _, err := io.ReadFull(from, b[:]); err != nil {
				return
			}
			lenBytes = append(lenBytes, b[0])
			n |= int(b[0]&0x7f) << shift
			shift += 7
			if b[0]&0x80 == 0 || len(lenBytes) == 4 {
				break
			}
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(from, body); err != nil {
			return
		}
		p.mu.Lock()
		drop := p.lose && h[0]>>4 == 4 // PUBACK
		if drop {
			p.lost++
		}
		p.mu.Unlock()
		if drop {
			continue
		}
		if _, err := to.Write(append(append(h[:], lenBytes...), body...)); err != nil {
			return
		}
	}
}

func (p *ackLosingProxy) losing(on bool) { p.mu.Lock(); p.lose = on; p.mu.Unlock() }
func (p *ackLosingProxy) lostAcks() int  { p.mu.Lock(); defer p.mu.Unlock(); return p.lost }

func (p *ackLosingProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// A message the gateway committed to the charting window but whose
// acknowledgement did not reach the broker (a SIGKILL right after the
// commit, or a connection broken then) is delivered again (MQTT DUP): its
// readings count once in their interval. The minute is charted as the
// median of the 60 readings the monitor sent, not of 68 (the eight
// redelivered twice), and says so in its method (9e937fe: a reading
// given twice counts once).
func TestRedeliveredMessageCountsOnceInItsInterval(t *testing.T) {
	t.Parallel()
	mq := startBroker(t)
	proxy := startAckLosingProxy(t, mq.port)
	record, cfg, _ := chartingGateway(t, fmt.Sprintf(`monitors:
  - id: bed-14-monitor
    location: bed-14
    profile: generic/json
    mqtt: {broker: "tcp://127.0.0.1:%d", topic: ward4b/bed-14/vitals, client_id: wg-charting-dup}
patients:
  static: {bed-14: Patient/dup}
`, proxy.port()))
	gw := test.Start(t, "run", "-config", cfg)
	gw.WaitLog(t, `subscribed; waiting for messages`, 30*time.Second)
	pub := mq.publisher(t, "ward4b/bed-14/vitals")

	// Early in a minute, so that the redeliveries come while it is open.
	if s := time.Now().Second(); s > 20 {
		sleepUntil(minuteOf(time.Now()).Add(time.Minute + time.Second))
	}
	first := time.Now().Truncate(time.Second).Add(time.Second)
	minute := minuteOf(first)
	end := minute.Add(time.Minute + 2*time.Second)
	const lost = 8
	params := map[string]sent{"MDC_ECG_HEART_RATE": {}}
	proxy.losing(true)
	for i, at := 0, first; at.Before(end); i, at = i+1, at.Add(time.Second) {
		sleepUntil(at.Add(300 * time.Millisecond))
		if i == lost {
			// The gateway committed and acknowledged 8 messages; the
			// broker never heard. The connection breaks: it delivers
			// them again.
			test.Eventually(t, 5*time.Second, func() bool { return proxy.lostAcks() >= lost },
				func() string { return fmt.Sprintf("%d PUBACKs lost", proxy.lostAcks()) })
			proxy.losing(false)
			proxy.cut()
		}
		hr := 60 + (i*7)%41
		params["MDC_ECG_HEART_RATE"].add(at, float64(hr))
		pub.send(t, jsonVitals("MX450-dup", at, hr, 97, nil))
	}
	if err := pub.close(); err != nil {
		t.Fatalf("mosquitto_pub: %v", err)
	}
	gw.WaitLogCount(t, `subscribed; waiting for messages`, 2, 10*time.Second)
	// The broker did deliver them again: the device's clock counts the
	// frames the transport marked redelivered.
	addr := gw.WaitLog(t, `status=http://([0-9.:]+)/`, time.Second)
	redelivered := regexp.MustCompile(`"frames_redelivered":\s*(\d+)`)
	var page string
	test.Eventually(t, 10*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/api/monitors")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		page = string(b)
		m := redelivered.FindStringSubmatch(page)
		n := 0
		if m != nil {
			n, _ = strconv.Atoi(m[1])
		}
		return n >= lost
	}, func() string { return "fewer redelivered frames than PUBACKs lost: " + page })
	start := minute.UTC().Format(time.RFC3339)
	charted := func() bool {
		return slices.ContainsFunc(of(t, observations(record), "Patient/dup", "MDC_ECG_HEART_RATE"), func(o fhir.Observation) bool {
			return o.EffectivePeriod != nil && o.EffectivePeriod.Start == start
		})
	}
	test.Eventually(t, 30*time.Second, charted, func() string { return "minute " + start + " not charted\n" + gw.Log() })
	for _, o := range of(t, observations(record), "Patient/dup", "MDC_ECG_HEART_RATE") {
		if o.EffectivePeriod == nil || o.EffectivePeriod.Start != start {
			continue
		}
		vs := params["MDC_ECG_HEART_RATE"][minute]
		want := fmt.Sprintf("median of %d readings over 1m", len(vs))
		if o.Method.Text != want || float64(o.ValueQuantity.Value) != median(vs) {
			t.Fatalf("minute %s: %v, %q; want %v, %q (%d PUBACKs were lost, their messages delivered again)",
				start, o.ValueQuantity.Value, o.Method.Text, median(vs), want, proxy.lostAcks())
		}
		return
	}
	t.Fatalf("minute %s not charted:\n%s", start, gw.Log())
}
