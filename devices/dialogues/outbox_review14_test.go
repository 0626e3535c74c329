package dialogues

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/devices/intellivue"
	"github.com/wardgate/wardgate/devices/sim/intellivuesim"
)

// refusing is an outbox that refuses readings, taking one offer in every
// few: each refusal that follows a taken offer holds emit for the whole
// OutboxWait again.
type refusing struct {
	mu           sync.Mutex
	calls, taken int
	every        int
}

func (s *refusing) Ingest(ctx context.Context, frames ...[]devices.Reading) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.calls%s.every == 0 {
		s.taken++
		return nil
	}
	return errors.New("outbox full")
}

func (s *refusing) Reject(ctx context.Context, device string, raw []byte, reason string) error {
	return nil
}

func (s *refusing) counts() (int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls, s.taken
}

// An outbox that refuses holds the IntelliVue dialogue's emit for the
// Source's OutboxWait (5 s) again and again; the association lives on (the
// keep-alive goes out between two answers, within the monitor's 10 s), no
// new session is opened, and the readings not stored are counted lost on
// the page, the monitor shown as failing.
func TestReview14RefusingOutboxKeepsTheIntelliVueAssociation(t *testing.T) {
	if testing.Short() {
		t.Skip("holds the association through three refusals of 5 s")
	}
	p := loadReview14Profile(t, "philips/intellivue-mx")
	sim := intellivuesim.New(intellivuesim.Config{Location: time.UTC, Logger: slog.New(slog.DiscardHandler)})
	r1, w1 := io.Pipe()
	r2, w2 := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan struct{})
	go func() { sim.ServeStream(ctx, duplex{r2, w1}); close(served) }()
	defer func() {
		cancel()
		r2.Close()
		w1.Close()
		r1.Close()
		w2.Close()
		<-served
	}()
	link := intellivue.NewSerialLink(duplex{r1, w2}, 0)
	var opens int
	var mu sync.Mutex
	d, err := intellivue.New(intellivue.Options{Transport: intellivue.Serial, Location: time.UTC, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	out := &refusing{every: 7}
	mon := devices.NewMonitor("bed-5-monitor", "bed-5", p.Name, "serial")
	s := &Source{ID: "bed-5-monitor", Location: "bed-5", Profile: p, Dialogue: d, Transport: "serial", Address: "pipe",
		Sink: out, Monitor: mon, Log: slog.New(slog.DiscardHandler), MaxBackoff: 100 * time.Millisecond,
		Open: func(ctx context.Context) (devices.Link, io.Closer, error) {
			mu.Lock()
			defer mu.Unlock()
			opens++
			if opens > 1 {
				return nil, nil, errors.New("the session was opened again")
			}
			return link, nopCloser{}, nil
		}}
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, taken := out.counts(); taken >= 3 {
			break
		}
		if time.Now().After(deadline) {
			c, tk := out.counts()
			t.Fatalf("%d offers, %d taken", c, tk)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	n := opens
	mu.Unlock()
	st := sim.Stats()
	cancel()
	<-done
	if n != 1 || st.Associations != 1 || st.Aborts != 0 {
		t.Fatalf("%d opens, monitor %+v: the association was lost while the outbox refused", n, st)
	}
	if ms := mon.Status(); ms.Lost == 0 {
		t.Fatalf("readings refused, none counted lost: %+v", ms)
	}
}
