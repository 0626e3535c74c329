package sim

import (
	"bytes"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices/profile"
	firmwareprofiles "github.com/wardgate/wardgate/firmware-profiles"
)

// An hour of every simulator decodes with its profile: no bad frame, values
// flowing, some dropped by artefacts.
func TestSimulatorsSpeakTheirProfiles(t *testing.T) {
	set, err := profile.Load(firmwareprofiles.FS, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range Formats() {
		t.Run(name, func(t *testing.T) {
			p, ok := set.Get(name)
			if !ok {
				t.Fatalf("no profile %s", name)
			}
			m, err := New(name, 7)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			now := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
			for range 3600 {
				if p.Format == "json" {
					if f := m.Next(now); f != nil {
						buf.Write(f)
						buf.WriteByte('\n')
					}
				} else {
					buf.Write(m.Next(now))
				}
				now = now.Add(time.Second)
			}
			readings, dropped, frames := 0, 0, 0
			if err := p.Replay(&buf, func(n int, f profile.Frame, err error) {
				if err != nil {
					t.Fatalf("frame %d: %v", n, err)
				}
				frames++
				readings += len(f.Readings)
				dropped += len(f.Dropped)
			}); err != nil {
				t.Fatal(err)
			}
			if frames < 3000 || readings < frames {
				t.Fatalf("%d frames, %d readings", frames, readings)
			}
			t.Logf("%d frames, %d readings, %d values dropped", frames, readings, dropped)
		})
	}
}
