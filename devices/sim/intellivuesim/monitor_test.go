package intellivuesim

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices/intellivue"
)

// The monitor's own framing against the public vectors.
func TestCRC16(t *testing.T) {
	if got := crc16([]byte("123456789")); got != 0x906E {
		t.Fatalf("crc16 = %#04x", got)
	}
	if got := crc16([]byte{0x3A, 0x71}); got != 0x269B { // sent 9B 26
		t.Fatalf("crc16(3A 71) = %#04x", got)
	}
	if got := crc16([]byte{0x3A, 0x91}); got != 0xC195 { // sent 95 7D E1
		t.Fatalf("crc16(3A 91) = %#04x", got)
	}
}

// The monitor's frames and the client's deframer agree, and the other
// way round.
func TestFramingAgreesWithTheClient(t *testing.T) {
	msg := []byte{0xE1, 0x00, 0xC0, 0xC1, 0x7D, 0x20}
	got, err := intellivue.DecodeFrame(frame(msg))
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("client read % X, %v", got, err)
	}
	var u unframer
	var back []byte
	u.push(append([]byte{0x12, 0xC0, 0x99}, intellivue.AppendFrame(nil, msg)...), func(m []byte) { back = m })
	if !bytes.Equal(back, msg) {
		t.Fatalf("monitor read % X", back)
	}
}

func associate(t *testing.T, m *Monitor, now time.Time) [][]byte {
	t.Helper()
	out := m.handle(intellivue.AssociationRequest(time.Second), now)
	if len(out) != 2 {
		t.Fatalf("%d messages for an association request", len(out))
	}
	return out
}

func TestAssociation(t *testing.T) {
	m := New(Config{Location: time.UTC})
	now := time.Now()
	out := associate(t, m, now)
	res, err := intellivue.ParseAssociationResult(out[0])
	if err != nil || !res.Accepted || res.MinPollPeriod != time.Second || res.Options != 0x8C000000 {
		t.Fatalf("result %+v, %v", res, err)
	}
	op, err := intellivue.ParseOperation(out[1])
	if err != nil {
		t.Fatal(err)
	}
	c, ok := intellivue.ParseMDSCreate(op, time.UTC)
	if !ok || c.Bad != 0 || c.Info.Model != "MX800" || c.Info.Serial != "DE00000001" {
		t.Fatalf("MDS create %+v", c)
	}
	if a, ok := c.Info.Anchor(); !ok || a.Rel != c.EventTime {
		t.Fatalf("anchor %+v", a)
	}
	// the client's result is taken, and no MDS create is sent again
	m.handle(intellivue.MDSCreateResult(c.InvokeID, c.MDS, c.EventTime), now)
	if m.Stats().MDSCreateResults != 1 || len(m.tick(now.Add(3*time.Second))) != 0 {
		t.Fatalf("stats %+v", m.Stats())
	}
	// an association quiet for the monitor's timeout is dropped
	m.tick(now.Add(11 * time.Second))
	if m.Associated() {
		t.Fatal("an association quiet for 11 s is kept")
	}
	// and what the client sends then is aborted
	out = m.handle(intellivue.PollRequest(2, 1, intellivue.ClassMDS), now.Add(12*time.Second))
	if len(out) != 1 || intellivue.KindOf(out[0]) != intellivue.KindAbort {
		t.Fatalf("after the timeout: %d messages", len(out))
	}
	// a refusing monitor
	r := New(Config{Refuse: true})
	out = r.handle(intellivue.AssociationRequest(time.Second), now)
	if len(out) != 1 || intellivue.KindOf(out[0]) != intellivue.KindRefuse {
		t.Fatal("not refused")
	}
	// a request that is not one is not answered
	if out := m.handle([]byte{0x0D, 0x05, 1, 2, 3}, now); out != nil {
		t.Fatal("a broken request was answered")
	}
}

// The extended poll: answered each interval as linked results until its
// period ends, then a final result.
func TestExtendedPoll(t *testing.T) {
	m := New(Config{Interval: time.Second, Location: time.UTC})
	now := time.Now()
	associate(t, m, now)
	out := m.handle(intellivue.ExtendedPollRequest(9, 1, intellivue.ClassNumeric, 3*time.Second), now)
	if len(out) != 1 {
		t.Fatalf("%d answers at once", len(out))
	}
	var linked, final int
	for i := 0; i <= 40; i++ {
		at := now.Add(time.Duration(i) * 100 * time.Millisecond)
		if i > 0 {
			m.handle(intellivue.PollRequest(10, 0, intellivue.ClassMDS), at) // keep-alive
			out = m.tick(at)
		}
		for _, msg := range out {
			r, err := intellivue.DecodePollResult(msg, time.UTC)
			if err != nil || r.Bad != 0 || r.InvokeID != 9 || r.Action != intellivue.ActionPollExtended {
				continue // keep-alive answers
			}
			if r.Linked {
				linked++
			} else {
				final++
			}
		}
		out = nil
	}
	if linked != 3 || final != 1 {
		t.Fatalf("%d linked results and %d final ones, want 3 and 1", linked, final)
	}
	if st := m.Stats(); st.KeepAlives != 40 || st.ExtendedPolls != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// The NIBP comes once per cuff, stamped with the cuff's time.
func TestNIBPOncePerCuff(t *testing.T) {
	m := New(Config{NIBPEvery: time.Minute, NIBPAge: 10 * time.Second, Location: time.UTC})
	count := func(at time.Time) int {
		n := 0
		for _, msg := range m.handle(intellivue.PollRequest(3, 1, intellivue.ClassNumeric), at) {
			r, _ := intellivue.DecodePollResult(msg, time.UTC)
			for _, v := range r.Numerics {
				if v.Physio == PhysioNIBPSys {
					n++
					if !v.HasStampRel || v.StampAbs.IsZero() {
						t.Errorf("NIBP without its stamps: %+v", v)
					}
				}
			}
		}
		return n
	}
	start := m.started
	associate(t, m, start)
	if n := count(start); n != 1 {
		t.Fatalf("%d NIBPs in the first answer", n)
	}
	if n := count(start.Add(time.Second)); n != 0 {
		t.Fatalf("%d NIBPs in the second answer", n)
	}
	if n := count(start.Add(51 * time.Second)); n != 1 {
		t.Fatalf("%d NIBPs after the next cuff", n)
	}
}

// The Connect Indication reaches a listener and tells the monitor's
// model.
func TestConnectIndication(t *testing.T) {
	l, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := New(Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.BroadcastConnectIndication(ctx, s, l.LocalAddr().(*net.UDPAddr), time.Hour)
	l.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 2048)
	n, _, err := l.ReadFromUDP(buf)
	if err != nil {
		t.Fatal(err)
	}
	info, ok := intellivue.ParseConnectIndication(buf[:n], time.UTC)
	if !ok || info.Model != "MX800" || info.Manufacturer != "Philips Medical Systems" {
		t.Fatalf("%+v %v", info, ok)
	}
}

// ListenAndServe on configurable ports: a client associates, and the
// Connect Indication is broadcast (here to a loopback listener).
func TestListenAndServe(t *testing.T) {
	l, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// a free port for the monitor
	probe, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	addr := probe.LocalAddr().String()
	probe.Close()
	m := New(Config{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- m.ListenAndServe(ctx, UDPConfig{Listen: addr, Broadcast: l.LocalAddr().String(), Every: 50 * time.Millisecond})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ListenAndServe: %v", err)
		}
	}()
	l.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 2048)
	n, from, err := l.ReadFromUDP(buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := intellivue.ParseConnectIndication(buf[:n], time.UTC); !ok || from.String() != addr {
		t.Fatalf("indication from %s (monitor at %s)", from, addr)
	}
	c, err := net.DialUDP("udp", nil, from)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(intellivue.AssociationRequest(time.Second))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err = c.Read(buf)
	if err != nil || intellivue.KindOf(buf[:n]) != intellivue.KindAccept {
		t.Fatalf("answer % X, %v", buf[:n], err)
	}
}
