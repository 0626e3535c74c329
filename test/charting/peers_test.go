package charting

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices/mdc"
	"github.com/wardgate/wardgate/edge/fhir"
	"github.com/wardgate/wardgate/edge/fhir/fhirserver"
	"github.com/wardgate/wardgate/test"
)

// chartingGateway starts the project's FHIR record and writes a gateway
// config that posts to it, with charting after 5 s and the built-in
// policies (continuous every 1m median, NIBP each) and the given monitors
// and patients. It returns the record, the config's path and data_dir.
func chartingGateway(t *testing.T, extra string) (*fhirserver.Server, string, string) {
	t.Helper()
	record := fhirserver.New()
	hs := httptest.NewServer(record)
	t.Cleanup(hs.Close)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "wardgate.yaml")
	body := fmt.Sprintf(`site: ward-4b
data_dir: data
charting: {close_after: 5s}
http:
  listen: 127.0.0.1:0
fhir:
  base_url: %s
  patient_identifier_system: urn:oid:1.2.3.4
`, hs.URL) + extra
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return record, cfg, filepath.Join(dir, "data")
}

// socatPair links two pseudo-terminals at dir/monitor and dir/gateway, a
// null-modem cable between a monitor and the box.
func socatPair(t *testing.T, dir string) {
	t.Helper()
	test.RequirePeers(t, "socat")
	mon, gw := filepath.Join(dir, "monitor"), filepath.Join(dir, "gateway")
	cmd := exec.Command("socat", "pty,raw,echo=0,link="+mon, "pty,raw,echo=0,link="+gw)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	test.Eventually(t, 10*time.Second, func() bool {
		_, e1 := os.Stat(mon)
		_, e2 := os.Stat(gw)
		return e1 == nil && e2 == nil
	}, func() string { return "socat made no pseudo-terminals" })
}

// broker is Debian's Mosquitto on a free port, persisting to its folder so
// that sessions and queued QoS 1 messages survive.
type broker struct {
	port int
}

func startBroker(t *testing.T) *broker {
	t.Helper()
	test.RequirePeers(t, "mosquitto", "mosquitto_pub")
	dir := t.TempDir()
	port := freePort(t)
	conf := filepath.Join(dir, "mosquitto.conf")
	// user root: as root, Debian's mosquitto drops to its own user, which
	// cannot write persistence into the test's folder.
	os.WriteFile(conf, []byte(fmt.Sprintf("listener %d 127.0.0.1\nuser root\nallow_anonymous true\npersistence true\npersistence_location %s/\nautosave_interval 1\nmax_queued_messages 100000\nlog_dest stdout\nlog_type all\n", port, dir)), 0o600)
	cmd := exec.Command("mosquitto", "-c", conf)
	logf, _ := os.Create(filepath.Join(dir, "mosquitto.log"))
	cmd.Stdout = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); logf.Close() })
	test.Eventually(t, 10*time.Second, func() bool {
		return exec.Command("mosquitto_pub", "-p", fmt.Sprint(port), "-t", "probe", "-m", "x").Run() == nil
	}, func() string { return "mosquitto did not start" })
	return &broker{port: port}
}

// publisher is one mosquitto_pub that publishes each line written to it at
// QoS 1, as a bridge that stays connected does.
type publisher struct {
	cmd *exec.Cmd
	in  io.WriteCloser
}

func (b *broker) publisher(t *testing.T, topic string) *publisher {
	t.Helper()
	cmd := exec.Command("mosquitto_pub", "-p", fmt.Sprint(b.port), "-q", "1", "-t", topic, "-l")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &publisher{cmd: cmd, in: in}
	t.Cleanup(func() { p.close() })
	return p
}

func (p *publisher) send(t *testing.T, msg string) {
	t.Helper()
	if _, err := io.WriteString(p.in, msg+"\n"); err != nil {
		t.Fatalf("mosquitto_pub: %v", err)
	}
}

// close ends the input and waits until every line is published.
func (p *publisher) close() error {
	p.in.Close()
	if p.cmd.ProcessState != nil {
		return nil
	}
	return p.cmd.Wait()
}

// freePort is a loopback port nobody listens on, below the ephemeral range,
// never given twice in this process.
func freePort(t *testing.T) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	if portsNext == 0 {
		portsNext = 32000 - 1 - (os.Getpid()*7919)%8000
	}
	for range 8000 {
		port := portsNext
		portsNext--
		if portsNext < 24000 {
			portsNext = 31999
		}
		if portsGiven[port] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		ln.Close()
		portsGiven[port] = true
		return port
	}
	t.Fatal("no free loopback port")
	return 0
}

var (
	portsMu    sync.Mutex
	portsNext  int
	portsGiven = map[int]bool{}
)

// stop stops the gateway as a service manager would, and waits.
func stop(t *testing.T, gw *test.Process) {
	t.Helper()
	gw.Cmd.Process.Signal(syscall.SIGTERM)
	if code := gw.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("wardgate exit %d", code)
	}
}

// observations are the record's Observations.
func observations(record *fhirserver.Server) []fhir.Observation {
	var out []fhir.Observation
	for _, raw := range record.Resources("Observation") {
		var o fhir.Observation
		if err := json.Unmarshal(raw, &o); err == nil {
			out = append(out, o)
		}
	}
	return out
}

// mdcCode is the MDC code (as the record's coding writes it) of a
// reference id.
func mdcCode(t testing.TB, ref string) string {
	t.Helper()
	term, ok := mdc.Lookup(ref)
	if !ok {
		t.Fatalf("%s is not in the MDC table", ref)
	}
	return fmt.Sprint(term.Code)
}

// hasCode tells whether an Observation is coded ref.
func hasCode(o fhir.Observation, code string) bool {
	return slices.ContainsFunc(o.Code.Coding, func(c fhir.Coding) bool { return c.System == fhir.MDCSystem && c.Code == code })
}

// of picks the Observations of a patient coded ref.
func of(t testing.TB, obs []fhir.Observation, patient, ref string) []fhir.Observation {
	code := mdcCode(t, ref)
	var out []fhir.Observation
	for _, o := range obs {
		if o.Subject != nil && o.Subject.Reference == patient && hasCode(o, code) {
			out = append(out, o)
		}
	}
	return out
}
