package gateway

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardgate/wardgate/dicom"
	"github.com/wardgate/wardgate/dicom/internal/dicomtest"
	"github.com/wardgate/wardgate/dicom/internal/dicomtest/dstest"
	"github.com/wardgate/wardgate/dicom/sim"

	"github.com/wardgate/wardgate/buffer"
)

// scriptedPACS is a StoreHandler answering each C-STORE as a test says:
// status picks the status of the n-th try (from 1) of an instance; gate
// holds BeginStore of an instance until closed; hang makes Commit of an
// instance wait (for the sender to time out).
type scriptedPACS struct {
	mu     sync.Mutex
	status func(uid string, n int) uint16
	gate   map[string]chan struct{}
	hang   map[string]bool
	began  chan string
	tries  map[string]int
	first  map[string]time.Time
	stored map[string]pacsGot // instances answered with success
}

type pacsGot struct {
	ts   string
	data []byte
}

func newScriptedPACS(t *testing.T) (p *scriptedPACS, port int) {
	p = &scriptedPACS{gate: map[string]chan struct{}{}, hang: map[string]bool{}, began: make(chan string, 1024)}
	p.reset(nil)
	_, ps := dstest.StartServer(t, &dicom.Server{Store: p})
	port, _ = strconv.Atoi(ps)
	return p, port
}

// reset forgets what was received and answers with status from now on.
func (p *scriptedPACS) reset(status func(uid string, n int) uint16) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status = status
	p.tries, p.first, p.stored = map[string]int{}, map[string]time.Time{}, map[string]pacsGot{}
}

func (p *scriptedPACS) triesOf(uid string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tries[uid]
}

func (p *scriptedPACS) got(uid string) (pacsGot, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	g, ok := p.stored[uid]
	return g, ok
}

func (p *scriptedPACS) storedCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.stored)
}

func (p *scriptedPACS) BeginStore(ctx context.Context, req dicom.StoreRequest) (dicom.StoreWriter, error) {
	p.began <- req.SOPInstanceUID
	p.mu.Lock()
	g := p.gate[req.SOPInstanceUID]
	p.mu.Unlock()
	if g != nil {
		select {
		case <-g:
		case <-ctx.Done():
		}
	}
	return &pacsWriter{p: p, req: req}, nil
}

type pacsWriter struct {
	p   *scriptedPACS
	req dicom.StoreRequest
	buf bytes.Buffer
}

func (w *pacsWriter) Write(b []byte) (int, error) { return w.buf.Write(b) }
func (w *pacsWriter) Abort()                      {}

func (w *pacsWriter) Commit(ctx context.Context) (uint16, error) {
	p, uid := w.p, w.req.SOPInstanceUID
	p.mu.Lock()
	p.tries[uid]++
	n := p.tries[uid]
	if n == 1 {
		p.first[uid] = time.Now()
	}
	hang, status := p.hang[uid], p.status
	p.mu.Unlock()
	if hang {
		select {
		case <-ctx.Done():
		case <-time.After(1500 * time.Millisecond):
		}
		return dicom.StatusCannotUnderstand, nil
	}
	s := dicom.StatusSuccess
	if status != nil {
		s = status(uid, n)
	}
	if !dicom.IsFailureStatus(s) {
		p.mu.Lock()
		p.stored[uid] = pacsGot{ts: w.req.TransferSyntaxUID, data: bytes.Clone(w.buf.Bytes())}
		p.mu.Unlock()
	}
	return s, nil
}

// fwdFixture is a spool and a ledger in a fresh folder.
func fwdFixture(t *testing.T) (*buffer.Spool, *Ledger) {
	t.Helper()
	dir := t.TempDir()
	spool := openSpool(t, filepath.Join(dir, "spool"), 0)
	ledger, err := OpenLedger(filepath.Join(dir, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ledger.Close() })
	return spool, ledger
}

func startForwarder(t *testing.T, f *Forwarder) *Forwarder {
	t.Helper()
	if f.CallingAE == "" {
		f.CallingAE = "WARDGATE"
	}
	if f.Logger == nil {
		f.Logger = dicomtest.DiscardLogger
	}
	if f.Backoff.Initial == 0 {
		f.Backoff = buffer.Backoff{Initial: 20 * time.Millisecond, Max: 50 * time.Millisecond, Multiplier: 2}
	}
	if f.IdleRelease == 0 {
		f.IdleRelease = 200 * time.Millisecond
	}
	if err := startPart(f); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopPart(f) })
	return f
}

func TestForwardLedgerNameIsAEAtAddress(t *testing.T) {
	for _, tc := range []struct {
		d    Destination
		want string
	}{
		{Destination{AETitle: "PACS", Host: "10.0.0.1", Port: 104}, "PACS@10.0.0.1:104"},
		{Destination{AETitle: "PACS", Host: "pacs.example.org", Port: 11112}, "PACS@pacs.example.org:11112"},
		{Destination{AETitle: "PACS", Host: "::1", Port: 104}, "PACS@[::1]:104"},
	} {
		if got := tc.d.LedgerName(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.d, got, tc.want)
		}
	}
}

// Two PACS with the same AE title at different addresses are two
// destinations: what one has, the other still gets.
func TestForwardTwoDestinationsWithTheSameAETitle(t *testing.T) {
	files := dicomtest.WriteCTs(t, 700, 3)
	spool, ledger := fwdFixture(t)
	var keys []string
	for _, p := range files {
		_, in := storeFile(t, spool, p)
		keys = append(keys, in.Key)
	}
	portA, recvA := dicomtest.Storescp(t)
	portB, recvB := dicomtest.Storescp(t)
	a := Destination{AETitle: "PACS", Host: "127.0.0.1", Port: portA}
	b := Destination{AETitle: "PACS", Host: "127.0.0.1", Port: portB}

	fa := startForwarder(t, &Forwarder{Dest: a, Spool: spool, Ledger: ledger})
	dicomtest.WaitFor(t, "3 at PACS A", func() bool { return countFiles(recvA) == 3 && fa.Stats().Waiting == 0 })
	stopPart(fa)
	if m, _ := ledger.Forwarded(a.LedgerName()); len(m) != 3 {
		t.Fatalf("%d marks for A, want 3", len(m))
	}

	// B starts after A delivered everything: it must still send it all.
	fb := startForwarder(t, &Forwarder{Dest: b, Spool: spool, Ledger: ledger})
	dicomtest.WaitFor(t, "3 at PACS B", func() bool { return countFiles(recvB) == 3 && fb.Stats().Waiting == 0 })
	stopPart(fb)
	mb, _ := ledger.Forwarded(b.LedgerName())
	for _, k := range keys {
		if m, ok := mb[k]; !ok || m.Dead {
			t.Fatalf("B's mark of an instance: %+v %v", m, ok)
		}
	}
	if st := fb.Stats(); st.Destination != b.LedgerName() || st.Delivered != 3 {
		t.Fatalf("B's stats %+v", st)
	}
	if countFiles(recvA) != 3 {
		t.Fatalf("PACS A got %d files, want 3 (nothing twice)", countFiles(recvA))
	}
}

func TestForwardPermanentRefusalStatuses(t *testing.T) {
	for s, want := range map[uint16]bool{
		0xA900: true, 0xA9FF: true, 0x0122: true, 0x0124: true,
		0xA700: false, 0xA7FF: false, 0x0110: false, 0xC000: false, 0xCFFF: false, 0x0211: false,
	} {
		if isPermanentRefusal(s) != want {
			t.Errorf("status 0x%04X: permanent %v, want %v", s, !want, want)
		}
	}
}

// Out of resources, processing failures and "cannot understand" are the
// state of the PACS: retried for as long as they last, never dead-lettered.
func TestForwardTransientFailuresAreRetriedForever(t *testing.T) {
	files := dicomtest.WriteCTs(t, 710, 3)
	spool, ledger := fwdFixture(t)
	var uids []string
	for _, p := range files {
		h, _ := storeFile(t, spool, p)
		uids = append(uids, h.SOPInstanceUID)
	}
	pacs, port := newScriptedPACS(t)
	cycle := []uint16{dicom.StatusOutOfResources, dicom.StatusProcessingFailure, dicom.StatusCannotUnderstand, 0xC123}
	pacs.reset(func(_ string, n int) uint16 { return cycle[n%len(cycle)] })
	f := startForwarder(t, &Forwarder{Dest: Destination{AETitle: "PACS", Host: "127.0.0.1", Port: port}, Spool: spool, Ledger: ledger,
		MaxAttempts: 2, DeadAfter: time.Nanosecond})
	dicomtest.WaitFor(t, "every instance refused 8 times", func() bool {
		for _, u := range uids {
			if pacs.triesOf(u) < 8 {
				return false
			}
		}
		return true
	})
	st := f.Stats()
	if st.DeadLettered != 0 || st.Waiting != 3 || st.Delivered != 0 {
		t.Fatalf("stats %+v: transient failures must wait, not be dead-lettered", st)
	}
	if len(st.Reasons) == 0 {
		t.Fatal("no reason shown for the waiting instances")
	}
	for r := range st.Reasons {
		if !strings.Contains(r, "(status 0x") {
			t.Fatalf("reason %q", r)
		}
	}
	pacs.reset(nil) // the PACS recovers
	dicomtest.WaitFor(t, "all delivered", func() bool { return pacs.storedCount() == 3 && f.Stats().Waiting == 0 })
	stopPart(f)
	marks, _ := ledger.Forwarded(f.Dest.LedgerName())
	for _, m := range marks {
		if m.Dead {
			t.Fatalf("a dead mark: %+v", m)
		}
	}
}

// A permanent refusal dead-letters only after it has lasted DeadAfter and
// MaxAttempts tries; the instance stays in the spool, and a restart counts
// it in the stats without sending it again.
func TestForwardPermanentRefusalDeadLettersOnlyOnceItPersists(t *testing.T) {
	files := dicomtest.WriteCTs(t, 720, 2)
	spool, ledger := fwdFixture(t)
	var uids []string
	var ins []buffer.Instance
	for _, p := range files {
		h, in := storeFile(t, spool, p)
		uids = append(uids, h.SOPInstanceUID)
		ins = append(ins, in)
	}
	pacs, port := newScriptedPACS(t)
	refusals := map[string]uint16{uids[0]: dicom.StatusSOPClassNotSupported, uids[1]: 0xA900}
	pacs.reset(func(uid string, _ int) uint16 { return refusals[uid] })
	dest := Destination{AETitle: "PACS", Host: "127.0.0.1", Port: port}

	// Refused 8 times within well under an hour: not dead.
	f := startForwarder(t, &Forwarder{Dest: dest, Spool: spool, Ledger: ledger, MaxAttempts: 3})
	dicomtest.WaitFor(t, "8 refusals each", func() bool { return pacs.triesOf(uids[0]) >= 8 && pacs.triesOf(uids[1]) >= 8 })
	if st := f.Stats(); st.DeadLettered != 0 || st.Waiting != 2 {
		t.Fatalf("dead-lettered before DeadAfter: %+v", st)
	}
	stopPart(f)
	if m, _ := ledger.Forwarded(dest.LedgerName()); len(m) != 0 {
		t.Fatalf("marks %+v before DeadAfter", m)
	}

	// With DeadAfter 400 ms: dead after 3 refusals over at least 400 ms.
	pacs.reset(func(uid string, _ int) uint16 { return refusals[uid] })
	started := time.Now()
	f = startForwarder(t, &Forwarder{Dest: dest, Spool: spool, Ledger: ledger, MaxAttempts: 3, DeadAfter: 400 * time.Millisecond})
	dicomtest.WaitFor(t, "both dead-lettered", func() bool { return f.Stats().DeadLettered == 2 })
	if el := time.Since(started); el < 400*time.Millisecond {
		t.Fatalf("dead-lettered after %s", el)
	}
	for _, u := range uids {
		if n := pacs.triesOf(u); n < 3 {
			t.Fatalf("dead-lettered after %d tries", n)
		}
	}
	if st := f.Stats(); st.Waiting != 0 {
		t.Fatalf("stats %+v", st)
	}
	stopPart(f)
	marks, _ := ledger.Forwarded(dest.LedgerName())
	for i, in := range ins {
		m := marks[in.Key]
		if !m.Dead || m.SHA256 != in.SHA256 || !strings.Contains(m.Reason, "status 0x") {
			t.Fatalf("mark of instance %d: %+v", i, m)
		}
		if _, err := spool.Get(in.Key); err != nil {
			t.Fatalf("a dead-lettered instance left the spool: %v", err)
		}
	}

	// After a restart the dead letters show, and are not sent again.
	pacs.reset(nil)
	f = startForwarder(t, &Forwarder{Dest: dest, Spool: spool, Ledger: ledger})
	dicomtest.WaitFor(t, "the 2 dead letters found again", func() bool { return f.Stats().DeadLettered == 2 })
	if st := f.Stats(); st.Waiting != 0 {
		t.Fatalf("after restart %+v; want 2 dead-lettered, none waiting", st)
	}
	time.Sleep(200 * time.Millisecond)
	if n := pacs.storedCount(); n != 0 {
		t.Fatalf("%d dead-lettered instances sent again", n)
	}
}

// An instance the association breaks on (here the PACS never answers it)
// backs off on its own: the instances behind it are delivered meanwhile.
func TestForwardSendErrorBacksOffTheInstance(t *testing.T) {
	files := dicomtest.WriteCTs(t, 730, 5)
	spool, ledger := fwdFixture(t)
	var uids []string
	for _, p := range files {
		h, _ := storeFile(t, spool, p)
		uids = append(uids, h.SOPInstanceUID)
	}
	pacs, port := newScriptedPACS(t)
	pacs.mu.Lock()
	pacs.hang[uids[0]] = true // the first in the queue
	pacs.mu.Unlock()
	f := startForwarder(t, &Forwarder{Dest: Destination{AETitle: "PACS", Host: "127.0.0.1", Port: port}, Spool: spool, Ledger: ledger,
		// ARTIM bounds the wait for the hung PACS to take the A-ABORT.
		Timeouts: dicom.Timeouts{Idle: 300 * time.Millisecond, ARTIM: 500 * time.Millisecond},
		Backoff:  buffer.Backoff{Initial: time.Second, Max: 5 * time.Second, Multiplier: 2}})
	dicomtest.WaitFor(t, "the 4 others delivered", func() bool { return pacs.storedCount() == 4 && f.Stats().Delivered == 4 })
	st := f.Stats()
	if st.Waiting != 1 || st.Delivered != 4 {
		t.Fatalf("stats %+v", st)
	}
	want := "sending failed: timed out waiting for the destination"
	if st.Reasons[want] != 1 {
		t.Fatalf("reasons %v; want %q once", st.Reasons, want)
	}
	for r := range st.Reasons {
		if strings.Contains(r, uids[0]) {
			t.Fatalf("reason %q names the instance", r)
		}
	}
	f.mu.Lock()
	it := f.items[spoolKey(t, spool, uids[0])]
	attempts, notBefore := it.attempts, it.notBefore
	f.mu.Unlock()
	if attempts < 1 || !notBefore.After(time.Now().Add(-time.Second)) {
		t.Fatalf("the failed instance: %d attempts, next try %s", attempts, notBefore)
	}
	if n := pacs.triesOf(uids[0]); n > 2 {
		t.Fatalf("the failing instance was tried %d times within its backoff", n)
	}
}

func spoolKey(t *testing.T, spool *buffer.Spool, uid string) string {
	t.Helper()
	in, err := spool.Get(uid)
	if err != nil {
		t.Fatal(err)
	}
	return in.Key
}

// An instance replaced, between the association being negotiated and its
// turn, by content in another transfer syntax is not sent under the old
// syntax's presentation context: it goes on a later association proposing
// the new syntax, and the ledger records the content sent.
func TestForwardReplacedInstanceGoesInItsNewSyntax(t *testing.T) {
	gateFile := dicomtest.WriteCTs(t, 740, 1)[0]
	spool, ledger := fwdFixture(t)
	gh, _ := storeFile(t, spool, gateFile)
	time.Sleep(5 * time.Millisecond) // stored after the gate instance: queued behind it
	kh, _ := storeFile(t, spool, dicomtest.FixturePath(t, dicomtest.Fixtures[0]))
	if kh.SOPInstanceUID == gh.SOPInstanceUID {
		t.Fatal("fixture UIDs collide")
	}
	pacs, port := newScriptedPACS(t)
	gate := make(chan struct{})
	pacs.mu.Lock()
	pacs.gate[gh.SOPInstanceUID] = gate
	pacs.mu.Unlock()
	f := startForwarder(t, &Forwarder{Dest: Destination{AETitle: "PACS", Host: "127.0.0.1", Port: port}, Spool: spool, Ledger: ledger})
	select {
	case uid := <-pacs.began:
		if uid != gh.SOPInstanceUID {
			t.Fatalf("first instance sent: %s", uid)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing sent")
	}
	// Both are opened, the association is negotiated for Implicit VR LE:
	// now the second is replaced by its JPEG Lossless version.
	jpeg := dicomtest.FixturePath(t, dicomtest.Fixtures[4])
	_, kin := storeFile(t, spool, jpeg)
	close(gate)
	dicomtest.WaitFor(t, "both delivered", func() bool { return pacs.storedCount() == 2 && f.Stats().Waiting == 0 })
	got, _ := pacs.got(kh.SOPInstanceUID)
	_, want := dstest.DataSetOf(t, jpeg)
	if got.ts != dicom.JPEGLosslessSV1 || !bytes.Equal(got.data, want) {
		t.Fatalf("replaced instance sent in %s (%d bytes); want %s (%d bytes)", got.ts, len(got.data), dicom.JPEGLosslessSV1, len(want))
	}
	if n := pacs.triesOf(kh.SOPInstanceUID); n != 1 {
		t.Fatalf("replaced instance stored %d times, want once", n)
	}
	stopPart(f)
	if m, ok := ledger.ForwardMarkOf(f.Dest.LedgerName(), kin.Key); !ok || m.SHA256 != kin.SHA256 {
		t.Fatalf("mark %+v, want the new content's %s", m, kin.SHA256)
	}
	if st := f.Stats(); st.Associations < 2 {
		t.Fatalf("%d associations: the new syntax needs its own", st.Associations)
	}
}

// Enqueue (on the C-STORE response path) never waits for the queue's lock.
func TestForwardEnqueueDoesNotWaitForTheQueue(t *testing.T) {
	spool, ledger := fwdFixture(t)
	f := startForwarder(t, &Forwarder{Dest: Destination{AETitle: "PACS", Host: "127.0.0.1", Port: dicomtest.FreePort(t)}, Spool: spool, Ledger: ledger})
	f.mu.Lock() // as a long scan would
	done := make(chan struct{})
	go func() {
		for i := range 1000 {
			f.Enqueue(fmt.Sprintf("1.2.3.%d", i))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		f.mu.Unlock()
		t.Fatal("Enqueue waited for the queue's lock")
	}
	f.mu.Unlock()
	if st := f.Stats(); st.Waiting > 1000 {
		t.Fatalf("%d waiting", st.Waiting)
	}
	// None is in the spool: each leaves the queue once the sender sees it.
	dicomtest.WaitFor(t, "the queue empty", func() bool { return f.Stats().Waiting == 0 })
}

// storescpExplicitOnly runs storescp accepting CT images in Explicit VR
// Little Endian only (a profile in a config file: no command-line option
// does it).
func storescpExplicitOnly(t *testing.T) (port int, dir string) {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "explicit-only.cfg")
	if err := os.WriteFile(cfg, []byte(`[[TransferSyntaxes]]
[ExplicitOnly]
TransferSyntax1 = LocalEndianExplicit

[[PresentationContexts]]
[CTExplicit]
PresentationContext1 = CTImageStorage\ExplicitOnly

[[Profiles]]
[Default]
PresentationContexts = CTExplicit
`), 0o644); err != nil {
		t.Fatal(err)
	}
	return dicomtest.Storescp(t, "-xf", cfg, "Default")
}

// receivedDataSets reads what storescp wrote: SOP instance UID → meta and
// data set.
func receivedDataSets(t *testing.T, dir string) map[string]struct {
	meta dicom.FileMeta
	ds   []byte
} {
	t.Helper()
	out := map[string]struct {
		meta dicom.FileMeta
		ds   []byte
	}{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		m, ds := dstest.DataSetOf(t, filepath.Join(dir, e.Name()))
		out[m.SOPInstanceUID] = struct {
			meta dicom.FileMeta
			ds   []byte
		}{m, ds}
	}
	return out
}

// A destination accepting only the other uncompressed Little Endian syntax
// gets the data set converted on the fly: what storescp receives is what
// DCMTK's dcmconv makes of the stored file, element for element the
// original, and the ledger marks the stored content delivered.
func TestForwardConvertsToTheOnlyLittleEndianSyntaxAccepted(t *testing.T) {
	pairs := dicomtest.LEFixtures(t)
	for _, tc := range []struct {
		name   string
		stored int // index in a pair: 0 implicit, 1 explicit
		dest   func(t *testing.T) (int, string)
	}{
		{"implicit stored, explicit-only PACS", 0, storescpExplicitOnly},
		{"explicit stored, implicit-only PACS", 1, func(t *testing.T) (int, string) { return dicomtest.Storescp(t, "+xi") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spool, ledger := fwdFixture(t)
			names := []string{"ct", "sequences-undefined-length", "sequences-group-lengths"}
			stored := map[string]buffer.Instance{}
			for _, n := range names {
				h, in := storeFile(t, spool, pairs[n][tc.stored])
				stored[h.SOPInstanceUID] = in
			}
			if len(stored) != 2 { // the two sequence files are one instance
				t.Fatalf("%d instances", len(stored))
			}
			port, dir := tc.dest(t)
			f := startForwarder(t, &Forwarder{Dest: Destination{AETitle: "PACS", Host: "127.0.0.1", Port: port}, Spool: spool, Ledger: ledger})
			dicomtest.WaitFor(t, "2 at the PACS", func() bool { return countFiles(dir) == 2 && f.Stats().Waiting == 0 })
			stopPart(f)
			if st := f.Stats(); st.Delivered != 2 || len(st.Reasons) != 0 {
				t.Fatalf("stats %+v", st)
			}
			got := receivedDataSets(t, dir)
			wantTS := []string{dicom.ExplicitVRLittleEndian, dicom.ImplicitVRLittleEndian}[tc.stored]
			for _, n := range []string{"ct", "sequences-group-lengths"} {
				om, orig := dstest.DataSetOf(t, pairs[n][tc.stored])
				_, want := dstest.DataSetOf(t, pairs[n][1-tc.stored])
				g, ok := got[om.SOPInstanceUID]
				if !ok {
					t.Fatalf("%s not received", n)
				}
				if g.meta.TransferSyntaxUID != wantTS {
					t.Fatalf("%s received in %s, want %s", n, g.meta.TransferSyntaxUID, wantTS)
				}
				a, b := dstest.ParsedElements(t, g.ds, wantTS), dstest.ParsedElements(t, orig, om.TransferSyntaxUID)
				if strings.Join(a, "\n") != strings.Join(b, "\n") {
					t.Fatalf("%s: the received data set's elements differ:\n%s\nwant\n%s", n, strings.Join(a, "\n"), strings.Join(b, "\n"))
				}
				if n == "ct" && !bytes.Equal(g.ds, want) {
					t.Fatalf("%s: received %d bytes, not dcmconv's %d (differ at byte %d)", n, len(g.ds), len(want), dicomtest.FirstDiff(g.ds, want))
				}
			}
			marks, _ := ledger.Forwarded(f.Dest.LedgerName())
			for uid, in := range stored {
				if m := marks[in.Key]; m.Dead || m.SHA256 != in.SHA256 {
					t.Fatalf("mark of %s: %+v, want the stored content's %s", uid, m, in.SHA256)
				}
			}
		})
	}
}

// writeInstance writes a Part 10 file of an Implicit VR data set.
func writeInstance(t *testing.T, uid string, elements func(*bytes.Buffer)) string {
	t.Helper()
	var ds bytes.Buffer
	sim.ImplicitElement(&ds, 0x0008, 0x0016, []byte(dicomtest.CTImage), 0)
	sim.ImplicitElement(&ds, 0x0008, 0x0018, []byte(uid), 0)
	elements(&ds)
	sim.ImplicitElement(&ds, 0x0020, 0x000D, []byte("1.2.826.0.1.3680043.2.1125.77"), 0)
	var b bytes.Buffer
	if _, err := dicom.WriteFileMeta(&b, dicom.FileMeta{SOPClassUID: dicomtest.CTImage, SOPInstanceUID: uid, TransferSyntaxUID: dicom.ImplicitVRLittleEndian}); err != nil {
		t.Fatal(err)
	}
	b.Write(ds.Bytes())
	p := filepath.Join(t.TempDir(), uid+".dcm")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// An instance that cannot be converted (a value too long for its explicit
// VR) waits with the reason, naming no value; the others are delivered.
func TestForwardUnconvertibleInstanceWaits(t *testing.T) {
	spool, ledger := fwdFixture(t)
	bad := writeInstance(t, "1.2.826.0.1.3680043.2.1125.78", func(ds *bytes.Buffer) {
		sim.ImplicitElement(ds, 0x0010, 0x0010, bytes.Repeat([]byte("SECRET^NAME"), 7000), ' ')
	})
	_, badIn := storeFile(t, spool, bad)
	time.Sleep(5 * time.Millisecond) // queued behind the bad one
	storeFile(t, spool, dicomtest.FixturePath(t, dicomtest.Fixtures[0]))
	port, dir := storescpExplicitOnly(t)
	f := startForwarder(t, &Forwarder{Dest: Destination{AETitle: "PACS", Host: "127.0.0.1", Port: port}, Spool: spool, Ledger: ledger})
	dicomtest.WaitFor(t, "the good one delivered, the bad one waiting", func() bool {
		st := f.Stats()
		return countFiles(dir) == 1 && st.Delivered == 1 && st.Waiting == 1 && len(st.Reasons) == 1
	})
	st := f.Stats()
	stopPart(f)
	for r := range st.Reasons {
		if !strings.Contains(r, "cannot be sent in "+dicom.ExplicitVRLittleEndian) || !strings.Contains(r, "too long for VR PN") {
			t.Fatalf("reason %q", r)
		}
		if strings.Contains(r, "SECRET") {
			t.Fatalf("reason %q quotes a value", r)
		}
	}
	if strings.Contains(st.LastError, "SECRET") {
		t.Fatalf("last error %q", st.LastError)
	}
	if _, ok := ledger.ForwardMarkOf(f.Dest.LedgerName(), badIn.Key); ok {
		t.Fatal("the unconvertible instance is marked")
	}
}
