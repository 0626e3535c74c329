package devicestest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// SocatPair starts socat with a pseudo-terminal pair, linked at
// dir/monitor and dir/gateway: a null-modem cable between a monitor and
// the box. It is killed when the test ends (or by killing the command). A
// machine without socat fails the test with what to install: the tests
// that need a serial line never pass by skipping.
func SocatPair(t testing.TB, dir string) (monitor, gateway string, cmd *exec.Cmd) {
	t.Helper()
	if _, err := exec.LookPath("socat"); err != nil {
		t.Fatalf("socat is needed for a pseudo-terminal pair standing in for an RS-232 cable, and is not installed (apt-get install socat): %v", err)
	}
	monitor, gateway = filepath.Join(dir, "monitor"), filepath.Join(dir, "gateway")
	cmd = exec.Command("socat", "pty,raw,echo=0,link="+monitor, "pty,raw,echo=0,link="+gateway)
	if err := cmd.Start(); err != nil {
		t.Fatalf("socat: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	WaitFor(t, "socat's pseudo-terminals", func() bool {
		_, e1 := os.Stat(monitor)
		_, e2 := os.Stat(gateway)
		return e1 == nil && e2 == nil
	}, func() string { return "" })
	return monitor, gateway, cmd
}
