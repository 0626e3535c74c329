// Package build says which wardgate this is, for `wardgate version`, the
// logs, /healthz and the wardgate_build_info metric.
//
// A release build stamps the version and the commit at link time
// (cmd/wardgate/release/build.sh):
//
//	-ldflags "-X github.com/wardgate/wardgate/edge/build.version=v1.2.0
//	          -X github.com/wardgate/wardgate/edge/build.commit=<git sha>"
//
// A binary built without them (go build, go run, tests) falls back to the
// module's build information: its version ("(devel)" in a checkout) and the
// VCS revision when the build recorded one (-buildvcs).
package build

import (
	"runtime"
	"runtime/debug"
)

// Stamped at link time; empty otherwise.
var (
	version string
	commit  string
)

// Version is the release version, "(devel)" for a plain build of a checkout.
func Version() string {
	if version != "" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" {
		return info.Main.Version
	}
	return "unknown"
}

// Commit is the VCS revision the binary was built from, with "-modified"
// when the tree had uncommitted changes; "unknown" when nobody recorded it.
func Commit() string {
	if commit != "" {
		return commit
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, modified := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		return "unknown"
	}
	if modified {
		rev += "-modified"
	}
	return rev
}

// GoVersion is the Go toolchain that built the binary.
func GoVersion() string { return runtime.Version() }

// Platform is the binary's os/arch.
func Platform() string { return runtime.GOOS + "/" + runtime.GOARCH }
