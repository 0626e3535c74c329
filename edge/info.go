package edge

import (
	"context"
	"time"
)

// WaitReady waits until the gateway is serving (its stores open, its
// listeners up) and returns the status page's URL.
func (g *Gateway) WaitReady(ctx context.Context) (string, error) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		g.mu.Lock()
		ready := g.ready
		g.mu.Unlock()
		if ready {
			return g.statusURL(), nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-t.C:
		}
	}
}

// DICOMAddr is the address the DICOM node listens on, "" without one.
func (g *Gateway) DICOMAddr() string {
	g.mu.Lock()
	node := g.dicom
	g.mu.Unlock()
	if node == nil {
		return ""
	}
	return node.Stats().Listening
}
