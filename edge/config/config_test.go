package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// write puts a config (and any side files) in a fresh folder and returns the
// config's path.
func write(t *testing.T, yaml string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, "wardgate.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const full = `site: ward-4b
data_dir: data
http:
  listen: 127.0.0.1:8080
  admin_token_file: secrets/admin
fhir:
  base_url: https://fhir.example.org/R4/
  patient_identifier_system: urn:oid:1.2.3.4
  auth:
    type: client_credentials
    token_url: https://auth.example.org/token
    client_id: wardgate-4b
    client_secret_file: secrets/client
    scopes: [system/Observation.write]
  batch_size: 50
profiles_dir: profiles
monitors:
  - id: bed-12-monitor
    location: bed-12
    profile: masimo/radical-7
    serial: {port: /dev/ttyUSB0, baud: 9600}
  - id: bed-14-monitor
    location: bed-14
    profile: generic/json
    mqtt: {broker: tcp://127.0.0.1:1883, topic: ward4b/bed-14/vitals}
patients:
  static: {bed-12: Patient/123}
dicom:
  listen: ":11112"
  ae_title: WARDGATE
  allow: [{ae_title: CT01, host: 10.0.0.5}]
  forward: [{ae_title: PACS, host: pacs.example.org, port: 104}]
  study_stable_after: 90s
buffer:
  outbox_quota: 512MiB
`

func TestAFullConfigLoadsWithDefaultsAndPaths(t *testing.T) {
	path := write(t, full, map[string]string{"secrets/admin": "0123456789abcdef0123456789abcdef\n", "secrets/client": "s3cret\n", "profiles/.keep": ""})
	c, ps, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(ps.List) != 0 {
		t.Fatalf("unexpected problems: %v", ps.List)
	}
	dir := filepath.Dir(path)
	for _, tc := range []struct{ got, want any }{
		{c.DataDir, filepath.Join(dir, "data")},
		{c.ProfilesDir, filepath.Join(dir, "profiles")},
		{c.FHIR.BaseURL, "https://fhir.example.org/R4"},
		{c.FHIR.Auth.ClientSecretFile.Value(), "s3cret"},
		{c.HTTP.AdminTokenFile.Value(), "0123456789abcdef0123456789abcdef"},
		{c.FHIR.BatchSize, 50},
		{c.FHIR.Timeout, DefaultFHIRTimeout},
		{*c.Monitors[1].MQTT.QoS, 1},
		{c.DICOM.StudyStableAfter.String(), "1m30s"},
		{c.DICOM.MaxAssociations, DefaultMaxAssociations},
		{c.Buffer.OutboxQuota, ByteSize(512 << 20)},
		{c.Buffer.SpoolQuota, DefaultSpoolQuota},
		{c.Log.Level, "info"},
		{c.OutboxPath(), filepath.Join(dir, "data", "outbox.db")},
	} {
		if tc.got != tc.want {
			t.Errorf("got %v, want %v", tc.got, tc.want)
		}
	}
	if s := c.Summary(); !strings.Contains(s, "2 monitor(s) (1 serial, 1 MQTT)") || strings.Contains(s, "s3cret") {
		t.Errorf("summary: %s", s)
	}
}

// The example, and several mistakes reported together, each with its
// line and key path.
func TestEveryMistakeIsReportedWithItsLine(t *testing.T) {
	bad := `site: Ward 4B
data_dir: /var/lib/wardgate
fhir:
  base_url: fhir.example.org
  batchsize: 10
monitors:
  - id: bed-12-monitor
    location: bed-12
    profile: masimo/radical-7
    serial: {port: /dev/ttyUSB0, baud: 9600}
  - id: bed-14-monitor
    location: bed-14
    profile: masimo/radical-7
    serial: {port: /dev/ttyUSB1, baud: 9601}
  - id: bed-12-monitor
    profile: Masimo Radical
    mqtt: {broker: tcp://127.0.0.1:1883, topic: "ward/#/x"}
    serial: {port: /dev/ttyUSB2}
dicom:
  ae_title: THIS-TITLE-IS-FAR-TOO-LONG
  study_stable_after: soon
  allow_any: true
log:
  level: verbose
`
	path := write(t, bad, nil)
	_, ps, err := Load(path)
	if err == nil {
		t.Fatal("a bad config loaded")
	}
	want := []string{
		path + `:1: site: "Ward 4B" must be 1 to 63 lowercase letters`,
		path + `:4: fhir.base_url: "fhir.example.org" is not a URL`,
		path + `:5: fhir.batchsize: unknown key (did you mean "batch_size"?)`,
		path + `:14: monitors[1].serial.baud: 9601 is not a standard rate`,
		path + `:15: monitors[2].id: "bed-12-monitor" is already the id of monitors[0]`,
		path + `:15: monitors[2].location: is required`,
		path + `:15: monitors[2]: has more than one of serial, mqtt and udp`,
		path + `:16: monitors[2].profile: "Masimo Radical" must be vendor/model`,
		path + `:3: fhir.patient_identifier_system: is required with dicom`,
		path + `:20: dicom.ae_title: "THIS-TITLE-IS-FAR-TOO-LONG" is longer than 16 characters`,
		path + `:21: dicom.study_stable_after: "soon" is not a duration`,
		path + `:24: log.level: "verbose" is not one of debug, info, warn, error`,
	}
	msg := err.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("missing %q", w)
		}
	}
	if n := len(ps.Errors()); n != len(want) {
		t.Errorf("%d problems, want %d:\n%s", n, len(want), msg)
	}
}

func TestSecretsComeFromFilesAndNeverShow(t *testing.T) {
	cfg := `site: s
data_dir: d
fhir:
  base_url: https://fhir.example.org/R4
  auth: {type: bearer, token_file: %s}
`
	for _, tc := range []struct {
		name, file, content string
		mode                os.FileMode
		wantErr, wantWarn   string
	}{
		{"missing", "nope", "", 0, "cannot read the secret file", ""},
		{"empty", "tok", "\n", 0o600, "is empty", ""},
		{"world-readable", "tok", "abc", 0o644, "", "can be read by other users"},
		{"good", "tok", "abc\n", 0o600, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := write(t, strings.Replace(cfg, "%s", tc.file, 1), nil)
			if tc.mode != 0 {
				p := filepath.Join(filepath.Dir(path), tc.file)
				os.WriteFile(p, []byte(tc.content), tc.mode)
				os.Chmod(p, tc.mode)
			}
			c, ps, err := Load(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), "fhir.auth.token_file: ") || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.FHIR.Auth.TokenFile.Value() != "abc" {
				t.Fatalf("token %q", c.FHIR.Auth.TokenFile.Value())
			}
			if s := c.FHIR.Auth.TokenFile.String(); strings.Contains(s, "abc") {
				t.Fatalf("String shows the secret: %s", s)
			}
			w := ps.Warnings()
			if tc.wantWarn == "" && len(w) != 0 || tc.wantWarn != "" && (len(w) != 1 || !strings.Contains(w[0].String(), tc.wantWarn)) {
				t.Fatalf("warnings %v, want %q", w, tc.wantWarn)
			}
		})
	}
}

func TestAuthKeysMustFitTheAuthType(t *testing.T) {
	path := write(t, `site: s
data_dir: d
fhir:
  base_url: https://fhir.example.org/R4
  auth:
    type: bearer
    client_id: x
`, nil)
	_, _, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), ":5: fhir.auth.token_file: is required with auth type bearer") ||
		!strings.Contains(err.Error(), ":7: fhir.auth.client_id: is not used with auth type bearer") {
		t.Fatalf("error: %v", err)
	}
}

func TestBadYAMLAndWrongShapes(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"syntax", "site: a\n  data_dir: b\n", ":2: YAML syntax: "},
		{"empty", "", "the file is empty"},
		{"list for a mapping", "site: a\ndata_dir: d\nfhir: [1, 2]\n", ":3: fhir: must be a mapping"},
		{"mapping for a string", "site: {a: b}\n", ":1: site: must be a string, not a mapping"},
		{"not a number", "site: a\ndata_dir: d\nfhir: {base_url: 'https://x/R4', batch_size: many}\n", `:3: fhir.batch_size: must be a whole number, not "many"`},
		{"duplicate key", "site: a\nsite: b\n", ":2: site: appears twice"},
		{"unknown top-level", "site: a\ndata_dir: d\nfhir: {base_url: 'https://x/R4'}\nmonitor: []\n", `:4: monitor: unknown key (did you mean "monitors"?)`},
		{"bad topic", "site: a\ndata_dir: d\nfhir: {base_url: 'https://x/R4'}\nmonitors: [{id: m, location: b, profile: a/b, mqtt: {broker: 'tcp://h:1883', topic: 'a+/b'}}]\n", "'+' must fill a whole level"},
		{"bad size", "site: a\ndata_dir: d\nfhir: {base_url: 'https://x/R4'}\nbuffer: {spool_quota: lots}\n", `:4: buffer.spool_quota: "lots" is not a size`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Load(write(t, tc.yaml, nil))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestByteSizes(t *testing.T) {
	for in, want := range map[string]ByteSize{"1048576": 1 << 20, "512MiB": 512 << 20, "1GB": 1e9, "1.5GiB": 3 << 29, "20 GiB": 20 << 30} {
		var b ByteSize
		if err := b.ParseScalar(in); err != nil || b != want {
			t.Errorf("%q: %d %v, want %d", in, b, err, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(full))
	f.Add([]byte("site: a\nmonitors: [{id: x, serial: {baud: 1}}]\n"))
	f.Add([]byte("&a {site: *a}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, ps, err := Parse("fuzz.yaml", data)
		if err == nil && c == nil {
			t.Fatal("no config and no error")
		}
		if err != nil && len(ps.Errors()) == 0 {
			t.Fatal("an error without problems")
		}
	})
}

// A monitor naming a profile whose file is broken is told so, and the
// profile's own problems come with its file and line.
func TestBrokenProfileIsReportedWithItsFile(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "profiles", "acme"), 0o755)
	os.WriteFile(filepath.Join(dir, "profiles", "acme", "vm-100.yaml"), []byte("vendor: Acme\nmodel: VM-100\nformat: text\ntext: {tokens: {}}\nparameters:\n  - {field: HR, mdc: MDC_ECG_HART_RATE, unit: /min}\n"), 0o644)
	cfg := filepath.Join(dir, "wardgate.yaml")
	os.WriteFile(cfg, []byte("site: w\ndata_dir: data\nfhir: {base_url: http://127.0.0.1:9/R4}\nprofiles_dir: profiles\nmonitors:\n  - {id: m1, location: bed-1, profile: acme/vm-100, serial: {port: /dev/ttyUSB0}}\n"), 0o600)
	_, _, err := Load(cfg)
	if err == nil {
		t.Fatal("a broken profile loaded")
	}
	for _, want := range []string{
		"vm-100.yaml:6: parameters[0].mdc: \"MDC_ECG_HART_RATE\" is not an MDC code wardgate knows (did you mean MDC_ECG_HEART_RATE?)",
		"monitors[0].profile: profile \"acme/vm-100\" did not load",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

// The keys of the association model and the clocks: each mistake is named
// with its line; the old ttl is read as refresh with a warning.
func TestPatientAndClockKeys(t *testing.T) {
	bad := `site: w
data_dir: d
fhir: {base_url: "https://fhir.example.org/R4", patient_reference: guess}
monitors:
  - {id: a, location: bed-1, profile: masimo/radical-7, serial: {port: /dev/ttyUSB0}, time_zone: Mars/Olympus}
  - {id: b, location: bed-2, profile: nonin/avant, serial: {port: /dev/ttyUSB1}, time_zone: UTC}
patients:
  encounter_lookup: {location_system: "urn:beds", refresh: 1h}
`
	path := write(t, bad, nil)
	_, _, err := Load(path)
	if err == nil {
		t.Fatal("a bad config loaded")
	}
	for _, w := range []string{
		path + `:3: fhir.patient_reference: "guess" is not one of conditional, resolve`,
		path + `:5: monitors[0].time_zone: "Mars/Olympus" is not local, UTC or a known IANA zone`,
		path + `:6: monitors[1].time_zone: profile nonin/avant reads no time from the device`,
		path + `:8: patients.encounter_lookup.refresh: 1h0m0s is not from 1s to 10m`,
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in\n%v", w, err)
		}
	}
	old := `site: w
data_dir: d
fhir: {base_url: "https://fhir.example.org/R4"}
monitors:
  - {id: a, location: bed-1, profile: masimo/radical-7, serial: {port: /dev/ttyUSB0}, time_zone: Europe/Berlin}
patients:
  encounter_lookup: {location_system: "urn:beds", ttl: 30s}
`
	c, ps, err := Load(write(t, old, nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Patients.EncounterLookup.Refresh.D().Seconds() != 30 || !strings.Contains(fmt.Sprint(ps.Warnings()), "ttl: is now refresh") {
		t.Fatalf("refresh %v, warnings %v", c.Patients.EncounterLookup.Refresh, ps)
	}
	if c.Monitors[0].Zone == nil || c.Monitors[0].Zone.String() != "Europe/Berlin" || c.FHIR.PatientReference != "conditional" {
		t.Fatalf("zone %v, patient_reference %q", c.Monitors[0].Zone, c.FHIR.PatientReference)
	}
}

// loadCase loads yaml (beside files) and checks that it is refused with an
// error saying problem (or loads, when problem is ""), and that its
// warnings say warn (or, when warn is "", that none mentions quiet). It
// returns the config when it loaded.
func loadCase(t *testing.T, yaml string, files map[string]string, problem, warn, quiet string) *Config {
	t.Helper()
	c, ps, err := Load(write(t, yaml, files))
	switch {
	case problem != "" && (err == nil || !strings.Contains(err.Error(), problem)):
		t.Fatalf("error %v, want one saying %q", err, problem)
	case problem == "" && err != nil:
		t.Fatalf("refused: %v", err)
	}
	var ws []string
	for _, w := range ps.Warnings() {
		ws = append(ws, w.Path+": "+w.Message)
	}
	warns := strings.Join(ws, "\n")
	if warn != "" && !strings.Contains(warns, warn) || warn == "" && strings.Contains(warns, quiet) {
		t.Fatalf("warnings %q, want %q", warns, warn)
	}
	if err != nil {
		return nil
	}
	return c
}
