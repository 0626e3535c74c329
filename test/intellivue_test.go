package test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices/sim/intellivuesim"
	"github.com/wardgate/wardgate/edge/fhir"
	"github.com/wardgate/wardgate/edge/fhir/fhirserver"
)

// Issue 14: a Philips IntelliVue talked to by the gateway, over the LAN
// (UDP on loopback) and over its MIB/RS232 port (a socat pseudo-terminal
// pair), against the project's simulator of the monitor's side: its
// numerics reach the record coded in LOINC and MDC, in the charted units,
// at the monitor's times corrected by its clock's offset (the simulated
// monitor's clock is 3 minutes fast); an NIBP at its own measurement time;
// a monitor that stops answering is shown silent and talked to again when
// it answers.

const ivSkew = 3 * time.Minute

func newIntelliVue() *intellivuesim.Monitor {
	return intellivuesim.New(intellivuesim.Config{
		ClockSkew: ivSkew, Location: time.UTC, NIBPAge: 30 * time.Second,
		Model: "MX450", Manufacturer: "Philips", Serial: "DE98765432", Software: "M.00.03",
		Logger: slog.New(slog.DiscardHandler),
	})
}

// ivCharted checks the record's Observations of the IntelliVue at bed
// icu-3: subject, codings, units, times. It returns them by MDC code.
func ivCharted(t *testing.T, record *fhirserver.Server, since time.Time) map[string][]fhir.Observation {
	t.Helper()
	out := map[string][]fhir.Observation{}
	for _, raw := range record.Resources("Observation") {
		var o fhir.Observation
		if err := json.Unmarshal(raw, &o); err != nil {
			t.Fatal(err)
		}
		if o.Subject == nil || o.Subject.Reference != "Patient/901" {
			t.Fatalf("an Observation for %v, want Patient/901", o.Subject)
		}
		var mdcCode, loinc string
		for _, c := range o.Code.Coding {
			switch c.System {
			case "urn:iso:std:iso:11073:10101":
				mdcCode = c.Code
			case "http://loinc.org":
				loinc = c.Code
			}
		}
		if mdcCode == "" || loinc == "" {
			t.Fatalf("an Observation without its MDC and LOINC codings: %s", raw)
		}
		at, err := time.Parse(time.RFC3339Nano, o.EffectiveDateTime)
		if err != nil {
			t.Fatalf("effective %q: %v", o.EffectiveDateTime, err)
		}
		// The monitor's clock is 3 minutes fast: charted at the corrected
		// time, never in the future, never at the monitor's.
		if at.After(time.Now().Add(time.Second)) || at.Before(since.Add(-time.Minute)) {
			t.Fatalf("an Observation at %s, not within the test's time (began %s): the monitor's clock was not corrected\n%s", at, since, raw)
		}
		out[mdcCode] = append(out[mdcCode], o)
	}
	return out
}

func ivCheckValues(t *testing.T, byCode map[string][]fhir.Observation) {
	t.Helper()
	for _, c := range []struct {
		code, unit string
		low, high  float64
	}{
		{"147842", "/min", 40, 180}, // heart rate
		{"150456", "%", 80, 100},    // SpO2
		{"149530", "/min", 40, 180}, // the oximeter's pulse rate (sent as NOM_PLETH_PULS_RATE)
		{"151562", "/min", 4, 60},   // respiration
		{"150344", "Cel", 34, 41},   // temperature
	} {
		obs := byCode[c.code]
		if len(obs) == 0 {
			t.Fatalf("no Observation of %s; codes charted: %v", c.code, keys(byCode))
		}
		q := obs[0].ValueQuantity
		if q == nil || q.Code != c.unit || float64(q.Value) < c.low || float64(q.Value) > c.high {
			t.Fatalf("%s: %+v, want %s in [%g, %g]", c.code, q, c.unit, c.low, c.high)
		}
	}
	// The NIBP, a panel of its three pressures, once, at its own time.
	nibp := byCode["150020"]
	if len(nibp) != 1 || len(nibp[0].Component) != 3 {
		t.Fatalf("NIBP: %d panels (want 1 with 3 components): %+v", len(nibp), nibp)
	}
	hr := byCode["147842"][0]
	tn, _ := time.Parse(time.RFC3339Nano, nibp[0].EffectiveDateTime)
	th, _ := time.Parse(time.RFC3339Nano, hr.EffectiveDateTime)
	if d := th.Sub(tn); d < 20*time.Second || math.Abs(d.Seconds()) > 120 {
		t.Fatalf("NIBP charted at %s, heart rate at %s: the cuff's own time (30 s before the monitor started) was not kept", tn, th)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestIntelliVueOverTheLANToTheRecord(t *testing.T) {
	began := time.Now()
	port := freeUDPPort(t)
	mon := newIntelliVue()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go mon.ListenAndServe(ctx, intellivuesim.UDPConfig{Listen: fmt.Sprintf("127.0.0.1:%d", port)})
	record, cfg, _ := recordWith(t, fmt.Sprintf(`monitors:
  - id: icu-3-monitor
    location: icu-3
    profile: philips/intellivue-mx
    udp: {host: 127.0.0.1, port: %d}
    time_zone: UTC
patients:
  static: {icu-3: Patient/901}
`, port))
	gw := Start(t, "run", "-config", cfg)
	addr := gw.WaitLog(t, statusRe, 30*time.Second)
	Eventually(t, 60*time.Second, func() bool {
		byCode := map[string]int{}
		for _, raw := range record.Resources("Observation") {
			var o fhir.Observation
			json.Unmarshal(raw, &o)
			for _, c := range o.Code.Coding {
				if c.System == "urn:iso:std:iso:11073:10101" {
					byCode[c.Code]++
				}
			}
		}
		return len(byCode) >= 6 && record.Count("Observation") >= 20
	}, func() string {
		return fmt.Sprintf("%d Observations in the record\n%s", record.Count("Observation"), gw.Log())
	})
	ivCheckValues(t, ivCharted(t, record, began))
	st := monitorState(t, addr, "icu-3-monitor")
	if st["state"] != "connected" || !strings.HasPrefix(st["transport"].(string), "udp 127.0.0.1:") {
		t.Fatalf("the monitor on the page: %v", st)
	}

	// It stops answering: shown silent; it answers again: talked to again.
	mon.Silence(true)
	Eventually(t, 30*time.Second, func() bool { return monitorState(t, addr, "icu-3-monitor")["state"] == "silent" },
		func() string {
			return fmt.Sprintf("not shown silent: %v\n%s", monitorState(t, addr, "icu-3-monitor"), gw.Log())
		})
	before := record.Count("Observation")
	mon.Silence(false)
	Eventually(t, 60*time.Second, func() bool {
		return monitorState(t, addr, "icu-3-monitor")["state"] == "connected" && record.Count("Observation") >= before+10
	}, func() string {
		return fmt.Sprintf("not talked to again: %v, %d Observations (%d before)\n%s", monitorState(t, addr, "icu-3-monitor"), record.Count("Observation"), before, gw.Log())
	})
	if n := mon.Stats().Associations; n < 2 {
		t.Fatalf("%d associations, want a second after the silence", n)
	}
	chartedOnceThenStop(t, record, gw)
	// The gateway released the association as it stopped.
	Eventually(t, 10*time.Second, func() bool { return mon.Stats().Releases >= 1 },
		func() string { return fmt.Sprintf("no release: %+v", mon.Stats()) })
}

func TestIntelliVueOverItsSerialPortToTheRecord(t *testing.T) {
	began := time.Now()
	dir := t.TempDir()
	socatPair(t, dir)
	end, err := os.OpenFile(filepath.Join(dir, "monitor"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer end.Close()
	mon := newIntelliVue()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go mon.ServeStream(ctx, end)
	record, cfg, _ := recordWith(t, fmt.Sprintf(`monitors:
  - id: icu-3-monitor
    location: icu-3
    profile: philips/intellivue-mx
    serial: {port: %s}
    time_zone: UTC
patients:
  static: {icu-3: Patient/901}
`, filepath.Join(dir, "gateway")))
	gw := Start(t, "run", "-config", cfg)
	gw.WaitLog(t, statusRe, 30*time.Second)
	Eventually(t, 60*time.Second, func() bool { return record.Count("Observation") >= 20 },
		func() string {
			return fmt.Sprintf("%d Observations in the record\n%s", record.Count("Observation"), gw.Log())
		})
	ivCheckValues(t, ivCharted(t, record, began))
}

// monitorState is a monitor's entry in /api/status.
func monitorState(t *testing.T, addr, id string) map[string]any {
	t.Helper()
	_, v := getJSON(t, "http://"+addr+"/api/status")
	for _, m := range v["monitors"].([]any) {
		if mm := m.(map[string]any); mm["id"] == id {
			return mm
		}
	}
	t.Fatalf("no monitor %s on /api/status", id)
	return nil
}

// freeUDPPort is freePort, free for UDP too.
func freeUDPPort(t testing.TB) int {
	t.Helper()
	for range 100 {
		p := freePort(t)
		if c, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
			c.Close()
			return p
		}
	}
	t.Fatal("no free UDP port")
	return 0
}

// chartedOnceThenStop checks that every Observation in the record is there
// once, then stops the gateway with SIGTERM and expects it to exit 0.
func chartedOnceThenStop(t *testing.T, record *fhirserver.Server, gw *Process) {
	t.Helper()
	for id, n := range observationsByIdentifier(record) {
		if n != 1 {
			t.Fatalf("%s charted %d times", id, n)
		}
	}
	gw.Cmd.Process.Signal(syscall.SIGTERM)
	if code := gw.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, gw.Log())
	}
}
