package config

import (
	"strings"
	"testing"
)

func review13Load(t *testing.T, dicom string) (err error, warns string) {
	t.Helper()
	base := "site: ward-4b\ndata_dir: data\nfhir: {base_url: https://fhir.example.org/R4, patient_identifier_system: urn:oid:1.2.3.4}\n"
	_, ps, err := Load(write(t, base+dicom, nil))
	var ws []string
	if ps != nil {
		for _, w := range ps.Warnings() {
			ws = append(ws, w.Path+": "+w.Message)
		}
	}
	return err, strings.Join(ws, "\n")
}

// Pins: allow_any on an IPv6 wildcard, or the IPv4 one, is warned about;
// on one address, or loopback, it is not.
func TestReview13AllowAnyWildcards(t *testing.T) {
	for listen, warn := range map[string]bool{
		"[::]:11112": true, "0.0.0.0:11112": true, ":11112": true,
		"127.0.0.1:11112": false, "[::1]:11112": false, "10.20.0.9:11112": false,
	} {
		err, ws := review13Load(t, "dicom: {ae_title: WARDGATE, allow_any: true, listen: \""+listen+"\"}\n")
		if err != nil {
			t.Fatalf("%s: %v", listen, err)
		}
		if got := strings.Contains(ws, "dicom.allow_any"); got != warn {
			t.Errorf("listen %s: warned %v, want %v (%q)", listen, got, warn, ws)
		}
	}
}

// Finding 7: other spellings of the unspecified address listen on every
// interface too and are not warned about: the check compares the host
// with "", "0.0.0.0" and "::" as strings.
// Cause: edge/config/validate.go validateDICOM (and validateListen), the
// string comparison. Fix: `ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified()`.
func TestReview13AllowAnyOtherWildcardSpellings(t *testing.T) {
	for _, listen := range []string{"[::0]:11112", "[0:0:0:0:0:0:0:0]:11112", "[::ffff:0.0.0.0]:11112"} {
		err, ws := review13Load(t, "dicom: {ae_title: WARDGATE, allow_any: true, listen: \""+listen+"\"}\n")
		if err != nil {
			t.Fatalf("%s: %v", listen, err)
		}
		if !strings.Contains(ws, "dicom.allow_any") {
			t.Errorf("allow_any with listen %s (every interface) not warned about", listen)
		}
	}
}

// Finding 8: now that dicom.allow is required, hosts in it are common, but
// check does not look at them: an allow host that does not resolve passes
// check (exit 0) while run refuses to start the whole gateway over it
// (edge/dicom.go allowList returns "dicom.allow CT01: host ...: no such
// host", and edge/gateway.go Run returns it: monitors and ADT stop too).
// Cause: edge/config/validate.go validateDICOM checks only the allow
// entries' AE titles and ports. Fix: have check resolve allow hosts and
// report one that does not as a problem (or a warning), and in run not
// fail the gateway for it: log, count, and retry the lookup, rejecting
// that entry's associations meanwhile.
func TestReview13AllowHostThatDoesNotResolve(t *testing.T) {
	err, ws := review13Load(t, "dicom: {ae_title: WARDGATE, allow: [{ae_title: CT01, host: ct01.ward-4b.invalid}]}\n")
	if err == nil && !strings.Contains(ws, "dicom.allow[0].host") {
		t.Fatalf("an allow host that does not resolve passes check (warnings %q), yet run refuses to start with it", ws)
	}
}
