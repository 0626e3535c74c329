package intellivue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Session SPDU identifiers: the first byte of every message.
const (
	spduConnect     = 0x0D // association request
	spduAccept      = 0x0E // association result: accepted
	spduRefuse      = 0x0C // association result: refused
	spduFinish      = 0x09 // release request
	spduDisconnect  = 0x0A // release result
	spduAbort       = 0x19 // abort
	spduDataExport  = 0xE1 // E1 00: a data-export (ROSE) message
	dataPContext    = 0x0002
	sessionDataSize = 4 // E1 00 00 02
)

// Remote-operation types and commands of a data-export message.
const (
	roInvoke       = 1 // ROIV
	roResult       = 2 // RORS
	roError        = 3 // ROER
	roLinkedResult = 5 // RORLS

	cmdEventReport          = 0
	cmdConfirmedEventReport = 1
	cmdGet                  = 3
	cmdSet                  = 4
	cmdConfirmedSet         = 5
	cmdConfirmedAction      = 7
)

// Linked-result states (RORLS).
const (
	LinkedFirst = 1
	LinkedMore  = 2
	LinkedLast  = 3
)

// Nomenclature of the objects, actions, events and attributes used here.
const (
	partitionObject = 1

	ClassMDS     = 0x0021 // NOM_MOC_VMS_MDS
	ClassNumeric = 0x0006 // NOM_MOC_VMO_METRIC_NU

	ActionPoll         = 0x0C16 // NOM_ACT_POLL_MDIB_DATA
	ActionPollExtended = 0xF13B // NOM_ACT_POLL_MDIB_DATA_EXT

	EventMDSCreate         = 0x0D06 // NOM_NOTI_MDS_CREAT
	EventConnectIndication = 0x0D17 // NOM_NOTI_MDS_CONNECT_INDIC (3351)

	AttrIDLabel        = 0x0924
	AttrIDLabelString  = 0x0927
	AttrIDModel        = 0x0928
	AttrIDProdSpec     = 0x092D
	AttrNuCmpdValObs   = 0x094B
	AttrNuValObs       = 0x0950
	AttrPatientID      = 0x095A
	AttrSaValObs       = 0x096E
	AttrTimeAbs        = 0x0987
	AttrTimeRel        = 0x098F
	AttrTimeStampAbs   = 0x0990
	AttrTimeStampRel   = 0x0991
	AttrPollProfileExt = 0xF001
	AttrTimePdPoll     = 0xF13E
)

// Poll-profile extended options of the association request.
const (
	pollExtNumerics1s = 0x80000000 // POLL_EXT_PERIOD_NU_1SEC
	pollExtRTSA       = 0x08000000 // POLL_EXT_PERIOD_RTSA
	pollExtEnum       = 0x04000000 // POLL_EXT_ENUM
	// AssociationOptions are the extended options the client asks for:
	// numerics each second, real-time sample arrays, enumerations.
	AssociationOptions = pollExtNumerics1s | pollExtRTSA | pollExtEnum
)

// Errors of a message that is not what it should be.
var (
	ErrShort     = errors.New("message shorter than its header")
	ErrNotExport = errors.New("not a data-export message")
)

// appendLI appends a session or presentation length indicator: one byte
// below 255, else 0xFF and two bytes.
func appendLI(dst []byte, n int) []byte {
	if n < 255 {
		return append(dst, byte(n))
	}
	return append(dst, 0xFF, byte(n>>8), byte(n))
}

// appendASN1Len appends a BER definite length.
func appendASN1Len(dst []byte, n int) []byte {
	switch {
	case n < 0x80:
		return append(dst, byte(n))
	case n < 0x100:
		return append(dst, 0x81, byte(n))
	default:
		return append(dst, 0x82, byte(n>>8), byte(n))
	}
}

// The fixed parts of the association request around its user data: the
// session parameters, then the presentation and ACSE layers (BER with
// indefinite lengths) carrying the data-export context's object
// identifiers, down to the user-information tag. They never vary.
var (
	assocSessionData = []byte{0x05, 0x08, 0x13, 0x01, 0x00, 0x16, 0x01, 0x02, 0x80, 0x00, 0x14, 0x02, 0x00, 0x02}
	assocPresHead    = []byte{
		0x31, 0x80, 0xA0, 0x80, 0x80, 0x01, 0x01, 0x00, 0x00, 0xA2, 0x80, 0xA0, 0x03, 0x00, 0x00, 0x01,
		0xA4, 0x80, 0x30, 0x80, 0x02, 0x01, 0x01, 0x06, 0x04, 0x52, 0x01, 0x00, 0x01, 0x30, 0x80, 0x06,
		0x02, 0x51, 0x01, 0x00, 0x00, 0x00, 0x00, 0x30, 0x80, 0x02, 0x01, 0x02, 0x06, 0x0C,
		0x2A, 0x86, 0x48, 0xCE, 0x14, 0x02, 0x01, 0x00, 0x00, 0x00, 0x01, 0x01, // MDSE transfer syntax
		0x30, 0x80, 0x06, 0x0C,
		0x2A, 0x86, 0x48, 0xCE, 0x14, 0x02, 0x01, 0x00, 0x00, 0x00, 0x02, 0x01, // data-export context
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x61, 0x80, 0x30, 0x80, 0x02, 0x01, 0x01, 0xA0, 0x80,
		0x60, 0x80, 0xA1, 0x80, 0x06, 0x0C, // AARQ, application context
		0x2A, 0x86, 0x48, 0xCE, 0x14, 0x02, 0x01, 0x00, 0x00, 0x00, 0x03, 0x01,
		0x00, 0x00, 0xBE, 0x80, 0x28, 0x80, 0x06, 0x0C,
		0x2A, 0x86, 0x48, 0xCE, 0x14, 0x02, 0x01, 0x00, 0x00, 0x00, 0x01, 0x01,
		0x02, 0x01, 0x02, 0x81, // user information (MDSEUserInfoStd) follows
	}
	assocPresTail = make([]byte, 16) // the end-of-contents octets of the indefinite lengths
)

// MDSEUserInfoStd values of a client.
const (
	protocolVersion1   = 0x80000000 // MDDL_VERSION1
	nomenclatureV1     = 0x40000000 // NOMEN_VERSION
	systemTypeClient   = 0x80000000 // SYST_CLIENT
	startupCold        = 0x20000000 // COLD_START
	pollProfileRev0    = 0x80000000 // POLL_PROFILE_REV_0
	pollProfileOpts    = 0x60000000 // P_OPT_DYN_CREATE_OBJECTS | P_OPT_DYN_DELETE_OBJECTS
	profilePollSupport = 0x0001     // NOM_POLL_PROFILE_SUPPORT
)

// AssociationRequest is the client's association request: MDSEUserInfoStd
// with a poll profile (minimum poll period minPoll, receive unit 2500
// bytes, transmit 1000) whose extended options ask for numerics each
// second (AssociationOptions).
func AssociationRequest(minPoll time.Duration) []byte {
	user := make([]byte, 0, 72)
	user = binary.BigEndian.AppendUint32(user, protocolVersion1)
	user = binary.BigEndian.AppendUint32(user, nomenclatureV1)
	user = binary.BigEndian.AppendUint32(user, 0) // functional units
	user = binary.BigEndian.AppendUint32(user, systemTypeClient)
	user = binary.BigEndian.AppendUint32(user, startupCold)
	user = binary.BigEndian.AppendUint32(user, 0) // option list: empty
	// supported profiles: one, the poll profile
	user = binary.BigEndian.AppendUint16(user, 1)
	user = binary.BigEndian.AppendUint16(user, 4+40)
	user = binary.BigEndian.AppendUint16(user, profilePollSupport)
	user = binary.BigEndian.AppendUint16(user, 40)
	user = binary.BigEndian.AppendUint32(user, pollProfileRev0)
	user = binary.BigEndian.AppendUint32(user, RelativeTime(minPoll))
	user = binary.BigEndian.AppendUint32(user, 2500)       // max_mtu_rx
	user = binary.BigEndian.AppendUint32(user, 1000)       // max_mtu_tx
	user = binary.BigEndian.AppendUint32(user, 0xFFFFFFFF) // max_bw_tx
	user = binary.BigEndian.AppendUint32(user, pollProfileOpts)
	// optional packages: the extended poll profile
	user = binary.BigEndian.AppendUint16(user, 1)
	user = binary.BigEndian.AppendUint16(user, 12)
	user = binary.BigEndian.AppendUint16(user, AttrPollProfileExt)
	user = binary.BigEndian.AppendUint16(user, 8)
	user = binary.BigEndian.AppendUint32(user, AssociationOptions)
	user = binary.BigEndian.AppendUint32(user, 0) // extended attributes: none

	pres := append([]byte(nil), assocPresHead...)
	pres = appendASN1Len(pres, len(user))
	pres = append(pres, user...)
	pres = append(pres, assocPresTail...)

	body := append([]byte(nil), assocSessionData...)
	body = append(body, 0xC1)
	body = appendLI(body, len(pres))
	body = append(body, pres...)

	msg := []byte{spduConnect}
	msg = appendLI(msg, len(body))
	return append(msg, body...)
}

// AssociationResult is what the monitor answered an association request.
type AssociationResult struct {
	Accepted bool
	// MinPollPeriod is the monitor's minimum poll period from its poll
	// profile, zero when the answer did not show one.
	MinPollPeriod time.Duration
	// Options are the extended poll options the monitor granted, zero when
	// not shown.
	Options uint32
}

// ParseAssociationResult reads an association result (accept or refuse).
// The user information is found by its leading protocol and nomenclature
// versions rather than by decoding the presentation layer's BER.
func ParseAssociationResult(msg []byte) (AssociationResult, error) {
	if len(msg) < 2 {
		return AssociationResult{}, ErrShort
	}
	switch msg[0] {
	case spduRefuse:
		return AssociationResult{}, nil
	case spduAccept:
	default:
		return AssociationResult{}, fmt.Errorf("not an association result (0x%02X)", msg[0])
	}
	r := AssociationResult{Accepted: true}
	marker := []byte{0x80, 0, 0, 0, 0x40, 0, 0, 0}
	for i := 2; i+len(marker) <= len(msg); i++ {
		if msg[i] != 0x80 || string(msg[i:i+8]) != string(marker) {
			continue
		}
		u := msg[i:]
		// versions 8, functional units 4, system type 4, startup 4, options list
		p := 20
		if len(u) < p+4 {
			break
		}
		p += 4 + int(be16(u[p+2:]))
		if len(u) < p+4 {
			break
		}
		count, size := int(be16(u[p:])), int(be16(u[p+2:]))
		prof := u[p+4:]
		if size < len(prof) {
			prof = prof[:size]
		}
		for range count {
			if len(prof) < 4 {
				break
			}
			id, n := be16(prof), int(be16(prof[2:]))
			if len(prof) < 4+n {
				break
			}
			v := prof[4 : 4+n]
			if id == profilePollSupport && len(v) >= 8 {
				r.MinPollPeriod = time.Duration(be32(v[4:])) * RelativeTick
				// revision, min poll period, mtu rx, mtu tx, bandwidth,
				// options: then the optional packages
				if len(v) >= 24 {
					r.Options = findPollExtOptions(v[24:])
				}
			}
			prof = prof[4+n:]
		}
		break
	}
	return r, nil
}

func findPollExtOptions(b []byte) uint32 {
	if len(b) < 4 {
		return 0
	}
	count, size := int(be16(b)), int(be16(b[2:]))
	b = b[4:]
	if size < len(b) {
		b = b[:size]
	}
	for range count {
		if len(b) < 4 {
			return 0
		}
		id, n := be16(b), int(be16(b[2:]))
		if len(b) < 4+n {
			return 0
		}
		if id == AttrPollProfileExt && n >= 4 {
			return be32(b[4:])
		}
		b = b[4+n:]
	}
	return 0
}

// ReleaseRequest is the client's release of the association.
func ReleaseRequest() []byte {
	return append([]byte{spduFinish, 0x18, 0xC1, 0x16}, releaseBody(0x62)...)
}

// ReleaseResult answers the monitor's release request.
func ReleaseResult() []byte {
	return append([]byte{spduDisconnect, 0x18, 0xC1, 0x16}, releaseBody(0x63)...)
}

// releaseBody is the presentation user data of a release request (RLRQ,
// tag 0x62) or result (RLRE, 0x63) with reason normal.
func releaseBody(tag byte) []byte {
	return []byte{0x61, 0x80, 0x30, 0x80, 0x02, 0x01, 0x01, 0xA0, 0x80, tag, 0x80, 0x80, 0x01, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}
}

// AbortRequest aborts the association (ABRT).
func AbortRequest() []byte {
	return []byte{spduAbort, 0x2E, 0x11, 0x01, 0x03, 0xC1, 0x29, 0xA0, 0x80, 0xA0, 0x80, 0x30, 0x80,
		0x02, 0x01, 0x01, 0x06, 0x02, 0x51, 0x01, 0x00, 0x00, 0x00, 0x00, 0x61, 0x80, 0x30, 0x80,
		0x02, 0x01, 0x01, 0xA0, 0x80, 0x64, 0x80, 0x80, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00}
}

// appendExportHeader appends the data-export session header and the
// remote-operation header with room for their lengths, fixed by
// finishExport.
func appendExportHeader(dst []byte, roType uint16) []byte {
	dst = append(dst, spduDataExport, 0x00, 0x00, byte(dataPContext))
	dst = binary.BigEndian.AppendUint16(dst, roType)
	return append(dst, 0, 0)
}

// finishExport writes the ROapdus length (everything after it) and the
// command's length (everything after the command header at cmdAt).
func finishExport(msg []byte, cmdAt int) []byte {
	binary.BigEndian.PutUint16(msg[6:], uint16(len(msg)-8))
	binary.BigEndian.PutUint16(msg[cmdAt+4:], uint16(len(msg)-cmdAt-6))
	return msg
}

// ObjectRef names a managed object: its class and instance (context,
// handle).
type ObjectRef struct {
	Class, Context, Handle uint16
}

func appendObject(dst []byte, o ObjectRef) []byte {
	dst = binary.BigEndian.AppendUint16(dst, o.Class)
	dst = binary.BigEndian.AppendUint16(dst, o.Context)
	return binary.BigEndian.AppendUint16(dst, o.Handle)
}

// MDSCreateResult is the client's result of the monitor's MDS Create
// Event Report: RORS, confirmed event report, the MDS object, the time of
// the event and the event type, no attributes.
func MDSCreateResult(invokeID uint16, mds ObjectRef, eventTime uint32) []byte {
	msg := appendExportHeader(make([]byte, 0, 28), roResult)
	cmdAt := len(msg)
	msg = binary.BigEndian.AppendUint16(msg, invokeID)
	msg = binary.BigEndian.AppendUint16(msg, cmdConfirmedEventReport)
	msg = append(msg, 0, 0)
	msg = appendObject(msg, mds)
	msg = binary.BigEndian.AppendUint32(msg, eventTime)
	msg = binary.BigEndian.AppendUint16(msg, EventMDSCreate)
	msg = append(msg, 0, 0)
	return finishExport(msg, cmdAt)
}

// PollRequest asks once for the attributes (group 0: all) of every object
// of class objClass (ClassNumeric, ClassMDS).
func PollRequest(invokeID, pollNumber, objClass uint16) []byte {
	return pollRequest(invokeID, pollNumber, objClass, ActionPoll, 0)
}

// ExtendedPollRequest asks for the objects of class objClass each second
// for period (TIME_PD_POLL), as linked results.
func ExtendedPollRequest(invokeID, pollNumber, objClass uint16, period time.Duration) []byte {
	return pollRequest(invokeID, pollNumber, objClass, ActionPollExtended, period)
}

func pollRequest(invokeID, pollNumber, objClass, action uint16, period time.Duration) []byte {
	msg := appendExportHeader(make([]byte, 0, 48), roInvoke)
	cmdAt := len(msg)
	msg = binary.BigEndian.AppendUint16(msg, invokeID)
	msg = binary.BigEndian.AppendUint16(msg, cmdConfirmedAction)
	msg = append(msg, 0, 0)
	msg = appendObject(msg, ObjectRef{Class: ClassMDS})
	msg = binary.BigEndian.AppendUint32(msg, 0) // scope
	msg = binary.BigEndian.AppendUint16(msg, action)
	argAt := len(msg)
	msg = append(msg, 0, 0)
	msg = binary.BigEndian.AppendUint16(msg, pollNumber)
	msg = binary.BigEndian.AppendUint16(msg, partitionObject)
	msg = binary.BigEndian.AppendUint16(msg, objClass)
	msg = binary.BigEndian.AppendUint16(msg, 0) // attribute group: all
	if action == ActionPollExtended {
		if period > 0 {
			msg = binary.BigEndian.AppendUint16(msg, 1)
			msg = binary.BigEndian.AppendUint16(msg, 8)
			msg = binary.BigEndian.AppendUint16(msg, AttrTimePdPoll)
			msg = binary.BigEndian.AppendUint16(msg, 4)
			msg = binary.BigEndian.AppendUint32(msg, RelativeTime(period))
		} else {
			msg = append(msg, 0, 0, 0, 0)
		}
	}
	binary.BigEndian.PutUint16(msg[argAt:], uint16(len(msg)-argAt-2))
	return finishExport(msg, cmdAt)
}

// Kind is what a message is at the session layer.
type Kind int

// Kinds of message.
const (
	KindUnknown Kind = iota
	KindData
	KindAssociationRequest
	KindAccept
	KindRefuse
	KindReleaseRequest
	KindReleaseResult
	KindAbort
)

func (k Kind) String() string {
	switch k {
	case KindData:
		return "data"
	case KindAssociationRequest:
		return "association request"
	case KindAccept:
		return "association accepted"
	case KindRefuse:
		return "association refused"
	case KindReleaseRequest:
		return "release request"
	case KindReleaseResult:
		return "release result"
	case KindAbort:
		return "abort"
	}
	return "unknown"
}

// KindOf reads a message's session identifier.
func KindOf(msg []byte) Kind {
	if len(msg) == 0 {
		return KindUnknown
	}
	switch msg[0] {
	case spduDataExport:
		if len(msg) >= 2 && msg[1] == 0x00 {
			return KindData
		}
	case spduConnect:
		return KindAssociationRequest
	case spduAccept:
		return KindAccept
	case spduRefuse:
		return KindRefuse
	case spduFinish:
		return KindReleaseRequest
	case spduDisconnect:
		return KindReleaseResult
	case spduAbort:
		return KindAbort
	}
	return KindUnknown
}

// Operation is the remote-operation header of a data-export message.
type Operation struct {
	ROType uint16
	// LinkState and LinkCount are a linked result's (RORLS) place in its
	// series.
	LinkState, LinkCount byte
	InvokeID             uint16
	// Command is the CMIP command (cmdConfirmedAction…); for an error
	// (ROER) it is the error value.
	Command uint16
	// Args is what follows, cut to the command's length.
	Args []byte
	// Short is set when a length of the headers claims more than the
	// message holds; Args is then what is there.
	Short bool
}

// ParseOperation reads the headers of a data-export message.
func ParseOperation(msg []byte) (Operation, error) {
	if KindOf(msg) != KindData {
		return Operation{}, ErrNotExport
	}
	if len(msg) < 8 {
		return Operation{}, ErrShort
	}
	op := Operation{ROType: be16(msg[4:])}
	if int(be16(msg[6:])) > len(msg)-8 {
		op.Short = true
	}
	p := 8
	if op.ROType == roLinkedResult {
		if len(msg) < p+2 {
			return op, ErrShort
		}
		op.LinkState, op.LinkCount = msg[p], msg[p+1]
		p += 2
	}
	if len(msg) < p+6 {
		return op, ErrShort
	}
	op.InvokeID, op.Command = be16(msg[p:]), be16(msg[p+2:])
	n := int(be16(msg[p+4:]))
	op.Args = msg[p+6:]
	if n > len(op.Args) {
		op.Short = true
	} else {
		op.Args = op.Args[:n]
	}
	return op, nil
}
