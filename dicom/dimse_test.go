package dicom

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"strings"
	"testing"
)

func TestCommandRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    command
	}{
		{"C-ECHO-RQ", command{AffectedSOPClassUID: VerificationSOPClass, CommandField: cEchoRQ, MessageID: 1, CommandDataSetType: noDataSet}},
		{"C-ECHO-RSP", command{AffectedSOPClassUID: VerificationSOPClass, CommandField: cEchoRSP, MessageIDBeingRespondedTo: 1, CommandDataSetType: noDataSet}},
		{"C-STORE-RQ", command{AffectedSOPClassUID: "1.2.840.10008.5.1.4.1.1.2", CommandField: cStoreRQ, MessageID: 65535, Priority: 2,
			AffectedSOPInstanceUID: "1.2.3.4.5.6", MoveOriginatorAETitle: "MOVER", MoveOriginatorMessageID: 9}},
		{"C-STORE-RSP", command{AffectedSOPClassUID: "1.2.840.10008.5.1.4.1.1.2", CommandField: cStoreRSP, MessageIDBeingRespondedTo: 3,
			CommandDataSetType: noDataSet, Status: StatusOutOfResources, ErrorComment: "spool full", AffectedSOPInstanceUID: "1.2.3.4.5.6"}},
		{"C-MOVE-RQ", command{AffectedSOPClassUID: "1.2.840.10008.5.1.4.1.2.2.2", CommandField: 0x0021, MessageID: 4, MoveDestination: "PACS"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc := encodeCommand(&tc.c)
			if len(enc)%2 != 0 {
				t.Fatalf("odd length %d", len(enc))
			}
			if gl := binary.LittleEndian.Uint32(enc[8:]); int(gl) != len(enc)-12 {
				t.Fatalf("group length %d for %d bytes", gl, len(enc)-12)
			}
			got, err := decodeCommand(enc)
			if err != nil {
				t.Fatal(err)
			}
			got.has = nil
			if !reflect.DeepEqual(*got, tc.c) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", *got, tc.c)
			}
		})
	}
}

// TestCommandEncodingBytes pins the exact encoding of a C-ECHO-RSP
// (Implicit VR LE, UID padded with NUL, tags ascending).
func TestCommandEncodingBytes(t *testing.T) {
	enc := encodeCommand(&command{AffectedSOPClassUID: VerificationSOPClass, CommandField: cEchoRSP, MessageIDBeingRespondedTo: 5, CommandDataSetType: noDataSet})
	want := []byte{
		0, 0, 0, 0, 4, 0, 0, 0, 66, 0, 0, 0, // group length: 26 + 4×10
		0, 0, 2, 0, 18, 0, 0, 0, '1', '.', '2', '.', '8', '4', '0', '.', '1', '0', '0', '0', '8', '.', '1', '.', '1', 0,
		0, 0, 0, 1, 2, 0, 0, 0, 0x30, 0x80,
		0, 0, 0x20, 1, 2, 0, 0, 0, 5, 0,
		0, 0, 0, 8, 2, 0, 0, 0, 1, 1,
		0, 0, 0, 9, 2, 0, 0, 0, 0, 0,
	}
	if !bytes.Equal(enc, want) {
		t.Fatalf("encoding\n got % x\nwant % x", enc, want)
	}
}

func TestMalformedCommands(t *testing.T) {
	el := func(group, elem uint16, val []byte) []byte {
		b := binary.LittleEndian.AppendUint16(nil, group)
		b = binary.LittleEndian.AppendUint16(b, elem)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(val)))
		return append(b, val...)
	}
	us := func(v uint16) []byte { return binary.LittleEndian.AppendUint16(nil, v) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"truncated header", []byte{0, 0, 0}, "truncated"},
		{"length past end", cat(el(0, 0x100, us(0x30))[:8], []byte{0xFF}), "claims 2 bytes"},
		{"huge length", cat([]byte{0, 0, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF}), "claims 4294967295"},
		{"other group", cat(el(8, 0x16, []byte("1.2")), el(0, 0x100, us(1))), "outside group 0000"},
		{"US of 3 bytes", el(0, 0x100, []byte{1, 2, 3}), "US of 3 bytes"},
		{"missing command field", el(0, 0x800, us(noDataSet)), "(0000,0100) missing"},
		{"missing data set type", el(0, 0x100, us(cEchoRQ)), "(0000,0800) missing"},
		{"repeated element", cat(el(0, 0x100, us(1)), el(0, 0x100, us(1))), "repeated"},
		{"wrong group length", cat(el(0, 0, []byte{99, 0, 0, 0}), el(0, 0x100, us(1)), el(0, 0x800, us(noDataSet))), "group length 99"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeCommand(tc.b)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// Unknown group 0000 elements (here the retired (0000,0001) length to
	// end and C-FIND's (0000,0903)) are skipped.
	c, err := decodeCommand(cat(el(0, 1, []byte{0, 0, 0, 0}), el(0, 0x100, us(cEchoRQ)), el(0, 0x800, us(noDataSet)), el(0, 0x903, []byte("xx"))))
	if err != nil || c.CommandField != cEchoRQ {
		t.Fatalf("with unknown elements: %+v, %v", c, err)
	}
}

func FuzzCommandSet(f *testing.F) {
	f.Add(encodeCommand(&command{AffectedSOPClassUID: VerificationSOPClass, CommandField: cEchoRQ, MessageID: 1, CommandDataSetType: noDataSet}))
	f.Add(encodeCommand(&command{AffectedSOPClassUID: "1.2.840.10008.5.1.4.1.1.4", CommandField: cStoreRQ, MessageID: 2, AffectedSOPInstanceUID: "1.2.3", MoveOriginatorAETitle: "X", MoveOriginatorMessageID: 3}))
	f.Add(encodeCommand(&command{AffectedSOPClassUID: "1.2.840.10008.5.1.4.1.1.4", CommandField: cStoreRSP, MessageIDBeingRespondedTo: 2, CommandDataSetType: noDataSet, Status: 0xA700, ErrorComment: "full"}))
	f.Add([]byte{0, 0, 0, 1, 2, 0, 0, 0, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeCommand(b)
		if err != nil {
			return
		}
		// A decoded command re-encodes to something that decodes to the
		// same values.
		again, err := decodeCommand(encodeCommand(c))
		if err != nil {
			t.Fatalf("re-decoding %+v: %v", c, err)
		}
		if again.CommandField != c.CommandField || again.CommandDataSetType != c.CommandDataSetType ||
			again.AffectedSOPInstanceUID != strings.TrimRight(c.AffectedSOPInstanceUID, "\x00 ") {
			t.Fatalf("re-decoded %+v from %+v", again, c)
		}
	})
}
