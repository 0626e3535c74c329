package dialogues

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/devices/profile"
)

func init() { profile.DialogueReplay = replay }

// replay runs the protocol's client against a capture of the monitor's
// side of a session on its serial line: the client's requests go nowhere,
// the monitor's answers are read as they were recorded, as fast as the
// client takes them. The capture's end ends the session.
func replay(p *profile.Profile, capture io.Reader, emit func(devices.DriverFrame)) error {
	pr, ok := Lookup(p.Format)
	if !ok || !pr.Serial {
		return fmt.Errorf("profile %s: %s has no serial capture to replay", p.Name, p.Format)
	}
	d, err := pr.New(p, false, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = d.Run(ctx, pr.SerialLink(readOnly{capture}), func(df devices.DriverFrame) error {
		emit(df)
		return nil
	})
	switch {
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("profile %s: the replay did not end within a minute", p.Name)
	}
	return err
}

// readOnly is a capture as a port: what the client writes is dropped.
type readOnly struct{ io.Reader }

func (readOnly) Write(b []byte) (int, error) { return len(b), nil }
