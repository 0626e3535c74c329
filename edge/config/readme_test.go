package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The example config in README.md is the reference users copy: it must load.
func TestTheREADMEExampleConfigLoads(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(b), "<!-- example-config")
	if !ok {
		t.Fatal("README.md has no example-config marker")
	}
	_, after, _ = strings.Cut(after, "```yaml\n")
	example, _, _ := strings.Cut(after, "```")
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "profiles"), 0o700)
	example = strings.NewReplacer(
		"/etc/wardgate/profiles", filepath.Join(dir, "profiles"),
		"/var/lib/wardgate", filepath.Join(dir, "data"),
	).Replace(example)
	c, ps, err := Parse(filepath.Join(dir, "wardgate.yaml"), []byte(example))
	if err != nil {
		t.Fatalf("the README's example does not load:\n%v", err)
	}
	if len(c.Monitors) != 3 || c.Patients.EncounterLookup == nil || c.DICOM == nil || len(c.DICOM.Forward) != 1 {
		t.Fatalf("example loaded as %+v", c)
	}
	for _, w := range ps.Warnings() {
		t.Errorf("the README's example warns: %s", w)
	}
}

// The charting examples in README.md ("What reaches the chart") load, and
// mean what the text says.
func TestTheREADMEChartingExamplesLoad(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "## What reaches the chart")
	if !ok {
		t.Fatal(`README.md has no "What reaches the chart" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var examples []string
	for {
		var found bool
		_, section, found = strings.Cut(section, "```yaml\n")
		if !found {
			break
		}
		var ex string
		ex, section, _ = strings.Cut(section, "```")
		examples = append(examples, ex)
	}
	if len(examples) != 2 {
		t.Fatalf("%d yaml examples in the section, want 2 (an ICU, a general ward)", len(examples))
	}
	head := "site: ward-4b\ndata_dir: data\nfhir: {base_url: https://fhir.example.org/R4}\n"
	want := []struct{ bed, ref, policy string }{
		{"icu-3", "MDC_PRESS_BLD_ART_ABP_SYS", "every 1m median and samples"},
		{"ward-4b-12", "MDC_PULS_OXIM_SAT_O2", "every 15m nearest"},
	}
	for i, ex := range examples {
		c, _, err := Parse(filepath.Join(t.TempDir(), "wardgate.yaml"), []byte(head+ex))
		if err != nil {
			t.Fatalf("example %d does not load:\n%v", i+1, err)
		}
		if got, _ := c.ChartFor("m", want[i].bed, "masimo/radical-7", code(t, want[i].ref)); got.String() != want[i].policy {
			t.Errorf("example %d: %s at %s is %s, want %s", i+1, want[i].ref, want[i].bed, got, want[i].policy)
		}
	}
}
