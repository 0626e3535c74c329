package hl7sim

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices/hl7"
)

// receiver records what an hl7.Server took, by control id, and how many
// times each was delivered.
type receiver struct {
	mu        sync.Mutex
	delivered map[string]int
	peers     map[string]bool
	// decide, when set, answers a delivery (n: how many times this control
	// id came, from 1).
	decide func(id string, n int) hl7.Reply
}

func (r *receiver) HandleMessage(_ context.Context, m *hl7.Message, from hl7.Peer) hl7.Reply {
	id := m.Field("MSH", 1, 10).Text()
	r.mu.Lock()
	if r.delivered == nil {
		r.delivered, r.peers = map[string]int{}, map[string]bool{}
	}
	r.delivered[id]++
	n := r.delivered[id]
	r.peers[from.Remote.String()] = true
	r.mu.Unlock()
	if r.decide != nil {
		return r.decide(id, n)
	}
	return hl7.Reply{Outcome: hl7.Accepted}
}

func (r *receiver) count(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.delivered[id]
}

// serve runs an hl7.Server with h on a loopback port.
func serve(t *testing.T, h hl7.Handler, tune func(*hl7.Server)) (string, *hl7.Server) {
	t.Helper()
	s := &hl7.Server{Handler: h, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if tune != nil {
		tune(s)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return ln.Addr().String(), s
}

func station(t *testing.T, c Config) *Station {
	t.Helper()
	st, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	st.Occupy()
	return st
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestClientDelivers(t *testing.T) {
	for _, enhanced := range []bool{false, true} {
		var rec receiver
		addr, srv := serve(t, &rec, nil)
		c := &Client{Addr: addr}
		defer c.Close()
		st := station(t, Config{Beds: 5, Enhanced: enhanced, Seed: 1})
		ctx := testContext(t)
		var ids []string
		for cycle := range 10 {
			for _, m := range st.Results(t0.Add(time.Duration(cycle) * 5 * time.Second)) {
				if err := c.Send(ctx, m.Bytes); err != nil {
					t.Fatal(err)
				}
				ids = append(ids, m.ControlID)
			}
		}
		for _, id := range ids {
			if n := rec.count(id); n != 1 {
				t.Fatalf("%s delivered %d times", id, n)
			}
		}
		s := c.Stats()
		if s.Sent != uint64(len(ids)) || s.Acked != s.Sent || s.Retried != 0 || s.Dials != 1 || len(c.Latencies()) != len(ids) {
			t.Fatalf("enhanced %v: stats %+v, %d latencies", enhanced, s, len(c.Latencies()))
		}
		if c.Percentile(50) <= 0 || c.Percentile(99) < c.Percentile(50) {
			t.Fatalf("p50 %v p99 %v", c.Percentile(50), c.Percentile(99))
		}
		if got := srv.Stats().Accepted; got != uint64(len(ids)) {
			t.Fatalf("server accepted %d", got)
		}
	}
}

// TestClientWaitsForTheApplicationAck: MSH-16 AL after MSH-15 AL sends CA
// then AA; both are read, so the next message's acknowledgement is its own.
func TestClientWaitsForTheApplicationAck(t *testing.T) {
	var rec receiver
	addr, _ := serve(t, &rec, nil)
	c := &Client{Addr: addr}
	defer c.Close()
	ctx := testContext(t)
	for _, id := range []string{"E1", "E2", "E3"} {
		msg := []byte("MSH|^~\\&|CENTRAL|HOSP|WARDGATE|WARD|20261202090000+0000||ORU^R01^ORU_R01|" + id + "|P|2.6|||AL|AL\rPV1||I|WARD^^BED1\r")
		if err := c.Send(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	if s := c.Stats(); s.Acked != 3 || s.Lost != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestClientResendsWhenBusy: AE with RETRY is answered by the same message
// again, same control id, until it is stored.
func TestClientResendsWhenBusy(t *testing.T) {
	rec := receiver{decide: func(_ string, n int) hl7.Reply {
		if n <= 2 {
			return hl7.Reply{Outcome: hl7.Busy}
		}
		return hl7.Reply{Outcome: hl7.Accepted}
	}}
	addr, srv := serve(t, &rec, nil)
	c := &Client{Addr: addr, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
	defer c.Close()
	st := station(t, Config{Beds: 2, Seed: 2})
	ctx := testContext(t)
	ms := st.Results(t0)
	for _, m := range ms {
		if err := c.Send(ctx, m.Bytes); err != nil {
			t.Fatal(err)
		}
		if n := rec.count(m.ControlID); n != 3 {
			t.Fatalf("%s delivered %d times, want 3", m.ControlID, n)
		}
	}
	s := c.Stats()
	if s.Acked != uint64(len(ms)) || s.Busy != 2*uint64(len(ms)) || s.Retried != s.Busy || s.Dials != 1 || s.Rejected != 0 {
		t.Fatalf("stats %+v", s)
	}
	if b := srv.Stats().Busy; b != 2*uint64(len(ms)) {
		t.Fatalf("server answered Busy %d times", b)
	}
}

// TestClientReconnects: the server closes the connection under a message
// (its handler panics, so no acknowledgement is sent); the client dials
// again and sends the same message, which is then stored.
func TestClientReconnects(t *testing.T) {
	rec := receiver{decide: func(_ string, n int) hl7.Reply {
		if n == 1 {
			panic("the receiver fails under this message")
		}
		return hl7.Reply{Outcome: hl7.Accepted}
	}}
	addr, srv := serve(t, &rec, nil)
	c := &Client{Addr: addr, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
	defer c.Close()
	st := station(t, Config{Beds: 3, Seed: 3})
	ctx := testContext(t)
	ms := st.Results(t0)
	for _, m := range ms {
		if err := c.Send(ctx, m.Bytes); err != nil {
			t.Fatal(err)
		}
		if n := rec.count(m.ControlID); n != 2 {
			t.Fatalf("%s delivered %d times, want 2", m.ControlID, n)
		}
	}
	s := c.Stats()
	if s.Acked != uint64(len(ms)) || s.Lost != uint64(len(ms)) || s.Dials != uint64(len(ms))+1 || s.Retried != uint64(len(ms)) {
		t.Fatalf("stats %+v", s)
	}
	if p := srv.Stats().Panics; p != uint64(len(ms)) {
		t.Fatalf("server closed %d connections", p)
	}
}

// TestClientReconnectsAfterIdleClose: the receiver closed an idle
// connection; the next message finds it gone and goes out on a new one.
func TestClientReconnectsAfterIdleClose(t *testing.T) {
	var rec receiver
	addr, _ := serve(t, &rec, func(s *hl7.Server) { s.IdleTimeout = 50 * time.Millisecond })
	c := &Client{Addr: addr, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
	defer c.Close()
	st := station(t, Config{Beds: 1, Seed: 4})
	ctx := testContext(t)
	for cycle := range 3 {
		m, _ := st.Result(1, t0.Add(time.Duration(cycle)*time.Second))
		if err := c.Send(ctx, m.Bytes); err != nil {
			t.Fatal(err)
		}
		time.Sleep(150 * time.Millisecond) // the server closes the idle connection
	}
	if s := c.Stats(); s.Acked != 3 || s.Dials != 3 {
		t.Fatalf("stats %+v", s)
	}
}

// TestClientReconnectsToARestartedServer: the receiver goes away and comes
// back on the same address; what was sent meanwhile is delivered then.
func TestClientReconnectsToARestartedServer(t *testing.T) {
	var rec receiver
	addr, srv := serve(t, &rec, nil)
	c := &Client{Addr: addr, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}
	defer c.Close()
	st := station(t, Config{Beds: 1, Seed: 5})
	ctx := testContext(t)
	m1, _ := st.Result(1, t0)
	if err := c.Send(ctx, m1.Bytes); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	srv.Shutdown(sctx)
	cancel()
	m2, _ := st.Result(1, t0.Add(time.Second))
	done := make(chan error, 1)
	go func() { done <- c.Send(ctx, m2.Bytes) }()
	time.Sleep(100 * time.Millisecond) // a few failed dials
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv2 := &hl7.Server{Handler: &rec, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	go srv2.Serve(ln)
	defer srv2.Shutdown(context.Background())
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if rec.count(m2.ControlID) != 1 {
		t.Fatalf("%s delivered %d times", m2.ControlID, rec.count(m2.ControlID))
	}
	if s := c.Stats(); s.Acked != 2 || s.FailedDials == 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestClientManyConnections(t *testing.T) {
	var rec receiver
	addr, srv := serve(t, &rec, nil)
	c := &Client{Addr: addr, Connections: 8}
	defer c.Close()
	st := station(t, Config{Beds: 16, Seed: 6})
	var all []Message
	for cycle := range 25 {
		all = append(all, st.Results(t0.Add(time.Duration(cycle)*time.Second))...)
	}
	ctx := testContext(t)
	work := make(chan Message)
	var wg sync.WaitGroup
	errs := make(chan error, len(all))
	for range 16 {
		wg.Go(func() {
			for m := range work {
				if err := c.Send(ctx, m.Bytes); err != nil {
					errs <- err
				}
			}
		})
	}
	for _, m := range all {
		work <- m
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, m := range all {
		if n := rec.count(m.ControlID); n != 1 {
			t.Fatalf("%s delivered %d times", m.ControlID, n)
		}
	}
	s := c.Stats()
	if s.Acked != uint64(len(all)) || s.Dials > 8 {
		t.Fatalf("stats %+v", s)
	}
	if n := len(rec.peers); n < 2 || n > 8 {
		t.Fatalf("%d connections used, want 2 to 8", n)
	}
	if o := srv.Stats().ConnectionsTotal; o > 8 {
		t.Fatalf("server saw %d connections", o)
	}
}

func TestClientRejected(t *testing.T) {
	rec := receiver{decide: func(string, int) hl7.Reply {
		return hl7.Reply{Outcome: hl7.Failed, Text: "not taken"}
	}}
	addr, _ := serve(t, &rec, nil)
	c := &Client{Addr: addr}
	defer c.Close()
	st := station(t, Config{Beds: 1, Seed: 7})
	m, _ := st.Result(1, t0)
	err := c.Send(testContext(t), m.Bytes)
	var rej *RejectedError
	if !errors.As(err, &rej) || rej.Code != "AE" || rej.ControlID != m.ControlID || rej.Text != "not taken" {
		t.Fatalf("err %v", err)
	}
	if s := c.Stats(); s.Rejected != 1 || s.Acked != 0 || s.Retried != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestClientGivesUpWithTheContext: nothing listens; Send returns when its
// context ends, and the message counts as unacknowledged.
func TestClientGivesUpWithTheContext(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	c := &Client{Addr: addr, MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}
	st := station(t, Config{Beds: 1, Seed: 8})
	m, _ := st.Result(1, t0)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := c.Send(ctx, m.Bytes); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
	if s := c.Stats(); s.Unacked != 1 || s.FailedDials == 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	if p := Percentile(d, 50); p != 50*time.Millisecond {
		t.Errorf("p50 %v", p)
	}
	if p := Percentile(d, 99); p != 99*time.Millisecond {
		t.Errorf("p99 %v", p)
	}
	if p := Percentile(nil, 99); p != 0 {
		t.Errorf("empty %v", p)
	}
}
