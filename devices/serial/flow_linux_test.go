//go:build linux

package serial

import (
	"testing"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/wardgate/wardgate/devices/internal/devicestest"
)

// Flow control is checked on pseudo-terminals by reading the flags back
// with TCGETS. What a pseudo-terminal cannot show: it has no modem lines,
// so CTS never drops and RTS drives nothing; Linux keeps CRTSCTS in its
// termios but does not act on it. That the driver holds its output while
// the monitor drops CTS, and drops RTS when its own buffer fills, shows
// only on a real UART (a USB adapter and a null-modem cable with RTS/CTS
// crossed). XON/XOFF is the line discipline's and does act on a
// pseudo-terminal; here too only the flags are checked.

func flags(t *testing.T, fd int) (rtscts, xonxoff bool) {
	t.Helper()
	tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	return tio.Cflag&unix.CRTSCTS != 0, tio.Iflag&(unix.IXON|unix.IXOFF) == unix.IXON|unix.IXOFF
}

func TestSetFlowControlOnPseudoTerminal(t *testing.T) {
	master, tty, err := pty.Open()
	if err != nil {
		t.Fatalf("a pseudo-terminal: %v", err)
	}
	defer master.Close()
	defer tty.Close()
	fd := int(tty.Fd())
	for _, c := range []struct {
		flow            string
		rtscts, xonxoff bool
	}{
		{"rtscts", true, false},
		{"xonxoff", false, true},
		{"rtscts", true, false},
		{"none", false, false},
	} {
		if err := SetFlowControl(tty, tty.Name(), c.flow); err != nil {
			t.Fatalf("%s: %v", c.flow, err)
		}
		if r, x := flags(t, fd); r != c.rtscts || x != c.xonxoff {
			t.Fatalf("%s: CRTSCTS %v, IXON|IXOFF %v", c.flow, r, x)
		}
	}
	if err := SetFlowControl(tty, tty.Name(), "dtrdsr"); err == nil {
		t.Fatal("an unknown flow control was set")
	}
	// Found by the device number among the open descriptors, for a port
	// that does not say its descriptor.
	if err := SetFlowControl(struct{}{}, tty.Name(), "rtscts"); err != nil {
		t.Fatal(err)
	}
	if r, _ := flags(t, fd); !r {
		t.Fatal("CRTSCTS not set through the path")
	}
}

// The serial library's port, opened by the source's opener on a socat
// pseudo-terminal with each flow control the config names.
func TestOpenSerialSetsFlowControl(t *testing.T) {
	_, gw, _ := devicestest.SocatPair(t, t.TempDir())

	for _, c := range []struct {
		flow            string
		rtscts, xonxoff bool
	}{
		{"rtscts", true, false},
		{"xonxoff", false, true},
		{"none", false, false},
	} {
		s := Settings{Baud: 19200, DataBits: 8, Parity: "even", StopBits: "1", FlowControl: c.flow}
		p, err := openSerial(gw, s)
		if err != nil {
			t.Fatalf("%s: %v", c.flow, err)
		}
		fd, err := portFD(p, "/nonexistent") // the library's own descriptor, not one found by path
		if err != nil {
			p.Close()
			t.Fatal(err)
		}
		r, x := flags(t, fd)
		p.Close()
		if r != c.rtscts || x != c.xonxoff {
			t.Fatalf("%s: CRTSCTS %v, IXON|IXOFF %v", c.flow, r, x)
		}
	}
	if _, err := (Settings{Baud: 9600, DataBits: 8, Parity: "none", StopBits: "1", FlowControl: "dtrdsr"}).mode(); err == nil {
		t.Fatal("an unknown flow control was accepted")
	}
}
