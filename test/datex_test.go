package test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/wardgate/wardgate/edge/fhir"
)

// Issue 14: a GE Datex-Ohmeda S/5 on its serial computer interface (a socat
// pseudo-terminal pair, opened 19200 8E1 with RTS/CTS by both sides), played
// by `wardgate simulate -profile ge/datex-s5`: the gateway asks for the
// displayed values every 5 s; the record holds the heart rate, SpO2, the
// arterial pressure charted by its channel's label; the NIBP it already
// shows when the gateway begins is not charted at a guess.
func TestDatexOverItsSerialInterfaceToTheRecord(t *testing.T) {
	dir := t.TempDir()
	socatPair(t, dir)
	sim := Start(t, "simulate", "-profile", "ge/datex-s5", "-serial", filepath.Join(dir, "monitor"))
	sim.WaitLog(t, `a Datex-Ohmeda S/5 on`, 20*time.Second)
	record, cfg, _ := recordWith(t, fmt.Sprintf(`monitors:
  - id: or-2-monitor
    location: or-2
    profile: ge/datex-s5
    serial: {port: %s}
patients:
  static: {or-2: Patient/902}
`, filepath.Join(dir, "gateway")))
	gw := Start(t, "run", "-config", cfg)
	addr := gw.WaitLog(t, statusRe, 30*time.Second)
	codes := func() map[string]int {
		out := map[string]int{}
		for _, raw := range record.Resources("Observation") {
			var o fhir.Observation
			json.Unmarshal(raw, &o)
			for _, c := range o.Code.Coding {
				if c.System == "urn:iso:std:iso:11073:10101" {
					out[c.Code]++
				}
			}
		}
		return out
	}
	// Three records: every parameter three times, the NIBP once.
	Eventually(t, 60*time.Second, func() bool { return codes()["147842"] >= 3 },
		func() string {
			return fmt.Sprintf("codes charted: %v\n%s\nsimulator:\n%s", codes(), gw.Log(), sim.Log())
		})
	c := codes()
	for code, what := range map[string]string{"150456": "SpO2", "149530": "pulse rate", "150032": "the arterial pressure panel (P1 labelled ART)", "150372": "the oesophageal temperature (T1 labelled ESO)"} {
		if c[code] < 2 {
			t.Errorf("%s (%s) charted %d times: %v", code, what, c[code], c)
		}
	}
	// The NIBP it shows from its first record may have been charted by a
	// run of the gateway before this one: its time is not known, and it
	// is counted as dropped, not charted (a new cuff is: devices/datex).
	if c["150020"] != 0 {
		t.Errorf("the NIBP shown when the gateway began charted %d times: %v", c["150020"], c)
	}
	st := monitorState(t, addr, "or-2-monitor")
	if st["state"] != "connected" || st["counters"].(map[string]any)["dropped"].(float64) < 3 {
		t.Fatalf("the monitor on the page (the NIBP's three values counted as dropped): %v", st)
	}
	chartedOnceThenStop(t, record, gw)
}
