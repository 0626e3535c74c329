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

// DICOMAddr is the address the DICOM node listens on (plain, else TLS),
// "" without one. It is known before the gateway is ready: the listeners
// open before any part starts.
func (g *Gateway) DICOMAddr() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.dicomAddr
}

// HL7Addr is the address the hl7 listener listens on, "" without one.
func (g *Gateway) HL7Addr() string {
	for _, l := range g.hl7Listeners {
		if l.key == "hl7" {
			return l.ln.Addr().String()
		}
	}
	return ""
}

// ADTAddr is the address the patients.adt listener listens on, "" without
// one.
func (g *Gateway) ADTAddr() string {
	for _, l := range g.hl7Listeners {
		if l.key == "patients.adt" {
			return l.ln.Addr().String()
		}
	}
	return ""
}
