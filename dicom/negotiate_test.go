package dicom

import (
	"encoding/binary"
	"reflect"
	"testing"

	"github.com/wardgate/wardgate/dicom/internal/dicomtest"
)

func TestNegotiate(t *testing.T) {
	rq := &associate{
		ProtocolVersion: 1, CalledAE: "WARDGATE", CallingAE: "US1", ApplicationContext: ApplicationContextName,
		Contexts: []presentationContext{
			{ID: 1, AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ExplicitVRLittleEndian, ImplicitVRLittleEndian}},
			{ID: 3, AbstractSyntax: "1.2.840.10008.5.1.4.1.1.6.1", TransferSyntaxes: []string{"1.2.3.unknown", MPEG4HP41, JPEGBaseline8Bit}},
			{ID: 5, AbstractSyntax: "1.2.840.10008.5.1.4.1.2.2.1", TransferSyntaxes: []string{ImplicitVRLittleEndian}}, // C-FIND
			{ID: 7, AbstractSyntax: dicomtest.CTImage, TransferSyntaxes: []string{"1.2.840.10008.1.2.4.94"}},           // JPIP
			{ID: 8, AbstractSyntax: dicomtest.CTImage, TransferSyntaxes: []string{ImplicitVRLittleEndian}},             // even ID
			{ID: 7, AbstractSyntax: dicomtest.CTImage, TransferSyntaxes: []string{ImplicitVRLittleEndian}},             // repeated ID
		},
		User: userInformation{
			MaxPDULength: 32768, AsyncOps: &[2]uint16{5, 5},
			Roles: []roleSelection{{SOPClassUID: "1.2.840.10008.5.1.4.1.1.6.1", SCU: true, SCP: true}, {SOPClassUID: "1.2.3", SCU: true}},
		},
	}
	s := &Server{Store: newTestStore(t)}
	a := &assoc{contexts: map[byte]acceptedContext{}, ourMax: 1 << 16}
	ac := s.negotiate(a, rq)
	want := []presentationContext{
		{ID: 1, Result: contextAccepted, TransferSyntaxes: []string{ExplicitVRLittleEndian}},
		{ID: 3, Result: contextAccepted, TransferSyntaxes: []string{MPEG4HP41}},
		{ID: 5, Result: contextAbstractSyntaxUnsupported, TransferSyntaxes: []string{ImplicitVRLittleEndian}},
		{ID: 7, Result: contextTransferSyntaxUnsupported, TransferSyntaxes: []string{ImplicitVRLittleEndian}},
		{ID: 8, Result: contextNoReason, TransferSyntaxes: []string{ImplicitVRLittleEndian}},
		{ID: 7, Result: contextNoReason, TransferSyntaxes: []string{ImplicitVRLittleEndian}},
	}
	if !reflect.DeepEqual(ac.Contexts, want) {
		t.Fatalf("contexts\n got %+v\nwant %+v", ac.Contexts, want)
	}
	if len(a.contexts) != 2 || a.peerMax != 32768 {
		t.Fatalf("accepted %+v, peer max %d", a.contexts, a.peerMax)
	}
	if !reflect.DeepEqual(ac.User.Roles, []roleSelection{{SOPClassUID: "1.2.840.10008.5.1.4.1.1.6.1", SCU: true, SCP: false}}) {
		t.Fatalf("roles %+v", ac.User.Roles)
	}
	// A window of 5 asked: 5 C-STOREs outstanding (within the default 8), one report of ours.
	if ac.User.AsyncOps == nil || *ac.User.AsyncOps != [2]uint16{5, 1} || ac.User.MaxPDULength != 1<<16 ||
		ac.User.ImplementationClassUID != ImplementationClassUID || ac.CallingAE != "US1" {
		t.Fatalf("user information %+v", ac.User)
	}
	// Without a StoreHandler only Verification is accepted.
	a = &assoc{contexts: map[byte]acceptedContext{}}
	if ac := (&Server{}).negotiate(a, rq); ac.Contexts[1].Result != contextAbstractSyntaxUnsupported || len(a.contexts) != 1 {
		t.Fatalf("without Store: %+v", ac.Contexts)
	}
}

// TestUnknownUserSubItems checks that user identity (0x58), extended
// negotiation (0x56) and future sub-items are skipped.
func TestUnknownUserSubItems(t *testing.T) {
	b := appendAssociate(nil, pduAssociateRQ, sampleAssociate())
	extra := []byte{0x58, 0, 0, 6, 1, 0, 0, 2, 'm', 'e', 0x56, 0, 0, 0, 0x7F, 0, 0, 1, 9}
	// The user information item is last: grow it and the PDU.
	userStart := 6 + 68
	for r := (itemReader{b: b[userStart:]}); ; {
		off := r.off
		typ, _, err := r.next()
		if err != nil {
			t.Fatal(err)
		}
		if typ == itemUserInformation {
			userStart += off
			break
		}
	}
	b = append(b, extra...)
	binary.BigEndian.PutUint16(b[userStart+2:], binary.BigEndian.Uint16(b[userStart+2:])+uint16(len(extra)))
	binary.BigEndian.PutUint32(b[2:], uint32(len(b)-6))
	got, err := decodeAssociate(b[6:], false)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, sampleAssociate()) {
		t.Fatalf("got %+v", got)
	}
}
