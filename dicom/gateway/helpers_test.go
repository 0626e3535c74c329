package gateway

import (
	"context"
	"sync"
	"testing"
)

// The node's parts are run in production by the gateway's supervisor;
// these run one the same way (its own context, stopped and waited for), so
// that a test can stop one and run it again.
type runner interface{ Run(context.Context) error }

var runningParts sync.Map // runner → *runningPart

type runningPart struct {
	cancel context.CancelFunc
	done   chan error
}

func startPart(p runner) error {
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningPart{cancel: cancel, done: make(chan error, 1)}
	runningParts.Store(p, r)
	go func() { r.done <- p.Run(ctx) }()
	return nil
}

// stopPart stops p and waits for it; a part not running is left alone.
func stopPart(p runner) {
	if v, ok := runningParts.LoadAndDelete(p); ok {
		r := v.(*runningPart)
		r.cancel()
		<-r.done
	}
}

// runParts starts parts in order and returns what stops them in reverse.
func runParts(t *testing.T, parts []Part) (stop func()) {
	t.Helper()
	type run struct {
		cancel context.CancelFunc
		done   chan error
		name   string
	}
	var runs []run
	for _, p := range parts {
		ctx, cancel := context.WithCancel(context.Background())
		r := run{cancel, make(chan error, 1), p.Name}
		go func() { r.done <- p.Run(ctx) }()
		runs = append(runs, r)
	}
	return func() {
		for i := len(runs) - 1; i >= 0; i-- {
			runs[i].cancel()
			if err := <-runs[i].done; err != nil {
				t.Errorf("%s: %v", runs[i].name, err)
			}
		}
	}
}
