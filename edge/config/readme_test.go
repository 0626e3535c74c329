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
