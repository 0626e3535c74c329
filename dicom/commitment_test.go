package dicom

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"
)

var sampleRefs = []SOPReference{
	{CTImageStorage, "1.2.826.0.1.3680043.2.1125.1.1"},
	{CTImageStorage, "1.2.826.0.1.3680043.2.1125.1.22"},
}

func TestCommitmentDataSetRoundTrip(t *testing.T) {
	for _, explicit := range []bool{false, true} {
		b := encodeCommitmentRequest("1.2.3.4.5", sampleRefs, explicit)
		tuid, refs, err := decodeCommitmentRequest(b, explicit)
		if err != nil || tuid != "1.2.3.4.5" || !reflect.DeepEqual(refs, sampleRefs) {
			t.Fatalf("explicit %v: request decoded as %q %+v, %v", explicit, tuid, refs, err)
		}
		res := CommitmentResult{TransactionUID: "1.2.3.4.5", Committed: sampleRefs[:1],
			Failed: []FailedReference{{sampleRefs[1], FailureNoSuchObject}}}
		got, err := decodeCommitmentResult(encodeCommitmentResult(res, explicit), explicit)
		if err != nil || !reflect.DeepEqual(got, res) {
			t.Fatalf("explicit %v: result decoded as %+v, %v", explicit, got, err)
		}
		if res.EventType() != CommitmentEventFailures || (CommitmentResult{Committed: sampleRefs}).EventType() != CommitmentEventSuccess {
			t.Fatal("event types")
		}
	}
}

// undefinedLengthRequest builds an N-ACTION data set whose sequence and
// items have undefined length, as many SCUs send it.
func undefinedLengthRequest(explicit bool) []byte {
	w := &elementWriter{explicit: explicit}
	w.uid(tagTransactionUID, "1.2.3")
	w.b = binary.LittleEndian.AppendUint16(w.b, 0x0008)
	w.b = binary.LittleEndian.AppendUint16(w.b, 0x1199)
	if explicit {
		w.b = append(w.b, 'S', 'Q', 0, 0)
	}
	w.b = binary.LittleEndian.AppendUint32(w.b, undefinedLength)
	for _, r := range sampleRefs {
		w.b = append(w.b, 0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF)
		w.uid(tagReferencedSOPClassUID, r.SOPClassUID)
		w.uid(tagReferencedSOPInstanceUI, r.SOPInstanceUID)
		w.b = append(w.b, 0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0)
	}
	w.b = append(w.b, 0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0)
	return w.b
}

func TestCommitmentDataSetUndefinedLengths(t *testing.T) {
	for _, explicit := range []bool{false, true} {
		tuid, refs, err := decodeCommitmentRequest(undefinedLengthRequest(explicit), explicit)
		if err != nil || tuid != "1.2.3" || !reflect.DeepEqual(refs, sampleRefs) {
			t.Fatalf("explicit %v: %q %+v, %v", explicit, tuid, refs, err)
		}
	}
	// Explicit VR, the sequence sent as UN of undefined length: its
	// content is Implicit VR (PS3.5 6.2.2).
	implicit := undefinedLengthRequest(false)
	w := &elementWriter{explicit: true}
	w.uid(tagTransactionUID, "1.2.3")
	seq := implicit[len(w.b)+0:] // the implicit encoding of the same UID has the same length here
	un := append([]byte{}, w.b...)
	un = append(un, 0x08, 0x00, 0x99, 0x11, 'U', 'N', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF)
	un = append(un, seq[8:]...)
	if _, refs, err := decodeCommitmentRequest(un, true); err != nil || !reflect.DeepEqual(refs, sampleRefs) {
		t.Fatalf("UN sequence: %+v, %v", refs, err)
	}
}

func TestMalformedCommitmentDataSets(t *testing.T) {
	good := encodeCommitmentRequest("1.2.3", sampleRefs, false)
	noUID := encodeCommitmentRequest("1.2.3", sampleRefs, false)[8+6:] // without the Transaction UID element
	deep := func() []byte {
		// Sequences nested far deeper than maxNesting.
		var b []byte
		for range 100 {
			b = append(b, 0x08, 0x00, 0x99, 0x11, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF)
		}
		return b
	}()
	huge := append([]byte{}, good...)
	binary.LittleEndian.PutUint32(huge[4:], 0xFFFFFFF0)
	for _, tc := range []struct {
		name    string
		b       []byte
		missing bool
	}{
		{"empty", nil, true},
		{"truncated header", good[:5], false},
		{"truncated value", good[:len(good)-3], false},
		{"huge length", huge, false},
		{"no transaction UID", noUID, true},
		{"transaction UID only", good[:14], true},
		{"deep nesting", deep, false},
		{"not a UID", encodeCommitmentRequest("1.2.x", sampleRefs, false), false},
		{"empty reference", encodeCommitmentRequest("1.2.3", []SOPReference{{CTImageStorage, ""}}, false), false},
		{"delimiter outside an item", append(append([]byte{}, good...), 0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0), false},
		{"out of order", append(encodeCommitmentRequest("1.2.3", sampleRefs, false), good[:14]...), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := decodeCommitmentRequest(tc.b, false)
			if err == nil {
				t.Fatal("accepted")
			}
			if errors.Is(err, errMissingAttribute) != tc.missing {
				t.Fatalf("missing attribute %v, want %v: %v", errors.Is(err, errMissingAttribute), tc.missing, err)
			}
		})
	}
	many := make([]SOPReference, MaxCommitmentReferences+1)
	for i := range many {
		many[i] = sampleRefs[0]
	}
	if _, _, err := decodeCommitmentRequest(encodeCommitmentRequest("1.2.3", many, true), true); !errors.Is(err, errTooMany) {
		t.Fatalf("too many references: %v", err)
	}
}

// FuzzCommitmentDataSet: whatever arrives, the reader returns an error or
// references that encode and read back the same. Seeds in
// testdata/fuzz/FuzzCommitmentDataSet run with every go test.
func FuzzCommitmentDataSet(f *testing.F) {
	for _, explicit := range []bool{false, true} {
		f.Add(encodeCommitmentRequest("1.2.3", sampleRefs, explicit), explicit)
		f.Add(undefinedLengthRequest(explicit), explicit)
		f.Add(encodeCommitmentResult(CommitmentResult{TransactionUID: "1.2", Failed: []FailedReference{{sampleRefs[0], 0x0112}}}, explicit), explicit)
	}
	f.Fuzz(func(t *testing.T, b []byte, explicit bool) {
		if res, err := decodeCommitmentResult(b, explicit); err == nil {
			again, err := decodeCommitmentResult(encodeCommitmentResult(res, explicit), explicit)
			if err != nil || again.TransactionUID != res.TransactionUID || len(again.Committed) != len(res.Committed) || len(again.Failed) != len(res.Failed) {
				t.Fatalf("result %+v read back as %+v, %v", res, again, err)
			}
		}
		tuid, refs, err := decodeCommitmentRequest(b, explicit)
		if err != nil {
			return
		}
		t2, r2, err := decodeCommitmentRequest(encodeCommitmentRequest(tuid, refs, explicit), explicit)
		if err != nil || t2 != tuid || !reflect.DeepEqual(r2, refs) {
			t.Fatalf("request %q %+v read back as %q %+v, %v", tuid, refs, t2, r2, err)
		}
	})
}

// testCommitter answers every request with status and hands over the
// request and its Reporter.
type testCommitter struct {
	status uint16
	reqs   chan CommitmentRequest
	reps   chan *Reporter
}

func newTestCommitter() *testCommitter {
	return &testCommitter{reqs: make(chan CommitmentRequest, 8), reps: make(chan *Reporter, 8)}
}

func (c *testCommitter) RequestCommitment(ctx context.Context, req CommitmentRequest, rep *Reporter) (uint16, error) {
	c.reqs <- req
	c.reps <- rep
	return c.status, nil
}

func commitmentDial(t *testing.T, host, port string, d Dialer) *Association {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if d.CallingAE == "" {
		d.CallingAE, d.CalledAE = "MODALITY", "WARDGATE"
	}
	as, err := d.Dial(ctx, net.JoinHostPort(host, port), []PresentationContextProposal{
		CommitmentProposal(), {AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { as.Abort() })
	return as
}

func TestCommitmentReportOnTheSameAssociation(t *testing.T) {
	c := newTestCommitter()
	host, port := startServer(t, quietServer(&Server{AETitle: "WARDGATE", Commitment: c}))
	as := commitmentDial(t, host, port, Dialer{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if st, err := as.RequestCommitment(ctx, "1.2.3.9", sampleRefs); err != nil || st != StatusSuccess {
		t.Fatalf("N-ACTION: 0x%04x, %v", st, err)
	}
	req := <-c.reqs
	if req.TransactionUID != "1.2.3.9" || req.CallingAE != "MODALITY" || !reflect.DeepEqual(req.References, sampleRefs) {
		t.Fatalf("handler got %+v", req)
	}
	rep := <-c.reps
	want := CommitmentResult{TransactionUID: "1.2.3.9", Committed: sampleRefs[:1], Failed: []FailedReference{{sampleRefs[1], FailureNoSuchObject}}}
	sent := make(chan error, 1)
	go func() {
		st, err := rep.Report(ctx, want)
		if err == nil && st != StatusSuccess {
			err = errors.New("status not success")
		}
		sent <- err
	}()
	got, err := as.ReceiveCommitmentResult(ctx)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("N-EVENT-REPORT: %+v, %v", got, err)
	}
	if err := <-sent; err != nil {
		t.Fatalf("Report: %v", err)
	}
	// The association goes on, then ends; a late report knows.
	if st, err := as.Echo(ctx); err != nil || st != StatusSuccess {
		t.Fatalf("echo after the report: %v", err)
	}
	if err := as.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := rep.Report(ctx, want); !errors.Is(err, ErrAssociationEnded) {
		t.Fatalf("report after release: %v", err)
	}
	if rep.Open() {
		t.Fatal("reporter open after release")
	}
}

// A refused request's Reporter never sends: the report has nothing to say.
func TestCommitmentRefusedRequestHasNoReport(t *testing.T) {
	c := newTestCommitter()
	c.status = StatusResourceLimitation
	host, port := startServer(t, quietServer(&Server{AETitle: "WARDGATE", Commitment: c}))
	as := commitmentDial(t, host, port, Dialer{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if st, err := as.RequestCommitment(ctx, "1.2.3.9", sampleRefs); err != nil || st != StatusResourceLimitation {
		t.Fatalf("N-ACTION: 0x%04x, %v", st, err)
	}
	<-c.reqs
	if _, err := (<-c.reps).Report(ctx, CommitmentResult{TransactionUID: "1.2.3.9"}); !errors.Is(err, ErrAssociationEnded) {
		t.Fatalf("report of a refused request: %v", err)
	}
}

// Malformed and misdirected N-ACTIONs get a failure status, and the
// association goes on.
func TestCommitmentRequestRefusals(t *testing.T) {
	c := newTestCommitter()
	s := quietServer(&Server{AETitle: "WARDGATE", Commitment: c})
	host, port := startServer(t, s)
	as := commitmentDial(t, host, port, Dialer{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	explicit := as.TransferSyntaxFor(StorageCommitmentPushModelSOPClass) == ExplicitVRLittleEndian
	good := encodeCommitmentRequest("1.2.3", sampleRefs, explicit)
	for _, tc := range []struct {
		name            string
		class, instance string
		action          uint16
		data            []byte
		want            uint16
	}{
		{"wrong SOP instance", StorageCommitmentPushModelSOPClass, "1.2.3.4", 1, good, StatusNoSuchSOPInstance},
		{"wrong SOP class", "1.2.840.10008.1.20.2", StorageCommitmentPushModelSOPInstance, 1, good, StatusNoSuchSOPClass},
		{"unknown action type", StorageCommitmentPushModelSOPClass, StorageCommitmentPushModelSOPInstance, 7, good, StatusNoSuchAction},
		{"no data set", StorageCommitmentPushModelSOPClass, StorageCommitmentPushModelSOPInstance, 1, nil, StatusMissingAttribute},
		{"no transaction UID", StorageCommitmentPushModelSOPClass, StorageCommitmentPushModelSOPInstance, 1, good[8+6:], StatusMissingAttribute},
		{"garbage", StorageCommitmentPushModelSOPClass, StorageCommitmentPushModelSOPInstance, 1, []byte(strings.Repeat("\xff\xfe\x00\xe0", 64)), StatusInvalidArgumentValue},
		{"too large", StorageCommitmentPushModelSOPClass, StorageCommitmentPushModelSOPInstance, 1, make([]byte, MaxCommitmentDataSet+2), StatusResourceLimitation},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := rawAction(ctx, as, tc.class, tc.instance, tc.action, tc.data)
			if err != nil || st != tc.want {
				t.Fatalf("status 0x%04x, %v; want 0x%04x", st, err, tc.want)
			}
		})
	}
	if len(c.reqs) != 0 {
		t.Fatalf("the handler saw %d malformed requests", len(c.reqs))
	}
	if st, err := as.Echo(ctx); err != nil || st != StatusSuccess {
		t.Fatalf("echo after refusals: %v", err)
	}
	if got := s.CommitmentStats(); got.Refused != 7 || got.Requests != 0 {
		t.Fatalf("stats %+v", got)
	}
}

// rawAction sends an N-ACTION-RQ on the Storage Commitment context,
// whatever the SOP class it names.
func rawAction(ctx context.Context, as *Association, class, instance string, action uint16, data []byte) (uint16, error) {
	c, _ := as.contextFor(StorageCommitmentPushModelSOPClass)
	rq := &command{RequestedSOPClassUID: class, CommandField: nActionRQ, CommandDataSetType: noDataSet, RequestedSOPInstanceUID: instance, ActionTypeID: action}
	var r io.Reader
	if data != nil {
		rq.CommandDataSetType, r = 0, bytes.NewReader(data)
	}
	rsp, err := as.exchange(ctx, c.ID, rq, r)
	if err != nil {
		return 0, err
	}
	return rsp.Status, nil
}

// A server without a commitment handler does not accept the SOP class.
func TestCommitmentNotOfferedWithoutHandler(t *testing.T) {
	host, port := startServer(t, quietServer(&Server{AETitle: "WARDGATE"}))
	as := commitmentDial(t, host, port, Dialer{})
	if as.TransferSyntaxFor(StorageCommitmentPushModelSOPClass) != "" {
		t.Fatal("storage commitment accepted without a handler")
	}
}

type testResults struct{ got chan CommitmentResult }

func (r *testResults) CommitmentResult(ctx context.Context, callingAE string, res CommitmentResult) uint16 {
	r.got <- res
	return StatusSuccess
}

// A commitment SCP reporting on an association it opens proposes to be
// the SCP (PS3.4 J.3.3); the SCU that takes results accepts that role.
func TestCommitmentReportOnANewAssociation(t *testing.T) {
	results := &testResults{got: make(chan CommitmentResult, 1)}
	host, port := startServer(t, quietServer(&Server{AETitle: "MODALITY", CommitmentResults: results}))
	d := Dialer{CallingAE: "WARDGATE", CalledAE: "MODALITY", Roles: map[string]Role{StorageCommitmentPushModelSOPClass: {SCP: true}}}
	as := commitmentDial(t, host, port, d)
	if r, answered := as.AcceptedRole(StorageCommitmentPushModelSOPClass); !answered || !r.SCP || r.SCU {
		t.Fatalf("role %+v answered %v, want SCP only", r, answered)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	want := CommitmentResult{TransactionUID: "1.2.3.9", Committed: sampleRefs}
	if st, err := as.ReportCommitment(ctx, want); err != nil || st != StatusSuccess {
		t.Fatalf("N-EVENT-REPORT: 0x%04x, %v", st, err)
	}
	if got := <-results.got; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
	if err := as.Release(ctx); err != nil {
		t.Fatal(err)
	}

	// A server that takes requests, not results, refuses us the SCP role.
	host, port = startServer(t, quietServer(&Server{AETitle: "MODALITY", Commitment: newTestCommitter()}))
	as = commitmentDial(t, host, port, d)
	if r, answered := as.AcceptedRole(StorageCommitmentPushModelSOPClass); !answered || r.SCP {
		t.Fatalf("role %+v answered %v, want the SCP role refused", r, answered)
	}
}
