package dicom

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

func sampleAssociate() *associate {
	return &associate{
		ProtocolVersion:    1,
		CalledAE:           "WARDGATE",
		CallingAE:          "CT_SCANNER_01",
		ApplicationContext: ApplicationContextName,
		Contexts: []presentationContext{
			{ID: 1, AbstractSyntax: VerificationSOPClass, TransferSyntaxes: []string{ImplicitVRLittleEndian}},
			{ID: 3, AbstractSyntax: "1.2.840.10008.5.1.4.1.1.2", TransferSyntaxes: []string{JPEGLosslessSV1, ExplicitVRLittleEndian, ImplicitVRLittleEndian}},
		},
		User: userInformation{
			MaxPDULength:           16384,
			ImplementationClassUID: ImplementationClassUID,
			ImplementationVersion:  ImplementationVersionName,
			AsyncOps:               &[2]uint16{3, 1},
			Roles:                  []roleSelection{{SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", SCU: true, SCP: false}},
		},
	}
}

func TestAssociateRoundTrip(t *testing.T) {
	rq := sampleAssociate()
	ac := sampleAssociate()
	ac.Contexts = []presentationContext{
		{ID: 1, Result: contextAccepted, TransferSyntaxes: []string{ImplicitVRLittleEndian}},
		{ID: 3, Result: contextTransferSyntaxUnsupported, TransferSyntaxes: []string{ImplicitVRLittleEndian}},
	}
	ac.User.AsyncOps = nil
	ac.User.Roles = nil
	for _, tc := range []struct {
		name string
		typ  byte
		a    *associate
	}{
		{"RQ", pduAssociateRQ, rq},
		{"AC", pduAssociateAC, ac},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := appendAssociate(nil, tc.typ, tc.a)
			h, body, err := readPDU(bytes.NewReader(b), 0)
			if err != nil {
				t.Fatal(err)
			}
			if h.Type != tc.typ || int(h.Length) != len(b)-6 {
				t.Fatalf("header %+v for %d bytes", h, len(b))
			}
			got, err := decodeAssociate(body, tc.typ == pduAssociateAC)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.a) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, tc.a)
			}
		})
	}
}

func TestFixedPDUs(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
		typ  byte
		body [4]byte
	}{
		{"A-ASSOCIATE-RJ", rejectPDU(rejectPermanent, rejectSourceUser, rejectCalledAENotRecognized), pduAssociateRJ, [4]byte{0, 1, 1, 7}},
		{"A-RELEASE-RQ", releaseRQPDU, pduReleaseRQ, [4]byte{}},
		{"A-RELEASE-RP", releaseRPPDU, pduReleaseRP, [4]byte{}},
		{"A-ABORT", abortPDU(abortSourceProvider, abortUnexpectedPDU), pduAbort, [4]byte{0, 0, 2, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, body, err := readPDU(bytes.NewReader(tc.b), 0)
			if err != nil {
				t.Fatal(err)
			}
			if h.Type != tc.typ || !bytes.Equal(body, tc.body[:]) {
				t.Fatalf("got type 0x%02x body % x", h.Type, body)
			}
		})
	}
}

func pdataPDU(pdvs ...[]byte) []byte {
	var body []byte
	for _, p := range pdvs {
		body = binary.BigEndian.AppendUint32(body, uint32(len(p)))
		body = append(body, p...)
	}
	b := []byte{pduPData, 0}
	b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
	return append(b, body...)
}

func rawPData(body []byte) []byte {
	b := []byte{pduPData, 0}
	b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
	return append(b, body...)
}

func pdv(pcid, mch byte, data string) []byte { return append([]byte{pcid, mch}, data...) }

// TestPDVStream reads a command split over two PDUs and a data set whose
// first fragment shares a PDU with the command's end.
func TestPDVStream(t *testing.T) {
	cmd := encodeCommand(&command{AffectedSOPClassUID: "1.2.3", CommandField: cStoreRQ, MessageID: 7, AffectedSOPInstanceUID: "1.2.3.4.5"})
	var wire []byte
	wire = append(wire, pdataPDU(pdv(1, mchCommand, string(cmd[:10])))...)
	wire = append(wire, pdataPDU(pdv(1, mchCommand|mchLast, string(cmd[10:])), pdv(1, 0, "hello "))...)
	wire = append(wire, pdataPDU(pdv(1, 0, ""), pdv(1, mchLast, "world"))...)
	// A second message read through Read rather than WriteTo.
	wire = append(wire, pdataPDU(pdv(1, mchCommand|mchLast, string(cmd)), pdv(1, 0, "byte "), pdv(1, mchLast, "by byte"))...)
	wire = append(wire, releaseRQPDU...)
	a := &assoc{br: bufio.NewReader(bytes.NewReader(wire)), contexts: map[byte]acceptedContext{1: {}}}
	a.pdv = pdvReader{br: a.br}
	pcid, c, err := a.readCommand()
	if err != nil {
		t.Fatal(err)
	}
	if pcid != 1 || c.MessageID != 7 || c.AffectedSOPInstanceUID != "1.2.3.4.5" || !c.hasDataSet() {
		t.Fatalf("command %+v on %d", c, pcid)
	}
	var got bytes.Buffer
	if _, err := io.Copy(&got, a.dataSet(pcid)); err != nil {
		t.Fatal(err)
	}
	if got.String() != "hello world" {
		t.Fatalf("data set %q", got.String())
	}
	if _, _, err := a.readCommand(); err != nil {
		t.Fatal(err)
	}
	d := a.dataSet(pcid)
	var b []byte
	for {
		var one [3]byte
		n, err := d.Read(one[:])
		b = append(b, one[:n]...)
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if string(b) != "byte by byte" {
		t.Fatalf("second data set %q", b)
	}
	_, _, err = a.readCommand()
	var o *otherPDU
	if !errors.As(err, &o) || o.Type != pduReleaseRQ {
		t.Fatalf("after the message: %v, want A-RELEASE-RQ", err)
	}
}

func TestMalformedPDUs(t *testing.T) {
	goodCmd := encodeCommand(&command{CommandField: cEchoRQ, CommandDataSetType: noDataSet})
	assocWith := func(mutate func([]byte) []byte) []byte {
		return mutate(appendAssociate(nil, pduAssociateRQ, sampleAssociate()))
	}
	for _, tc := range []struct {
		name string
		wire []byte
		want string
	}{
		{"unknown PDU type", []byte("GET / HTTP/1.1\r\n\r\n"), "unrecognized PDU type 0x47"},
		{"associate claiming 4 GiB", []byte{1, 0, 0xFF, 0xFF, 0xFF, 0xFF}, "length 4294967295"},
		{"associate too short", []byte{1, 0, 0, 0, 0, 10}, "length 10"},
		{"release with body 5", []byte{5, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0}, "want 4"},
		{"P-DATA over our maximum", []byte{4, 0, 0, 2, 0, 0}, "exceeds the maximum"},
		{"truncated header", []byte{1, 0, 0}, "EOF"},
		{"truncated associate", assocWith(func(b []byte) []byte { return b[:100] }), "unexpected EOF"},
		{"item past the end", assocWith(func(b []byte) []byte {
			binary.BigEndian.PutUint16(b[6+68+2:], 0xFFF0) // application context item length
			return b
		}), "claims 65520 bytes"},
		{"no application context", assocWith(func(b []byte) []byte {
			b[6+68] = 0x11
			return b
		}), "unknown item type 0x11"},
		{"PDV length past PDU", rawPData([]byte{0, 0, 0, 99, 1, 3, 'x'}), "PDV item length"},
		{"PDV length 1", rawPData([]byte{0, 0, 0, 1, 1, 3}), "PDV item length 1"},
		{"even context ID", pdataPDU(pdv(2, 3, string(goodCmd))), "even presentation context"},
		{"reserved MCH bits", pdataPDU(pdv(1, 0x83, string(goodCmd))), "reserved bits"},
		{"data where command expected", pdataPDU(pdv(1, mchLast, "abc")), "where a command was expected"},
		{"context not accepted", pdataPDU(pdv(5, 3, string(goodCmd))), "not accepted"},
		{"command set garbage", pdataPDU(pdv(1, 3, "garbage!!")), "command set"},
		{"associate inside association", appendAssociate(nil, pduAssociateRQ, sampleAssociate()), "unexpected A-ASSOCIATE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.wire[0] == pduPData || strings.Contains(tc.name, "inside") {
				a := &assoc{br: bufio.NewReader(bytes.NewReader(tc.wire)), contexts: map[byte]acceptedContext{1: {}}}
				a.pdv = pdvReader{br: a.br, maxPData: 1 << 16}
				_, _, err = a.readCommand()
			} else {
				var body []byte
				var h pduHeader
				h, body, err = readPDU(bytes.NewReader(tc.wire), 1<<16)
				if err == nil {
					_, err = decodeAssociate(body, h.Type == pduAssociateAC)
				}
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestHugeLengthAllocatesNothing checks that a PDU header claiming gigabytes
// is refused before anything of that size is allocated.
func TestHugeLengthAllocatesNothing(t *testing.T) {
	for _, wire := range [][]byte{
		{pduAssociateRQ, 0, 0xFF, 0xFF, 0xFF, 0xFF},
		{pduPData, 0, 0xFF, 0xFF, 0xFF, 0xFF},
		{pduAbort, 0, 0x7F, 0xFF, 0xFF, 0xFF},
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if _, _, err := readPDU(bytes.NewReader(wire), DefaultMaxPDULength); err == nil {
			t.Fatal("accepted")
		}
		runtime.ReadMemStats(&after)
		if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
			t.Fatalf("PDU type 0x%02x: %d bytes allocated", wire[0], n)
		}
	}
}

func FuzzReadPDU(f *testing.F) {
	f.Add(appendAssociate(nil, pduAssociateRQ, sampleAssociate()))
	ac := sampleAssociate()
	ac.Contexts = []presentationContext{{ID: 1, TransferSyntaxes: []string{ImplicitVRLittleEndian}}}
	f.Add(appendAssociate(nil, pduAssociateAC, ac))
	f.Add(rejectPDU(1, 1, 7))
	f.Add(abortPDU(2, 6))
	f.Add(releaseRQPDU)
	cmd := encodeCommand(&command{AffectedSOPClassUID: "1.2.3", CommandField: cStoreRQ, MessageID: 1, AffectedSOPInstanceUID: "1.2.3.4"})
	f.Add(append(pdataPDU(pdv(1, 3, string(cmd))), pdataPDU(pdv(1, 0, "ab"), pdv(1, 2, "cd"))...))
	f.Add([]byte{4, 0, 0, 0, 0, 6, 0, 0, 0, 2, 1, 3})
	f.Fuzz(func(t *testing.T, wire []byte) {
		h, body, err := readPDU(bytes.NewReader(wire), 1<<16)
		if err == nil && (h.Type == pduAssociateRQ || h.Type == pduAssociateAC) {
			if a, err := decodeAssociate(body, h.Type == pduAssociateAC); err == nil {
				// What decodes must encode and decode to the same thing.
				if checkAssociateSizes(a) == nil {
					again, err := decodeAssociate(appendAssociate(nil, h.Type, a)[6:], h.Type == pduAssociateAC)
					if err != nil {
						t.Fatalf("re-decoding: %v", err)
					}
					_ = again
				}
			}
		}
		a := &assoc{br: bufio.NewReader(bytes.NewReader(wire)), contexts: map[byte]acceptedContext{1: {}, 3: {}}}
		a.pdv = pdvReader{br: a.br, maxPData: 1 << 16}
		for range 8 {
			pcid, c, err := a.readCommand()
			if err != nil {
				return
			}
			if c.hasDataSet() {
				if _, err := io.Copy(io.Discard, a.dataSet(pcid)); err != nil {
					return
				}
			}
		}
	})
}
