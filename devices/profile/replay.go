package profile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/wardgate/wardgate/devices"
)

// ErrTooLong is the error of a line longer than the profile allows.
var ErrTooLong = fmt.Errorf("%w: the line is longer than text.max_line", ErrBadFrame)

// Replay decodes a capture as the device would send it: for a text profile,
// the bytes are framed into lines; for json, each line of the file is one
// message (JSON Lines); for a dialogue, the monitor's side of a session on
// its serial line (see DialogueReplay). fn gets each frame, numbered from
// 1, in order.
func (p *Profile) Replay(r io.Reader, fn func(n int, f Frame, err error)) error {
	n := 0
	switch p.Format {
	case "text":
		lines := p.NewLines()
		buf := make([]byte, 4096)
		for {
			k, err := r.Read(buf)
			lines.Feed(buf[:k], func(line []byte, tooLong bool) {
				n++
				if tooLong {
					fn(n, Frame{}, ErrTooLong)
					return
				}
				f, err := p.Decode(line)
				fn(n, f, err)
			})
			if errors.Is(err, io.EOF) {
				// A last line without its terminator is what a cut cable
				// leaves: decode it as the device would have ended it.
				lines.Feed([]byte("\n"), func(line []byte, tooLong bool) {
					n++
					f, err := p.Decode(line)
					fn(n, f, err)
				})
				return nil
			}
			if err != nil {
				return err
			}
		}
	case "json":
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64*1024), maxJSON+1)
		for sc.Scan() {
			msg := bytes.TrimSpace(sc.Bytes())
			if len(msg) == 0 {
				continue
			}
			n++
			f, err := p.Decode(msg)
			fn(n, f, err)
		}
		return sc.Err()
	}
	if Decoders[p.Format] && DialogueReplay != nil {
		return DialogueReplay(p, r, func(df devices.DriverFrame) {
			for _, f := range p.DecodeDriver(df) {
				n++
				fn(n, f, nil)
			}
		})
	}
	return fmt.Errorf("profile %s: replay of format %s is not supported", p.Name, p.Format)
}

// DialogueReplay replays a capture of a dialogue's monitor (the bytes the
// monitor sent on its serial line, session included) by running the
// protocol's client against it; devices/dialogues sets it.
var DialogueReplay func(p *Profile, capture io.Reader, emit func(devices.DriverFrame)) error

// WriteFrame writes what a frame decoded to, one line per reading or
// dropped value, for `wardgate replay` and the profiles' expected files.
// Times are the device's, without a zone.
func WriteFrame(w io.Writer, n int, f Frame, err error) {
	switch {
	case err != nil:
		fmt.Fprintf(w, "%d: bad: %v\n", n, err)
		return
	case f.Ignored:
		fmt.Fprintf(w, "%d: ignored\n", n)
		return
	}
	var head []string
	if !f.DeviceTime.IsZero() {
		head = append(head, "time "+f.DeviceTime.Format("2006-01-02 15:04:05.000"))
	}
	for _, kv := range [][2]string{{"device", f.DeviceID}, {"sn", f.SerialNumber}, {"manufacturer", f.Manufacturer}, {"model", f.Model}, {"firmware", f.Firmware}} {
		if kv[1] != "" {
			head = append(head, kv[0]+" "+kv[1])
		}
	}
	fmt.Fprintf(w, "%d: %d readings", n, len(f.Readings))
	if len(head) > 0 {
		fmt.Fprintf(w, ", %s", strings.Join(head, ", "))
	}
	fmt.Fprintln(w)
	for _, r := range f.Readings {
		fmt.Fprintf(w, "  %s (%d) = %s %s", r.Code.RefID, r.Code.Code, strconv.FormatFloat(r.Value, 'f', -1, 64), r.Unit)
		if !r.DeviceTime.Equal(f.DeviceTime) {
			fmt.Fprintf(w, " at %s", r.DeviceTime.Format("2006-01-02 15:04:05.000"))
		}
		if q := qualityString(r.Quality); q != "" {
			fmt.Fprintf(w, " [%s]", q)
		}
		fmt.Fprintln(w)
	}
	for _, d := range f.Dropped {
		fmt.Fprintf(w, "  dropped %s: %s\n", d.Param, d.Reason)
	}
}

func qualityString(q devices.Quality) string {
	var s []string
	if q&devices.Questionable != 0 {
		s = append(s, "questionable")
	}
	if q&devices.Calibrating != 0 {
		s = append(s, "calibrating")
	}
	if q&devices.Alarm != 0 {
		s = append(s, "alarm")
	}
	return strings.Join(s, " ")
}
