// Package devicestest holds what the tests of the monitor sources share: a
// Sink that records what it is given and can refuse or hold it, a log that
// can be read back, and waiting for a condition.
package devicestest

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/devices/profile"
	firmwareprofiles "github.com/wardgate/wardgate/firmware-profiles"
)

// Sink is a devices.Sink that keeps what it takes in memory. It can be told
// to refuse readings or bad frames (as a full outbox does) and to hold each
// Ingest until released (a commit under way).
type Sink struct {
	mu          sync.Mutex
	frames      [][]devices.Reading
	rejected    []Rejected
	ingestErr   error
	rejectErr   error
	ingests     int
	rejects     int
	hold        chan struct{}
	holding     chan struct{}
	holdEntered bool
}

// Rejected is a frame given to Reject.
type Rejected struct {
	Device, Reason string
	Raw            []byte
}

// Ingest stores the frames, or refuses them with the error given to
// RefuseIngest; while held, it waits for the release first.
func (s *Sink) Ingest(ctx context.Context, frames ...[]devices.Reading) error {
	s.mu.Lock()
	s.ingests++
	hold, holding := s.hold, s.holding
	if hold != nil && !s.holdEntered {
		s.holdEntered = true
		close(holding)
	}
	s.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ingestErr != nil {
		return s.ingestErr
	}
	for _, f := range frames {
		s.frames = append(s.frames, append([]devices.Reading(nil), f...))
	}
	return nil
}

// Reject keeps the frame, or refuses it with the error given to
// RefuseReject.
func (s *Sink) Reject(_ context.Context, device string, raw []byte, reason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejects++
	if s.rejectErr != nil {
		return s.rejectErr
	}
	s.rejected = append(s.rejected, Rejected{Device: device, Reason: reason, Raw: append([]byte(nil), raw...)})
	return nil
}

// RefuseIngest makes Ingest fail with err from now on; nil makes it store
// again.
func (s *Sink) RefuseIngest(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ingestErr = err
}

// RefuseReject makes Reject fail with err from now on; nil makes it keep
// frames again.
func (s *Sink) RefuseReject(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejectErr = err
}

// Hold makes Ingest wait until release is called. entered is closed when
// the first Ingest call is waiting.
func (s *Sink) Hold() (entered <-chan struct{}, release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	hold, holding := make(chan struct{}), make(chan struct{})
	s.hold, s.holding, s.holdEntered = hold, holding, false
	return holding, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.hold == hold {
			s.hold = nil
		}
		close(hold)
	}
}

// Frames is what Ingest stored, frame by frame.
func (s *Sink) Frames() [][]devices.Reading {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]devices.Reading(nil), s.frames...)
}

// Readings is how many readings Ingest stored.
func (s *Sink) Readings() int {
	n := 0
	for _, f := range s.Frames() {
		n += len(f)
	}
	return n
}

// Ingests is how many times Ingest was called.
func (s *Sink) Ingests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ingests
}

// Rejects is how many times Reject was called.
func (s *Sink) Rejects() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rejects
}

// Rejected is what Reject kept.
func (s *Sink) Rejected() []Rejected {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Rejected(nil), s.rejected...)
}

// Log is a log the test reads back.
type Log struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// NewLog returns a log and a logger that writes to it.
func NewLog() (*Log, *slog.Logger) {
	l := &Log{}
	return l, slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String is everything logged so far.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Count is how many lines logged so far hold s.
func (l *Log) Count(s string) int {
	n := 0
	for line := range strings.SplitSeq(l.String(), "\n") {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// WaitFor waits until cond holds, and fails the test (saying what it
// waited for, and what state tells more) if it does not within 10 s.
func WaitFor(t testing.TB, what string, cond func() bool, state func() string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10 s for %s; %s", what, state())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Profile is a built-in firmware profile.
func Profile(t testing.TB, name string) *profile.Profile {
	t.Helper()
	set, err := profile.Load(firmwareprofiles.FS, "")
	if err != nil {
		t.Fatal(err)
	}
	p, ok := set.Get(name)
	if !ok {
		t.Fatalf("no built-in profile %s", name)
	}
	return p
}

// Run runs a source's Run until the test ends or stop is called; stop
// cancels it and fails the test when Run returns an error or does not
// return within 10 s of its context ending.
func Run(t *testing.T, run func(context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Run did not return within 10 s of its context ending")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
