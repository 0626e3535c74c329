package config

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/wardgate/wardgate/devices/mdc"
	"github.com/wardgate/wardgate/devices/profile"
)

// Charting is how device readings become Observations in the record: a
// policy per parameter (profile.Chart), set by the profile (the vendor's
// default), a bed group, or a monitor, the most specific winning.
type Charting struct {
	// CloseAfter is how long after an interval ends its value waits for
	// readings still on their way (a slow link, a frame that waited for its
	// patient); 15s when 0. A reading later than that is counted as late.
	CloseAfter Duration `yaml:"close_after"`
	// Amend: a late reading corrects its interval's Observation (status
	// amended) instead of only being counted.
	Amend bool `yaml:"amend"`
	// Chart are the policies of every bed's monitors that no group or
	// monitor sets otherwise (the site's).
	Chart ChartPolicies `yaml:"chart"`
	// Groups are bed groups with their policies; a bed takes the first
	// group that names it.
	Groups []ChartGroup `yaml:"groups"`
}

// ChartGroup is a set of beds (an ICU, a general ward) with the policies
// their monitors' readings are charted by.
type ChartGroup struct {
	Name string `yaml:"name"`
	// Beds are bed names or patterns ("icu-*", path.Match syntax).
	Beds  []string      `yaml:"beds"`
	Chart ChartPolicies `yaml:"chart"`
}

// ChartPolicies map "continuous", "episodic" or an MDC reference id
// (MDC_PULS_OXIM_SAT_O2) to a policy; a parameter named beats its kind.
type ChartPolicies map[string]profile.Chart

// DefaultCloseAfter is charting.close_after when it is not set.
const DefaultCloseAfter = 15 * time.Second

// CloseAfterOrDefault is charting.close_after, or its default.
func (c Charting) CloseAfterOrDefault() time.Duration {
	if c.CloseAfter <= 0 {
		return DefaultCloseAfter
	}
	return time.Duration(c.CloseAfter)
}

// ChartSource says where a parameter's policy was set, for the status page
// and `wardgate check`.
type ChartSource string

// ChartFor is the policy of one parameter of one device at one bed: the
// monitor's chart, then its bed group's, then the site's (charting.chart),
// then its profile's, then the built-in default. A device that is not a configured monitor (a central
// station's HL7 results, which has no profile) is charted each unless a
// bed group says otherwise: the station already chose what to send.
func (c *Config) ChartFor(device, bed, profileName string, code uint32) (profile.Chart, ChartSource) {
	var prof *profile.Profile
	if c.Profiles != nil && profileName != "" {
		prof, _ = c.Profiles.Get(profileName)
	}
	base, from := profile.Chart{Mode: profile.ChartEach}, ChartSource("HL7 results: each")
	if prof != nil {
		if ch, ok := prof.ChartOf(code); ok {
			base, from = ch, ChartSource("profile "+profileName)
		} else {
			base, from = profile.DefaultChart(code), "built-in"
		}
	}
	// A parameter's kind is what its default makes it: a Datex
	// temperature probe is continuous although temperatures mostly are not.
	kind := "continuous"
	if (prof == nil && profile.Episodic(code)) || (prof != nil && base.Mode == profile.ChartEach) {
		kind = "episodic"
	}
	ref := ""
	if t, ok := mdc.ByCode(code); ok {
		ref = t.RefID
	}
	pick := func(ps ChartPolicies) (profile.Chart, bool) {
		if ch, ok := ps[ref]; ok && ref != "" {
			return ch, true
		}
		ch, ok := ps[kind]
		return ch, ok
	}
	for i := range c.Monitors {
		if m := &c.Monitors[i]; m.ID == device {
			if ch, ok := pick(m.Chart); ok {
				return ch, ChartSource("monitor " + device)
			}
			break
		}
	}
	if g := c.chartGroupOf(bed); g != nil {
		if ch, ok := pick(g.Chart); ok {
			return ch, ChartSource("bed group " + g.Name)
		}
	}
	if ch, ok := pick(c.Charting.Chart); ok {
		return ch, "charting.chart"
	}
	return base, from
}

// ChartGroupOfParams is one policy and the parameters of a monitor it
// applies to.
type ChartGroupOfParams struct {
	Policy profile.Chart
	From   ChartSource
	Codes  []uint32
}

// ChartPolicies are the policies in force for a monitor's parameters: those
// of its profile, and the codes in seen (what it was seen to send), grouped
// by policy and source, in the profile's order.
func (c *Config) ChartPolicies(device, bed, profileName string, seen []uint32) []ChartGroupOfParams {
	var codes []uint32
	if c.Profiles != nil {
		if p, ok := c.Profiles.Get(profileName); ok {
			codes = p.Codes()
		}
	}
	for _, code := range seen {
		if !slices.Contains(codes, code) {
			codes = append(codes, code)
		}
	}
	var out []ChartGroupOfParams
	for _, code := range codes {
		p, from := c.ChartFor(device, bed, profileName, code)
		i := slices.IndexFunc(out, func(g ChartGroupOfParams) bool { return g.Policy == p && g.From == from })
		if i < 0 {
			i = len(out)
			out = append(out, ChartGroupOfParams{Policy: p, From: from})
		}
		out[i].Codes = append(out[i].Codes, code)
	}
	return out
}

// chartGroupOf is the first bed group that names bed.
func (c *Config) chartGroupOf(bed string) *ChartGroup {
	if bed == "" {
		return nil
	}
	for i := range c.Charting.Groups {
		g := &c.Charting.Groups[i]
		for _, pat := range g.Beds {
			if ok, _ := path.Match(pat, bed); ok {
				return g
			}
		}
	}
	return nil
}

func validateCharting(c *Config, ps *Problems) {
	ch := &c.Charting
	if ch.CloseAfter < 0 || time.Duration(ch.CloseAfter) > time.Hour {
		ps.At("charting.close_after", "%s is not between 0 (the default, %s) and 1h", time.Duration(ch.CloseAfter), DefaultCloseAfter)
	}
	names := map[string]int{}
	for i := range ch.Groups {
		g := &ch.Groups[i]
		p := fmt.Sprintf("charting.groups[%d]", i)
		if strings.TrimSpace(g.Name) == "" {
			ps.At(p+".name", "is required: it names the group on the status page")
		} else if j, dup := names[g.Name]; dup {
			ps.At(p+".name", "%q is already the name of charting.groups[%d]", g.Name, j)
		} else {
			names[g.Name] = i
		}
		if len(g.Beds) == 0 {
			ps.At(p+".beds", "is required: the beds (or patterns like icu-*) the group's policies are for")
		}
		for j, pat := range g.Beds {
			if _, err := path.Match(pat, ""); err != nil || strings.TrimSpace(pat) == "" {
				ps.At(fmt.Sprintf("%s.beds[%d]", p, j), "%q is not a bed name or pattern (icu-*, bed-1?)", pat)
			}
		}
		if len(g.Chart) == 0 {
			ps.At(p+".chart", "is required: continuous, episodic or an MDC reference id, each with a policy")
		}
		validateChartPolicies(ps, p+".chart", g.Chart)
	}
	validateChartPolicies(ps, "charting.chart", ch.Chart)
	for i := range c.Monitors {
		validateChartPolicies(ps, fmt.Sprintf("monitors[%d].chart", i), c.Monitors[i].Chart)
	}
}

func validateChartPolicies(ps *Problems, p string, policies ChartPolicies) {
	keys := make([]string, 0, len(policies))
	for k := range policies {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if k == "continuous" || k == "episodic" {
			continue
		}
		t, ok := mdc.Lookup(k)
		if !ok || t.RefID != k {
			ps.At(p+"."+k, "is neither continuous, episodic nor an MDC reference id wardgate knows (like MDC_PULS_OXIM_SAT_O2)")
			continue
		}
		if policies[k].Mode == profile.ChartUnset {
			ps.At(p+"."+k, "needs a policy (each, off, every 1m median, …)")
		}
	}
}
