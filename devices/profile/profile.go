// Package profile is the firmware-profile engine: a profile is a YAML file
// (firmware-profiles/<vendor>/<model>.yaml) that declares how one monitor
// model's output is framed, how a frame is split into fields, and how each
// field becomes a devices.Reading (MDC code, UCUM unit, scale, valid range,
// "no value" markers, and which status or exception bits drop or flag a
// value). A new model or firmware needs a new profile and a capture to test
// it against, never a rebuild.
//
// Profiles are checked when loaded: unknown keys, bad regular expressions or
// JSONPath queries, unknown MDC codes and UCUM units are each reported with
// their file, line and key, like the gateway's config.
package profile

import (
	"fmt"
	"regexp"
	"time"

	"github.com/theory/jsonpath"

	"github.com/wardgate/wardgate/devices/mdc"
)

// Profile is one monitor model's output format.
type Profile struct {
	// Name is vendor/model as in the file's path, e.g. masimo/radical-7; a
	// monitor's config names it.
	Name string `yaml:"-"`
	// Source is where it was loaded from: "builtin:masimo/radical-7.yaml" or
	// a path under profiles_dir.
	Source string `yaml:"-"`

	Vendor      string   `yaml:"vendor"`
	Model       string   `yaml:"model"`
	AlsoFits    []string `yaml:"also_fits"` // other models with the same output
	Firmware    []string `yaml:"firmware"`  // firmware versions it was written for
	Description string   `yaml:"description"`
	Reference   string   `yaml:"reference"` // the vendor document it follows
	// Capture is a recording of the device's output beside the profile,
	// which its test replays; Expected, the readings it must give.
	Capture  string `yaml:"capture"`
	Expected string `yaml:"expected"`

	Transport Transport `yaml:"transport"`
	// Format is text (lines), json (one message per frame), or the name of
	// a binary decoder built into wardgate.
	Format string `yaml:"format"`
	Text   *Text  `yaml:"text"`
	JSON   *JSON  `yaml:"json"`

	// Options are a dialogue's settings for this model (a Datex-Ohmeda
	// monitor's interface level); the protocol checks them.
	Options map[string]string `yaml:"options"`

	Time         *TimeSpec `yaml:"time"`
	SerialNumber string    `yaml:"serial_number"` // text: the field with the serial number
	Status       []Status  `yaml:"status"`
	Parameters   []Param   `yaml:"parameters"`

	// Filled by validation.
	statusFor map[string][]*Bit   // param field → bits that apply to it
	byField   map[string][]*Param // a dialogue's field → its parameters
	zone      *time.Location
	zoneless  bool // the time layout carries no offset: it is read in zone
}

// HasDeviceTime reports whether the profile reads a time from the device
// (a dialogue's protocol always does).
func (p *Profile) HasDeviceTime() bool { return p.Time != nil || Decoders[p.Format] }

// Zone is the zone given by InZone (a monitor's time_zone) or the
// profile's time.zone; nil when neither: local time.
func (p *Profile) Zone() *time.Location { return p.zone }

// InZone returns the profile with its device times read in zone (a
// monitor's time_zone), for a device whose clock shows local time without
// an offset.
func (p *Profile) InZone(zone *time.Location) *Profile {
	q := *p
	q.zone = zone
	return &q
}

// Transport holds a profile's defaults for the link; a monitor's config
// overrides any of them.
type Transport struct {
	Serial SerialDefaults `yaml:"serial"`
	// Interval is how often the device sends a frame; a device silent for
	// three intervals (at least 10 s) is shown as silent.
	Interval Duration `yaml:"interval"`
}

// SerialDefaults are RS-232 settings.
type SerialDefaults struct {
	Baud        int    `yaml:"baud"`
	DataBits    int    `yaml:"data_bits"`
	Parity      string `yaml:"parity"`       // none, even, odd, mark, space
	StopBits    string `yaml:"stop_bits"`    // 1, 1.5, 2
	FlowControl string `yaml:"flow_control"` // none, rtscts, xonxoff
}

// Text is how a line-oriented device frames and splits its output.
type Text struct {
	// Terminator ends a line: crlf, lf, cr, or any (the default: CR, LF or
	// CRLF, so a device that changes its mind is still read).
	Terminator string `yaml:"terminator"`
	// MaxLine is the longest line accepted (default 1024 bytes); a longer
	// one is a bad line.
	MaxLine int `yaml:"max_line"`
	// Ignore lists patterns of lines that carry no data (banners, headers,
	// blank lines): they are skipped, not counted as bad.
	Ignore []Regexp `yaml:"ignore"`
	// Match is a regular expression the whole line must match; its named
	// groups become fields.
	Match *Regexp `yaml:"match"`
	// Tokens splits a line (or one named group of Match) into KEY=VALUE
	// fields.
	Tokens *Tokens `yaml:"tokens"`
}

// Tokens describes KEY=VALUE fields.
type Tokens struct {
	From      string `yaml:"from"`      // a named group of match; the whole line when empty
	Separator string `yaml:"separator"` // between tokens; runs of white space when empty
	Assign    string `yaml:"assign"`    // between key and value; "=" when empty
}

// JSON is how a JSON message maps to readings, by RFC 9535 JSONPath
// queries. Either Observations selects a list whose elements each carry a
// code, value and unit (Code, Value, Unit are then queried from each
// element, $ being the element), or Parameters name one path each.
type JSON struct {
	DeviceID     *Path `yaml:"device_id"`
	Manufacturer *Path `yaml:"manufacturer"`
	Model        *Path `yaml:"model"`
	SerialNumber *Path `yaml:"serial_number"`
	Firmware     *Path `yaml:"firmware"`

	Observations *Path `yaml:"observations"`
	Code         *Path `yaml:"code"`
	Value        *Path `yaml:"value"`
	Unit         *Path `yaml:"unit"`
	ObsTime      *Path `yaml:"time"` // per observation; the message's time when absent
}

// TimeSpec says where the device's own time is and how to read it.
type TimeSpec struct {
	// Value is, for text, a template of fields ("{date} {time}"); for JSON,
	// a JSONPath query.
	Value string `yaml:"value"`
	// Layout is a Go time layout ("01/02/06 15:04:05"), or rfc3339,
	// unix_s, unix_ms.
	Layout string `yaml:"layout"`
	// Zone is the zone of a time without an offset: local (the gateway's,
	// the default: monitors are set to wall-clock time), UTC, or an IANA
	// name.
	Zone string `yaml:"zone"`

	path *jsonpath.Path
}

// Status is a field of status or exception bits.
type Status struct {
	Field string `yaml:"field"`
	Base  int    `yaml:"base"` // 16 (default), 10 or 2
	// Required makes a line without this field bad: values whose
	// exceptions cannot be known are not posted (a line cut short loses
	// its last fields first).
	Required bool  `yaml:"required"`
	Bits     []Bit `yaml:"bits"`
}

// Bit is one status bit (or group of bits: any of Mask set) and what it
// means for the values.
type Bit struct {
	Mask uint32 `yaml:"mask"`
	Name string `yaml:"name"`
	// Action is drop (the value is not posted), questionable, alarm,
	// calibrating (posted with that flag), or none (only counted).
	Action string `yaml:"action"`
	// Params are the fields it applies to; every parameter when empty.
	Params []string `yaml:"params"`
}

// Param maps one field to readings of one MDC code.
type Param struct {
	Field string `yaml:"field"` // text: the field's name
	Path  *Path  `yaml:"path"`  // json: a JSONPath query
	MDC   string `yaml:"mdc"`   // reference id or number
	Unit  string `yaml:"unit"`  // UCUM (or an MDC unit), as the device sends it
	// Scale multiplies the value as sent (e.g. 0.1 for tenths); 1 when 0.
	Scale float64 `yaml:"scale"`
	// Range is the valid physiological range, after scaling and unit
	// conversion; a value outside it is dropped as an artefact.
	Range []float64 `yaml:"range"`
	// NoValue lists what the device sends when it has no value ("---").
	NoValue []string `yaml:"no_value"`
	// Trim lists characters cut from both ends of the value ("%").
	Trim string `yaml:"trim"`
	// Markers maps a character the device appends or prepends to a value to
	// an action, as for status bits (Nonin's "*" for questionable).
	Markers map[string]string `yaml:"markers"`
	// When, in a dialogue's profile, makes the parameter apply only to a
	// value whose state has these bits (a Datex-Ohmeda pressure channel
	// labelled ART); a field's parameters are tried in order, and the
	// first that applies charts the value.
	When *StateMatch `yaml:"when"`
	// Chart is the vendor's default charting policy for the parameter
	// (each, every 1m median, …); nil: the built-in one (DefaultChart).
	// A monitor or bed group in the config may set another.
	Chart *Chart `yaml:"chart"`

	term           mdc.Term
	factor, offset float64 // from the sent unit to the charted one
	noValue        map[string]bool
	markers        string // the marker characters, for trimming
}

// StateMatch selects values by their state: State & Mask == Value.
type StateMatch struct {
	Mask  uint32 `yaml:"mask"`
	Value uint32 `yaml:"value"`
}

// Duration is a time.Duration written as in Go ("1s", "500ms").
type Duration time.Duration

// ParseScalar implements yamlstrict.Scalar.
func (d *Duration) ParseScalar(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration (write it like 1s or 500ms)", s)
	}
	*d = Duration(v)
	return nil
}

// D is the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Regexp is a regular expression (RE2 syntax), compiled when loaded.
type Regexp struct{ *regexp.Regexp }

// ParseScalar implements yamlstrict.Scalar.
func (r *Regexp) ParseScalar(s string) error {
	re, err := regexp.Compile(s)
	if err != nil {
		return fmt.Errorf("bad regular expression: %v", err)
	}
	r.Regexp = re
	return nil
}

// Path is an RFC 9535 JSONPath query, parsed when loaded.
type Path struct {
	*jsonpath.Path
	src string
}

// ParseScalar implements yamlstrict.Scalar.
func (p *Path) ParseScalar(s string) error {
	q, err := jsonpath.Parse(s)
	if err != nil {
		return fmt.Errorf("bad JSONPath query: %v", err)
	}
	p.Path, p.src = q, s
	return nil
}

func (p *Path) String() string { return p.src }

// SilentAfter is how long the device may say nothing before it is shown as
// silent.
func (p *Profile) SilentAfter() time.Duration {
	return max(3*p.Transport.Interval.D(), 10*time.Second)
}
