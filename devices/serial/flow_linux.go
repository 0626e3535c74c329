//go:build linux

package serial

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"

	"golang.org/x/sys/unix"
)

// go.bug.st/serial opens a port with RTS/CTS and XON/XOFF off and offers
// no way to turn them on; the S/5 computer interface (devices/datex) needs
// RTS/CTS. Termios belongs to the tty, not to a descriptor: the flags are
// set with TCGETS/TCSETS on the descriptor the library holds, read from its
// port (v1.8.0 keeps it in the unexported field handle, readable through
// reflect without unsafe); should a later version rename it, the
// descriptor is found among this process's open files (/proc/self/fd) by
// the device number of path. Opening the path a second time is no way
// round: the library takes the tty with TIOCEXCL, so a second open fails
// with EBUSY for anyone but root.

// flowSupported reports whether this build sets the flow control named.
func flowSupported(flow string) bool {
	switch flow {
	case "none", "rtscts", "xonxoff":
		return true
	}
	return false
}

// SetFlowControl sets the flow control of port, open on path: "none",
// "rtscts" (CRTSCTS: the driver sends only while CTS is up and drops RTS
// when its receive buffer fills) or "xonxoff" (IXON|IXOFF: the driver
// obeys and sends DC1/DC3; only for text protocols, as it takes bytes 0x11
// and 0x13 out of what is read).
func SetFlowControl(port any, path, flow string) error {
	fd, err := portFD(port, path)
	if err != nil {
		return err
	}
	return setFlowFD(fd, flow)
}

// setFlowFD sets the flow control of the tty open on fd, and reads it
// back: a driver that drops the flag is an error.
func setFlowFD(fd int, flow string) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return fmt.Errorf("flow control: reading the terminal settings: %w", err)
	}
	switch flow {
	case "none":
		t.Cflag &^= unix.CRTSCTS
		t.Iflag &^= unix.IXON | unix.IXOFF | unix.IXANY
	case "rtscts":
		t.Cflag |= unix.CRTSCTS
		t.Iflag &^= unix.IXON | unix.IXOFF | unix.IXANY
	case "xonxoff":
		t.Cflag &^= unix.CRTSCTS
		t.Iflag |= unix.IXON | unix.IXOFF
		t.Iflag &^= unix.IXANY
		t.Cc[unix.VSTART], t.Cc[unix.VSTOP] = 0x11, 0x13
	default:
		return fmt.Errorf("flow control %q: none, rtscts or xonxoff", flow)
	}
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, t); err != nil {
		return fmt.Errorf("flow control %s: %w", flow, err)
	}
	got, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return fmt.Errorf("flow control: reading the terminal settings back: %w", err)
	}
	if got.Cflag&unix.CRTSCTS != t.Cflag&unix.CRTSCTS || got.Iflag&(unix.IXON|unix.IXOFF) != t.Iflag&(unix.IXON|unix.IXOFF) {
		return fmt.Errorf("flow control %s: the driver did not keep it", flow)
	}
	return nil
}

// portFD is the descriptor port holds on path's tty.
func portFD(port any, path string) (int, error) {
	if f, ok := port.(interface{ Fd() uintptr }); ok {
		return int(f.Fd()), nil
	}
	if v := reflect.ValueOf(port); v.Kind() == reflect.Pointer && !v.IsNil() && v.Elem().Kind() == reflect.Struct {
		if h := v.Elem().FieldByName("handle"); h.IsValid() && h.CanInt() {
			return int(h.Int()), nil
		}
	}
	return fdOfPath(path)
}

// fdOfPath finds a descriptor of this process open on path's device.
func fdOfPath(path string) (int, error) {
	var want unix.Stat_t
	if err := unix.Stat(path, &want); err != nil {
		return -1, fmt.Errorf("flow control: %w", err)
	}
	if want.Mode&unix.S_IFMT != unix.S_IFCHR {
		return -1, fmt.Errorf("flow control: %s is not a character device", path)
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1, fmt.Errorf("flow control: %w", err)
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var st unix.Stat_t
		if unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == want.Rdev {
			return fd, nil
		}
	}
	return -1, fmt.Errorf("flow control: no open descriptor on %s: %w", filepath.Clean(path), errors.ErrUnsupported)
}
