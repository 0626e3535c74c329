package buffer

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// A redelivery gets the first receipt back (and whether its time was
// known then); a new message with the same content gets its own; the
// record survives a reopen and stays bounded.
func TestSeenGivesARedeliveryItsFirstReceipt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seen.db")
	s, err := OpenSeen(path, SeenOptions{MaxEntries: 3})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	t0 := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour) // within the week the store keeps
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	got, err := s.FirstSeen(ctx, []Delivery{{Key: "a", At: at(0), Unknown: true}, {Key: "b", At: at(time.Second)}})
	if err != nil || !got[0].At.Equal(at(0)) || !got[1].At.Equal(at(time.Second)) {
		t.Fatalf("new: %v %v", got, err)
	}
	// a again, redelivered (DUP): its first receipt. b again, not
	// redelivered: a new message with b's content, a new time.
	got, _ = s.FirstSeen(ctx, []Delivery{{Key: "a", At: at(time.Minute), Redelivered: true}, {Key: "b", At: at(2 * time.Minute)}})
	if !got[0].At.Equal(at(0)) || !got[0].Unknown || !got[1].At.Equal(at(2*time.Minute)) || got[1].Unknown {
		t.Fatalf("again: %v", got)
	}
	// A redelivery of what it never saw (the first delivery's record was
	// lost): its own time, kept.
	got, _ = s.FirstSeen(ctx, []Delivery{{Key: "c", At: at(3 * time.Minute), Redelivered: true}})
	if !got[0].At.Equal(at(3 * time.Minute)) {
		t.Fatalf("unknown redelivery: %v", got)
	}
	s.Close()
	s, err = OpenSeen(path, SeenOptions{MaxEntries: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, _ = s.FirstSeen(ctx, []Delivery{{Key: "a", At: at(time.Hour), Redelivered: true}}); !got[0].At.Equal(at(0)) || s.Len() != 3 {
		t.Fatalf("after a reopen: %v, %d kept", got, s.Len())
	}
	// A fourth key pushes out the oldest (a).
	s.FirstSeen(ctx, []Delivery{{Key: "d", At: at(4 * time.Minute)}})
	if got, _ = s.FirstSeen(ctx, []Delivery{{Key: "a", At: at(5 * time.Minute), Redelivered: true}}); !got[0].At.Equal(at(5*time.Minute)) || s.Len() != 3 {
		t.Fatalf("past the bound: %v, %d kept", got, s.Len())
	}
}
