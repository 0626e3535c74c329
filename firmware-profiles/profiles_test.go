package firmwareprofiles_test

import (
	"bytes"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/wardgate/wardgate/devices/dialogues" // the dialogues' formats and their replay
	"github.com/wardgate/wardgate/devices/profile"
	firmwareprofiles "github.com/wardgate/wardgate/firmware-profiles"
)

var update = flag.Bool("update", false, "rewrite the expected files from the captures")

// Every built-in profile loads, names a capture, and its capture replays to
// exactly the readings in its expected file.
func TestCapturesReplayToExpectedReadings(t *testing.T) {
	// Device times without a zone are read in the gateway's: pin it, so the
	// expected files hold on any machine.
	time.Local = time.UTC
	set, err := profile.Load(firmwareprofiles.FS, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Names()) < 4 {
		t.Fatalf("only %d built-in profiles: %v", len(set.Names()), set.Names())
	}
	for _, name := range set.Names() {
		t.Run(name, func(t *testing.T) {
			p, _ := set.Get(name)
			if p.Capture == "" || p.Expected == "" {
				t.Fatalf("%s names no capture or expected file", name)
			}
			dir := filepath.Dir(name)
			capture, err := firmwareprofiles.FS.Open(dir + "/" + p.Capture)
			if err != nil {
				t.Fatal(err)
			}
			defer capture.Close()
			var got bytes.Buffer
			readings := 0
			if err := p.Replay(capture, func(n int, f profile.Frame, err error) {
				readings += len(f.Readings)
				profile.WriteFrame(&got, n, f, err)
			}); err != nil {
				t.Fatal(err)
			}
			if readings == 0 {
				t.Fatalf("the capture of %s gives no readings", name)
			}
			expected := filepath.Join(dir, p.Expected)
			if *update {
				if err := os.WriteFile(expected, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := fs.ReadFile(firmwareprofiles.FS, dir+"/"+p.Expected)
			if err != nil {
				t.Fatalf("%v (run go test -update to write it, then read it)", err)
			}
			if !bytes.Equal(got.Bytes(), want) && !*update {
				t.Errorf("%s replays differently from %s:\n--- got\n%s--- want\n%s", p.Capture, p.Expected, got.Bytes(), want)
			}
		})
	}
}
