package config

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"
)

// HL7 is an MLLP listener for HL7 v2: under hl7, IHE PCD-01 results
// (ORU^R01) from central stations and device gateways; under
// patients.adt, the hospital's ADT feed.
type HL7 struct {
	Listen string `yaml:"listen"`
	// TLS makes the listener speak TLS (MLLP over TLS, as IHE ATNA asks).
	TLS *DICOMTLS `yaml:"tls"`
	// Allow lists who may send: by address (an IP, a CIDR or a name), by
	// the message's sending application and facility (MSH-3.1, MSH-4.1),
	// by certificate subject; every key given in an entry must match.
	Allow []HL7Peer `yaml:"allow"`
	// AllowAny takes messages from every host; without it an empty allow
	// is refused (closed by default).
	AllowAny bool `yaml:"allow_any"`
	// TimeZone is the senders' zone for times without a UTC offset (local,
	// UTC or an IANA name). Without it such a time is never guessed: the
	// value is not charted and the acknowledgement says why.
	TimeZone string `yaml:"time_zone"`
	// Zone is TimeZone loaded; nil: none.
	Zone *time.Location `yaml:"-"`
	// Bed is the template that makes a wardgate bed id from PV1-3:
	// {point_of_care}, {room}, {bed}, {facility}, {building}, {floor}.
	// Default {point_of_care}-{bed}.
	Bed string `yaml:"bed"`
	// AssigningAuthority is the PID-3 assigning authority (CX-4: its
	// namespace id or universal id) whose identifiers are record numbers of
	// fhir.patient_identifier_system. An identifier whose authority is
	// written as that system's OID or URI is one too.
	AssigningAuthority string `yaml:"assigning_authority"`
	// MaxMessage bounds one message (default 1 MiB).
	MaxMessage ByteSize `yaml:"max_message"`
	// MaxConnections bounds the connections open at once (default 64).
	MaxConnections int `yaml:"max_connections"`
	// IdleTimeout closes a connection that sent nothing this long
	// (default 10m: central stations keep their connection open).
	IdleTimeout Duration `yaml:"idle_timeout"`
	// AcceptMissingProfile takes PCD-01 results whose MSH-21 is empty
	// (older senders); one that names other profiles is still refused.
	AcceptMissingProfile bool `yaml:"accept_missing_profile"`
}

// HL7Peer is one entry of an HL7 listener's allow list.
type HL7Peer struct {
	Host               string `yaml:"host"`
	SendingApplication string `yaml:"sending_application"`
	SendingFacility    string `yaml:"sending_facility"`
	TLSSubject         string `yaml:"tls_subject"`
}

// Defaults of an HL7 listener.
const (
	DefaultHL7Listen      = ":2575"
	DefaultADTListen      = ":2576"
	DefaultHL7Bed         = "{point_of_care}-{bed}"
	DefaultHL7MaxMessage  = ByteSize(1 << 20)
	DefaultHL7Connections = 64
	DefaultHL7Idle        = Duration(10 * time.Minute)
)

func (h *HL7) applyDefaults(listen string) {
	if h == nil {
		return
	}
	if h.Listen == "" {
		h.Listen = listen
	}
	if h.Bed == "" {
		h.Bed = DefaultHL7Bed
	}
	if h.MaxMessage == 0 {
		h.MaxMessage = DefaultHL7MaxMessage
	}
	if h.MaxConnections == 0 {
		h.MaxConnections = DefaultHL7Connections
	}
	if h.IdleTimeout == 0 {
		h.IdleTimeout = DefaultHL7Idle
	}
}

func (h *HL7) resolvePaths(abs func(*string)) {
	if h == nil || h.TLS == nil {
		return
	}
	abs(&h.TLS.CertFile)
	abs(&h.TLS.KeyFile.Path)
	abs(&h.TLS.ClientCAFile)
}

// bedTemplateField is one {name} in a bed template.
var bedTemplateField = regexp.MustCompile(`\{([a-z_]*)\}`)

// BedTemplateFields are the parts of PV1-3 a bed template may name.
var BedTemplateFields = []string{"point_of_care", "room", "bed", "facility", "building", "floor"}

// validateHL7 checks one HL7 listener at path (hl7, patients.adt).
func validateHL7(c *Config, ps *Problems, path string, h *HL7) {
	validateListen(ps, path+".listen", h.Listen, false)
	switch {
	case len(h.Allow) == 0 && !h.AllowAny:
		ps.At(path+".allow", "is empty: every host on the network could send messages. List the senders ({host, sending_application}), or write allow_any: true to accept everyone")
	case len(h.Allow) > 0 && h.AllowAny:
		ps.At(path+".allow_any", "is true and %s.allow lists senders: choose one", path)
	case h.AllowAny:
		if host, _, err := net.SplitHostPort(h.Listen); err == nil && everyInterface(host) {
			ps.Warn(path+".allow_any", "accepts every sender while %s.listen %s listens on every interface: any host that can reach it may send messages", path, h.Listen)
		}
	}
	for i, a := range h.Allow {
		p := fmt.Sprintf("%s.allow[%d]", path, i)
		if a == (HL7Peer{}) {
			ps.At(p, "names nobody: give host, sending_application, sending_facility or tls_subject")
		}
		if a.Host != "" && net.ParseIP(a.Host) == nil {
			if _, _, err := net.ParseCIDR(a.Host); err != nil && strings.Contains(a.Host, "/") {
				ps.At(p+".host", "%q is not an address, a CIDR (10.1.2.0/24) or a host name", a.Host)
			} else if err != nil {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, lerr := net.DefaultResolver.LookupHost(ctx, a.Host)
				cancel()
				if lerr != nil {
					ps.Warn(p+".host", "%q does not resolve now (%v): its senders are refused until it does", a.Host, lerr)
				}
			}
		}
		if a.TLSSubject != "" && h.TLS == nil {
			ps.At(p+".tls_subject", "binds senders to a client certificate, but %s.tls is not set: without TLS there is no certificate", path)
		}
	}
	if h.TLS != nil {
		if h.TLS.Listen != "" {
			ps.At(path+".tls.listen", "is not used here: %s.listen itself speaks TLS when tls is set", path)
		}
		if h.TLS.CertFile == "" || !h.TLS.KeyFile.Set() {
			ps.At(path+".tls", "cert_file and key_file are required: the certificate the listener shows to senders")
		} else {
			validateKeyPair(ps, path+".tls", h.TLS.CertFile, &h.TLS.KeyFile)
		}
		switch {
		case h.TLS.ClientCAFile != "":
			validateCAFile(ps, path+".tls.client_ca_file", h.TLS.ClientCAFile)
		case h.TLS.ClientCertRequired():
			ps.At(path+".tls.client_ca_file", "is required to verify the senders' certificates (or write require_client_cert: false)")
		}
	}
	h.Zone = loadZone(ps, path+".time_zone", h.TimeZone)
	for _, m := range bedTemplateField.FindAllStringSubmatch(h.Bed, -1) {
		known := false
		for _, f := range BedTemplateFields {
			known = known || m[1] == f
		}
		if !known {
			ps.At(path+".bed", "%s is not a part of PV1-3 (use %s)", m[0], "{"+strings.Join(BedTemplateFields, "}, {")+"}")
		}
	}
	if strings.Contains(h.Bed, "}{") {
		ps.At(path+".bed", "%q puts two parts side by side: ICU1^^2 and ICU^^12 would both be bed ICU12; put a '-', '_' or '.' between them", h.Bed)
	}
	if !bedTemplateField.MatchString(h.Bed) {
		ps.At(path+".bed", "%q names no part of PV1-3: every message would be of one bed", h.Bed)
	}
	if literal := bedTemplateField.ReplaceAllString(h.Bed, ""); !regexp.MustCompile(`^[A-Za-z0-9._\-]*$`).MatchString(literal) {
		ps.At(path+".bed", "%q: outside the {parts}, a bed id takes only letters, digits, '.', '_' and '-'", h.Bed)
	}
	if h.AssigningAuthority != "" && c.FHIR.PatientIdentifierSystem == "" {
		ps.At(path+".assigning_authority", "needs fhir.patient_identifier_system: it says which record numbers PID-3's identifiers of this authority are")
	}
	if h.MaxMessage < 4<<10 || h.MaxMessage > 64<<20 {
		ps.At(path+".max_message", "%s is not from 4KiB to 64MiB", h.MaxMessage)
	}
	if h.MaxConnections < 1 || h.MaxConnections > 4096 {
		ps.At(path+".max_connections", "%d is not from 1 to 4096", h.MaxConnections)
	}
	if d := h.IdleTimeout.D(); d < time.Second || d > 24*time.Hour {
		ps.At(path+".idle_timeout", "%s is not from 1s to 24h", h.IdleTimeout)
	}
}

// loadZone reads a time_zone key: local, UTC or an IANA name; nil when
// empty.
func loadZone(ps *Problems, path, name string) *time.Location {
	switch name {
	case "":
		return nil
	case "local":
		return time.Local
	case "UTC", "utc":
		return time.UTC
	}
	z, err := time.LoadLocation(name)
	if err != nil {
		ps.At(path, "%q is not local, UTC or a known IANA zone (such as Europe/Berlin)", name)
		return nil
	}
	return z
}
