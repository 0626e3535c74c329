package hl7

import (
	"context"
	"sync"
	"testing"
)

// A sender in enhanced mode that asks for no acknowledgement (MSH-15 and
// MSH-16 NE, or SU) cannot be told RETRY: a message the handler could not
// store now was dropped without a word to it. The connection now waits
// and hands the message over again until it is stored (or the server
// stops), as a sender waiting for RETRY would have resent it; the next
// message waits behind it. A sender that asked for an error
// acknowledgement still gets it at once.
func TestBusyWithoutAnyAcknowledgementIsNotDropped_review12(t *testing.T) {
	var mu sync.Mutex
	calls := map[string]int{}
	s := &Server{Handler: HandlerFunc(func(ctx context.Context, m *Message, _ Peer) Reply {
		mu.Lock()
		defer mu.Unlock()
		id := m.Field("MSH", 1, 10).Text()
		calls[id]++
		if id != "AL1" && calls[id] <= 2 {
			return Reply{Outcome: Busy}
		}
		return Reply{Outcome: Accepted}
	})}
	addr := startServer(t, s)
	cl := dial(t, addr)
	cl.send(oruMsg("NE1", "CIS", "NE", "NE"))
	cl.send(oruMsg("SU1", "CIS", "SU", "SU"))
	cl.send(oruMsg("AL1", "CIS", "AL", "AL")) // acknowledged CA, AA
	// SU asks for acknowledgements of success: it gets them once stored.
	for _, want := range []string{"CA SU1", "AA SU1", "CA AL1", "AA AL1"} {
		if code, id, _ := cl.ack(); code+" "+id != want {
			t.Fatalf("%s %s, want %s", code, id, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if calls["NE1"] != 3 || calls["SU1"] != 3 {
		t.Fatalf("handler calls %v: the NE and SU messages were not stored in the end", calls)
	}
}
