package hl7sim

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wardgate/wardgate/devices/hl7"
)

// Client sends messages over MLLP to one receiver, on up to Connections
// TCP (or TLS) connections, one message in flight on each, and waits for
// each message's acknowledgement, as a central station does:
//   - AA, or CA in enhanced mode, whose MSA-2 echoes the message's control
//     id: delivered;
//   - AE or CE whose ERR-5 is hl7.RetryCode (the receiver could not store
//     it now): sent again, the same bytes, after a backoff;
//   - a connection lost, or no acknowledgement within AckTimeout: the
//     connection is closed, dialled again with a backoff, and the message
//     sent again;
//   - any other AE, AR, CE or CR: rejected, not sent again (*RejectedError).
//
// An enhanced-mode message is acknowledged as its MSH-15 and MSH-16 ask:
// AL (or empty MSH-15) waits for the CA, MSH-16 AL for the AA after it;
// the conditions ER and SU are taken as AL.
// Fields must not change after the first Send.
type Client struct {
	// Addr is the receiver, host:port.
	Addr string
	// TLS, when set, makes every connection TLS (MLLP over TLS). Its
	// ServerName defaults to Addr's host.
	TLS *tls.Config
	// Connections bounds the connections open at once (default 1).
	Connections int
	// AckTimeout bounds the wait for an acknowledgement (default 10 s);
	// DialTimeout a connection (default 5 s).
	AckTimeout, DialTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait before a message is sent
	// again or a connection dialled again (defaults 50 ms and 5 s); it
	// doubles, with jitter, while the receiver keeps failing.
	MinBackoff, MaxBackoff time.Duration
	// MaxAttempts bounds how often one message is sent (0: until the
	// context ends).
	MaxAttempts int

	once  sync.Once
	pool  chan *conn
	stats counters

	mu        sync.Mutex
	latencies []time.Duration
}

type counters struct {
	sent, acked, retried, busy, rejected, lost, dials, failedDials, unacked atomic.Uint64
}

// Stats counts what a Client did.
type Stats struct {
	// Sent is the messages handed to Send; Acked those delivered (AA, CA).
	Sent, Acked uint64
	// Retried counts messages written again (after a Busy reply, a lost
	// connection or an acknowledgement timeout); Busy the Busy replies.
	Retried, Busy uint64
	// Rejected are the messages that got AE, AR, CE or CR without RETRY.
	Rejected uint64
	// Unacked are messages given up on: the context ended or MaxAttempts
	// was reached before an acknowledgement.
	Unacked uint64
	// Lost counts connections closed under a message (a read or write
	// failed, the acknowledgement timed out or did not match); Dials the
	// connections opened, FailedDials those that could not be.
	Lost, Dials, FailedDials uint64
}

// Stats returns the counters.
func (c *Client) Stats() Stats {
	s := &c.stats
	return Stats{
		Sent: s.sent.Load(), Acked: s.acked.Load(), Retried: s.retried.Load(), Busy: s.busy.Load(),
		Rejected: s.rejected.Load(), Unacked: s.unacked.Load(), Lost: s.lost.Load(),
		Dials: s.dials.Load(), FailedDials: s.failedDials.Load(),
	}
}

// Latencies are the acknowledgement latencies of the messages delivered
// so far (from the last write of a message to its final acknowledgement),
// in the order they came.
func (c *Client) Latencies() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.latencies)
}

// Percentile is the p-th percentile (0 < p ≤ 100, nearest rank) of the
// latencies so far; 0 when there are none.
func (c *Client) Percentile(p float64) time.Duration {
	return Percentile(c.Latencies(), p)
}

// Percentile is the p-th percentile (nearest rank) of d; 0 when d is
// empty. It sorts d.
func Percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	k := int(float64(len(d))*p/100+0.999999) - 1
	return d[min(max(k, 0), len(d)-1)]
}

// RejectedError is a message the receiver refused: sending it again would
// not help.
type RejectedError struct {
	ControlID string
	Code      string // MSA-1: AE, AR, CE, CR
	Text      string // MSA-3 or ERR-8, as the receiver wrote it
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("message %s: %s %s", e.ControlID, e.Code, e.Text)
}

// conn is one connection; nil in the pool stands for one not dialled yet.
type conn struct {
	c net.Conn
	r *hl7.Reader
}

func (c *Client) init() {
	c.once.Do(func() {
		n := max(c.Connections, 1)
		c.pool = make(chan *conn, n)
		for range n {
			c.pool <- nil
		}
	})
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Send sends msg (an ER7 message, unframed) on a free connection, waiting
// for one, and returns once it is acknowledged: nil for AA or CA, a
// *RejectedError for a refusal, the context's error when ctx ends first
// (the message may or may not have been stored then). It may be called
// from many goroutines: up to Connections messages are in flight at once.
func (c *Client) Send(ctx context.Context, msg []byte) error {
	c.init()
	hdr, err := hl7.ParseHeader(msg)
	if err != nil {
		return fmt.Errorf("hl7sim: the message to send: %w", err)
	}
	id := hdr.Field("MSH", 1, 10).Text()
	mode := hl7.ModeOf(hdr)
	wantAccept := mode.Enhanced && mode.Accept != "NE"
	wantApp := !mode.Enhanced || mode.Application != "NE"
	if !wantAccept && !wantApp {
		return errors.New("hl7sim: MSH-15 and MSH-16 are NE: no acknowledgement to wait for")
	}
	c.stats.sent.Add(1)
	var cn *conn
	select {
	case cn = <-c.pool:
	case <-ctx.Done():
		c.stats.unacked.Add(1)
		return ctx.Err()
	}
	defer func() { c.pool <- cn }()
	backoff := time.Duration(0)
	wait := func() error {
		backoff = min(max(2*backoff, orDefault(c.MinBackoff, 50*time.Millisecond)), orDefault(c.MaxBackoff, 5*time.Second))
		d := backoff/2 + rand.N(backoff/2+1)
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		}
	}
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			c.stats.unacked.Add(1)
			return err
		}
		if c.MaxAttempts > 0 && attempt > c.MaxAttempts {
			c.stats.unacked.Add(1)
			return fmt.Errorf("hl7sim: message %s: no acknowledgement after %d attempts", id, c.MaxAttempts)
		}
		if attempt > 1 {
			c.stats.retried.Add(1)
		}
		if cn == nil {
			cn, err = c.dial(ctx)
			if err != nil {
				c.stats.failedDials.Add(1)
				if werr := wait(); werr != nil {
					c.stats.unacked.Add(1)
					return werr
				}
				continue
			}
		}
		start := time.Now()
		out, err := c.exchange(ctx, cn, msg, id, wantAccept, wantApp)
		if err != nil {
			// The connection is in an unknown state: a late acknowledgement
			// would be taken for the next message's. Close it, send again.
			c.stats.lost.Add(1)
			cn.c.Close()
			cn = nil
			if werr := wait(); werr != nil {
				c.stats.unacked.Add(1)
				return werr
			}
			continue
		}
		switch {
		case out.ok:
			c.stats.acked.Add(1)
			lat := time.Since(start)
			c.mu.Lock()
			c.latencies = append(c.latencies, lat)
			c.mu.Unlock()
			return nil
		case out.retry:
			c.stats.busy.Add(1)
			if werr := wait(); werr != nil {
				c.stats.unacked.Add(1)
				return werr
			}
		default:
			c.stats.rejected.Add(1)
			return &RejectedError{ControlID: id, Code: out.code, Text: out.text}
		}
	}
}

func (c *Client) dial(ctx context.Context) (*conn, error) {
	d := net.Dialer{Timeout: orDefault(c.DialTimeout, 5*time.Second)}
	var nc net.Conn
	var err error
	if c.TLS != nil {
		cfg := c.TLS.Clone()
		if cfg.ServerName == "" {
			host, _, _ := net.SplitHostPort(c.Addr)
			cfg.ServerName = host
		}
		td := tls.Dialer{NetDialer: &d, Config: cfg}
		nc, err = td.DialContext(ctx, "tcp", c.Addr)
	} else {
		nc, err = d.DialContext(ctx, "tcp", c.Addr)
	}
	if err != nil {
		return nil, err
	}
	c.stats.dials.Add(1)
	return &conn{c: nc, r: hl7.NewReader(nc, hl7.DefaultMaxBytes)}, nil
}

// outcome is what the acknowledgements of one message said.
type outcome struct {
	ok, retry  bool
	code, text string
}

// exchange writes msg and reads its acknowledgements; an error means the
// connection must be closed.
func (c *Client) exchange(ctx context.Context, cn *conn, msg []byte, id string, wantAccept, wantApp bool) (outcome, error) {
	deadline := time.Now().Add(orDefault(c.AckTimeout, 10*time.Second))
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	cn.c.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { cn.c.SetDeadline(time.Now()) })
	defer stop()
	if err := hl7.WriteFrame(cn.c, msg); err != nil {
		return outcome{}, err
	}
	for {
		raw, err := cn.r.ReadMessage()
		if err != nil {
			return outcome{}, err
		}
		ack, err := hl7.Parse(raw, hl7.Limits{})
		if err != nil {
			return outcome{}, fmt.Errorf("an acknowledgement that does not parse: %w", err)
		}
		code := ack.Field("MSA", 1, 1).Text()
		if echoed := ack.Field("MSA", 1, 2).Text(); echoed != id {
			return outcome{}, fmt.Errorf("an acknowledgement of %q, not of %q", echoed, id)
		}
		switch code {
		case "CA":
			if !wantApp {
				return outcome{ok: true, code: code}, nil
			}
			wantAccept = false // the AA follows
		case "AA":
			if wantAccept {
				return outcome{}, errors.New("AA before the CA asked for")
			}
			return outcome{ok: true, code: code}, nil
		case "AE", "CE", "AR", "CR":
			o := outcome{code: code, text: ack.Field("MSA", 1, 3).Text()}
			if o.text == "" {
				o.text = ack.Field("ERR", 1, 8).Text()
			}
			if code == "AE" || code == "CE" {
				for n := 1; ; n++ {
					s, ok := ack.Find("ERR", n)
					if !ok {
						break
					}
					if s.Field(5).Comp(1).Text() == hl7.RetryCode {
						o.retry = true
					}
				}
			}
			return o, nil
		default:
			return outcome{}, fmt.Errorf("MSA-1 %q is no acknowledgement code", code)
		}
	}
}

// Close waits for the sends in flight to return, then closes every
// connection. A Send after Close dials again.
func (c *Client) Close() error {
	c.init()
	n := cap(c.pool)
	held := make([]*conn, 0, n)
	for range n {
		cn := <-c.pool
		if cn != nil {
			cn.c.Close()
		}
		held = append(held, nil)
	}
	for _, cn := range held {
		c.pool <- cn
	}
	return nil
}
