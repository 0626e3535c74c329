package edge

import (
	"log/slog"
	"net/netip"
	"sync"
	"time"
)

// authLimiter slows down guessing of the admin token. Failures are counted
// per peer: an IPv4 address, or an IPv6 /64 (what one host usually holds).
// After authBurst failures within authWindow the peer's token attempts
// are answered 429 for a penalty that doubles with each block, from
// authWindow up to authMaxPenalty; a right token ends the peer's record.
//
// Its log is bounded whatever a flood does: the 1st, 2nd, 4th, 8th, …
// failure of a peer, and a summary per authSummaryEvery while there were
// failures. Peers are bounded too: past authMaxPeers, new peers share
// one record, so a flood from many addresses blocks itself together.
type authLimiter struct {
	mu      sync.Mutex
	peers   map[string]*authPeer
	burst   int // failures within authWindow that block
	log     *slog.Logger
	failed  uint64 // every failure, for /metrics
	blocked uint64 // attempts answered 429
	// since the last summary
	periodFailed, periodBlocked uint64
	periodPeers                 map[string]bool
}

type authPeer struct {
	recent    []time.Time // failures within authWindow, oldest first
	total     uint64      // failures since the record began
	penalty   time.Duration
	until     time.Time // blocked until
	lastEvent time.Time
}

const (
	authBurst        = 5
	authWindow       = time.Minute
	authMaxPenalty   = 15 * time.Minute
	authMaxPeers     = 1024
	authSummaryEvery = time.Minute
	// authOverflowPeer is the record new peers share past authMaxPeers.
	authOverflowPeer = "other peers"
)

func newAuthLimiter(log *slog.Logger) *authLimiter {
	return &authLimiter{peers: map[string]*authPeer{}, burst: authBurst, log: log, periodPeers: map[string]bool{}}
}

// setBurst sets how many failures within authWindow block a peer.
func (l *authLimiter) setBurst(n int) {
	l.mu.Lock()
	l.burst = n
	l.mu.Unlock()
}

// peerOf is the peer a remote address counts for.
func peerOf(remoteHost string) string {
	a, err := netip.ParseAddr(remoteHost)
	if err != nil {
		return remoteHost
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, _ := a.WithZone("").Prefix(64)
	return p.String()
}

// retryAfter is how long the peer's token attempts are still refused; 0
// when they are not. A refused attempt is counted.
func (l *authLimiter) retryAfter(peer string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.peers[peer]
	if p == nil && len(l.peers) >= authMaxPeers {
		p = l.peers[authOverflowPeer]
	}
	if p == nil || !now.Before(p.until) {
		return 0
	}
	l.blocked++
	l.periodBlocked++
	l.notePeer(peer)
	return p.until.Sub(now)
}

// notePeer counts a peer for the summary, up to authMaxPeers of them.
// Called with mu held.
func (l *authLimiter) notePeer(peer string) {
	if len(l.periodPeers) < authMaxPeers {
		l.periodPeers[peer] = true
	}
}

// succeeded forgets the peer's failures: its token is right.
func (l *authLimiter) succeeded(peer string) {
	l.mu.Lock()
	delete(l.peers, peer)
	l.mu.Unlock()
}

// fail counts a failed attempt of the peer, blocks it when it made too
// many, and logs when the peer's count is a power of two.
func (l *authLimiter) fail(peer, method, path string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failed++
	l.periodFailed++
	l.notePeer(peer)
	key := peer
	p := l.peers[key]
	if p == nil {
		if len(l.peers) >= authMaxPeers {
			l.prune(now)
		}
		if len(l.peers) >= authMaxPeers {
			key = authOverflowPeer
			p = l.peers[key]
		}
		if p == nil {
			p = &authPeer{}
			l.peers[key] = p
		}
	}
	p.lastEvent = now
	p.total++
	p.recent = append(p.recent, now)
	for len(p.recent) > 0 && now.Sub(p.recent[0]) >= authWindow {
		p.recent = p.recent[1:]
	}
	blockedFor := time.Duration(0)
	if len(p.recent) >= l.burst {
		p.penalty = min(max(2*p.penalty, authWindow), authMaxPenalty)
		p.until = now.Add(p.penalty)
		p.recent = p.recent[:0]
		blockedFor = p.penalty
	}
	if p.total&(p.total-1) == 0 || blockedFor > 0 {
		args := []any{"peer", key, "failures", p.total, "method", method, "path", path}
		if blockedFor > 0 {
			args = append(args, "blocked_for", blockedFor.String())
		}
		l.log.Warn("admin token: a request without the right token was refused (logged at the 1st, 2nd, 4th, 8th… failure of a peer and when it is blocked)", args...)
	}
}

// prune forgets peers that are neither blocked nor failed within the
// longest penalty. Called with mu held.
func (l *authLimiter) prune(now time.Time) {
	for k, p := range l.peers {
		if !now.Before(p.until) && now.Sub(p.lastEvent) > authMaxPenalty {
			delete(l.peers, k)
		}
	}
}

// summarize logs what failed since the last summary, if anything, and
// forgets peers long quiet.
func (l *authLimiter) summarize(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.prune(now)
	if l.periodFailed == 0 && l.periodBlocked == 0 {
		return
	}
	l.log.Warn("admin token: failed attempts since the last summary", "failures", l.periodFailed, "refused_while_blocked", l.periodBlocked, "peers", len(l.periodPeers), "blocked_now", l.blockedNow(now))
	l.periodFailed, l.periodBlocked = 0, 0
	clear(l.periodPeers)
}

func (l *authLimiter) blockedNow(now time.Time) int {
	n := 0
	for _, p := range l.peers {
		if now.Before(p.until) {
			n++
		}
	}
	return n
}

// counts are the failures and the attempts refused while blocked.
func (l *authLimiter) counts() (failed, blocked uint64) {
	if l == nil {
		return 0, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failed, l.blocked
}
