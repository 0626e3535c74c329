package hl7

import (
	"context"
	"testing"
	"time"
)

// FuzzServer_review12 feeds a byte stream to a Server over net.Pipe with
// a handler that answers by the control id's last letter. The server never
// panics, every acknowledgement it writes parses and echoes something,
// and every message it read is counted once: accepted, failed, rejected,
// busy or an acknowledgement it ignored.
func FuzzServer_review12(f *testing.F) {
	f.Add(AppendFrame(nil, oruMsg("M1", "CIS", "", "")))
	f.Add(append(AppendFrame([]byte("noise"), oruMsg("M2B", "CIS", "AL", "AL")), AppendFrame(nil, oruMsg("M3R", "CIS", "ER", "ER"))...))
	f.Add(AppendFrame(nil, []byte("MSH|^~\\&|CIS|W||G|2026||ACK^R01^ACK|A9|P|2.6\rMSA|AA|WG1\r")))
	f.Add(AppendFrame(nil, []byte("MSH|^|A|F|||2024||ORU^R01|C1F|P|2.3\rX\r")))
	f.Add([]byte{StartBlock, 'M', 'S', 'H', '|', StartBlock, 'M', 'S', 'H', '|', '^', EndBlock, '\r', EndBlock})
	f.Add([]byte("\x0bMSH|^~\\&\x1c\r\x0b\x1c\r\x0b"))
	f.Fuzz(func(t *testing.T, data []byte) {
		l := newPipeListener()
		s := &Server{Logger: quietLog, MaxMessage: 4096, WriteTimeout: time.Second, IdleTimeout: 10 * time.Second,
			Handler: HandlerFunc(func(_ context.Context, m *Message, _ Peer) Reply {
				id := m.Field("MSH", 1, 10).Text()
				switch {
				case id == "":
					return Reply{Outcome: Failed, Code: ErrRequiredFieldMissing, Where: m.Segment(0).Location(10)}
				case id[len(id)-1] == 'B':
					return Reply{Outcome: Busy}
				case id[len(id)-1] == 'R':
					return Reply{Outcome: Rejected}
				case id[len(id)-1] == 'F':
					return Reply{Outcome: Failed, Text: "bad|value^here"}
				}
				return Reply{Outcome: Accepted}
			})}
		served := make(chan error, 1)
		go func() { served <- s.Serve(l) }()
		c := l.Dial()
		acks := make(chan [][]byte, 1)
		go func() {
			r := NewReader(c, 1<<20)
			var got [][]byte
			for {
				b, err := r.ReadMessage()
				if err != nil {
					acks <- got
					return
				}
				got = append(got, append([]byte(nil), b...))
			}
		}()
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		c.Write(data)
		// Let the server answer what it read, then hang up.
		waitQuiet(s)
		c.Close()
		for _, a := range <-acks {
			m, err := Parse(a, Limits{})
			if err != nil {
				t.Fatalf("acknowledgement does not parse: %v\n%q", err, a)
			}
			if code := m.Field("MSA", 1, 1).Text(); len(code) != 2 {
				t.Fatalf("MSA-1 %q in %q", code, a)
			}
		}
		if err := s.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := <-served; err != ErrServerClosed {
			t.Fatal(err)
		}
		st := s.Stats()
		if st.Messages != st.Accepted+st.Failed+st.Rejected+st.Busy+st.Ignored+st.Panics {
			t.Fatalf("messages not all counted: %+v", st)
		}
		if st.Connections != 0 {
			t.Fatalf("connections left open: %+v", st)
		}
	})
}

// waitQuiet waits until the counters stop moving for a moment.
func waitQuiet(s *Server) {
	last := s.Stats()
	for range 50 {
		time.Sleep(2 * time.Millisecond)
		now := s.Stats()
		if now == last {
			return
		}
		last = now
	}
}
