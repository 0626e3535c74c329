package config

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written as in Go: "60s", "1m30s", "250ms".
type Duration time.Duration

func (d *Duration) ParseScalar(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration (write it like 60s, 5m or 250ms)", s)
	}
	*d = Duration(v)
	return nil
}

// D is the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// ByteSize is a number of bytes written with an optional unit: 512MiB, 20GiB,
// 1GB, 1048576.
type ByteSize int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
}

func (b *ByteSize) ParseScalar(s string) error {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("%q is not a size (write it like 512MiB, 20GiB or 1GB)", s)
	}
	*b = ByteSize(n * float64(mult))
	return nil
}

func (b ByteSize) String() string {
	switch {
	case b >= 1<<30 && b%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", b>>30)
	case b >= 1<<20 && b%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", b>>20)
	}
	return fmt.Sprintf("%dB", int64(b))
}

// Secret is a file holding a secret (a token, a password, a key), named by a
// *_file key so that the secret itself never sits in the YAML. Load reads it
// at validation; String shows only the path, so a secret never reaches a log.
type Secret struct {
	Path  string
	value string
}

func (s *Secret) ParseScalar(v string) error {
	if strings.TrimSpace(v) == "" {
		return fmt.Errorf("must name a file")
	}
	s.Path = v
	return nil
}

// Set reports whether a file was named.
func (s Secret) Set() bool { return s.Path != "" }

// Value is the file's content without trailing whitespace.
func (s Secret) Value() string { return s.value }

func (s Secret) String() string {
	if s.Path == "" {
		return "(none)"
	}
	return "(secret from " + s.Path + ")"
}

// load reads the secret file. It returns a warning (not an error) when the
// file can be read by group or others.
func (s *Secret) load() (warning string, err error) {
	info, err := os.Stat(s.Path)
	if err != nil {
		return "", fmt.Errorf("cannot read the secret file: %v", err)
	}
	if !info.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", s.Path)
	}
	if info.Size() > 64<<10 {
		return "", fmt.Errorf("%s is larger than 64 KiB; is it the right file?", s.Path)
	}
	b, err := os.ReadFile(s.Path)
	if err != nil {
		return "", fmt.Errorf("cannot read the secret file: %v", err)
	}
	s.value = strings.TrimRight(string(b), " \t\r\n")
	if s.value == "" {
		return "", fmt.Errorf("%s is empty", s.Path)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return fmt.Sprintf("%s can be read by other users (mode %04o); chmod 600 it", s.Path, info.Mode().Perm()), nil
	}
	return "", nil
}
