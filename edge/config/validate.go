package config

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/wardgate/wardgate/devices/dialogues"
	"github.com/wardgate/wardgate/devices/profile"
	firmwareprofiles "github.com/wardgate/wardgate/firmware-profiles"
)

var (
	siteRe       = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{0,62}$`)
	idRe         = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	profileRe    = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*$`)
	fhirIDRe     = regexp.MustCompile(`^[A-Za-z0-9.-]{1,64}$`)
	oidRe        = regexp.MustCompile(`^urn:oid:[0-2](\.(0|[1-9][0-9]*))+$`)
	standardBaud = []int{300, 600, 1200, 2400, 4800, 9600, 14400, 19200, 38400, 57600, 115200, 230400, 460800, 921600}
)

func validate(c *Config, ps *Problems) {
	switch {
	case c.Site == "":
		ps.At("site", "is required: it names this gateway in every identifier it mints (for example ward-4b)")
	case !siteRe.MatchString(c.Site):
		ps.At("site", "%q must be 1 to 63 lowercase letters, digits, '.' or '-'", c.Site)
	}
	validateDataDir(c, ps)
	validateHTTP(c, ps)
	validateFHIR(c, ps)
	dir := ""
	if c.ProfilesDir != "" {
		if info, err := os.Stat(c.ProfilesDir); err != nil {
			ps.At("profiles_dir", "%v", err)
		} else if !info.IsDir() {
			ps.At("profiles_dir", "%s is not a folder", c.ProfilesDir)
		} else {
			dir = c.ProfilesDir
		}
	}
	c.brokenProfiles = map[string]bool{}
	set, err := profile.Load(firmwareprofiles.FS, dir)
	if err != nil {
		var le *profile.LoadError
		if errors.As(err, &le) {
			for _, f := range le.Files {
				// A broken profile is reported as itself, with its own
				// file and line, and as an error of the config.
				for _, p := range f.Errors() {
					ps.List = append(ps.List, p)
				}
				dir, file := filepath.Split(strings.TrimSuffix(strings.TrimSuffix(f.File, ".yaml"), ".yml"))
				c.brokenProfiles[strings.ToLower(filepath.Base(filepath.Clean(dir))+"/"+file)] = true
			}
		} else {
			ps.At("profiles_dir", "%v", err)
		}
	}
	c.Profiles = set
	validateMonitors(c, ps)
	validateCharting(c, ps)
	validatePatients(c, ps)
	if c.HL7 != nil {
		validateHL7(c, ps, "hl7", c.HL7)
	}
	if c.Patients.ADT != nil {
		validateHL7(c, ps, "patients.adt", c.Patients.ADT)
		if _, port, _ := net.SplitHostPort(c.Patients.ADT.Listen); c.HL7 != nil && c.HL7.Listen == c.Patients.ADT.Listen && port != "0" {
			ps.At("patients.adt.listen", "is hl7.listen: the ADT feed needs a listener of its own")
		}
	}
	if c.DICOM != nil {
		validateDICOM(c, ps)
	}
	if q := c.Buffer.OutboxQuota; q < 1<<20 {
		ps.At("buffer.outbox_quota", "%s is too small: allow at least 1MiB", q)
	}
	if q := c.Buffer.SpoolQuota; q < 1<<20 {
		ps.At("buffer.spool_quota", "%s is too small: allow at least 1MiB", q)
	}
	oneOf(ps, "log.level", c.Log.Level, "debug", "info", "warn", "error")
	oneOf(ps, "log.format", c.Log.Format, "text", "json")
	if c.Log.PatientData {
		ps.Warn("log.patient_data", "logs will show patient identifiers and values: for debugging only")
	}
}

func oneOf(ps *Problems, path, v string, allowed ...string) bool {
	if !slices.Contains(allowed, v) {
		ps.At(path, "%q is not one of %s", v, strings.Join(allowed, ", "))
		return false
	}
	return true
}

func loadSecret(ps *Problems, path string, s *Secret) {
	warn, err := s.load()
	if err != nil {
		ps.At(path, "%v", err)
	} else if warn != "" {
		ps.Warn(path, "%s", warn)
	}
}

func readableFile(ps *Problems, path, file string) {
	f, err := os.Open(file)
	if err != nil {
		ps.At(path, "%v", err)
		return
	}
	f.Close()
}

func validateDataDir(c *Config, ps *Problems) {
	if c.DataDir == "" {
		ps.At("data_dir", "is required: the folder that holds the outbox and the spool (for example /var/lib/wardgate)")
		return
	}
	info, err := os.Stat(c.DataDir)
	switch {
	case err == nil && !info.IsDir():
		ps.At("data_dir", "%s exists and is not a folder", c.DataDir)
	case err != nil && !os.IsNotExist(err):
		ps.At("data_dir", "%v", err)
	}
}

func validateListen(ps *Problems, path, addr string, warnPublic bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		ps.At(path, "%q is not host:port (for example 127.0.0.1:8080 or :11112)", addr)
		return
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		ps.At(path, "port %q is not a number from 0 to 65535", port)
	}
	if warnPublic && everyInterface(host) {
		ps.Warn(path, "listens on every interface; the status page shows the ward's state to anyone who can reach it")
	}
}

func validURL(ps *Problems, path, raw string, schemes ...string) (*url.URL, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || !slices.Contains(schemes, u.Scheme) {
		ps.At(path, "%q is not a URL starting with %s://", raw, strings.Join(schemes, ":// or "))
		return nil, false
	}
	return u, true
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

func validateFHIR(c *Config, ps *Problems) {
	f := &c.FHIR
	if f.BaseURL == "" {
		ps.At("fhir.base_url", "is required: the FHIR R4 base of the central record (for example https://fhir.example.org/R4)")
	} else if u, ok := validURL(ps, "fhir.base_url", f.BaseURL, "https", "http"); ok {
		if u.RawQuery != "" || u.Fragment != "" {
			ps.At("fhir.base_url", "must not have a query or fragment")
		}
		if u.Scheme == "http" && !isLoopback(u.Hostname()) {
			ps.Warn("fhir.base_url", "plain http to %s sends patient data unencrypted; use https", u.Hostname())
		}
		f.BaseURL = strings.TrimRight(f.BaseURL, "/")
	}
	if s := f.PatientIdentifierSystem; s != "" {
		if strings.HasPrefix(s, "urn:oid:") && !oidRe.MatchString(s) {
			ps.At("fhir.patient_identifier_system", "%q is not a valid urn:oid (digits separated by dots, no leading zeros)", s)
		} else if u, err := url.Parse(s); err != nil || u.Scheme == "" {
			ps.At("fhir.patient_identifier_system", "%q is not an absolute URI (urn:oid:..., https://...)", s)
		}
	} else if c.DICOM != nil {
		ps.At("fhir.patient_identifier_system", "is required with dicom: it is the system under which a study's Patient ID is looked up")
	} else if c.Patients.ADT != nil {
		ps.At("fhir.patient_identifier_system", "is required with patients.adt: the feed's patients are the PID-3 record numbers of this system, and without it every event is refused")
	}
	oneOf(ps, "fhir.patient_reference", f.PatientReference, "conditional", "resolve")
	oneOf(ps, "fhir.observation_status", f.ObservationStatus, "final", "preliminary")
	validateHTTPAuth(ps, "fhir.auth", &f.Auth)
	validateClientTLS(ps, "fhir.tls", &f.TLS)
	if f.BatchSize < 1 || f.BatchSize > 1000 {
		ps.At("fhir.batch_size", "%d is not from 1 to 1000", f.BatchSize)
	}
	if f.BatchWait < 0 || f.BatchWait.D() > 60e9 {
		ps.At("fhir.batch_wait", "%s is not from 0 to 60s", f.BatchWait)
	}
	if f.Timeout.D() < 1e9 || f.Timeout.D() > 600e9 {
		ps.At("fhir.timeout", "%s is not from 1s to 10m", f.Timeout)
	}
}

// validateHTTPAuth checks how the gateway authenticates to an HTTP server
// (fhir.auth, a DICOMweb destination's auth): the keys its type needs,
// none it does not use, and the secrets readable.
func validateHTTPAuth(ps *Problems, path string, a *FHIRAuth) {
	needs := map[string][]string{
		"none":               {},
		"bearer":             {"token_file"},
		"client_credentials": {"token_url", "client_id", "client_secret_file"},
		"smart_backend":      {"token_url", "client_id", "private_key_file"},
	}
	if oneOf(ps, path+".type", a.Type, "none", "bearer", "client_credentials", "smart_backend") {
		set := map[string]bool{
			"token_file": a.TokenFile.Set(), "token_url": a.TokenURL != "", "client_id": a.ClientID != "",
			"client_secret_file": a.ClientSecretFile.Set(), "private_key_file": a.PrivateKeyFile.Set(),
			"key_id": a.KeyID != "", "scopes": len(a.Scopes) > 0,
		}
		optional := map[string][]string{"client_credentials": {"scopes"}, "smart_backend": {"scopes", "key_id"}}
		for _, k := range needs[a.Type] {
			if !set[k] {
				ps.At(path+"."+k, "is required with auth type %s", a.Type)
			}
		}
		for k, isSet := range set {
			if isSet && !slices.Contains(needs[a.Type], k) && !slices.Contains(optional[a.Type], k) {
				ps.At(path+"."+k, "is not used with auth type %s", a.Type)
			}
		}
		if a.TokenURL != "" {
			validURL(ps, path+".token_url", a.TokenURL, "https", "http")
		}
		for k, s := range map[string]*Secret{"token_file": &a.TokenFile, "client_secret_file": &a.ClientSecretFile, "private_key_file": &a.PrivateKeyFile} {
			if s.Set() {
				loadSecret(ps, path+"."+k, s)
			}
		}
	}
}

func validateMonitors(c *Config, ps *Problems) {
	ids := map[string]int{}
	ports := map[string]int{}
	topics := map[string]int{}
	for i := range c.Monitors {
		m := &c.Monitors[i]
		p := fmt.Sprintf("monitors[%d]", i)
		switch {
		case m.ID == "":
			ps.At(p+".id", "is required")
		case !idRe.MatchString(m.ID):
			ps.At(p+".id", "%q must be 1 to 64 letters, digits, '.', '_' or '-'", m.ID)
		default:
			if j, dup := ids[m.ID]; dup {
				ps.At(p+".id", "%q is already the id of monitors[%d]", m.ID, j)
			}
			ids[m.ID] = i
		}
		if m.TimeZone != "" {
			m.Zone = loadZone(ps, p+".time_zone", m.TimeZone)
			if c.Profiles != nil {
				if prof, ok := c.Profiles.Get(m.Profile); ok && !prof.HasDeviceTime() {
					ps.At(p+".time_zone", "profile %s reads no time from the device: a time zone has nothing to apply to", m.Profile)
				}
			}
		}
		fromTopic := m.MQTT != nil && m.MQTT.LocationLevel != nil
		if strings.TrimSpace(m.Location) == "" && !fromTopic {
			ps.At(p+".location", "is required: the bed the monitor stands at, which links its readings to a patient")
		}
		switch {
		case m.Profile == "":
			ps.At(p+".profile", "is required: the firmware profile that decodes this model (for example masimo/radical-7)")
		case !profileRe.MatchString(m.Profile):
			ps.At(p+".profile", "%q must be vendor/model in lowercase (for example masimo/radical-7)", m.Profile)
		case c.Profiles != nil:
			if _, ok := c.Profiles.Get(m.Profile); !ok {
				msg := fmt.Sprintf("%q is not a known profile (known: %s)", m.Profile, strings.Join(c.Profiles.Names(), ", "))
				if c.brokenProfiles[m.Profile] {
					msg = fmt.Sprintf("profile %q did not load: its problems are listed with its file", m.Profile)
				}
				ps.At(p+".profile", "%s", msg)
			}
		}
		ways := 0
		for _, set := range []bool{m.Serial != nil, m.MQTT != nil, m.UDP != nil} {
			if set {
				ways++
			}
		}
		if c.Profiles != nil {
			if prof, ok := c.Profiles.Get(m.Profile); ok {
				validateDialogue(ps, p, m, prof)
			}
		}
		switch {
		case ways == 0:
			ps.At(p, "needs serial, mqtt or udp: how the monitor is reached")
		case ways > 1:
			ps.At(p, "has more than one of serial, mqtt and udp; a monitor is reached one way")
		case m.UDP != nil:
			validateUDP(ps, p+".udp", m.UDP)
			key := fmt.Sprintf("%s:%d", m.UDP.Host, m.UDP.Port)
			if j, dup := ports[key]; dup && m.UDP.Host != "" {
				ps.At(p+".udp", "%s is already the address of monitors[%d]", key, j)
			}
			ports[key] = i
		case m.Serial != nil:
			validateSerial(ps, p+".serial", m.Serial)
			if j, dup := ports[m.Serial.Port]; dup && m.Serial.Port != "" {
				ps.At(p+".serial.port", "%s is already the port of monitors[%d]", m.Serial.Port, j)
			}
			ports[m.Serial.Port] = i
		default:
			validateMQTT(ps, p+".mqtt", m.MQTT)
			key := m.MQTT.Broker + " " + m.MQTT.Topic
			if j, dup := topics[key]; dup && m.MQTT.Topic != "" {
				ps.At(p+".mqtt.topic", "%s on %s is already the topic of monitors[%d]", m.MQTT.Topic, m.MQTT.Broker, j)
			}
			topics[key] = i
		}
	}
}

// validateDialogue checks that a monitor whose profile names a dialogue is
// reached by a transport its protocol speaks, and that one reached over
// UDP has such a profile.
func validateDialogue(ps *Problems, p string, m *Monitor, prof *profile.Profile) {
	pr, talks := dialogues.Lookup(prof.Format)
	switch {
	case !talks && m.UDP != nil:
		ps.At(p+".udp", "profile %s reads a monitor that prints (%s): it is reached by serial or mqtt", m.Profile, prof.Format)
	case talks && m.MQTT != nil:
		ps.At(p+".mqtt", "profile %s talks to the monitor (%s): it is reached by %s", m.Profile, pr.Name, pr.Transports())
	case talks && m.UDP != nil && !pr.UDP:
		ps.At(p+".udp", "profile %s talks to the monitor over a serial line only (%s)", m.Profile, pr.Name)
	case talks && m.Serial != nil && !pr.Serial:
		ps.At(p+".serial", "profile %s talks to the monitor over the LAN only (%s)", m.Profile, pr.Name)
	case talks && m.UDP != nil && m.UDP.Port == 0:
		m.UDP.Port = pr.UDPPort
	}
}

func validateUDP(ps *Problems, p string, u *UDP) {
	if strings.TrimSpace(u.Host) == "" {
		ps.At(p+".host", "is required: the monitor's address (its IP address on the monitoring LAN)")
	}
	if u.Port < 0 || u.Port > 65535 {
		ps.At(p+".port", "%d is not a port", u.Port)
	}
}

func validateSerial(ps *Problems, p string, s *Serial) {
	if s.Port == "" {
		ps.At(p+".port", "is required (for example /dev/ttyUSB0)")
	} else if !strings.HasPrefix(s.Port, "/") {
		ps.At(p+".port", "%q must be a device path (for example /dev/ttyUSB0)", s.Port)
	}
	if s.Baud != 0 && !slices.Contains(standardBaud, s.Baud) {
		ps.At(p+".baud", "%d is not a standard rate (%s)", s.Baud, joinInts(standardBaud))
	}
	if s.DataBits != 0 && (s.DataBits < 5 || s.DataBits > 8) {
		ps.At(p+".data_bits", "%d is not 5, 6, 7 or 8", s.DataBits)
	}
	if s.Parity != "" {
		oneOf(ps, p+".parity", s.Parity, "none", "even", "odd", "mark", "space")
	}
	if s.StopBits != "" {
		oneOf(ps, p+".stop_bits", s.StopBits, "1", "1.5", "2")
	}
	if s.FlowControl != "" && oneOf(ps, p+".flow_control", s.FlowControl, "none", "rtscts", "xonxoff") && s.FlowControl != "none" && runtime.GOOS != "linux" {
		ps.At(p+".flow_control", "%s is set through Linux's termios: not supported on %s", s.FlowControl, runtime.GOOS)
	}
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

func validateMQTT(ps *Problems, p string, m *MQTT) {
	if m.Broker == "" {
		ps.At(p+".broker", "is required (for example tcp://127.0.0.1:1883)")
	} else if u, ok := validURL(ps, p+".broker", m.Broker, "tcp", "ssl", "tls", "mqtt", "mqtts", "ws", "wss"); ok && u.Port() == "" && !strings.HasPrefix(u.Scheme, "ws") {
		ps.At(p+".broker", "%q needs a port (1883 for tcp, 8883 for ssl)", m.Broker)
	}
	if err := checkTopicFilter(m.Topic); err != nil {
		ps.At(p+".topic", "%v", err)
	}
	if m.QoS != nil && *m.QoS != 0 && *m.QoS != 1 {
		ps.At(p+".qos", "%d is not 0 or 1 (1: the broker redelivers until the reading is stored)", *m.QoS)
	}
	if m.ClientID != "" && len(m.ClientID) > 23 {
		ps.Warn(p+".client_id", "is longer than 23 characters; MQTT 3.1 brokers may refuse it")
	}
	if m.PasswordFile.Set() {
		if m.Username == "" {
			ps.At(p+".password_file", "is set without a username")
		}
		loadSecret(ps, p+".password_file", &m.PasswordFile)
	}
	if m.CAFile != "" {
		readableFile(ps, p+".ca_file", m.CAFile)
	}
	if l := m.LocationLevel; l != nil {
		levels := strings.Split(m.Topic, "/")
		if *l < 0 || *l >= len(levels) || (levels[*l] != "+" && m.Topic != "") {
			ps.At(p+".location_level", "%d must be the index (from 0) of a '+' level of the topic", *l)
		}
	}
}

// checkTopicFilter checks an MQTT subscription filter: '+' fills a whole
// level, '#' only the last.
func checkTopicFilter(t string) error {
	if t == "" {
		return fmt.Errorf("is required (for example ward4b/bed-14/vitals)")
	}
	levels := strings.Split(t, "/")
	for i, l := range levels {
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return fmt.Errorf("%q: '#' may only be the whole last level", t)
		}
		if strings.Contains(l, "+") && l != "+" {
			return fmt.Errorf("%q: '+' must fill a whole level", t)
		}
	}
	if strings.ContainsRune(t, 0) {
		return fmt.Errorf("contains a NUL character")
	}
	return nil
}

func validatePatients(c *Config, ps *Problems) {
	beds := map[string]bool{}
	for _, m := range c.Monitors {
		beds[m.Location] = true
	}
	if h := c.Patients.HoldUnassociated.D(); h < 0 || h > 7*24*time.Hour {
		ps.At("patients.hold_unassociated", "%s is not from 0 to 168h", c.Patients.HoldUnassociated)
	}
	if e := c.Patients.EncounterLookup; e != nil {
		if e.LocationSystem == "" {
			ps.At("patients.encounter_lookup.location_system", "is required: the identifier system of the beds' Location resources")
		}
		if e.TTL != 0 {
			ps.Warn("patients.encounter_lookup.ttl", "is now refresh (the least time between two lookups of one bed; an answer no longer serves readings measured after it was asked for): %s is used as refresh", e.TTL)
		}
		if e.Refresh.D() < time.Second || e.Refresh.D() > 10*time.Minute {
			ps.At("patients.encounter_lookup.refresh", "%s is not from 1s to 10m", e.Refresh)
		}
	}
	for bed, ref := range c.Patients.Static {
		p := "patients.static." + bed
		id, ok := strings.CutPrefix(ref, "Patient/")
		if !ok || !fhirIDRe.MatchString(id) {
			ps.At(p, "%q must be a Patient reference such as Patient/123", ref)
		}
		if !beds[bed] {
			ps.Warn(p, "no monitor stands at bed %q", bed)
		}
	}
}

func validateAETitle(ps *Problems, path, ae string) {
	switch {
	case strings.TrimSpace(ae) == "":
		ps.At(path, "is required (1 to 16 characters)")
	case len(ae) > 16:
		ps.At(path, "%q is longer than 16 characters", ae)
	case strings.ContainsAny(ae, `\`) || strings.IndexFunc(ae, func(r rune) bool { return r < 0x20 || r > 0x7e }) >= 0:
		ps.At(path, "%q may hold only printable ASCII characters other than backslash", ae)
	}
}

func validateDICOM(c *Config, ps *Problems) {
	d := c.DICOM
	validateListen(ps, "dicom.listen", d.Listen, false)
	validateAETitle(ps, "dicom.ae_title", d.AETitle)
	// Closed by default: any host on the network could otherwise send
	// studies, and replace what others sent.
	switch {
	case len(d.Allow) == 0 && !d.AllowAny:
		ps.At("dicom.allow", "is empty: every host on the network could send studies. List the modalities ({ae_title, host}), or write allow_any: true to accept everyone")
	case len(d.Allow) > 0 && d.AllowAny:
		ps.At("dicom.allow_any", "is true and dicom.allow lists modalities: choose one")
	case d.AllowAny:
		if host, _, err := net.SplitHostPort(d.Listen); err == nil && everyInterface(host) {
			ps.Warn("dicom.allow_any", "accepts every calling AE title while dicom.listen %s listens on every interface: any host that can reach it may send studies", d.Listen)
		}
	}
	for i, a := range d.Allow {
		p := fmt.Sprintf("dicom.allow[%d]", i)
		validateAETitle(ps, p+".ae_title", a.AETitle)
		if a.Host != "" && net.ParseIP(a.Host) == nil {
			// The gateway runs with a name that does not resolve (that entry
			// admits nobody until it does, looked up every 30 s), so a DNS
			// outage at boot does not stop it; check says so.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := net.DefaultResolver.LookupHost(ctx, a.Host)
			cancel()
			if err != nil {
				ps.Warn(p+".host", "%q does not resolve now (%v): %s is refused until it does", a.Host, err, a.AETitle)
			}
		}
		validateAllowPort(ps, p, a)
		if a.TLS != nil {
			ps.At(p+".tls", "is not used in allow: dicom.tls is the listener's")
		}
		if a.TLSSubject != "" && d.TLS == nil {
			ps.At(p+".tls_subject", "binds %s to a client certificate, but dicom.tls is not set: without TLS there is no certificate", a.AETitle)
		} else if a.TLSSubject != "" && !d.TLS.ClientCertRequired() && d.TLS.ClientCAFile == "" {
			ps.At(p+".tls_subject", "needs dicom.tls.client_ca_file: a certificate nobody verified proves nothing")
		}
	}
	// An AE title bound to a certificate in one entry and listed without
	// one in another would get in by the other: the binding would be void.
	bound := map[string]int{}
	for i, a := range d.Allow {
		if _, seen := bound[strings.TrimSpace(a.AETitle)]; a.TLSSubject != "" && !seen {
			bound[strings.TrimSpace(a.AETitle)] = i
		}
	}
	for i, a := range d.Allow {
		if j, ok := bound[strings.TrimSpace(a.AETitle)]; ok && a.TLSSubject == "" {
			ps.At(fmt.Sprintf("dicom.allow[%d]", i), "lists %s without tls_subject, which lets it in without the certificate dicom.allow[%d] binds it to: give this entry a tls_subject too, or remove it", strings.TrimSpace(a.AETitle), j)
		}
	}
	if d.TLS != nil {
		validateDICOMTLS(ps, d.TLS)
		if d.TLS.Listen != "" && d.TLS.Listen == d.Listen {
			ps.At("dicom.tls.listen", "is dicom.listen: leave it out to make dicom.listen speak TLS, or give the TLS listener its own port")
		}
	}
	// A forward destination is its AE title at its address: the ledger keeps
	// what each has by that name, so the same three twice would be one
	// destination sent everything twice.
	seenForward := map[string]int{}
	for i, f := range d.Forward {
		p := fmt.Sprintf("dicom.forward[%d]", i)
		if f.StowRS != "" {
			validateSTOWForward(ps, p, &d.Forward[i], seenForward, i)
			continue
		}
		if f.Auth != nil {
			ps.At(p+".auth", "is used only with stow_rs (a DICOMweb archive)")
		}
		validateAETitle(ps, p+".ae_title", f.AETitle)
		if f.Host == "" {
			ps.At(p+".host", "is required")
		}
		if f.Port < 1 || f.Port > 65535 {
			ps.At(p+".port", "%d is not from 1 to 65535", f.Port)
		}
		if f.TLS != nil {
			validateClientTLS(ps, p+".tls", f.TLS)
		}
		if f.TLSSubject != "" {
			ps.At(p+".tls_subject", "is not used in forward (it binds an allowed modality to its certificate)")
		}
		id := fmt.Sprintf("%s@%s:%d", strings.TrimSpace(f.AETitle), strings.ToLower(f.Host), f.Port)
		if j, ok := seenForward[id]; ok {
			ps.At(p, "repeats dicom.forward[%d] (ae_title %s, host %s, port %d): each destination must differ in ae_title, host or port", j, f.AETitle, f.Host, f.Port)
		} else {
			seenForward[id] = i
		}
	}
	if d.StudyStableAfter.D() < 1e9 {
		ps.At("dicom.study_stable_after", "%s is too short: at least 1s", d.StudyStableAfter)
	}
	if d.WADORSBase != "" {
		validURL(ps, "dicom.wado_rs_base", d.WADORSBase, "https", "http")
	}
	if d.Replacements != "accept" && d.Replacements != "refuse" {
		ps.At("dicom.replacements", "%q is not accept or refuse", d.Replacements)
	}
	if d.RefusedForGoodAfter.D() < 1e9 {
		ps.At("dicom.refused_for_good_after", "%s is too short: at least 1s", d.RefusedForGoodAfter)
	}
	if d.Retention < 0 {
		ps.At("dicom.retention", "%s is negative", d.Retention)
	}
	if d.MaxAssociations < 1 || d.MaxAssociations > 1000 {
		ps.At("dicom.max_associations", "%d is not from 1 to 1000", d.MaxAssociations)
	}
	validateCommitment(d, ps)
}

// everyInterface reports whether a listen host means every interface:
// empty, or an unspecified address however it is spelled (0.0.0.0, ::,
// [::0], ::ffff:0.0.0.0).
func everyInterface(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}
