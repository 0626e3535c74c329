package gateway

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/buffer"
	"github.com/wardgate/wardgate/dicom/internal/dicomtest"
)

// Review of "PACS refusals join the dead letters" and of the parts'
// lifecycle (Run, Enqueue/Add before Run).

// reviewRefused spools one CT instance and records dest's refusal of it
// for good, as the Forwarder does (a Dead mark of its content).
func reviewRefused(t *testing.T, n int, dests ...Destination) (*buffer.Spool, *Ledger, string, buffer.Instance) {
	t.Helper()
	path := dicomtest.WriteCTs(t, n, 1)[0]
	spool, ledger := fwdFixture(t)
	_, in := storeFile(t, spool, path)
	for _, d := range dests {
		if err := ledger.MarkForwarded(d.LedgerName(), map[string]ForwardMark{
			in.Key: {SHA256: in.SHA256, Dead: true, Reason: "destination refused, not authorized (status 0x0124)", At: time.Now().UTC()},
		}); err != nil {
			t.Fatal(err)
		}
	}
	return spool, ledger, path, in
}

// reviewReplace stores other content under the same SOP Instance UID, as
// the Receiver does when a modality sends the instance again changed.
func reviewReplace(t *testing.T, spool *buffer.Spool, path string, old buffer.Instance) buffer.Instance {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Same length, other bytes: one pixel, far from the header.
	b = bytes.Clone(b)
	b[len(b)-2] ^= 0x01
	changed := filepath.Join(t.TempDir(), "changed.dcm")
	if err := os.WriteFile(changed, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, in := storeFile(t, spool, changed)
	if in.Key != old.Key || in.SHA256 == old.SHA256 {
		t.Fatalf("replacement: key %s sha %s, old key %s sha %s", in.Key, in.SHA256, old.Key, old.SHA256)
	}
	return in
}

// Finding 1: a refusal dead letter that outlived its content (the modality
// sent the instance again, changed, and the gateway restarted before the
// new content reached the PACS) is still "retried" and "dropped" by the
// Forwarder: RemoveForwardMark/DropForwardMark compare the mark with the
// letter's SHA-256 but never with what the spool holds now, so Retry and
// Drop return true and take one off the dead-lettered count, which the
// restart did not count (Run counts only marks whose content is spooled).
// The count wraps to 2^64-1, shown as forward.dead_lettered in /api/status
// and /readyz and as wardgate_errors_total{kind="dicom_forward_refused"}.
// Node.ErrNoRefusal itself says "replaced meanwhile" is no refusal.
func TestReviewStaleRefusalIsNoLongerRetriedOrDropped(t *testing.T) {
	for _, action := range []string{"retry", "drop"} {
		t.Run(action, func(t *testing.T) {
			dest := Destination{AETitle: "PACS", Host: "127.0.0.1", Port: dicomtest.FreePort(t)} // nobody listens: B waits
			spool, ledger, path, inA := reviewRefused(t, 950, dest)
			inB := reviewReplace(t, spool, path, inA)
			f := startForwarder(t, &Forwarder{Dest: dest, Spool: spool, Ledger: ledger})
			dicomtest.WaitFor(t, "the new content queued", func() bool { return f.Stats().Waiting == 1 })
			if st := f.Stats(); st.DeadLettered != 0 {
				t.Fatalf("after the restart %+v: the old refusal is not of what the spool holds", st)
			}
			if rs, err := f.Refusals(); err != nil || len(rs) != 0 {
				t.Fatalf("Refusals %+v %v: none waits for the new content", rs, err)
			}
			var ok bool
			var err error
			if action == "retry" {
				ok, err = f.Retry(inA.Key, inA.SHA256)
			} else {
				ok, err = f.Drop(inA.Key, inA.SHA256)
			}
			if err != nil {
				t.Fatal(err)
			}
			if st := f.Stats(); st.DeadLettered != 0 {
				t.Errorf("%s of the old letter: dead_lettered %d, want 0", action, st.DeadLettered)
			}
			if ok {
				t.Errorf("%s of a refusal whose content was replaced (spool has %s, letter %s) reported done; want false (ErrNoRefusal)",
					action, inB.SHA256[:8], inA.SHA256[:8])
			}
			// Whatever happened, the new content is still on its way and kept.
			if st := f.Stats(); st.Waiting != 1 {
				t.Errorf("new content no longer waiting: %+v", st)
			}
			if in, err := spool.Get(inA.Key); err != nil || in.SHA256 != inB.SHA256 {
				t.Errorf("spool holds %+v %v, want the new content", in, err)
			}
		})
	}
}

// Finding 1 (same cause): a refusal that was dropped is no longer waiting
// (Refusals leaves it out), yet Retry removes its Dropped mark, queues the
// instance again and takes one more off the count, which wraps. The API
// reaches this when the drop's ledger step succeeded and its outbox step
// failed (the dead letter stays), or when a retry and a drop of the same
// letter race.
func TestReviewRetryAfterDropIsNoRefusal(t *testing.T) {
	dest := Destination{AETitle: "PACS", Host: "127.0.0.1", Port: dicomtest.FreePort(t)}
	spool, ledger, _, in := reviewRefused(t, 951, dest)
	f := startForwarder(t, &Forwarder{Dest: dest, Spool: spool, Ledger: ledger})
	dicomtest.WaitFor(t, "the refusal counted", func() bool { return f.Stats().DeadLettered == 1 })
	if ok, err := f.Drop(in.Key, in.SHA256); !ok || err != nil {
		t.Fatalf("drop: %v %v", ok, err)
	}
	ok, err := f.Retry(in.Key, in.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if st := f.Stats(); st.DeadLettered > 1 {
		t.Errorf("retry after drop: dead_lettered %d (one refusal ever)", st.DeadLettered)
	}
	if ok {
		t.Error("retry of a dropped refusal reported done; Refusals does not list it, so it should be ErrNoRefusal")
	}
}

// Two destinations refuse the same instance: two refusals, each retried or
// dropped on its own; the instance stays in the spool until both are
// settled (one dropped, the other delivered), then leaves it.
func TestReviewTwoDestinationsRefusingTheSameInstance(t *testing.T) {
	x := Destination{AETitle: "PACS", Host: "127.0.0.1", Port: 1104}
	y := Destination{AETitle: "PACS", Host: "127.0.0.2", Port: 1104}
	spool, ledger, _, in := reviewRefused(t, 952, x, y)
	h, err := HeaderOf(in)
	if err != nil {
		t.Fatal(err)
	}
	handed := time.Now()
	if err := ledger.MarkCharted(in.Group, map[string]ChartedMark{in.Key: {SHA256: in.SHA256, Header: h, HandedAt: handed}}); err != nil {
		t.Fatal(err)
	}
	if err := ledger.MarkStudyDelivered(in.Group, handed.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	n, err := NewNode(NodeConfig{AETitle: "WARDGATE", Spool: spool, LedgerPath: filepath.Join(t.TempDir(), "unused.db"), Forward: []Destination{x, y}, Logger: dicomtest.DiscardLogger})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	for _, f := range n.Forwarders() { // the test's ledger, not the node's own
		f.Ledger = ledger
	}
	rs, err := n.Refusals()
	if err != nil || len(rs) != 2 || rs[0].Destination == rs[1].Destination {
		t.Fatalf("refusals %+v %v: want one per destination", rs, err)
	}
	p := &Pruner{Spool: spool, Ledger: ledger, Destinations: []Destination{x, y}, Logger: dicomtest.DiscardLogger}
	prune := func() {
		t.Helper()
		if err := p.Prune(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	prune()
	if _, err := spool.Get(in.Key); err != nil {
		t.Fatal("pruned while both refusals wait")
	}
	if err := n.DropRefusal(Refusal{Destination: x.LedgerName(), Key: in.Key, SHA256: in.SHA256}); err != nil {
		t.Fatal(err)
	}
	prune()
	if _, err := spool.Get(in.Key); err != nil {
		t.Fatal("pruned while y's refusal still waits for a retry")
	}
	if m, _ := ledger.ForwardMarkOf(y.LedgerName(), in.Key); !m.Dead || m.Dropped {
		t.Fatalf("dropping x's refusal changed y's mark: %+v", m)
	}
	if err := n.DropRefusal(Refusal{Destination: x.LedgerName(), Key: in.Key, SHA256: in.SHA256}); err != ErrNoRefusal {
		t.Fatalf("second drop of x's refusal: %v, want ErrNoRefusal", err)
	}
	if err := n.RetryRefusal(Refusal{Destination: y.LedgerName(), Key: in.Key, SHA256: in.SHA256}); err != nil {
		t.Fatal(err)
	}
	if _, ok := ledger.ForwardMarkOf(y.LedgerName(), in.Key); ok {
		t.Fatal("y's refusal mark stayed after the retry")
	}
	if st := n.Forwarders()[1].Stats(); st.Waiting != 1 {
		t.Fatalf("y after the retry (not running yet): %+v, want the instance waiting", st)
	}
	prune()
	if _, err := spool.Get(in.Key); err != nil {
		t.Fatal("pruned while y has not got it yet")
	}
	// y takes it now.
	if err := ledger.MarkForwarded(y.LedgerName(), map[string]ForwardMark{in.Key: {SHA256: in.SHA256, At: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	prune()
	if _, err := spool.Get(in.Key); err == nil {
		t.Fatal("x dropped, y delivered, the record has it: the instance should leave the spool")
	}
	for _, d := range []Destination{x, y} {
		if m, ok := ledger.ForwardMarkOf(d.LedgerName(), in.Key); ok {
			t.Fatalf("mark of %s kept after the instance left: %+v", d.LedgerName(), m)
		}
	}
}

// A refusal dropped after its instance was replaced by other content must
// neither mark the new content as given up nor let it leave the spool
// before the destination has it: the new content is sent (once), and the
// pruner waits for it.
func TestReviewDropOfAReplacedRefusalKeepsTheNewContent(t *testing.T) {
	pacs, port := newScriptedPACS(t)
	dest := Destination{AETitle: "PACS", Host: "127.0.0.1", Port: port}
	spool, ledger, path, inA := reviewRefused(t, 953, dest)
	inB := reviewReplace(t, spool, path, inA)
	h, _ := HeaderOf(inB)
	handed := time.Now()
	ledger.MarkCharted(inB.Group, map[string]ChartedMark{inB.Key: {SHA256: inB.SHA256, Header: h, HandedAt: handed}})
	ledger.MarkStudyDelivered(inB.Group, handed.Add(time.Second))

	// The operator drops the old letter before the forwarder ran.
	ledger.DropForwardMark(dest.LedgerName(), inA.Key, inA.SHA256)
	p := &Pruner{Spool: spool, Ledger: ledger, Destinations: []Destination{dest}, Logger: dicomtest.DiscardLogger}
	if err := p.Prune(context.Background()); err != nil {
		t.Fatal(err)
	}
	if in, err := spool.Get(inB.Key); err != nil || in.SHA256 != inB.SHA256 {
		t.Fatalf("the new content left the spool before the PACS had it: %+v %v", in, err)
	}
	f := startForwarder(t, &Forwarder{Dest: dest, Spool: spool, Ledger: ledger})
	dicomtest.WaitFor(t, "the new content delivered", func() bool { return pacs.storedCount() == 1 && f.Stats().Waiting == 0 })
	stopPart(f)
	if m, ok := ledger.ForwardMarkOf(dest.LedgerName(), inB.Key); !ok || m.Dead || m.Dropped || m.SHA256 != inB.SHA256 {
		t.Fatalf("mark %+v, want the new content delivered", m)
	}
	if err := p.Prune(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := spool.Get(inB.Key); err == nil {
		t.Fatal("delivered everywhere and charted: it should leave the spool now")
	}
}

// A destination removed from the config: its refusal cannot be retried
// (the error says to drop it), and dropping it is no error.
func TestReviewRefusalOfARemovedDestination(t *testing.T) {
	spool, _ := fwdFixture(t)
	n, err := NewNode(NodeConfig{AETitle: "WARDGATE", Spool: spool, LedgerPath: filepath.Join(t.TempDir(), "ledger.db"),
		Forward: []Destination{{AETitle: "PACS", Host: "127.0.0.1", Port: 104}}, Logger: dicomtest.DiscardLogger})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	gone := Refusal{Destination: "OLD@10.0.0.9:104", Key: "1.2.3", SHA256: "ab"}
	if err := n.RetryRefusal(gone); err == nil || !strings.Contains(err.Error(), "no longer configured") {
		t.Fatalf("retry: %v", err)
	}
	if err := n.DropRefusal(gone); err != nil {
		t.Fatalf("drop: %v", err)
	}
	if err := n.RetryRefusal(Refusal{Destination: "PACS@127.0.0.1:104", Key: "1.2.3", SHA256: "ab"}); err != ErrNoRefusal {
		t.Fatalf("retry of a refusal the ledger does not have: %v, want ErrNoRefusal", err)
	}
}

// Enqueue before Run (the Receiver can store before the forwarder's first
// scan): the instance, also found by the scan, is sent once. Add before
// Run: the study is handed over once.
func TestReviewEnqueueAndAddBeforeRun(t *testing.T) {
	files := dicomtest.WriteCTs(t, 954, 3)
	spool, ledger := fwdFixture(t)
	var keys []string
	for _, p := range files {
		_, in := storeFile(t, spool, p)
		keys = append(keys, in.Key)
	}
	pacs, port := newScriptedPACS(t)
	f := &Forwarder{Dest: Destination{AETitle: "PACS", Host: "127.0.0.1", Port: port}, Spool: spool, Ledger: ledger}
	for _, k := range keys {
		f.Enqueue(k)
		f.Enqueue(k)
	}
	if st := f.Stats(); st.Waiting != 3 {
		t.Fatalf("before Run: %+v, want 3 waiting", st)
	}
	sink := &recordingSink{}
	a := &StudyAssembler{Spool: spool, Ledger: ledger, Sink: sink, StableAfter: 50 * time.Millisecond, Logger: dicomtest.DiscardLogger}
	h, _ := HeaderOf(mustGet(t, spool, keys[0]))
	a.Add(h.StudyInstanceUID)
	startForwarder(t, f)
	if err := startPart(a); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopPart(a) })
	dicomtest.WaitFor(t, "3 delivered and the study handed over", func() bool {
		return pacs.storedCount() == 3 && f.Stats().Waiting == 0 && len(sink.snapshot()) >= 1
	})
	time.Sleep(300 * time.Millisecond)
	for _, p := range files {
		if n := pacs.triesOf(instanceUIDFor(t, p)); n != 1 {
			t.Fatalf("an instance enqueued before Run was sent %d times", n)
		}
	}
	if n := len(sink.snapshot()); n != 1 {
		t.Fatalf("study handed over %d times, want once", n)
	}
	if st := f.Stats(); st.Delivered != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func mustGet(t *testing.T, s *buffer.Spool, key string) buffer.Instance {
	t.Helper()
	in, err := s.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// Finding 4 (the Forwarder's side): DeadLettered is neither a count of
// the refusals that happened (Retry and Drop take from it: forward.go,
// f.dead.Add(^uint64(0))) nor of the refusals that wait (one superseded by
// new content that the PACS then takes stays counted until the next
// restart). Here the PACS refuses A and C for good; the modality sends A
// again changed and the PACS takes it; C's refusal is dropped. Two
// refusals happened, none waits; Stats says 1 — and so do the page,
// /readyz and wardgate_errors_total{kind="dicom_forward_refused"}. Either
// meaning would do (2, or 0 = len(Refusals())), not a mix.
func TestReviewDeadLetteredHasOneMeaning(t *testing.T) {
	pacs, port := newScriptedPACS(t)
	dest := Destination{AETitle: "PACS", Host: "127.0.0.1", Port: port}
	paths := dicomtest.WriteCTs(t, 955, 2)
	spool, ledger := fwdFixture(t)
	_, inA := storeFile(t, spool, paths[0])
	_, inC := storeFile(t, spool, paths[1])
	pacs.reset(func(string, int) uint16 { return 0x0124 })
	f := startForwarder(t, &Forwarder{Dest: dest, Spool: spool, Ledger: ledger, MaxAttempts: 1, DeadAfter: time.Nanosecond})
	dicomtest.WaitFor(t, "A and C refused for good", func() bool {
		rs, _ := f.Refusals()
		return len(rs) == 2 && f.Stats().DeadLettered == 2
	})
	pacs.reset(nil)
	inB := reviewReplace(t, spool, paths[0], inA)
	f.Enqueue(inB.Key) // as the Receiver does for a replacement
	dicomtest.WaitFor(t, "B delivered", func() bool {
		m, ok := ledger.ForwardMarkOf(dest.LedgerName(), inB.Key)
		return ok && !m.Dead && m.SHA256 == inB.SHA256
	})
	if ok, err := f.Drop(inC.Key, inC.SHA256); !ok || err != nil {
		t.Fatalf("drop C: %v %v", ok, err)
	}
	rs, _ := f.Refusals()
	if st := f.Stats(); st.DeadLettered != len(rs) || st.RefusedTotal != 2 {
		t.Errorf("DeadLettered %d, RefusedTotal %d: 2 refusals happened, %d wait", st.DeadLettered, st.RefusedTotal, len(rs))
	}
}
