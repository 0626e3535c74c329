package edge

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// notifySocket listens where NOTIFY_SOCKET points, as systemd does, and
// hands over every datagram in order.
func notifySocket(t *testing.T) <-chan string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	got := make(chan string, 1024)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			got <- string(buf[:n])
		}
	}()
	return got
}

// next returns the next datagram, failing after a generous bound.
func next(t *testing.T, got <-chan string) string {
	t.Helper()
	select {
	case m := <-got:
		return m
	case <-time.After(30 * time.Second):
		t.Fatal("no notification within 30 s")
		return ""
	}
}

// A look that hangs stops the pings, without a timing assertion: the test
// puts its own marks on the socket around the hang, and no WATCHDOG=1 may
// arrive between them; the pings resume once the look returns.
func TestWatchdogStopsPingingWhileThePipelineDoesNotAnswer(t *testing.T) {
	got := notifySocket(t)
	var (
		mu      sync.Mutex
		stuck   bool
		entered = make(chan struct{})
		release = make(chan struct{})
	)
	w := &watchdog{
		every: 10 * time.Millisecond,
		alive: func() error {
			mu.Lock()
			s := stuck
			mu.Unlock()
			if s {
				close(entered)
				<-release
			}
			return nil
		},
		notify: func(s string) error { _, err := daemon.SdNotify(false, s); return err },
		log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.run(ctx) }()
	defer func() { cancel(); <-done }()

	for range 2 {
		if m := next(t, got); m != "WATCHDOG=1" {
			t.Fatalf("got %q, want WATCHDOG=1", m)
		}
	}
	mu.Lock()
	stuck = true
	mu.Unlock()
	<-entered // every ping sent so far is on the socket already
	mark := func(s string) {
		if _, err := daemon.SdNotify(false, s); err != nil {
			t.Fatal(err)
		}
	}
	mark("MARK=hang")
	missed := w.missed.Load()
	deadline := time.Now().Add(30 * time.Second)
	for w.missed.Load() < missed+3 {
		if time.Now().After(deadline) {
			t.Fatal("the watchdog did not count three missed intervals within 30 s")
		}
		time.Sleep(time.Millisecond)
	}
	mark("MARK=release")
	close(release)

	for m := next(t, got); m != "MARK=hang"; m = next(t, got) {
		if m != "WATCHDOG=1" {
			t.Fatalf("got %q before the hang", m)
		}
	}
	if m := next(t, got); m != "MARK=release" {
		t.Fatalf("got %q while the look hung; want no ping", m)
	}
	if m := next(t, got); m != "WATCHDOG=1" {
		t.Fatalf("got %q after the look returned, want WATCHDOG=1", m)
	}
}

// A part that returned early fails the look, and the look names it.
func TestAliveNamesAPartThatStopped(t *testing.T) {
	sup := newSupervisor(slog.New(slog.NewTextHandler(io.Discard, nil)))
	quit := make(chan struct{})
	sup.start(part{"fhir delivery", func(ctx context.Context) error { <-ctx.Done(); return nil }})
	sup.start(part{"held frames", func(ctx context.Context) error { <-quit; return nil }})
	defer sup.stop(time.Minute)
	if name := sup.exited(); name != "" {
		t.Fatalf("exited = %q with every part running", name)
	}
	close(quit)
	deadline := time.Now().Add(30 * time.Second)
	for sup.exited() == "" {
		if time.Now().After(deadline) {
			t.Fatal("the part's end was not seen within 30 s")
		}
		time.Sleep(time.Millisecond)
	}
	if name := sup.exited(); !strings.Contains(name, "held frames") {
		t.Fatalf("exited = %q, want held frames", name)
	}
}

// NOTIFY_SOCKET may name an abstract socket ("@..."), as newer systemd
// versions hand out; WATCHDOG_PID naming another process means the watchdog
// is someone else's (a child that inherited the environment): no pings.
func TestNotifyAbstractSocketAndWatchdogPID(t *testing.T) {
	name := "@wardgate-test-" + strconv.Itoa(os.Getpid())
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", name)
	g := &Gateway{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	g.sdNotify("READY=1")
	buf := make([]byte, 64)
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	if n, err := conn.Read(buf); err != nil || string(buf[:n]) != "READY=1" {
		t.Fatalf("read %q, %v; want READY=1", buf[:n], err)
	}

	t.Setenv("WATCHDOG_USEC", "1000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()+1))
	select {
	case <-g.startWatchdog(context.Background(), newSupervisor(g.log)):
	default:
		t.Fatal("a watchdog runs for another process's WATCHDOG_PID")
	}
}
