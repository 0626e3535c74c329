package hl7

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Handler decides one message that parsed and that its sender may send.
// It returns Accepted only once what the message carries is durable (the
// acknowledgement follows at once); Busy when it could not be stored now
// (the sender sends it again); Failed or Rejected with the reason
// otherwise. Its context ends when Shutdown stops waiting for it; it
// should then return promptly, since Shutdown still waits for it. It is called for one message of a connection at a time, in
// order, and may be called from many connections at once.
type Handler interface {
	HandleMessage(ctx context.Context, m *Message, from Peer) Reply
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, m *Message, from Peer) Reply

// HandleMessage implements Handler.
func (f HandlerFunc) HandleMessage(ctx context.Context, m *Message, from Peer) Reply {
	return f(ctx, m, from)
}

// Peer is who sends on a connection: its address and, over TLS, the
// verified certificate it showed (nil when plain or none).
type Peer struct {
	Remote      net.Addr
	TLS         bool
	Certificate *x509.Certificate
}

// Sender is what a message says of its sender: MSH-3 and MSH-4 (their first
// components, the namespace ids senders are configured by).
type Sender struct{ Application, Facility string }

// ServerStats counts what a Server did.
type ServerStats struct {
	Connections        int64  `json:"connections"`           // open now
	ConnectionsTotal   uint64 `json:"connections_total"`     // accepted since the start
	ConnectionsRefused uint64 `json:"connections_refused"`   // closed at once: address not allowed, too many, a failed TLS handshake
	Messages           uint64 `json:"messages"`              // frames read
	Accepted           uint64 `json:"accepted"`              // acknowledged AA/CA
	Failed             uint64 `json:"failed"`                // AE/CE: did not parse or could not be taken
	Rejected           uint64 `json:"rejected"`              // AR/CR: type, version, or a sender not allowed
	Busy               uint64 `json:"busy"`                  // AE/CE with RETRY: not stored now
	Ignored            uint64 `json:"ignored"`               // acknowledgements a sender sent us, not answered
	FramesTooLarge     uint64 `json:"frames_too_large"`      // connections closed for a frame past MaxMessage
	FramesTruncated    uint64 `json:"frames_truncated"`      // connections that ended inside a frame
	GarbageBytes       uint64 `json:"garbage_bytes"`         // bytes outside frames, skipped
	AbandonedFrames    uint64 `json:"abandoned_frames"`      // frames a new start byte cut short
	TLSHandshakeFailed uint64 `json:"tls_handshakes_failed"` //
	Panics             uint64 `json:"handler_panics"`        // connections closed, unacknowledged, because the handler panicked
}

// Server is an MLLP (release 2) listener: many messages per connection,
// each acknowledged after its Handler's verdict, in the acknowledgement
// modes the message asks for (Acks). A connection that sends a frame past
// MaxMessage, ends inside a frame, stays silent past IdleTimeout or fails
// its TLS handshake is closed; nothing reaches the other connections.
// Fields must not change after Serve is called.
type Server struct {
	Handler Handler
	// AllowPeer decides, before anything is read, whether a connection may
	// send (its address, its verified TLS certificate). Nil: all may.
	AllowPeer func(Peer) bool
	// AllowSender decides whether a message from sender, on a connection
	// from peer, is taken; one that is not is rejected (AR, ERR 207
	// "sending application not allowed"). Nil: all are.
	AllowSender func(Sender, Peer) bool
	// MaxMessage bounds one message (DefaultMaxBytes when 0); MaxSegments
	// its segments (DefaultMaxSegments when 0).
	MaxMessage, MaxSegments int
	// IdleTimeout bounds the wait for the next message, and for the rest
	// of one that started (default 10 min); WriteTimeout each
	// acknowledgement (default 30 s); HandshakeTimeout a TLS handshake
	// (default 10 s).
	IdleTimeout, WriteTimeout, HandshakeTimeout time.Duration
	// MaxConnections bounds open connections (default 64); one more is
	// closed at once.
	MaxConnections int
	// Application and Facility name us in acknowledgements whose message
	// left MSH-5/MSH-6 empty.
	Application, Facility string
	// Logger gets connection events; never message content. Nil:
	// slog.Default().
	Logger *slog.Logger

	mu        sync.Mutex
	baseCtx   context.Context // handlers' context: ends when Shutdown gives up waiting
	cancel    context.CancelFunc
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	closing   atomic.Bool
	wg        sync.WaitGroup
	ackSeq    atomic.Uint64

	open                                                       atomic.Int64
	total, refused, messages, accepted, failed, rejected, busy atomic.Uint64
	ignored, tooLarge, truncated, garbage, abandoned, tlsFail  atomic.Uint64
	panics                                                     atomic.Uint64
}

// ErrServerClosed is Serve's error after Shutdown.
var ErrServerClosed = errors.New("hl7: server closed")

// Stats returns the counters.
func (s *Server) Stats() ServerStats {
	return ServerStats{
		Connections: s.open.Load(), ConnectionsTotal: s.total.Load(), ConnectionsRefused: s.refused.Load(),
		Messages: s.messages.Load(), Accepted: s.accepted.Load(), Failed: s.failed.Load(), Rejected: s.rejected.Load(),
		Busy: s.busy.Load(), Ignored: s.ignored.Load(), FramesTooLarge: s.tooLarge.Load(), FramesTruncated: s.truncated.Load(),
		GarbageBytes: s.garbage.Load(), AbandonedFrames: s.abandoned.Load(), TLSHandshakeFailed: s.tlsFail.Load(),
		Panics: s.panics.Load(),
	}
}

func (s *Server) log() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// init makes the maps and the handlers' context; s.mu is held.
func (s *Server) init() {
	if s.listeners == nil {
		s.listeners, s.conns = map[net.Listener]struct{}{}, map[net.Conn]struct{}{}
		s.baseCtx, s.cancel = context.WithCancel(context.Background())
	}
}

// temporary reports whether an Accept error passes (a timeout, or the
// process or system out of file descriptors for a moment).
func temporary(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) || errors.Is(err, syscall.ECONNABORTED)
}

// Serve accepts connections on ln until Shutdown; it returns
// ErrServerClosed then. For MLLP over TLS, ln is a tls.NewListener.
func (s *Server) Serve(ln net.Listener) error {
	if s.Handler == nil {
		return errors.New("hl7: Server.Handler is nil")
	}
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.init()
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	maxConns := s.MaxConnections
	if maxConns <= 0 {
		maxConns = 64
	}
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			if temporary(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log().Warn("hl7: accept failed, retrying", "err", err, "in", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			c.Close()
			return ErrServerClosed
		}
		if len(s.conns) >= maxConns {
			s.mu.Unlock()
			c.Close()
			if n := s.refused.Add(1); n&(n-1) == 0 {
				s.log().Warn("hl7: connection closed: too many open", "remote", c.RemoteAddr().String(), "max", maxConns, "refused_so_far", n)
			}
			continue
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(c)
	}
}

// Shutdown stops accepting, closes connections waiting for a message, and
// waits for messages being handled to be acknowledged, until ctx ends;
// then it ends the handlers' context, closes what is left, waits for the
// handlers to return and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.mu.Lock()
	s.init()
	for ln := range s.listeners {
		ln.Close()
	}
	for c := range s.conns {
		// A connection blocked in a read wakes now and ends; one whose
		// message is being handled writes its acknowledgement first.
		c.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	s.cancel() // a handler still deciding gives up: nothing it did is acknowledged
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	<-done
	return ctx.Err()
}

// serveConn reads, hands over and acknowledges the messages of one
// connection until it ends.
func (s *Server) serveConn(c net.Conn) {
	s.open.Add(1)
	s.total.Add(1)
	log := s.log().With("remote", c.RemoteAddr().String())
	defer func() {
		if r := recover(); r != nil {
			s.panics.Add(1)
			// The panic's value may quote the message (patient data): only
			// its type and where it happened are logged.
			log.Error("hl7: connection handler panicked", "panic_type", fmt.Sprintf("%T", r), "stack", string(debug.Stack()))
		}
		c.Close()
		s.open.Add(-1)
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.wg.Done()
	}()
	peer := Peer{Remote: c.RemoteAddr()}
	if tc, ok := c.(*tls.Conn); ok {
		ctx, cancel := context.WithTimeout(context.Background(), orDefault(s.HandshakeTimeout, 10*time.Second))
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			s.tlsFail.Add(1)
			s.refused.Add(1)
			log.Warn("hl7: TLS handshake failed", "err", err.Error())
			return
		}
		peer.TLS = true
		if st := tc.ConnectionState(); len(st.VerifiedChains) > 0 && len(st.VerifiedChains[0]) > 0 {
			peer.Certificate = st.VerifiedChains[0][0]
		}
	}
	if s.AllowPeer != nil && !s.AllowPeer(peer) {
		s.refused.Add(1)
		log.Warn("hl7: connection refused: its address (or certificate) is not in hl7.allow")
		return
	}
	max := s.MaxMessage
	if max <= 0 {
		max = DefaultMaxBytes
	}
	r := NewReader(c, max)
	defer func() {
		st := r.Stats()
		s.garbage.Add(uint64(st.GarbageBytes))
		s.abandoned.Add(uint64(st.Abandoned))
	}()
	idle := orDefault(s.IdleTimeout, 10*time.Minute)
	s.mu.Lock()
	ctx := s.baseCtx
	s.mu.Unlock()
	for {
		if s.closing.Load() {
			return
		}
		c.SetReadDeadline(time.Now().Add(idle))
		if s.closing.Load() {
			// Shutdown may have set the deadline to now just before the
			// line above moved it away again.
			return
		}
		raw, err := r.ReadMessage()
		if err != nil {
			var big *FrameTooLargeError
			var ne net.Error
			switch {
			case errors.As(err, &big):
				s.tooLarge.Add(1)
				log.Warn("hl7: connection closed: a message is larger than allowed", "max_bytes", big.Max)
			case errors.Is(err, ErrTruncatedFrame):
				s.truncated.Add(1)
				log.Warn("hl7: connection ended inside a message; it was not acknowledged")
			case errors.As(err, &ne) && ne.Timeout() && !s.closing.Load():
				log.Info("hl7: connection closed after being idle", "idle", idle)
			}
			return
		}
		s.messages.Add(1)
		acks := s.handle(ctx, raw, peer, log)
		if len(acks) == 0 {
			continue
		}
		c.SetWriteDeadline(time.Now().Add(orDefault(s.WriteTimeout, 30*time.Second)))
		var out []byte
		for _, a := range acks {
			out = AppendFrame(out, a)
		}
		if _, err := c.Write(out); err != nil {
			log.Warn("hl7: writing an acknowledgement failed; the sender will send the message again", "err", err.Error())
			return
		}
	}
}

// handle decides one message and returns the acknowledgements to send.
func (s *Server) handle(ctx context.Context, raw []byte, peer Peer, log *slog.Logger) [][]byte {
	m, err := Parse(raw, Limits{MaxBytes: s.MaxMessage, MaxSegments: s.MaxSegments})
	if err != nil {
		s.failed.Add(1)
		reply := Reply{Outcome: Failed, Code: ErrDataType, Text: "the message could not be read"}
		var pe *ParseError
		if errors.As(err, &pe) {
			reply = pe.Reply()
		}
		log.Warn("hl7: a message could not be read", "err", err.Error())
		hdr, herr := ParseHeader(raw)
		if herr != nil {
			hdr = nil
		}
		return Acks(hdr, reply, s.ackOptions())
	}
	if t := m.Field("MSH", 1, 9); t.Comp(1).Text() == "ACK" {
		// An acknowledgement of one of ours (enhanced-mode senders answer
		// an AA): nothing to answer.
		s.ignored.Add(1)
		return nil
	}
	sender := Sender{Application: m.Field("MSH", 1, 3).Comp(1).Text(), Facility: m.Field("MSH", 1, 4).Comp(1).Text()}
	if s.AllowSender != nil && !s.AllowSender(sender, peer) {
		s.rejected.Add(1)
		log.Warn("hl7: a message from a sending application not in hl7.allow was rejected", "sending_application", sender.Application, "sending_facility", sender.Facility)
		return Acks(m, Reply{Outcome: Rejected, Code: ErrInternal, Where: m.Segment(0).Location(3), Text: "sending application not allowed"}, s.ackOptions())
	}
	reply := s.Handler.HandleMessage(ctx, m, peer)
	// A sender that asked for no acknowledgement of a failure (MSH-15 and
	// MSH-16 NE or SU) cannot be told to send again: the message is handed
	// over again until it is stored, the connection's next messages
	// waiting behind it, rather than dropped. Only a stop ends the wait.
	for wait := 50 * time.Millisecond; reply.Outcome == Busy && len(Acks(m, reply, AckOptions{})) == 0; wait = min(2*wait, 5*time.Second) {
		s.busy.Add(1)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
		if ctx.Err() != nil || s.closing.Load() {
			log.Warn("hl7: a message that asked for no acknowledgement could not be stored before the listener stopped; its sender was not told")
			return nil
		}
		reply = s.Handler.HandleMessage(ctx, m, peer)
	}
	switch reply.Outcome {
	case Accepted:
		s.accepted.Add(1)
	case Failed:
		s.failed.Add(1)
	case Rejected:
		s.rejected.Add(1)
	case Busy:
		s.busy.Add(1)
	}
	return Acks(m, reply, s.ackOptions())
}

// ackOptions gives each acknowledgement its own control id.
func (s *Server) ackOptions() AckOptions {
	now := time.Now()
	return AckOptions{
		ControlID:   "WG" + now.UTC().Format("20060102150405") + strconv.FormatUint(s.ackSeq.Add(1), 10),
		Time:        now,
		Application: s.Application, Facility: s.Facility,
	}
}
