package datexsim

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices/datex"
)

// The monitor answers a request at a level it speaks, once for a single
// transmission, and ignores one at a level it does not.
func TestMonitorAnswersItsLevels(t *testing.T) {
	gw, mon := net.Pipe()
	defer gw.Close()
	defer mon.Close()
	m := &Monitor{Answers: []uint8{datex.Level09}, Second: time.Millisecond, Clock: time.Unix(1764662400, 0)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.Run(ctx, mon)

	send := func(r datex.Request) {
		if _, err := gw.Write(datex.AppendFrame(nil, r.Marshal())); err != nil {
			t.Fatal(err)
		}
	}
	send(datex.Request{Type: datex.SubDisplayed, Interval: datex.IntervalOnce, Level: datex.Level15})
	send(datex.Request{Type: datex.SubDisplayed, Interval: datex.IntervalOnce, Level: datex.Level09})

	var u datex.Unframer
	var recs [][]byte
	buf := make([]byte, 4096)
	gw.SetReadDeadline(time.Now().Add(10 * time.Second))
	for len(recs) == 0 {
		n, err := gw.Read(buf)
		if err != nil {
			t.Fatalf("reading the monitor: %v", err)
		}
		u.Feed(buf[:n], func(rec []byte, err error) {
			if err != nil {
				t.Fatalf("a bad frame: %v", err)
			}
			recs = append(recs, append([]byte(nil), rec...))
		})
	}
	f, err := datex.DecodeRecord(recs[0])
	if err != nil || f.Bad != 0 || len(f.Values) != len(datex.Fields()) {
		t.Fatalf("record: err %v, bad %d, %d values", err, f.Bad, len(f.Values))
	}
	if got := m.Requests(); len(got) != 2 || m.Sent() != 1 || m.Sending() {
		t.Fatalf("requests %+v, %d sent, sending %v", got, m.Sent(), m.Sending())
	}
}
