package test

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// The release as a biomedical engineer gets it: cmd/wardgate/release/build.sh
// makes a static binary for amd64 and arm64 and a Debian package of each;
// the binaries say what they are, the package puts every file where the
// README says with the right owner, the config is a conffile that passes
// check, and systemd accepts the unit.
func TestReleaseBuildsPackagesAndUnit(t *testing.T) {
	RequirePeers(t, "dpkg-deb", "systemd-analyze")
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(file))
	out := t.TempDir()
	build := exec.Command(filepath.Join(root, "cmd/wardgate/release/build.sh"), "-o", out)
	build.Env = append(os.Environ(), "VERSION=v9.8.7-test.1")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build.sh: %v\n%s", err, b)
	}
	head, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatalf("git rev-parse HEAD: %v", err)
	}
	commit := strings.TrimSpace(string(head))

	for arch, machine := range map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64} {
		bin := filepath.Join(out, "linux-"+arch, "wardgate")
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatalf("%s: %v", arch, err)
		}
		if f.Machine != machine {
			t.Errorf("%s: built for %v", arch, f.Machine)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
				t.Errorf("%s: not static: it has a %v program header", arch, p.Type)
			}
		}
		if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
			t.Errorf("%s: links %v", arch, libs)
		}
		f.Close()
	}

	amd64 := filepath.Join(out, "linux-amd64", "wardgate")
	if runtime.GOARCH == "amd64" {
		v, err := exec.Command(amd64, "version").Output()
		if err != nil {
			t.Fatalf("wardgate version: %v", err)
		}
		want := `^wardgate v9\.8\.7-test\.1\ncommit +` + commit + `(-modified)?\ngo +go[0-9.]+\nos/arch +linux/amd64\n$`
		if !regexp.MustCompile(want).Match(v) {
			t.Errorf("wardgate version printed\n%s\nwant %s", v, want)
		}
		if b, err := exec.Command(amd64, "check", "-config", filepath.Join(out, "wardgate.yaml")).CombinedOutput(); err != nil {
			t.Errorf("the packaged config does not pass check: %v\n%s", err, b)
		}
	}

	for _, arch := range []string{"amd64", "arm64"} {
		deb := filepath.Join(out, "wardgate_9.8.7~test.1_"+arch+".deb")
		list := dpkgDeb(t, "-c", deb)
		for _, want := range []string{
			`-rwxr-xr-x root/root +\d+ \S+ \S+ \./usr/bin/wardgate`,
			`drwxr-xr-x root/root +0 \S+ \S+ \./etc/wardgate/`,
			`-rw-r----- root/wardgate +\d+ \S+ \S+ \./etc/wardgate/wardgate\.yaml`,
			`-rw-r--r-- root/root +\d+ \S+ \S+ \./usr/lib/systemd/system/wardgate\.service`,
			`drwxr-x--- wardgate/wardgate +0 \S+ \S+ \./var/lib/wardgate/`,
		} {
			if !regexp.MustCompile(`(?m)^` + want + `$`).MatchString(list) {
				t.Errorf("%s: no line like %q in its files:\n%s", arch, want, list)
			}
		}
		for field, want := range map[string]string{
			"Package": "wardgate", "Architecture": arch, "Version": "9.8.7~test.1", "Pre-Depends": "passwd",
		} {
			if got := strings.TrimSpace(dpkgDeb(t, "-f", deb, field)); got != want {
				t.Errorf("%s: %s is %q, want %q", arch, field, got, want)
			}
		}
		control := t.TempDir()
		dpkgDeb(t, "-e", deb, control)
		if b, _ := os.ReadFile(filepath.Join(control, "conffiles")); string(b) != "/etc/wardgate/wardgate.yaml\n" {
			t.Errorf("%s: conffiles %q", arch, b)
		}
		for _, s := range []string{"preinst", "postinst", "prerm", "postrm"} {
			script := filepath.Join(control, s)
			if fi, err := os.Stat(script); err != nil || fi.Mode()&0o111 == 0 {
				t.Errorf("%s: %s missing or not executable (%v)", arch, s, err)
				continue
			}
			if b, err := exec.Command("sh", "-n", script).CombinedOutput(); err != nil {
				t.Errorf("%s: %s: %v\n%s", arch, s, err, b)
			}
		}
		if arch != "amd64" {
			continue
		}
		// The unit as installed, but run from the binary just built: verify
		// checks that the commands exist. It needs no running systemd.
		tree := t.TempDir()
		if b, err := exec.Command("dpkg-deb", "-x", deb, tree).CombinedOutput(); err != nil {
			t.Fatalf("dpkg-deb -x: %v\n%s", err, b)
		}
		unit, err := os.ReadFile(filepath.Join(tree, "usr/lib/systemd/system/wardgate.service"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"Type=notify", "WatchdogSec=", "ExecStartPre=/usr/bin/wardgate check -config /etc/wardgate/wardgate.yaml",
			"Restart=on-failure", "ProtectSystem=strict", "ReadWritePaths=/var/lib/wardgate", "NoNewPrivileges=yes",
			"PrivateTmp=yes", "ProtectHome=yes", "\nCapabilityBoundingSet=\n", "DevicePolicy=closed", "DeviceAllow=char-ttyUSB rw"} {
			if !strings.Contains(string(unit), want) {
				t.Errorf("the unit lacks %q", want)
			}
		}
		verify := filepath.Join(t.TempDir(), "wardgate.service")
		os.WriteFile(verify, []byte(strings.ReplaceAll(string(unit), "/usr/bin/wardgate", filepath.Join(tree, "usr/bin/wardgate"))), 0o644)
		// Unknown keys are only warned about (exit 0): any output fails.
		b, err := exec.Command("systemd-analyze", "verify", verify).CombinedOutput()
		if err != nil || len(b) > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, b)
		}
	}
}

// dpkgDeb runs dpkg-deb and returns its output.
func dpkgDeb(t *testing.T, args ...string) string {
	t.Helper()
	b, err := exec.Command("dpkg-deb", args...).Output()
	if err != nil {
		t.Fatalf("dpkg-deb %s: %v", strings.Join(args, " "), err)
	}
	return string(b)
}

// google/fhir is for tests only (package r4google): its generated protos
// made most of a 40 MB binary, and walking their descriptors at start cost
// every gateway 15 MB. The binary validates with package r4.
func TestTheBinaryDoesNotLinkGoogleFHIR(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(file))
	list := exec.Command("go", "list", "-deps", "./cmd/wardgate")
	list.Dir = root
	out, err := list.Output()
	if err != nil {
		t.Fatalf("go list -deps ./cmd/wardgate: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/google/fhir/") || strings.HasSuffix(pkg, "/r4google") {
			t.Errorf("the binary links %s", pkg)
		}
	}
}
