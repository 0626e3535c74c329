package edge

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/wardgate/wardgate/devices"
)

// Each device's clock estimate (devices.Clock) is kept in
// data_dir/clocks.json, written every clocksEvery, within a second of a
// clock's episode opening or closing (what a crash must not lose: the
// readings it holds pending would otherwise take the offset from before),
// and at a stop, so that after a restart a backlog is judged against the
// estimate from before rather than learnt from. A missing or unreadable
// file only means the clocks start anew (the device's own time until an
// estimate forms). Its format (wardgate-clocks/2, formats.go) wraps the
// map of device → state that /1 held bare; /1 is read and rewritten as /2.

const clocksFile = "clocks.json"

const clocksEvery = 30 * time.Second

func (g *Gateway) loadClocks() {
	path := filepath.Join(g.cfg.DataDir, clocksFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	var states map[string]devices.ClockState
	if err == nil {
		states, err = decodeClocksFile(path, b)
	}
	if err != nil {
		g.log.Warn("the devices' clock estimates cannot be read; they start anew (each device's own time until an estimate forms)", "file", path, "err", err)
		return
	}
	g.clocks.Restore(states)
}

func (g *Gateway) saveClocks() {
	b, err := encodeClocksFile(g.clocks.State())
	if err == nil {
		err = writeFileDurably(filepath.Join(g.cfg.DataDir, clocksFile), b)
	}
	if err != nil {
		g.log.Warn("the devices' clock estimates could not be kept", "err", err)
	}
}

// keepClocks saves the clocks until ctx ends, and once more then.
func (g *Gateway) keepClocks(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			g.saveClocks()
			return
		case <-t.C:
			if g.clocks.Changed() || time.Since(last) >= clocksEvery {
				g.saveClocks()
				last = time.Now()
			}
		}
	}
}
