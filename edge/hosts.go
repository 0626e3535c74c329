package edge

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"
)

// hosts are the hosts of an allow list's entries (dicom.allow,
// hl7.allow), each an address, a CIDR (10.1.2.0/24) or a name. Names are
// resolved at start and again every allowRefresh (every allowRetry while
// one does not resolve): a name that does not resolve keeps the addresses
// it had, or, never resolved, matches nobody — logged, and the gateway
// runs on for the other entries.
type hosts struct {
	what    string   // the config key, for the log: "dicom.allow"
	names   []string // per entry; "": any host
	nets    []*net.IPNet
	log     *slog.Logger
	ips     atomic.Pointer[[]map[string]bool] // per entry; nil: not a name or an address
	failing map[int]bool                      // entries whose name did not resolve at the last try (run's goroutine only)
}

const (
	allowRefresh = 5 * time.Minute
	allowRetry   = 30 * time.Second
)

func newHosts(what string, names []string, log *slog.Logger) *hosts {
	h := &hosts{what: what, names: names, nets: make([]*net.IPNet, len(names)), log: log, failing: map[int]bool{}}
	for i, n := range names {
		if _, cidr, err := net.ParseCIDR(n); err == nil {
			h.nets[i] = cidr
		}
	}
	h.resolve(context.Background())
	return h
}

// resolve looks the names up again; it reports whether one failed.
func (h *hosts) resolve(ctx context.Context) bool {
	var old []map[string]bool
	if p := h.ips.Load(); p != nil {
		old = *p
	}
	ips := make([]map[string]bool, len(h.names))
	failed := false
	for i, name := range h.names {
		if name == "" || h.nets[i] != nil {
			continue
		}
		ips[i] = map[string]bool{}
		if ip := net.ParseIP(name); ip != nil {
			ips[i][normalIP(ip)] = true
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		addrs, err := net.DefaultResolver.LookupHost(lctx, name)
		cancel()
		entry := fmt.Sprintf("%s[%d]", h.what, i)
		if err != nil {
			failed = true
			if old != nil {
				ips[i] = old[i] // a passing DNS failure does not lock a sender out
			}
			if !h.failing[i] {
				h.failing[i] = true
				h.log.Error(h.what+": a host does not resolve; that entry admits only the addresses it had (none if it never resolved) until it does",
					"entry", entry, "host", name, "err", err)
			}
			continue
		}
		if h.failing[i] {
			delete(h.failing, i)
			h.log.Info(h.what+": the host resolves again", "entry", entry, "host", name)
		}
		for _, s := range addrs {
			if ip := net.ParseIP(s); ip != nil {
				ips[i][normalIP(ip)] = true
			}
		}
	}
	h.ips.Store(&ips)
	return failed
}

// run resolves the names again until ctx ends.
func (h *hosts) run(ctx context.Context) error {
	for {
		wait := allowRefresh
		if len(h.failing) > 0 {
			wait = allowRetry
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		h.resolve(ctx)
	}
}

// match reports whether remote is entry i's host.
func (h *hosts) match(i int, remote net.Addr) bool {
	if h.names[i] == "" {
		return true
	}
	ta, ok := remote.(*net.TCPAddr)
	if !ok {
		return false
	}
	if n := h.nets[i]; n != nil {
		return n.Contains(ta.IP)
	}
	return (*h.ips.Load())[i][normalIP(ta.IP)]
}

func normalIP(ip net.IP) string {
	if v4 := ip.To4(); v4 != nil {
		return v4.String()
	}
	return ip.String()
}
