package dicom

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Command fields (PS3.7 E.1).
const (
	cStoreRQ  = 0x0001
	cStoreRSP = 0x8001
	cEchoRQ   = 0x0030
	cEchoRSP  = 0x8030
	cCancelRQ = 0x0FFF

	nEventReportRQ  = 0x0100
	nEventReportRSP = 0x8100
	nActionRQ       = 0x0130
	nActionRSP      = 0x8130
)

// noDataSet is the CommandDataSetType value meaning "no data set follows";
// any other value means one does (PS3.7 E.1).
const noDataSet = 0x0101

// maxCommandSet bounds the size of one command set. Real ones are a few
// hundred bytes.
const maxCommandSet = 64 << 10

// DIMSE status codes used by wardgate (PS3.7 Annex C, PS3.4 B.2.3).
const (
	StatusSuccess               uint16 = 0x0000
	StatusOutOfResources        uint16 = 0xA700
	StatusDataSetMismatch       uint16 = 0xA900
	StatusCannotUnderstand      uint16 = 0xC000
	StatusProcessingFailure     uint16 = 0x0110
	StatusSOPClassNotSupported  uint16 = 0x0122
	StatusDuplicateSOPInstance  uint16 = 0x0111
	StatusUnrecognizedOperation uint16 = 0x0211
)

// Command set element tags (group 0000), as (group<<16 | element).
const (
	tagCommandGroupLength        = 0x00000000
	tagAffectedSOPClassUID       = 0x00000002
	tagRequestedSOPClassUID      = 0x00000003
	tagCommandField              = 0x00000100
	tagMessageID                 = 0x00000110
	tagMessageIDBeingRespondedTo = 0x00000120
	tagMoveDestination           = 0x00000600
	tagPriority                  = 0x00000700
	tagCommandDataSetType        = 0x00000800
	tagStatus                    = 0x00000900
	tagErrorComment              = 0x00000902
	tagAffectedSOPInstanceUID    = 0x00001000
	tagRequestedSOPInstanceUID   = 0x00001001
	tagEventTypeID               = 0x00001002
	tagActionTypeID              = 0x00001008
	tagMoveOriginatorAETitle     = 0x00001030
	tagMoveOriginatorMessageID   = 0x00001031
)

// command is a DIMSE command set (PS3.7 9.3, 10.3, E.1). Absent elements
// have their zero value; has records which of the optional ones were present
// (on decode) or are to be written (on encode).
type command struct {
	AffectedSOPClassUID       string
	CommandField              uint16
	MessageID                 uint16
	MessageIDBeingRespondedTo uint16
	MoveDestination           string
	Priority                  uint16
	CommandDataSetType        uint16
	Status                    uint16
	ErrorComment              string
	AffectedSOPInstanceUID    string
	MoveOriginatorAETitle     string
	MoveOriginatorMessageID   uint16
	// DIMSE-N (PS3.7 10.3): N-ACTION names the instance acted on with
	// the Requested UIDs, N-EVENT-REPORT with the Affected ones.
	RequestedSOPClassUID    string
	RequestedSOPInstanceUID string
	EventTypeID             uint16
	ActionTypeID            uint16
	has                     map[uint32]bool
}

func (c *command) hasDataSet() bool { return c.CommandDataSetType != noDataSet }

func (c *command) isResponse() bool { return c.CommandField&0x8000 != 0 }

// encodeCommand encodes c in Implicit VR Little Endian, elements in tag
// order, with CommandGroupLength computed. Which elements are written follows
// from the command field (PS3.7 9.3.1.1, 9.3.5.1 ...): requests carry a
// MessageID, responses a MessageIDBeingRespondedTo and Status.
func encodeCommand(c *command) []byte {
	b := make([]byte, 12, 256)
	put := func(tag uint32, val []byte) {
		b = binary.LittleEndian.AppendUint16(b, uint16(tag>>16))
		b = binary.LittleEndian.AppendUint16(b, uint16(tag))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(val)))
		b = append(b, val...)
	}
	us := func(tag uint32, v uint16) { put(tag, binary.LittleEndian.AppendUint16(nil, v)) }
	resp := c.isResponse()
	if c.AffectedSOPClassUID != "" {
		put(tagAffectedSOPClassUID, padUID(c.AffectedSOPClassUID))
	}
	if c.RequestedSOPClassUID != "" {
		put(tagRequestedSOPClassUID, padUID(c.RequestedSOPClassUID))
	}
	us(tagCommandField, c.CommandField)
	if !resp {
		us(tagMessageID, c.MessageID)
	} else {
		us(tagMessageIDBeingRespondedTo, c.MessageIDBeingRespondedTo)
	}
	if c.MoveDestination != "" {
		put(tagMoveDestination, padText(c.MoveDestination))
	}
	if !resp && c.CommandField < 0x0100 && c.CommandField != cEchoRQ {
		// Priority is a C-STORE/C-FIND/C-GET/C-MOVE element; C-ECHO,
		// C-CANCEL and the DIMSE-N requests have none.
		us(tagPriority, c.Priority)
	}
	us(tagCommandDataSetType, c.CommandDataSetType)
	if resp {
		us(tagStatus, c.Status)
	}
	if c.ErrorComment != "" {
		put(tagErrorComment, padText(c.ErrorComment))
	}
	if c.AffectedSOPInstanceUID != "" {
		put(tagAffectedSOPInstanceUID, padUID(c.AffectedSOPInstanceUID))
	}
	if c.RequestedSOPInstanceUID != "" {
		put(tagRequestedSOPInstanceUID, padUID(c.RequestedSOPInstanceUID))
	}
	if c.CommandField&0x7FFF == nEventReportRQ && (!resp || c.EventTypeID != 0) {
		us(tagEventTypeID, c.EventTypeID)
	}
	if c.CommandField&0x7FFF == nActionRQ && (!resp || c.ActionTypeID != 0) {
		us(tagActionTypeID, c.ActionTypeID)
	}
	if c.MoveOriginatorAETitle != "" {
		put(tagMoveOriginatorAETitle, padText(c.MoveOriginatorAETitle))
		us(tagMoveOriginatorMessageID, c.MoveOriginatorMessageID)
	}
	// (0000,0000) UL: the length of everything after it.
	binary.LittleEndian.PutUint32(b[4:], 4)
	binary.LittleEndian.PutUint32(b[8:], uint32(len(b)-12))
	return b
}

// decodeCommand parses an Implicit VR Little Endian command set. Unknown
// group 0000 elements (retired ones, C-FIND's extras) are skipped; elements
// of other groups are an error.
func decodeCommand(b []byte) (*command, error) {
	c := &command{has: map[uint32]bool{}}
	for off := 0; off < len(b); {
		if len(b)-off < 8 {
			return nil, fmt.Errorf("command set: truncated element header at offset %d", off)
		}
		group := binary.LittleEndian.Uint16(b[off:])
		elem := binary.LittleEndian.Uint16(b[off+2:])
		n := binary.LittleEndian.Uint32(b[off+4:])
		off += 8
		if group != 0 {
			return nil, fmt.Errorf("command set: element (%04X,%04X) outside group 0000", group, elem)
		}
		if uint64(n) > uint64(len(b)-off) {
			return nil, fmt.Errorf("command set: element (0000,%04X) claims %d bytes, %d left", elem, n, len(b)-off)
		}
		val := b[off : off+int(n)]
		off += int(n)
		tag := uint32(elem)
		if c.has[tag] {
			return nil, fmt.Errorf("command set: element (0000,%04X) repeated", elem)
		}
		c.has[tag] = true
		us := func(dst *uint16) error {
			if len(val) != 2 {
				return fmt.Errorf("command set: element (0000,%04X) US of %d bytes", elem, len(val))
			}
			*dst = binary.LittleEndian.Uint16(val)
			return nil
		}
		var err error
		switch tag {
		case tagCommandGroupLength:
			if len(val) != 4 {
				err = fmt.Errorf("command set: group length of %d bytes", len(val))
			} else if gl := binary.LittleEndian.Uint32(val); gl != uint32(len(b)-off) {
				err = fmt.Errorf("command set: group length %d, but %d bytes follow", gl, len(b)-off)
			}
		case tagAffectedSOPClassUID:
			c.AffectedSOPClassUID = trimUID(val)
		case tagRequestedSOPClassUID:
			c.RequestedSOPClassUID = trimUID(val)
		case tagRequestedSOPInstanceUID:
			c.RequestedSOPInstanceUID = trimUID(val)
		case tagEventTypeID:
			err = us(&c.EventTypeID)
		case tagActionTypeID:
			err = us(&c.ActionTypeID)
		case tagCommandField:
			err = us(&c.CommandField)
		case tagMessageID:
			err = us(&c.MessageID)
		case tagMessageIDBeingRespondedTo:
			err = us(&c.MessageIDBeingRespondedTo)
		case tagMoveDestination:
			c.MoveDestination = strings.Trim(string(val), " \x00")
		case tagPriority:
			err = us(&c.Priority)
		case tagCommandDataSetType:
			err = us(&c.CommandDataSetType)
		case tagStatus:
			err = us(&c.Status)
		case tagErrorComment:
			c.ErrorComment = strings.TrimRight(string(val), " \x00")
		case tagAffectedSOPInstanceUID:
			c.AffectedSOPInstanceUID = trimUID(val)
		case tagMoveOriginatorAETitle:
			c.MoveOriginatorAETitle = strings.Trim(string(val), " \x00")
		case tagMoveOriginatorMessageID:
			err = us(&c.MoveOriginatorMessageID)
		}
		if err != nil {
			return nil, err
		}
	}
	for _, t := range []uint32{tagCommandField, tagCommandDataSetType} {
		if !c.has[t] {
			return nil, fmt.Errorf("command set: mandatory element (0000,%04X) missing", t)
		}
	}
	return c, nil
}

// padUID pads a UID with one NUL to even length (PS3.5 9.1).
func padUID(s string) []byte {
	b := []byte(s)
	if len(b)%2 == 1 {
		b = append(b, 0)
	}
	return b
}

// padText pads a character string with one space to even length.
func padText(s string) []byte {
	b := []byte(s)
	if len(b)%2 == 1 {
		b = append(b, ' ')
	}
	return b
}
