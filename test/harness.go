package test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Peers are the real programs the end-to-end tests talk to, by Debian
// package. ./test/run installs the packages that are missing.
var Peers = map[string]string{
	"storescu": "dcmtk", "storescp": "dcmtk", "echoscu": "dcmtk", "dcmdump": "dcmtk",
	"mosquitto": "mosquitto", "mosquitto_pub": "mosquitto-clients", "mosquitto_sub": "mosquitto-clients",
	"socat":    "socat",
	"chromium": "chromium",
	"Orthanc":  "orthanc", // with orthanc-dicomweb, its DICOMweb plugin
	// The release test: the package's files and the systemd unit.
	"dpkg-deb": "dpkg", "systemd-analyze": "systemd",
}

// RequirePeers fails the test, never skips it, when a peer is missing: a test
// that silently skips would report a success it did not earn.
func RequirePeers(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Fatalf("%s is missing (Debian package %s): run ./test/run, which installs the test peers", n, Peers[n])
		}
	}
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds cmd/wardgate once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "wardgate-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "wardgate")
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Dir(filepath.Dir(file))
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/wardgate")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Result is what a finished command printed and how it exited.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Run runs the binary to completion.
func Run(t testing.TB, args ...string) Result {
	t.Helper()
	cmd := exec.Command(Binary(t), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return Result{Stdout: out.String(), Stderr: errb.String(), Code: code}
}

// Process is a running wardgate whose log is watched.
type Process struct {
	Cmd  *exec.Cmd
	mu   sync.Mutex
	log  strings.Builder
	done chan struct{}
	code int
}

// Start starts the binary in the background; the test's cleanup kills it if
// it is still running.
func Start(t testing.TB, args ...string) *Process {
	t.Helper()
	return StartEnv(t, nil, args...)
}

// StartEnv is Start with more environment variables ("NAME=value").
func StartEnv(t testing.TB, env []string, args ...string) *Process {
	t.Helper()
	p := &Process{Cmd: exec.Command(Binary(t), args...), done: make(chan struct{})}
	if len(env) > 0 {
		p.Cmd.Env = append(os.Environ(), env...)
	}
	stderr, err := p.Cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.Cmd.Stdout = io.Discard
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.log.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
		err := p.Cmd.Wait()
		if ee, ok := err.(*exec.ExitError); ok {
			p.code = ee.ExitCode()
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("wardgate log:\n%s", p.Log())
		}
	})
	return p
}

// Log is everything the process has logged so far.
func (p *Process) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// WaitLog waits until the log matches re and returns the first submatch (or
// the whole match).
func (p *Process) WaitLog(t testing.TB, re string, within time.Duration) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if m := rx.FindStringSubmatch(p.Log()); m != nil {
			return m[len(m)-1]
		}
		select {
		case <-p.done:
			if m := rx.FindStringSubmatch(p.Log()); m != nil {
				return m[len(m)-1]
			}
			t.Fatalf("wardgate exited (code %d) before logging %q:\n%s", p.code, re, p.Log())
		case <-time.After(20 * time.Millisecond):
		}
	}
	p.dumpGoroutines()
	t.Fatalf("wardgate did not log %q within %v (its goroutines, dumped with SIGQUIT, end the log):\n%s", re, within, p.Log())
	return ""
}

// dumpGoroutines asks a process that did not do something in time for its
// goroutines (the Go runtime prints them on SIGQUIT and exits), so that a
// hang seen once can be read rather than guessed at.
func (p *Process) dumpGoroutines() {
	select {
	case <-p.done:
		return
	default:
	}
	p.Cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
}

// Wait waits for the process to exit and returns its exit code.
func (p *Process) Wait(t testing.TB, within time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(within):
		t.Fatalf("wardgate did not exit within %v:\n%s", within, p.Log())
		return -1
	}
}

// WaitLogCount waits until re matches the log at least n times.
func (p *Process) WaitLogCount(t testing.TB, re string, n int, within time.Duration) {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if len(rx.FindAllString(p.Log(), -1)) >= n {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.dumpGoroutines()
	t.Fatalf("wardgate did not log %q %d times within %v (its goroutines, dumped with SIGQUIT, end the log):\n%s", re, n, within, p.Log())
}

// Eventually polls cond until it holds or within passes, then fails with
// what describe says.
func Eventually(t testing.TB, within time.Duration, cond func() bool, describe func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, describe())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// regexpMatch reports whether s matches re.
func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }
