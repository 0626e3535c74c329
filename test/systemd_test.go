package test

import (
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// systemdNotifySocket listens where NOTIFY_SOCKET will point, as systemd
// does, and hands over each datagram in order.
func systemdNotifySocket(t *testing.T) (path string, got <-chan string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := make(chan string, 4096)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(c)
				return
			}
			c <- string(buf[:n])
		}
	}()
	return path, c
}

// The real binary under a real notify socket, as systemd runs it with
// Type=notify and WatchdogSec=: READY=1 once serving, WATCHDOG=1 again and
// again while the pipeline answers, STOPPING=1 on SIGTERM and no ping after
// it. (That the pings stop while the stores do not answer is
// TestWatchdogStopsPingingWhileThePipelineDoesNotAnswer in edge: the binary
// offers no way to hang its stores on purpose.)
func TestSystemdNotifyReadyWatchdogStopping(t *testing.T) {
	sock, got := systemdNotifySocket(t)
	cfg, _ := gatewayConfig(t, "dicom: {ae_title: WARDGATE, allow_any: true, listen: '127.0.0.1:0'}\n")
	p := StartEnv(t, []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=200000"}, "run", "-config", cfg)

	next := func(what string) string {
		t.Helper()
		select {
		case m, ok := <-got:
			if !ok {
				t.Fatalf("the notify socket closed while waiting for %s", what)
			}
			return m
		case <-time.After(60 * time.Second):
			t.Fatalf("no %s within 60 s; log:\n%s", what, p.Log())
			return ""
		}
	}
	first := next("READY=1")
	if !regexpMatch(`^READY=1\nSTATUS=running; status page http://127\.0\.0\.1:\d+/$`, first) {
		t.Fatalf("first notification %q, want READY=1 with a STATUS", first)
	}
	// The gateway writes "wardgate running" to stderr before it sends
	// READY=1, but the two travel by different ways (a pipe the harness
	// copies, a datagram socket), so the line may reach the harness a little
	// later than the datagram: wait for it rather than demand it now.
	p.WaitLog(t, `wardgate running`, 10*time.Second)
	for i := range 3 {
		if m := next("WATCHDOG=1"); m != "WATCHDOG=1" {
			t.Fatalf("notification %d after READY: %q, want WATCHDOG=1", i+1, m)
		}
	}
	p.Cmd.Process.Signal(syscall.SIGTERM)
	for {
		m := next("STOPPING=1")
		if m == "WATCHDOG=1" {
			continue // sent before the signal was seen
		}
		if !regexpMatch(`^STOPPING=1\n`, m) {
			t.Fatalf("got %q, want STOPPING=1", m)
		}
		break
	}
	if code := p.Wait(t, 90*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM:\n%s", code, p.Log())
	}
	// Everything sent is queued by now: nothing may follow STOPPING=1.
	select {
	case m, ok := <-got:
		if ok {
			t.Fatalf("%q after STOPPING=1", m)
		}
	default:
	}
}
