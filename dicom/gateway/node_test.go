package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardgate/wardgate/dicom"
	"github.com/wardgate/wardgate/dicom/dataset"
	"github.com/wardgate/wardgate/dicom/internal/dicomtest"
	"github.com/wardgate/wardgate/dicom/internal/dicomtest/dstest"

	"github.com/wardgate/wardgate/buffer"
)

// recordingSink is a StudySink keeping every hand-over.
type recordingSink struct {
	mu    sync.Mutex
	calls [][]dataset.InstanceHeader
	fail  error
}

func (s *recordingSink) IngestStudy(ctx context.Context, hs []dataset.InstanceHeader) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.calls = append(s.calls, hs)
	return nil
}

func (s *recordingSink) snapshot() [][]dataset.InstanceHeader {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]dataset.InstanceHeader(nil), s.calls...)
}

func openSpool(t *testing.T, dir string, quota int64) *buffer.Spool {
	t.Helper()
	s, err := buffer.OpenSpool(dir, buffer.SpoolOptions{QuotaBytes: quota, Logger: dicomtest.DiscardLogger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// startNode runs a Node on a free port until the test ends (or stop).
func startNode(t *testing.T, c NodeConfig) (n *Node, port string, stop func()) {
	t.Helper()
	if c.AETitle == "" {
		c.AETitle = "WARDGATE"
	}
	if c.Logger == nil {
		c.Logger = dicomtest.DiscardLogger
	}
	if c.LedgerPath == "" {
		c.LedgerPath = filepath.Join(c.Spool.Dir(), "ledger.db")
	}
	n, err := NewNode(c)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n.ShutdownTimeout = 5 * time.Second
	stopParts := runParts(t, n.Parts(ln, nil))
	var once sync.Once
	stop = func() {
		once.Do(func() {
			stopParts()
			if err := n.Close(); err != nil {
				t.Errorf("node close: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	_, port, _ = net.SplitHostPort(ln.Addr().String())
	return n, port, stop
}

func spooledFile(t *testing.T, s *buffer.Spool, key string) []byte {
	t.Helper()
	in, err := s.Get(key)
	if err != nil {
		t.Fatalf("instance %s not in the spool: %v", key, err)
	}
	b, err := os.ReadFile(s.Path(in))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The spooled file is the meta header built from the association followed
// by exactly the bytes storescp +B receives from the same storescu command.
func TestReceiverSpoolsBitExact(t *testing.T) {
	spool := openSpool(t, t.TempDir(), 0)
	n, port, _ := startNode(t, NodeConfig{Spool: spool})
	for _, f := range dicomtest.Fixtures {
		t.Run(f.Name, func(t *testing.T) {
			file := dicomtest.FixturePath(t, f)
			args := append(append([]string{"-aet", "MODALITY", "-aec", "WARDGATE"}, f.SCUFlags...), "127.0.0.1", port, file)
			dicomtest.MustDCMTK(t, "storescu", args...)
			var scpArgs []string
			if f.SCPFlag != "" {
				scpArgs = append(scpArgs, f.SCPFlag)
			}
			scpPort, dir := dicomtest.Storescp(t, scpArgs...)
			args[len(args)-2] = fmt.Sprint(scpPort)
			dicomtest.MustDCMTK(t, "storescu", args...)
			_, want := dstest.DataSetOf(t, dicomtest.OnlyFile(t, dir))

			var head bytes.Buffer
			dicom.WriteFileMeta(&head, dicom.FileMeta{SOPClassUID: dicomtest.CTImage, SOPInstanceUID: dicomtest.InstanceUID(0), TransferSyntaxUID: f.TransferSyntax, SourceAET: "MODALITY"})
			got := spooledFile(t, spool, dicomtest.InstanceUID(0))
			if !bytes.Equal(got, append(head.Bytes(), want...)) {
				t.Fatalf("spooled file (%d bytes) is not the meta header (%d) + the %d bytes storescp received", len(got), head.Len(), len(want))
			}
			in, _ := spool.Get(dicomtest.InstanceUID(0))
			h, err := HeaderOf(in)
			if err != nil {
				t.Fatal(err)
			}
			if h.PatientID != "PID0" || h.Modality != "CT" || h.StudyInstanceUID != "1.2.826.0.1.3680043.2.1125.2" ||
				h.SeriesInstanceUID != "1.2.826.0.1.3680043.2.1125.3" || h.SOPClassUID != dicomtest.CTImage || h.TransferSyntaxUID != f.TransferSyntax {
				t.Fatalf("header %+v", h)
			}
			if in.Group != h.StudyInstanceUID {
				t.Fatalf("group %q", in.Group)
			}
		})
	}
	if st := n.Receiver.Stats(); st.Received != 1 || st.Replaced != uint64(len(dicomtest.Fixtures)-1) {
		// The same SOP instance in another syntax is different content.
		t.Fatalf("stats %+v", st)
	}
}

func TestReceiverDuplicateAndReplace(t *testing.T) {
	spool := openSpool(t, t.TempDir(), 0)
	n, port, _ := startNode(t, NodeConfig{Spool: spool})
	dir := t.TempDir()
	a := dicomtest.WriteCT(t, dir, "a.dcm", 7)
	send := func(file string) {
		dicomtest.MustDCMTK(t, "storescu", "-xi", "-aet", "MODALITY", "-aec", "WARDGATE", "127.0.0.1", port, file)
	}
	send(a)
	first := spooledFile(t, spool, dicomtest.InstanceUID(7))
	send(a)
	if st := n.Receiver.Stats(); st.Received != 1 || st.Duplicates != 1 || spool.Stats().Instances != 1 {
		t.Fatalf("after a duplicate: %+v, spool %+v", n.Receiver.Stats(), spool.Stats())
	}
	// Same SOP Instance UID, different content (Explicit VR instead).
	dicomtest.MustDCMTK(t, "storescu", "-xe", "-aet", "MODALITY", "-aec", "WARDGATE", "127.0.0.1", port, a)
	if st := n.Receiver.Stats(); st.Replaced != 1 || spool.Stats().Instances != 1 {
		t.Fatalf("after a replacement: %+v", st)
	}
	if bytes.Equal(first, spooledFile(t, spool, dicomtest.InstanceUID(7))) {
		t.Fatal("the replacing content was not stored")
	}
	if n.Receiver.Stats().PatientChanged != 0 {
		t.Fatal("a new syntax was taken for a change of patient")
	}
	// A copy that names another patient: stored (the modality was told so),
	// counted and warned about; the study is checked again before charting.
	dicomtest.MustDCMTK(t, "dcmodify", "-nb", "-m", "(0010,0020)=OTHER-PID", a)
	send(a)
	if st := n.Receiver.Stats(); st.Replaced != 2 || st.PatientChanged != 1 {
		t.Fatalf("after a replacement naming another patient: %+v", st)
	}
}

// A data set that cannot be parsed is answered C000 and not stored.
func TestReceiverRefusesUnparseable(t *testing.T) {
	spool := openSpool(t, t.TempDir(), 0)
	n, port, _ := startNode(t, NodeConfig{Spool: spool})
	ctx := context.Background()
	as, err := dicom.Dialer{CallingAE: "MODALITY", CalledAE: "WARDGATE"}.Dial(ctx, "127.0.0.1:"+port,
		[]dicom.PresentationContextProposal{{AbstractSyntax: dicomtest.CTImage, TransferSyntaxes: []string{dicom.ExplicitVRLittleEndian}}})
	if err != nil {
		t.Fatal(err)
	}
	defer as.Release(ctx)
	garbage := bytes.Repeat([]byte{0x08, 0x00, 0x18, 0x00, 'Z', 'Z', 0xff, 0xff}, 64)
	st, err := as.Store(ctx, dicomtest.CTImage, "1.2.3.4", dicom.ExplicitVRLittleEndian, bytes.NewReader(garbage))
	if err != nil || st != dicom.StatusCannotUnderstand {
		t.Fatalf("garbage: 0x%04x, %v; want 0xC000", st, err)
	}
	// A parseable data set without its Study Instance UID cannot be filed.
	noStudy := []byte("\x08\x00\x18\x00UI\x08\x001.2.3.5\x00")
	st, err = as.Store(ctx, dicomtest.CTImage, "1.2.3.5", dicom.ExplicitVRLittleEndian, bytes.NewReader(noStudy))
	if err != nil || st != dicom.StatusCannotUnderstand {
		t.Fatalf("no study UID: 0x%04x, %v; want 0xC000", st, err)
	}
	if spool.Stats().Instances != 0 || n.Receiver.Stats().RefusedUnparseable != 2 {
		t.Fatalf("spool %+v receiver %+v", spool.Stats(), n.Receiver.Stats())
	}
	if n, _ := spool.Unfinished(); n != 0 {
		t.Fatalf("%d temporary files left", n)
	}
}

// A quota smaller than the study: A700 for what does not fit, and every
// instance acknowledged is stored whole.
func TestReceiverQuotaRefusesWithA700(t *testing.T) {
	files := dicomtest.WriteCTs(t, 100, 8)
	fi, _ := os.Stat(files[0])
	spool := openSpool(t, t.TempDir(), 3*fi.Size()+fi.Size()/2)
	n, port, _ := startNode(t, NodeConfig{Spool: spool})
	args := append([]string{"-v", "-nh", "-xi", "-aet", "MODALITY", "-aec", "WARDGATE", "127.0.0.1", port}, files...)
	out, _ := dicomtest.DCMTK(t, "storescu", args...)
	acked := strings.Count(out, "Received Store Response (Success)")
	refused := strings.Count(out, "Received Store Response (Refused: OutOfResources)")
	if acked != 3 || refused != 5 {
		t.Fatalf("storescu saw %d successes and %d A700 (want 3 and 5):\n%s", acked, refused, out)
	}
	if st := n.Receiver.Stats(); st.Received != 3 || st.RefusedFull != 5 {
		t.Fatalf("receiver %+v", st)
	}
	for i := 100; i < 103; i++ {
		_, want := dstest.DataSetOf(t, files[i-100])
		got := spooledFile(t, spool, dicomtest.InstanceUID(i))
		if !bytes.HasSuffix(got, want) {
			t.Fatalf("instance %d not stored whole", i)
		}
	}
}

// storeFiles stores files into spool as the Receiver would, and tells n.
func storeFile(t *testing.T, spool *buffer.Spool, path string) (dataset.InstanceHeader, buffer.Instance) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m, off, err := dicom.ReadFileMeta(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	h, err := dataset.ReadInstanceHeader(bytes.NewReader(b[off:]), m.TransferSyntaxUID)
	if err != nil {
		t.Fatal(err)
	}
	in, _, err := spool.Store(context.Background(), h.SOPInstanceUID, h.StudyInstanceUID,
		map[string]string{AttrHeader: mustJSON(t, h)}, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return h, in
}

func TestAssemblerDebouncesAndSurvivesRestart(t *testing.T) {
	files := dicomtest.WriteCTs(t, 200, 4)
	dir := t.TempDir()
	spool := openSpool(t, filepath.Join(dir, "spool"), 0)
	ledger, err := OpenLedger(filepath.Join(dir, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	sink := &recordingSink{}
	a := &StudyAssembler{Spool: spool, Ledger: ledger, Sink: sink, StableAfter: 300 * time.Millisecond, Logger: dicomtest.DiscardLogger}
	if err := startPart(a); err != nil {
		t.Fatal(err)
	}
	for _, f := range files[:2] {
		h, _ := storeFile(t, spool, f)
		a.Add(h.StudyInstanceUID)
		time.Sleep(100 * time.Millisecond) // less than StableAfter: one hand-over
	}
	dicomtest.WaitFor(t, "first hand-over", func() bool { return len(sink.snapshot()) == 1 })
	time.Sleep(500 * time.Millisecond)
	if c := sink.snapshot(); len(c) != 1 || len(c[0]) != 2 {
		t.Fatalf("hand-overs %d, first with %d instances; want 1 with 2", len(c), len(c[0]))
	}
	// A late instance hands the whole study over again.
	h, _ := storeFile(t, spool, files[2])
	a.Add(h.StudyInstanceUID)
	dicomtest.WaitFor(t, "second hand-over", func() bool { return len(sink.snapshot()) == 2 })
	if c := sink.snapshot(); len(c[1]) != 3 {
		t.Fatalf("second hand-over has %d instances", len(c[1]))
	}
	stopPart(a)

	// Received but not handed over when the process stopped: after a
	// restart it is handed over without anyone calling Add.
	storeFile(t, spool, files[3])
	sink2 := &recordingSink{}
	a2 := &StudyAssembler{Spool: spool, Ledger: ledger, Sink: sink2, StableAfter: 300 * time.Millisecond, Logger: dicomtest.DiscardLogger}
	if err := startPart(a2); err != nil {
		t.Fatal(err)
	}
	defer stopPart(a2)
	dicomtest.WaitFor(t, "hand-over after restart", func() bool { return len(sink2.snapshot()) == 1 })
	if c := sink2.snapshot(); len(c[0]) != 4 {
		t.Fatalf("hand-over after restart has %d instances, want 4", len(c[0]))
	}
	stopPart(a2)
	// Handed over but not yet acknowledged by the record: a restart hands
	// it over again.
	sinkAgain := &recordingSink{}
	aAgain := &StudyAssembler{Spool: spool, Ledger: ledger, Sink: sinkAgain, StableAfter: 100 * time.Millisecond, Logger: dicomtest.DiscardLogger}
	startPart(aAgain)
	dicomtest.WaitFor(t, "hand-over of an undelivered study after restart", func() bool { return len(sinkAgain.snapshot()) == 1 })
	stopPart(aAgain)
	// The record acknowledges it: a further restart hands nothing over.
	if err := ledger.MarkStudyDelivered(h.StudyInstanceUID, time.Now()); err != nil {
		t.Fatal(err)
	}
	sink3 := &recordingSink{}
	a3 := &StudyAssembler{Spool: spool, Ledger: ledger, Sink: sink3, StableAfter: 100 * time.Millisecond, Logger: dicomtest.DiscardLogger}
	startPart(a3)
	time.Sleep(400 * time.Millisecond)
	stopPart(a3)
	if n := len(sink3.snapshot()); n != 0 {
		t.Fatalf("%d hand-overs of a study already handed over", n)
	}
}

func TestAssemblerRetriesAFailingSink(t *testing.T) {
	files := dicomtest.WriteCTs(t, 300, 1)
	dir := t.TempDir()
	spool := openSpool(t, filepath.Join(dir, "spool"), 0)
	ledger, _ := OpenLedger(filepath.Join(dir, "ledger.db"))
	sink := &recordingSink{fail: errors.New("outbox full")}
	a := &StudyAssembler{Spool: spool, Ledger: ledger, Sink: sink, StableAfter: 100 * time.Millisecond,
		Backoff: buffer.Backoff{Initial: 100 * time.Millisecond, Max: 200 * time.Millisecond, Multiplier: 2}, Logger: dicomtest.DiscardLogger}
	startPart(a)
	defer stopPart(a)
	h, _ := storeFile(t, spool, files[0])
	a.Add(h.StudyInstanceUID)
	dicomtest.WaitFor(t, "a failed hand-over", func() bool { return a.Stats().Failed >= 2 })
	sink.mu.Lock()
	sink.fail = nil
	sink.mu.Unlock()
	dicomtest.WaitFor(t, "hand-over after the sink recovered", func() bool { return len(sink.snapshot()) == 1 })
	dicomtest.WaitFor(t, "nothing pending", func() bool { return a.Stats().Pending == 0 })
}

// storescpAt runs storescp +B on port until stop; it can be restarted on
// the same port.
func storescpAt(t *testing.T, port int, dir string, args ...string) (stop func()) {
	t.Helper()
	args = append([]string{"+B", "-od", dir, "-aet", "PACS"}, append(args, strconv.Itoa(port))...)
	cmd := exec.Command(dicomtest.RequireTool(t, "storescp"), args...)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting storescp: %v", err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cmd.Process.Kill()
			cmd.Wait()
		})
	}
	t.Cleanup(stop)
	for deadline := time.Now().Add(5 * time.Second); ; {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return stop
		}
		if time.Now().After(deadline) {
			t.Fatalf("storescp did not listen on %d: %v\n%s", port, err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func countFiles(dir string) int {
	e, _ := os.ReadDir(dir)
	return len(e)
}

// The Forwarder sends many instances per association, byte for byte, goes
// on after the PACS was down, and its queue survives a restart.
func TestForwarderToStorescp(t *testing.T) {
	files := dicomtest.WriteCTs(t, 400, 30)
	dir := t.TempDir()
	spool := openSpool(t, filepath.Join(dir, "spool"), 0)
	ledger, _ := OpenLedger(filepath.Join(dir, "ledger.db"))
	defer ledger.Close()
	port := dicomtest.FreePort(t)
	recv := t.TempDir()
	stopSCP := storescpAt(t, port, recv)
	dest := Destination{AETitle: "PACS", Host: "127.0.0.1", Port: port}
	newF := func() *Forwarder {
		return &Forwarder{Dest: dest, CallingAE: "WARDGATE", Spool: spool, Ledger: ledger, Logger: dicomtest.DiscardLogger,
			IdleRelease: 500 * time.Millisecond,
			Backoff:     buffer.Backoff{Initial: 100 * time.Millisecond, Max: 300 * time.Millisecond, Multiplier: 2}}
	}
	// Ten in the spool before the forwarder starts: all of them are work
	// from the first moment, so they go over one association however slow
	// this machine is (an idle timer never runs between them).
	for _, p := range files[:10] {
		storeFile(t, spool, p)
	}
	f := newF()
	if err := startPart(f); err != nil {
		t.Fatal(err)
	}
	dicomtest.WaitFor(t, "10 forwarded and counted", func() bool {
		st := f.Stats()
		return countFiles(recv) == 10 && st.Delivered == 10 && st.Waiting == 0
	})
	if st := f.Stats(); st.Associations != 1 {
		t.Fatalf("stats %+v; want 10 delivered over 1 association", st)
	}
	for _, p := range files[:10] {
		_, want := dstest.DataSetOf(t, p)
		name := filepath.Join(recv, "CT."+instanceUIDFor(t, p))
		_, got := dstest.DataSetOf(t, name)
		if !bytes.Equal(got, want) {
			t.Fatalf("%s forwarded with %d bytes, spooled %d", p, len(got), len(want))
		}
	}

	// The PACS goes down: instances wait, with the reason shown.
	stopSCP()
	for _, p := range files[10:20] {
		_, in := storeFile(t, spool, p)
		f.Enqueue(in.Key)
	}
	dicomtest.WaitFor(t, "the failure shown", func() bool { st := f.Stats(); return st.LastError != "" && st.Waiting == 10 })
	// Restart of wardgate while the PACS is down: the queue is the spool.
	stopPart(f)
	for _, p := range files[20:] {
		storeFile(t, spool, p) // received while stopped, never enqueued
	}
	f2 := newF()
	if err := startPart(f2); err != nil {
		t.Fatal(err)
	}
	defer stopPart(f2)
	// The PACS is down: the 20 found at the start wait.
	dicomtest.WaitFor(t, "20 waiting after the restart", func() bool { return f2.Stats().Waiting == 20 })
	storescpAt(t, port, recv)
	dicomtest.WaitFor(t, "all 30 forwarded", func() bool { return countFiles(recv) == 30 })
	dicomtest.WaitFor(t, "queue empty", func() bool { return f2.Stats().Waiting == 0 })
	// Marks are written in batches (or when the queue is idle): they
	// follow the deliveries shortly.
	dicomtest.WaitFor(t, "30 forward marks", func() bool {
		marks, _ := ledger.Forwarded(dest.LedgerName())
		return len(marks) == 30
	})
}

func instanceUIDFor(t *testing.T, path string) string {
	m, _ := dstest.DataSetOf(t, path)
	return m.SOPInstanceUID
}

// A compressed instance to a PACS that accepts only uncompressed syntaxes
// waits with the reason; nothing is sent re-encoded.
func TestForwarderWaitsWhenTheSyntaxIsRefused(t *testing.T) {
	dir := t.TempDir()
	spool := openSpool(t, filepath.Join(dir, "spool"), 0)
	ledger, _ := OpenLedger(filepath.Join(dir, "ledger.db"))
	defer ledger.Close()
	port := dicomtest.FreePort(t)
	recv := t.TempDir()
	storescpAt(t, port, recv)                                                     // without +xs and the like: uncompressed only
	_, in := storeFile(t, spool, dicomtest.FixturePath(t, dicomtest.Fixtures[4])) // JPEG lossless
	f := &Forwarder{Dest: Destination{AETitle: "PACS", Host: "127.0.0.1", Port: port}, CallingAE: "WARDGATE", Spool: spool, Ledger: ledger, Logger: dicomtest.DiscardLogger}
	startPart(f)
	defer stopPart(f)
	f.Enqueue(in.Key)
	want := "accepts none of the transfer syntaxes: stored in " + dicom.JPEGLosslessSV1
	dicomtest.WaitFor(t, "the reason shown", func() bool {
		for r := range f.Stats().Reasons {
			if strings.Contains(r, want) {
				return true
			}
		}
		return false
	})
	if countFiles(recv) != 0 || f.Stats().Waiting != 1 {
		t.Fatalf("stats %+v, %d files at the PACS", f.Stats(), countFiles(recv))
	}
}

// The Pruner removes an instance only when every destination and the FHIR
// side have it, and retention has passed.
func TestPrunerRemovesOnlyWhatEveryoneHas(t *testing.T) {
	files := dicomtest.WriteCTs(t, 500, 2)
	dir := t.TempDir()
	spool := openSpool(t, filepath.Join(dir, "spool"), 0)
	ledger, _ := OpenLedger(filepath.Join(dir, "ledger.db"))
	defer ledger.Close()
	h0, in0 := storeFile(t, spool, files[0])
	_, in1 := storeFile(t, spool, files[1])
	dests := []Destination{{AETitle: "A", Host: "10.0.0.1", Port: 104}, {AETitle: "B", Host: "10.0.0.2", Port: 104}}
	a, b := dests[0].LedgerName(), dests[1].LedgerName()
	p := &Pruner{Spool: spool, Ledger: ledger, Destinations: dests, Logger: dicomtest.DiscardLogger}
	ctx := context.Background()
	prune := func() int64 {
		if err := p.Prune(ctx); err != nil {
			t.Fatal(err)
		}
		return spool.Stats().Instances
	}
	now := time.Now()
	ledger.MarkForwarded(a, map[string]ForwardMark{in0.Key: {SHA256: in0.SHA256, At: now}, in1.Key: {SHA256: in1.SHA256, At: now}})
	ledger.MarkForwarded(b, map[string]ForwardMark{in0.Key: {SHA256: in0.SHA256, At: now}, in1.Key: {SHA256: in1.SHA256, Dead: true}})
	if n := prune(); n != 2 {
		t.Fatalf("%d left before the study was charted, want 2", n)
	}
	handed := time.Now()
	ledger.MarkCharted(h0.StudyInstanceUID, map[string]ChartedMark{in0.Key: {SHA256: in0.SHA256, HandedAt: handed}, in1.Key: {SHA256: in1.SHA256, HandedAt: handed}})
	if n := prune(); n != 2 {
		t.Fatalf("%d left when the study was handed over but not yet in the record, want 2", n)
	}
	// The record acknowledges an ImagingStudy queued before the hand-over:
	// it cannot hold these instances.
	ledger.MarkStudyDelivered(h0.StudyInstanceUID, handed.Add(-time.Second))
	if n := prune(); n != 2 {
		t.Fatalf("%d left after an older ImagingStudy was delivered, want 2", n)
	}
	ledger.MarkStudyDelivered(h0.StudyInstanceUID, handed.Add(time.Millisecond))
	p.Retention = time.Hour
	if n := prune(); n != 2 {
		t.Fatalf("%d left within retention, want 2", n)
	}
	p.Retention = 0
	if n := prune(); n != 1 {
		t.Fatalf("%d left, want 1 (the one dead-lettered at B)", n)
	}
	if _, err := spool.Get(in1.Key); err != nil {
		t.Fatalf("the dead-lettered instance was removed: %v", err)
	}
	if _, ok := ledger.ForwardMarkOf(a, in0.Key); ok {
		t.Fatal("forward mark of a removed instance kept")
	}
	if c, _ := ledger.Charted(h0.StudyInstanceUID); len(c) != 2 {
		t.Fatal("charted marks must stay: they describe the study")
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A study whose instances have all left the spool is forgotten by the
// ledger after its memory (its headers hold the Patient ID); one that still
// has an instance in the spool, or was handed over recently, is kept.
func TestLedgerForgetsClosedStudies(t *testing.T) {
	dir := t.TempDir()
	ledger, err := OpenLedger(filepath.Join(dir, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer ledger.Close()
	long := time.Now().Add(-40 * 24 * time.Hour)
	for study, at := range map[string]time.Time{"old-gone": long, "old-spooled": long, "recent": time.Now()} {
		ledger.MarkCharted(study, map[string]ChartedMark{study + ".1": {SHA256: "x", HandedAt: at, Header: dataset.InstanceHeader{PatientID: "PID"}}})
	}
	n, err := ledger.ForgetStudies(time.Now().Add(-30*24*time.Hour), func(study string) bool { return study == "old-spooled" })
	if err != nil || n != 1 {
		t.Fatalf("forgot %d, %v; want 1", n, err)
	}
	for study, want := range map[string]int{"old-gone": 0, "old-spooled": 1, "recent": 1} {
		if c, _ := ledger.Charted(study); len(c) != want {
			t.Errorf("%s: %d marks, want %d", study, len(c), want)
		}
	}
}

// A replacement from another calling AE title, or one that changes the
// patient or the study, is suspect: counted and stored by default; refused
// with 0111, the stored copy kept, when the node refuses them. A re-send of
// the same data set from another AE is a duplicate of content, not suspect.
func TestReceiverSuspectReplacements(t *testing.T) {
	for _, refuse := range []bool{false, true} {
		t.Run(fmt.Sprintf("refuse=%v", refuse), func(t *testing.T) {
			spool := openSpool(t, t.TempDir(), 0)
			n, port, _ := startNode(t, NodeConfig{Spool: spool, RefuseSuspectReplacements: refuse})
			a := dicomtest.WriteCT(t, t.TempDir(), "a.dcm", 8)
			send := func(ae string, syntax string) string {
				out, _ := dicomtest.DCMTK(t, "storescu", "-v", syntax, "-aet", ae, "-aec", "WARDGATE", "127.0.0.1", port, a)
				return out
			}
			send("MOD1", "-xi")
			first := spooledFile(t, spool, dicomtest.InstanceUID(8))
			// The same data set from another AE: not suspect.
			send("MOD2", "-xi")
			if st := n.Receiver.Stats(); st.Suspect != 0 {
				t.Fatalf("the same data set from another AE taken for suspect: %+v", st)
			}
			// The same AE, another syntax: a plain replacement.
			send("MOD1", "-xe")
			if st := n.Receiver.Stats(); st.Suspect != 0 || st.Replaced < 1 {
				t.Fatalf("a new syntax from the same AE: %+v", st)
			}
			kept := spooledFile(t, spool, dicomtest.InstanceUID(8))
			if bytes.Equal(first, kept) {
				t.Fatal("the plain replacement was not stored")
			}
			// Another AE, other content: suspect.
			out := send("INTRUDER", "-xi")
			st := n.Receiver.Stats()
			if st.Suspect != 1 {
				t.Fatalf("a replacement from another AE: %+v", st)
			}
			now := spooledFile(t, spool, dicomtest.InstanceUID(8))
			if refuse {
				if st.RefusedSuspect != 1 || !bytes.Equal(now, kept) || !strings.Contains(out, "0x111") {
					t.Fatalf("refused: stats %+v, stored copy kept %v, storescu said:\n%s", st, bytes.Equal(now, kept), out)
				}
			} else if bytes.Equal(now, kept) || st.RefusedSuspect != 0 {
				t.Fatalf("accepted: the replacement was not stored (%+v)", st)
			}
			// The same AE as the stored copy's, another patient: suspect.
			dicomtest.MustDCMTK(t, "dcmodify", "-nb", "-m", "(0010,0020)=OTHER-PID", a)
			ae := "INTRUDER"
			if refuse {
				ae = "MOD1" // the stored copy is still MOD1's
			}
			send(ae, "-xe")
			if st := n.Receiver.Stats(); st.Suspect != 2 {
				t.Fatalf("a replacement naming another patient: %+v", st)
			}
		})
	}
}
