package config

import (
	"strings"
	"testing"
)

// A monitor that must be talked to is reached by a transport its
// protocol speaks: an IntelliVue by udp (its port 24105 when none is
// given) or serial, a Datex-Ohmeda by serial only; a monitor that prints
// is not reached by udp; every mistake is named with its key.
func TestTalkingMonitorsAreReachedTheirWay(t *testing.T) {
	head := "site: ward-4b\ndata_dir: data\nfhir: {base_url: https://fhir.example.org/R4}\nmonitors:\n"
	good := head + `  - {id: iv-1, location: icu-1, profile: philips/intellivue-mx, udp: {host: 10.1.2.3}}
  - {id: iv-2, location: icu-2, profile: philips/intellivue-mx, serial: {port: /dev/ttyUSB0}}
  - {id: dx-1, location: or-1, profile: ge/datex-s5, serial: {port: /dev/ttyUSB1, flow_control: rtscts}}
`
	c, _, err := Load(write(t, good, nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Monitors[0].UDP.Port != 24105 {
		t.Fatalf("the IntelliVue's port: %d, want its protocol's 24105", c.Monitors[0].UDP.Port)
	}
	bad := head + `  - {id: iv-1, location: icu-1, profile: philips/intellivue-mx, mqtt: {broker: "tcp://127.0.0.1:1883", topic: x}}
  - {id: dx-1, location: or-1, profile: ge/datex-s5, udp: {host: 10.1.2.4}}
  - {id: ms-1, location: bed-1, profile: masimo/radical-7, udp: {host: 10.1.2.5}}
  - {id: iv-2, location: icu-2, profile: philips/intellivue-mx, udp: {port: 70000}}
  - {id: iv-3, location: icu-3, profile: philips/intellivue-mx, udp: {host: 10.1.2.3, port: 24105}, serial: {port: /dev/ttyUSB3}}
`
	_, _, err = Load(write(t, bad, nil))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		"monitors[0].mqtt: profile philips/intellivue-mx talks to the monitor (intellivue): it is reached by serial or udp",
		"monitors[1].udp: profile ge/datex-s5 talks to the monitor over a serial line only (datex)",
		"monitors[2].udp: profile masimo/radical-7 reads a monitor that prints (text): it is reached by serial or mqtt",
		"monitors[3].udp.host: is required",
		"monitors[3].udp.port: 70000 is not a port",
		"monitors[4]: has more than one of serial, mqtt and udp",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}
