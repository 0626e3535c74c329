package profile

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/theory/jsonpath"

	"github.com/wardgate/wardgate/devices/mdc"
	"github.com/wardgate/wardgate/devices/yamlstrict"
)

// Decoders are the dialogues built into wardgate, by name: a profile
// whose format names one is read by that protocol's client
// (devices/dialogues) and maps its values (DecodeDriver). The names are
// here, not registered, so that a profile checks alike in every program
// that loads it.
var Decoders = map[string]bool{"intellivue": true, "datex": true}

func decoderNames() []string {
	var out []string
	for n := range Decoders {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

var actions = map[string]bool{"drop": true, "questionable": true, "alarm": true, "calibrating": true, "none": true}

func (p *Profile) check(ps *yamlstrict.Problems) {
	if p.Vendor == "" {
		ps.At("vendor", "is missing")
	}
	if p.Model == "" {
		ps.At("model", "is missing")
	}
	p.checkSerial(ps)
	if p.Transport.Interval < 0 {
		ps.At("transport.interval", "must not be negative")
	}
	if p.Transport.Interval == 0 {
		p.Transport.Interval = Duration(time.Second)
	}
	switch p.Format {
	case "text":
		if len(p.Options) > 0 {
			ps.At("options", "are a dialogue's settings; format text has none")
		}
		if p.Text == nil {
			ps.At("text", "is missing: format text needs a text section (match and/or tokens)")
			return
		}
		if p.JSON != nil {
			ps.At("json", "does not apply to format text")
		}
		p.checkText(ps)
	case "json":
		if len(p.Options) > 0 {
			ps.At("options", "are a dialogue's settings; format json has none")
		}
		if p.JSON == nil {
			ps.At("json", "is missing: format json needs a json section")
			return
		}
		if p.Text != nil {
			ps.At("text", "does not apply to format json")
		}
	case "":
		ps.At("format", "is missing (text, json, or a binary decoder's name)")
		return
	default:
		if !Decoders[p.Format] {
			ps.At("format", "%q is neither text, json nor a dialogue built into wardgate (%s)", p.Format, strings.Join(decoderNames(), ", "))
			return
		}
		p.checkDriver(ps)
		return
	}
	p.checkTime(ps)
	p.checkParams(ps)
	p.checkStatus(ps)
	if p.Format == "json" {
		p.checkJSON(ps)
	}
}

func (p *Profile) checkSerial(ps *yamlstrict.Problems) {
	s := &p.Transport.Serial
	const at = "transport.serial."
	if s.Baud < 0 || s.Baud > 4_000_000 {
		ps.At(at+"baud", "%d is not a baud rate", s.Baud)
	}
	if s.DataBits != 0 && (s.DataBits < 5 || s.DataBits > 8) {
		ps.At(at+"data_bits", "must be 5 to 8")
	}
	oneOf(ps, at+"parity", s.Parity, "none", "even", "odd", "mark", "space")
	oneOf(ps, at+"stop_bits", s.StopBits, "1", "1.5", "2")
	oneOf(ps, at+"flow_control", s.FlowControl, "none", "rtscts", "xonxoff")
}

func oneOf(ps *yamlstrict.Problems, at, v string, allowed ...string) {
	if v == "" {
		return
	}
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	ps.At(at, "%q is not one of %s", v, strings.Join(allowed, ", "))
}

// fields returns the field names a text profile can produce, or nil when
// tokens make any name possible.
func (p *Profile) fields() map[string]bool {
	if p.Text == nil || p.Text.Tokens != nil {
		return nil
	}
	f := map[string]bool{}
	if p.Text.Match != nil && p.Text.Match.Regexp == nil {
		return nil // a bad expression, already reported: no follow-on errors
	}
	if p.Text.Match != nil && p.Text.Match.Regexp != nil {
		for _, n := range p.Text.Match.SubexpNames() {
			if n != "" {
				f[n] = true
			}
		}
	}
	return f
}

func (p *Profile) checkText(ps *yamlstrict.Problems) {
	t := p.Text
	oneOf(ps, "text.terminator", t.Terminator, "any", "crlf", "lf", "cr")
	if t.MaxLine == 0 {
		t.MaxLine = 1024
	}
	if t.MaxLine < 16 || t.MaxLine > 1<<20 {
		ps.At("text.max_line", "must be from 16 to 1048576 bytes")
	}
	if t.Match == nil && t.Tokens == nil {
		ps.At("text", "needs match (a regular expression with named groups), tokens (KEY=VALUE), or both")
	}
	if t.Tokens != nil {
		if t.Tokens.Assign == "" {
			t.Tokens.Assign = "="
		}
		if t.Tokens.From != "" {
			if t.Match == nil || t.Match.Regexp == nil || t.Match.SubexpIndex(t.Tokens.From) < 0 {
				ps.At("text.tokens.from", "%q is not a named group of text.match", t.Tokens.From)
			}
		}
	}
	for i, ig := range t.Ignore {
		if ig.Regexp == nil {
			ps.At(fmt.Sprintf("text.ignore[%d]", i), "is empty")
		}
	}
	fields := p.fields()
	for i, prm := range p.Parameters {
		at := fmt.Sprintf("parameters[%d]", i)
		if prm.Path != nil {
			ps.At(at+".path", "is for json profiles; a text parameter names its field")
		}
		if prm.Field == "" {
			ps.At(at+".field", "is missing")
		} else if fields != nil && !fields[prm.Field] {
			ps.At(at+".field", "%q is not a named group of text.match", prm.Field)
		}
	}
	if p.SerialNumber != "" && fields != nil && !fields[p.SerialNumber] {
		ps.At("serial_number", "%q is not a named group of text.match", p.SerialNumber)
	}
	for i, st := range p.Status {
		if st.Field != "" && fields != nil && !fields[st.Field] {
			ps.At(fmt.Sprintf("status[%d].field", i), "%q is not a named group of text.match", st.Field)
		}
	}
}

func (p *Profile) checkTime(ps *yamlstrict.Problems) {
	t := p.Time
	if t == nil {
		return
	}
	if t.Value == "" {
		ps.At("time.value", "is missing")
	}
	if t.Layout == "" {
		ps.At("time.layout", "is missing (a Go layout like 01/02/06 15:04:05, or rfc3339, unix_s, unix_ms)")
	}
	p.zoneless = t.Layout != "rfc3339" && t.Layout != "unix_s" && t.Layout != "unix_ms" && !layoutHasZone(t.Layout)
	switch t.Zone {
	case "", "local":
		p.zone = time.Local
	case "UTC", "utc":
		p.zone = time.UTC
	default:
		z, err := time.LoadLocation(t.Zone)
		if err != nil {
			ps.At("time.zone", "%q is not local, UTC or a known IANA zone", t.Zone)
		}
		p.zone = z
	}
	switch p.Format {
	case "json":
		if t.Value != "" {
			q, err := jsonpath.Parse(t.Value)
			if err != nil {
				ps.At("time.value", "bad JSONPath query: %v", err)
			}
			t.path = q
		}
	case "text":
		if fields := p.fields(); fields != nil {
			for _, ref := range templateFields(t.Value) {
				if !fields[ref] {
					ps.At("time.value", "{%s} is not a named group of text.match", ref)
				}
			}
		}
	}
	switch t.Layout {
	case "rfc3339", "unix_s", "unix_ms", "":
	default:
		// A layout must at least round-trip a time through itself.
		ref := time.Date(2016, 2, 22, 22, 47, 45, 0, time.UTC)
		if _, err := time.Parse(t.Layout, ref.Format(t.Layout)); err != nil || !strings.ContainsAny(t.Layout, "0123456789") {
			ps.At("time.layout", "%q is not a Go time layout (write it like 01/02/06 15:04:05)", t.Layout)
		}
	}
}

// templateFields lists the {field} references of a time template.
func templateFields(tmpl string) []string {
	var out []string
	for {
		i := strings.IndexByte(tmpl, '{')
		if i < 0 {
			return out
		}
		j := strings.IndexByte(tmpl[i:], '}')
		if j < 0 {
			return out
		}
		out = append(out, tmpl[i+1:i+j])
		tmpl = tmpl[i+j+1:]
	}
}

func (p *Profile) checkParams(ps *yamlstrict.Problems) {
	if len(p.Parameters) == 0 && !(p.Format == "json" && p.JSON != nil && p.JSON.Observations != nil) {
		ps.At("parameters", "is missing: a profile maps at least one field to an MDC code")
	}
	seen := map[string]bool{}
	for i := range p.Parameters {
		prm := &p.Parameters[i]
		at := fmt.Sprintf("parameters[%d]", i)
		key := prm.Field
		if prm.Path != nil {
			key = prm.Path.String()
		}
		if seen[key+"|"+prm.MDC] && prm.When == nil {
			ps.At(at, "maps %s to %s twice", key, prm.MDC)
		}
		if prm.When != nil && !Decoders[p.Format] {
			ps.At(at+".when", "is for a dialogue's values (their state)")
		}
		seen[key+"|"+prm.MDC] = true
		if prm.MDC == "" {
			ps.At(at+".mdc", "is missing (an MDC reference id like MDC_PULS_OXIM_SAT_O2, or its number)")
		} else if t, ok := mdc.Lookup(prm.MDC); !ok {
			hint := ""
			var refs []string
			for _, t := range mdc.Terms() {
				refs = append(refs, t.RefID)
			}
			if s := yamlstrict.Suggest(strings.ToUpper(prm.MDC), refs); s != "" {
				hint = fmt.Sprintf(" (did you mean %s?)", s)
			}
			ps.At(at+".mdc", "%q is not an MDC code wardgate knows%s (see devices/mdc)", prm.MDC, hint)
		} else {
			prm.term = t
		}
		if prm.Unit == "" {
			ps.At(at+".unit", "is missing (UCUM, e.g. %%, /min, mm[Hg], Cel)")
		} else if u, ok := mdc.UnitUCUM(prm.Unit); !ok {
			ps.At(at+".unit", "%q is neither a UCUM unit nor an MDC unit wardgate knows", prm.Unit)
		} else if prm.term.Code != 0 {
			f, o, ok := prm.term.Accepts(u)
			if !ok {
				ps.At(at+".unit", "%s is charted in %s; %q cannot be converted to it", prm.term.RefID, prm.term.UCUM, prm.Unit)
			}
			prm.factor, prm.offset = f, o
		}
		if prm.Scale == 0 {
			prm.Scale = 1
		}
		if len(prm.Range) != 0 && (len(prm.Range) != 2 || prm.Range[0] >= prm.Range[1]) {
			ps.At(at+".range", "must be [low, high] with low below high")
		}
		prm.noValue = map[string]bool{}
		for _, nv := range prm.NoValue {
			prm.noValue[nv] = true
		}
		for m, act := range prm.Markers {
			if len([]rune(m)) != 1 {
				ps.At(at+".markers."+m, "a marker is one character")
			}
			if !actions[act] {
				ps.At(at+".markers."+m, "%q is not an action (drop, questionable, alarm, calibrating, none)", act)
			}
			prm.markers += m
		}
	}
}

func (p *Profile) checkStatus(ps *yamlstrict.Problems) {
	p.statusFor = map[string][]*Bit{}
	known := map[string]bool{}
	for _, prm := range p.Parameters {
		known[prm.Field] = true
	}
	for i := range p.Status {
		st := &p.Status[i]
		at := fmt.Sprintf("status[%d]", i)
		if st.Field == "" {
			ps.At(at+".field", "is missing")
		}
		if p.Format == "json" {
			ps.At(at, "status bits are for text profiles")
		}
		switch st.Base {
		case 0:
			st.Base = 16
		case 2, 10, 16:
		default:
			ps.At(at+".base", "must be 2, 10 or 16")
		}
		if len(st.Bits) == 0 {
			ps.At(at+".bits", "is missing")
		}
		for j := range st.Bits {
			b := &st.Bits[j]
			bat := fmt.Sprintf("%s.bits[%d]", at, j)
			if b.Mask == 0 {
				ps.At(bat+".mask", "is missing or zero")
			}
			if b.Name == "" {
				ps.At(bat+".name", "is missing")
			}
			if !actions[b.Action] {
				ps.At(bat+".action", "%q is not an action (drop, questionable, alarm, calibrating, none)", b.Action)
			}
			if len(b.Params) == 0 {
				p.statusFor[""] = append(p.statusFor[""], b)
			}
			for _, f := range b.Params {
				if !known[f] {
					ps.At(bat+".params", "%q is not the field of any parameter", f)
				}
				p.statusFor[f] = append(p.statusFor[f], b)
			}
		}
	}
}

func (p *Profile) checkJSON(ps *yamlstrict.Problems) {
	j := p.JSON
	if j.Observations != nil {
		if j.Code == nil {
			ps.At("json.code", "is missing: with observations, each element's code is queried (e.g. $.code)")
		}
		if j.Value == nil {
			ps.At("json.value", "is missing: with observations, each element's value is queried (e.g. $.value)")
		}
		if j.Unit == nil {
			ps.At("json.unit", "is missing: with observations, each element's unit is queried (e.g. $.unit)")
		}
	} else if j.Code != nil || j.Value != nil || j.Unit != nil {
		ps.At("json", "code, value and unit are queried from each of json.observations, which is missing")
	}
	for i, prm := range p.Parameters {
		at := fmt.Sprintf("parameters[%d]", i)
		if prm.Path == nil {
			ps.At(at+".path", "is missing (a JSONPath query such as $.vitals.hr)")
		}
		if prm.Field != "" {
			ps.At(at+".field", "is for text profiles; a json parameter has a path")
		}
	}
}
