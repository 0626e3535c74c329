package profile

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/wardgate/wardgate/devices"
)

// decodeLine decodes one text line.
func (p *Profile) decodeLine(line []byte) (Frame, error) {
	t := p.Text
	s := string(line)
	for _, ig := range t.Ignore {
		if ig.MatchString(s) {
			return Frame{Ignored: true}, nil
		}
	}
	fields := map[string]string{}
	tokenSrc := s
	if t.Match != nil {
		m := t.Match.FindStringSubmatch(s)
		if m == nil {
			return Frame{}, bad("the line does not match the profile's pattern")
		}
		for i, name := range t.Match.SubexpNames() {
			if name != "" {
				fields[name] = m[i]
			}
		}
		if t.Tokens != nil && t.Tokens.From != "" {
			tokenSrc = fields[t.Tokens.From]
		}
	}
	if t.Tokens != nil {
		var toks []string
		if t.Tokens.Separator == "" {
			toks = strings.Fields(tokenSrc)
		} else {
			toks = strings.Split(tokenSrc, t.Tokens.Separator)
		}
		n := 0
		for _, tok := range toks {
			k, v, ok := strings.Cut(strings.TrimSpace(tok), t.Tokens.Assign)
			if !ok {
				continue // a word that is not KEY=VALUE: some devices print flags
			}
			fields[k] = v
			n++
		}
		if n == 0 && t.Match == nil {
			return Frame{}, bad("the line holds no KEY=VALUE fields")
		}
	}
	var f Frame
	if p.Time != nil {
		var b strings.Builder
		for _, part := range splitTemplate(p.Time.Value) {
			if part.field {
				v, ok := fields[part.s]
				if !ok {
					return Frame{}, bad("the line has no " + part.s + " field for the device time")
				}
				b.WriteString(v)
			} else {
				b.WriteString(part.s)
			}
		}
		dt, alt, err := p.parseTime(b.String())
		if err != nil {
			return Frame{}, bad("the device time does not read as " + p.Time.Layout)
		}
		f.DeviceTime, f.DeviceTimeAlt = dt, alt
	}
	if p.SerialNumber != "" {
		f.SerialNumber = strings.TrimSpace(fields[p.SerialNumber])
	}
	// Status bits: which fields they drop or flag.
	var drop map[string]string
	quality := map[string]devices.Quality{}
	for _, st := range p.Status {
		raw, ok := fields[st.Field]
		if !ok {
			if st.Required {
				return Frame{}, bad("the line has no " + st.Field + " field; it may have been cut short")
			}
			continue
		}
		bits, err := strconv.ParseUint(strings.TrimSpace(raw), st.Base, 32)
		if err != nil {
			return Frame{}, bad(fmt.Sprintf("status field %s is not a base-%d number", st.Field, st.Base))
		}
		for i := range st.Bits {
			b := &st.Bits[i]
			if uint32(bits)&b.Mask == 0 {
				continue
			}
			targets := b.Params
			if len(targets) == 0 {
				targets = []string{""}
			}
			for _, tgt := range targets {
				switch b.Action {
				case "drop":
					if drop == nil {
						drop = map[string]string{}
					}
					if _, ok := drop[tgt]; !ok {
						drop[tgt] = b.Name
					}
				case "questionable":
					quality[tgt] |= devices.Questionable
				case "alarm":
					quality[tgt] |= devices.Alarm
				case "calibrating":
					quality[tgt] |= devices.Calibrating
				}
			}
		}
	}
	for i := range p.Parameters {
		prm := &p.Parameters[i]
		raw, ok := fields[prm.Field]
		if !ok {
			continue // not every line carries every field
		}
		if why, ok := drop[prm.Field]; ok {
			f.Dropped = append(f.Dropped, Dropped{prm.Field, why})
			continue
		}
		if why, ok := drop[""]; ok {
			if _, empty := p.noValueOrEmpty(prm, raw); !empty {
				f.Dropped = append(f.Dropped, Dropped{prm.Field, why})
			} else {
				f.Dropped = append(f.Dropped, Dropped{prm.Field, "no value"})
			}
			continue
		}
		r, why := p.value(prm, raw, quality[""]|quality[prm.Field])
		if why != "" {
			f.Dropped = append(f.Dropped, Dropped{prm.Field, why})
			continue
		}
		r.DeviceTime = f.DeviceTime
		r.SerialNumber = f.SerialNumber
		f.Readings = append(f.Readings, r)
	}
	return f, nil
}

// noValueOrEmpty reports whether the field says "no value" anyway, so that
// a dropped value is reported as what it was.
func (p *Profile) noValueOrEmpty(prm *Param, raw string) (string, bool) {
	s := strings.Trim(strings.TrimSpace(raw), prm.Trim)
	return s, s == "" || prm.noValue[s]
}

type templatePart struct {
	s     string
	field bool
}

func splitTemplate(tmpl string) []templatePart {
	var out []templatePart
	for tmpl != "" {
		i := strings.IndexByte(tmpl, '{')
		if i < 0 {
			out = append(out, templatePart{tmpl, false})
			break
		}
		j := strings.IndexByte(tmpl[i:], '}')
		if j < 0 {
			out = append(out, templatePart{tmpl, false})
			break
		}
		if i > 0 {
			out = append(out, templatePart{tmpl[:i], false})
		}
		out = append(out, templatePart{tmpl[i+1 : i+j], true})
		tmpl = tmpl[i+j+1:]
	}
	return out
}
