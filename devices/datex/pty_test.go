package datex_test

import (
	"errors"
	"os"
	"testing"
	"time"

	bugst "go.bug.st/serial"

	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/devices/datex"
	"github.com/wardgate/wardgate/devices/internal/devicestest"
	"github.com/wardgate/wardgate/devices/serial"
)

// The dialogue over a socat pseudo-terminal pair: the gateway's end opened
// as the gateway opens a port (go.bug.st/serial, 19200 8E1, RTS/CTS set
// through termios, a read timeout so that Read returns (0, nil)), the
// monitor's end a plain file. Values, garbage, an over-long claim, the
// monitor falling silent, the stop request.
func TestDialogueOverPseudoTerminal(t *testing.T) {
	monPath, gwPath, _ := devicestest.SocatPair(t, t.TempDir())

	port, err := bugst.Open(gwPath, &bugst.Mode{BaudRate: 19200, DataBits: 8, Parity: bugst.EvenParity, StopBits: bugst.OneStopBit})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { port.Close() })
	if err := serial.SetFlowControl(port, gwPath, "rtscts"); err != nil {
		t.Fatal(err)
	}
	if err := port.SetReadTimeout(100 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	monEnd, err := os.OpenFile(monPath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}

	// socat relays between the pseudo-terminals: a protocol second of
	// 250 ms (a silence of 3.75 s) rides out socat waiting for a CPU on a
	// loaded machine.
	m, d := slower(newMonitor(), newDialogue(), 250*time.Millisecond)
	m.Garbage(true)
	m.OverClaim(1)
	s := start(t, m, d, port, monEnd)
	s.waitFor(t, "three records", func() bool { return len(s.got()) >= 3 })
	got := s.got()
	if got[0].Bad == 0 || byField(got[0])["nibp.sys"].Value != 120 {
		t.Fatalf("the over-claiming record: bad %d, values %v", got[0].Bad, got[0].Values)
	}
	checkFrame(t, got[1], false)
	checkFrame(t, got[2], false)
	if s.link.BadFrames() == 0 {
		t.Fatal("the garbage was not counted")
	}

	m.Mute(true)
	s.waitFor(t, "Run to end", func() bool { _, ended := s.result(); return ended })
	if err, _ := s.result(); !errors.Is(err, devices.ErrSilent) {
		t.Fatalf("Run: %v, want an error wrapping ErrSilent", err)
	}

	// A new session on the same port, as the source would hold after a
	// silence; the stop request at its end.
	s.link.Close()
	m.Mute(false)
	n := len(m.Requests())
	s = runDialogue(t, m, s.d, port)
	s.waitFor(t, "records again", func() bool { return len(s.got()) >= 1 })
	if err := s.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	s.waitFor(t, "the stop request", func() bool {
		r := m.Requests()
		return len(r) > n+1 && r[len(r)-1].Interval == datex.IntervalStop
	})
}
