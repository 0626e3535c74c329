// Package config reads and checks wardgate's one YAML file.
//
// Decoding is strict: an unknown key is an error, and every problem in the
// file is reported at once with its line and key path
// ("wardgate.yaml:14: monitors[1].serial.baud: 9601 is not a standard rate").
// Relative paths in the file are taken from the file's own folder. Secrets
// are never written in the file: *_file keys name files that hold them.
package config

import (
	"fmt"
	"github.com/wardgate/wardgate/devices/profile"
	"github.com/wardgate/wardgate/devices/yamlstrict"
	"os"
	"path/filepath"
	"time"
)

// Config is the whole configuration of one gateway.
type Config struct {
	// Site names this gateway; it is part of every identifier it mints.
	Site string `yaml:"site"`
	// DataDir holds the outbox and the spool.
	DataDir     string `yaml:"data_dir"`
	HTTP        HTTP   `yaml:"http"`
	FHIR        FHIR   `yaml:"fhir"`
	ProfilesDir string `yaml:"profiles_dir"`
	// Profiles are the firmware profiles: built-in ones and profiles_dir's.
	Profiles *profile.Set `yaml:"-"`
	// brokenProfiles names the profiles whose files failed to load.
	brokenProfiles map[string]bool
	Monitors       []Monitor `yaml:"monitors"`
	Patients       Patients  `yaml:"patients"`
	// HL7 is nil when the gateway takes no HL7 results (PCD-01).
	HL7 *HL7 `yaml:"hl7"`
	// DICOM is nil when the gateway takes no studies.
	DICOM  *DICOM `yaml:"dicom"`
	Buffer Buffer `yaml:"buffer"`
	Log    Log    `yaml:"log"`
	// Charting is how device readings become Observations (charting.go).
	Charting Charting `yaml:"charting"`

	// File is the path the config was read from.
	File string `yaml:"-"`
}

// HTTP is the status page, health and metrics listener.
type HTTP struct {
	Listen         string `yaml:"listen"`
	AdminTokenFile Secret `yaml:"admin_token_file"`
	// TLS, when set, serves the page and the API over HTTPS on Listen.
	TLS *HTTPTLS `yaml:"tls"`
	// PublicValues shows live values and trends without the admin token
	// even when Listen is not a loopback address.
	PublicValues bool `yaml:"public_values"`
}

// HTTPTLS is the certificate the status page and the API show.
type HTTPTLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  Secret `yaml:"key_file"`
}

// ValuesNeedToken reports whether live values and trends are shown only
// with the admin token: when the listener is reachable from another
// machine (see ListensOnLoopbackOnly) and public_values is not set.
func (h HTTP) ValuesNeedToken() bool {
	return !h.PublicValues && !ListensOnLoopbackOnly(h.Listen)
}

// FHIR is the central record that Observations and ImagingStudies go to.
type FHIR struct {
	BaseURL string `yaml:"base_url"`
	// PatientIdentifierSystem is the hospital's MRN system: a DICOM Patient
	// ID is looked up as an identifier in it.
	PatientIdentifierSystem string   `yaml:"patient_identifier_system"`
	Auth                    FHIRAuth `yaml:"auth"`
	TLS                     TLS      `yaml:"tls"`
	BatchSize               int      `yaml:"batch_size"`
	BatchWait               Duration `yaml:"batch_wait"`
	Timeout                 Duration `yaml:"timeout"`
	// PatientReference is how a study's patient is referred to:
	// conditional (Patient?identifier=…, resolved by the record inside the
	// transaction, as R4 asks) or resolve (the gateway searches the Patient
	// itself and writes a literal reference, for servers that store
	// conditional references unresolved).
	PatientReference string `yaml:"patient_reference"`
	// ObservationStatus is the status of the Observations wardgate writes:
	// final (the default), or preliminary where the site validates device
	// data in the record before it counts.
	ObservationStatus string `yaml:"observation_status"`
}

// FHIRAuth is how the gateway authenticates to the FHIR server.
type FHIRAuth struct {
	// Type is none, bearer, client_credentials or smart_backend.
	Type             string   `yaml:"type"`
	TokenFile        Secret   `yaml:"token_file"`
	TokenURL         string   `yaml:"token_url"`
	ClientID         string   `yaml:"client_id"`
	ClientSecretFile Secret   `yaml:"client_secret_file"`
	PrivateKeyFile   Secret   `yaml:"private_key_file"`
	KeyID            string   `yaml:"key_id"`
	Scopes           []string `yaml:"scopes"`
}

// TLS is a CA to trust and a client certificate for mutual TLS.
type TLS struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  Secret `yaml:"key_file"`
}

// Monitor is one bedside monitor.
type Monitor struct {
	ID       string  `yaml:"id"`
	Location string  `yaml:"location"`
	Profile  string  `yaml:"profile"`
	Serial   *Serial `yaml:"serial"`
	MQTT     *MQTT   `yaml:"mqtt"`
	// UDP reaches a monitor that is talked to over the LAN (IntelliVue).
	UDP *UDP `yaml:"udp"`
	// TimeZone is the zone of the device's clock when it sends local time
	// without an offset (local, UTC or an IANA name); empty: the profile's.
	TimeZone string `yaml:"time_zone"`
	// Zone is TimeZone loaded; nil: the profile's.
	Zone *time.Location `yaml:"-"`
	// Chart overrides the charting policies of this monitor's parameters
	// (continuous, episodic or an MDC reference id → policy).
	Chart ChartPolicies `yaml:"chart"`
}

// Serial is an RS-232 port. Zero values take the profile's defaults.
type Serial struct {
	Port        string `yaml:"port"`
	Baud        int    `yaml:"baud"`
	DataBits    int    `yaml:"data_bits"`
	Parity      string `yaml:"parity"`
	StopBits    string `yaml:"stop_bits"`
	FlowControl string `yaml:"flow_control"`
}

// UDP is a monitor's address on the LAN, for a profile whose protocol
// speaks UDP.
type UDP struct {
	Host string `yaml:"host"`
	// Port is the monitor's; 0: the protocol's (IntelliVue: 24105).
	Port int `yaml:"port"`
}

// MQTT is a topic on a broker that a monitor (or its bridge) publishes to.
type MQTT struct {
	Broker       string `yaml:"broker"`
	Topic        string `yaml:"topic"`
	QoS          *int   `yaml:"qos"`
	ClientID     string `yaml:"client_id"`
	Username     string `yaml:"username"`
	PasswordFile Secret `yaml:"password_file"`
	CAFile       string `yaml:"ca_file"`
	// LocationLevel takes each message's bed from this level of its topic
	// (0 is the first), for a wildcard topic covering many beds:
	// ward4/+/vitals with location_level 1. The monitor's location is then
	// not needed.
	LocationLevel *int `yaml:"location_level"`
}

// Patients says which patient lies in which bed.
type Patients struct {
	// Static maps a bed (a monitor's location) to a Patient reference.
	Static map[string]string `yaml:"static"`
	// EncounterLookup finds the patient in a bed from the FHIR server: the
	// in-progress Encounter whose location is the bed's Location.
	EncounterLookup *EncounterLookup `yaml:"encounter_lookup"`
	// HoldUnassociated is how long readings wait once every source has
	// answered that nobody lay in their bed at their time (default 1h);
	// then they go to the dead letters, from where they can be retried. A
	// record that cannot be reached never makes readings expire.
	HoldUnassociated Duration `yaml:"hold_unassociated"`
	// ADT is the hospital's ADT feed (HL7 v2 over MLLP): admissions,
	// transfers and discharges become time-bounded stays, asked before the
	// Encounter lookup.
	ADT *HL7 `yaml:"adt"`
}

// EncounterLookup is how beds are found as FHIR Locations.
type EncounterLookup struct {
	// LocationSystem is the identifier system of the ward's Location
	// resources; a bed's name is the identifier's value.
	LocationSystem string `yaml:"location_system"`
	// Refresh is the least time between two lookups of one bed (default
	// 5s). An answer serves only readings measured before it was asked
	// for; later ones wait for the next lookup.
	Refresh Duration `yaml:"refresh"`
	// TTL is the old name of refresh, read with a warning.
	TTL Duration `yaml:"ttl"`
}

// DICOM is the gateway's DICOM node.
type DICOM struct {
	Listen  string      `yaml:"listen"`
	AETitle string      `yaml:"ae_title"`
	Allow   []DICOMPeer `yaml:"allow"`
	// TLS makes the node speak DICOM TLS (on dicom.listen, or on its own
	// tls.listen beside a plain dicom.listen).
	TLS *DICOMTLS `yaml:"tls"`
	// AllowAny accepts every calling AE title from every host; without it
	// an empty allow is refused (closed by default).
	AllowAny         bool        `yaml:"allow_any"`
	Forward          []DICOMPeer `yaml:"forward"`
	StudyStableAfter Duration    `yaml:"study_stable_after"`
	WADORSBase       string      `yaml:"wado_rs_base"`
	MaxAssociations  int         `yaml:"max_associations"`
	// Retention keeps a received instance in the spool this long after it
	// arrived, even once every forward destination and the FHIR server
	// have it (default 0: removed as soon as they do).
	Retention Duration `yaml:"retention"`
	// Replacements says what becomes of a copy of a stored instance, with
	// other content, that comes from another calling AE title or changes
	// the patient or the study: accept (stored, counted, logged; the
	// default) or refuse (0111, the stored copy kept).
	Replacements string `yaml:"replacements"`
	// RefusedForGoodAfter: a destination's permanent refusal (A9xx, 0122,
	// 0124) of an instance makes it a dead letter once refusals have
	// lasted this long (and five came); default 1h.
	RefusedForGoodAfter Duration `yaml:"refused_for_good_after"`
	// IssuerOfPatientID is the Issuer of Patient ID (0010,0021) under which
	// a study's Patient ID is an identifier of fhir.patient_identifier_system.
	// A study whose instances name another issuer has no patient here.
	IssuerOfPatientID string `yaml:"issuer_of_patient_id"`
	// Commitment makes the node a Storage Commitment Push Model SCP.
	Commitment *DICOMCommitment `yaml:"commitment"`
}

// DICOMPeer is a modality allowed to send (ae_title, optional host) or a
// destination to forward to (ae_title, host, port).
type DICOMPeer struct {
	AETitle string `yaml:"ae_title"`
	Host    string `yaml:"host"`
	Port    int    `yaml:"port"`
	// TLS, on a forward destination, makes its associations DICOM TLS
	// (PS3.15 B.9): the CA that signs the PACS's certificate and, for
	// mutual TLS, our client certificate.
	TLS *TLS `yaml:"tls"`
	// TLSSubject, on an allow entry, binds the AE title to a client
	// certificate: the association must come over TLS with a verified
	// certificate whose subject is this (RFC 2253, as `openssl x509
	// -noout -subject -nameopt RFC2253` prints it).
	TLSSubject string `yaml:"tls_subject"`
	// StowRS, on a forward destination, is the base URL of a DICOMweb
	// archive: instances go there by STOW-RS instead of C-STORE (then
	// ae_title, host and port are not given; tls is the HTTPS client's).
	StowRS string `yaml:"stow_rs"`
	// Auth is how the gateway authenticates to the DICOMweb archive: the
	// keys of fhir.auth (default type none).
	Auth *FHIRAuth `yaml:"auth"`
}

// DICOMTLS is the listener's DICOM TLS (PS3.15 Annex B, BCP 195 profile).
type DICOMTLS struct {
	// Listen, when set, is a second listener for TLS, and dicom.listen
	// stays plain; empty: dicom.listen itself speaks TLS.
	Listen   string `yaml:"listen"`
	CertFile string `yaml:"cert_file"`
	KeyFile  Secret `yaml:"key_file"`
	// ClientCAFile signs the modalities' certificates.
	ClientCAFile string `yaml:"client_ca_file"`
	// RequireClientCert refuses a peer without a certificate that
	// client_ca_file verifies (default true).
	RequireClientCert *bool `yaml:"require_client_cert"`
}

// ClientCertRequired is RequireClientCert with its default.
func (t *DICOMTLS) ClientCertRequired() bool {
	return t.RequireClientCert == nil || *t.RequireClientCert
}

// Buffer bounds the disk the gateway may use.
type Buffer struct {
	OutboxQuota ByteSize `yaml:"outbox_quota"`
	SpoolQuota  ByteSize `yaml:"spool_quota"`
}

// Log sets what the gateway logs.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
	// PatientData lets logs show patient identifiers and values, for
	// debugging only.
	PatientData bool `yaml:"patient_data"`
}

// Defaults.
const (
	DefaultHTTPListen       = "127.0.0.1:8080"
	DefaultDICOMListen      = ":11112"
	DefaultOutboxQuota      = ByteSize(1 << 30)
	DefaultSpoolQuota       = ByteSize(20 << 30)
	DefaultBatchSize        = 100
	DefaultFHIRTimeout      = Duration(30e9)
	DefaultStudyStableAfter = Duration(60e9)
	DefaultRefusedForGood   = Duration(3600e9)
	DefaultMaxAssociations  = 16
	DefaultHoldUnassociated = Duration(time.Hour)
	DefaultEncounterRefresh = Duration(5 * time.Second)
)

// Load reads, decodes and validates the config file at path. On any error
// (not warnings) it returns *Problems listing all of them; the warnings of a
// valid file are in the returned Problems.
func Load(path string) (*Config, *Problems, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	return Parse(path, b)
}

// Parse is Load for a file already read; name is used in messages and its
// folder anchors relative paths.
func Parse(name string, data []byte) (*Config, *Problems, error) {
	ps := yamlstrict.NewProblems(name)
	c := &Config{File: name}
	if !yamlstrict.Decode(ps, data, c) {
		return nil, ps, ps
	}
	c.applyDefaults()
	dir, err := filepath.Abs(filepath.Dir(name))
	if err != nil {
		dir = filepath.Dir(name)
	}
	c.resolvePaths(dir)
	validate(c, ps)
	ps.Sort()
	if len(ps.Errors()) > 0 {
		return nil, ps, ps
	}
	return c, ps, nil
}

func (c *Config) applyDefaults() {
	if c.HTTP.Listen == "" {
		c.HTTP.Listen = DefaultHTTPListen
	}
	if c.FHIR.Auth.Type == "" {
		c.FHIR.Auth.Type = "none"
	}
	if c.FHIR.BatchSize == 0 {
		c.FHIR.BatchSize = DefaultBatchSize
	}
	if c.FHIR.Timeout == 0 {
		c.FHIR.Timeout = DefaultFHIRTimeout
	}
	if c.Patients.HoldUnassociated == 0 {
		c.Patients.HoldUnassociated = DefaultHoldUnassociated
	}
	if e := c.Patients.EncounterLookup; e != nil && e.Refresh == 0 {
		e.Refresh = e.TTL
		if e.Refresh == 0 {
			e.Refresh = DefaultEncounterRefresh
		}
	}
	c.HL7.applyDefaults(DefaultHL7Listen)
	c.Patients.ADT.applyDefaults(DefaultADTListen)
	if c.FHIR.PatientReference == "" {
		c.FHIR.PatientReference = "conditional"
	}
	if c.FHIR.ObservationStatus == "" {
		c.FHIR.ObservationStatus = "final"
	}
	for i := range c.Monitors {
		if m := c.Monitors[i].MQTT; m != nil && m.QoS == nil {
			one := 1
			m.QoS = &one
		}
	}
	if d := c.DICOM; d != nil {
		if d.Listen == "" {
			d.Listen = DefaultDICOMListen
		}
		if d.Replacements == "" {
			d.Replacements = "accept"
		}
		if d.RefusedForGoodAfter == 0 {
			d.RefusedForGoodAfter = DefaultRefusedForGood
		}
		if d.StudyStableAfter == 0 {
			d.StudyStableAfter = DefaultStudyStableAfter
		}
		if d.MaxAssociations == 0 {
			d.MaxAssociations = DefaultMaxAssociations
		}
		d.Commitment.applyDefaults()
	}
	if c.Buffer.OutboxQuota == 0 {
		c.Buffer.OutboxQuota = DefaultOutboxQuota
	}
	if c.Buffer.SpoolQuota == 0 {
		c.Buffer.SpoolQuota = DefaultSpoolQuota
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
}

// resolvePaths makes relative paths relative to the config file's folder
// (a service's working directory is seldom where its config is).
func (c *Config) resolvePaths(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&c.DataDir)
	abs(&c.ProfilesDir)
	abs(&c.HTTP.AdminTokenFile.Path)
	if c.HTTP.TLS != nil {
		abs(&c.HTTP.TLS.CertFile)
		abs(&c.HTTP.TLS.KeyFile.Path)
	}
	abs(&c.FHIR.Auth.TokenFile.Path)
	abs(&c.FHIR.Auth.ClientSecretFile.Path)
	abs(&c.FHIR.Auth.PrivateKeyFile.Path)
	abs(&c.FHIR.TLS.CAFile)
	abs(&c.FHIR.TLS.CertFile)
	abs(&c.FHIR.TLS.KeyFile.Path)
	if d := c.DICOM; d != nil {
		if t := d.TLS; t != nil {
			abs(&t.CertFile)
			abs(&t.KeyFile.Path)
			abs(&t.ClientCAFile)
		}
		for i := range d.Forward {
			if t := d.Forward[i].TLS; t != nil {
				abs(&t.CAFile)
				abs(&t.CertFile)
				abs(&t.KeyFile.Path)
			}
			if a := d.Forward[i].Auth; a != nil {
				abs(&a.TokenFile.Path)
				abs(&a.ClientSecretFile.Path)
				abs(&a.PrivateKeyFile.Path)
			}
		}
	}
	c.HL7.resolvePaths(abs)
	c.Patients.ADT.resolvePaths(abs)
	for i := range c.Monitors {
		if m := c.Monitors[i].MQTT; m != nil {
			abs(&m.PasswordFile.Path)
			abs(&m.CAFile)
		}
	}
	if c.DataDir != "" {
		c.DataDir = filepath.Clean(c.DataDir)
	}
}

// OutboxPath is the outbox's file under data_dir.
func (c *Config) OutboxPath() string { return filepath.Join(c.DataDir, "outbox.db") }

// SpoolDir is the spool's folder under data_dir.
func (c *Config) SpoolDir() string { return filepath.Join(c.DataDir, "spool") }

// LedgerPath is the DICOM ledger's file: beside the spool's index, whose
// instances it describes.
func (c *Config) LedgerPath() string { return filepath.Join(c.SpoolDir(), "ledger.db") }

// Summary is one line that says what the config sets up, for `check`.
func (c *Config) Summary() string {
	serial, mqtt := 0, 0
	for _, m := range c.Monitors {
		if m.Serial != nil {
			serial++
		} else {
			mqtt++
		}
	}
	s := fmt.Sprintf("site %s; %d monitor(s) (%d serial, %d MQTT); ", c.Site, len(c.Monitors), serial, mqtt)
	if c.DICOM != nil {
		s += fmt.Sprintf("DICOM %s on %s, forwarding to %d node(s); ", c.DICOM.AETitle, c.DICOM.Listen, len(c.DICOM.Forward))
	} else {
		s += "no DICOM; "
	}
	s += fmt.Sprintf("FHIR %s (auth %s); data in %s (outbox quota %s, spool quota %s); status on http://%s/",
		c.FHIR.BaseURL, c.FHIR.Auth.Type, c.DataDir, c.Buffer.OutboxQuota, c.Buffer.SpoolQuota, c.HTTP.Listen)
	return s
}

// Problem is one thing wrong (or, for a warning, risky) in the config file.
type Problem = yamlstrict.Problem

// Problems is every problem found in the config file.
type Problems = yamlstrict.Problems
