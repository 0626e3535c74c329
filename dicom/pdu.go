package dicom

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// PDU types (PS3.8 9.3.1).
const (
	pduAssociateRQ = 0x01
	pduAssociateAC = 0x02
	pduAssociateRJ = 0x03
	pduPData       = 0x04
	pduReleaseRQ   = 0x05
	pduReleaseRP   = 0x06
	pduAbort       = 0x07
)

// maxAssociatePDU bounds an A-ASSOCIATE-RQ/AC. 128 presentation contexts
// with a dozen transfer syntaxes each stay well below it.
const maxAssociatePDU = 64 << 10

// Abort sources and reasons (PS3.8 9.3.8).
const (
	abortSourceUser     = 0
	abortSourceProvider = 2

	abortReasonNotSpecified       = 0
	abortUnrecognizedPDU          = 1
	abortUnexpectedPDU            = 2
	abortUnrecognizedPDUParam     = 4
	abortUnexpectedPDUParam       = 5
	abortInvalidPDUParameterValue = 6
)

// Rejection results, sources and reasons (PS3.8 9.3.4).
const (
	rejectPermanent = 1
	rejectTransient = 2

	rejectSourceUser         = 1
	rejectSourceACSE         = 2
	rejectSourcePresentation = 3

	rejectNoReason                   = 1
	rejectAppContextUnsupported      = 2
	rejectCallingAENotRecognized     = 3
	rejectCalledAENotRecognized      = 7
	rejectProtocolVersionUnsupported = 2 // source ACSE
	rejectLocalLimitExceeded         = 2 // source presentation
)

// protocolError is a violation of PS3.8 by the peer; the association is
// aborted with an A-ABORT carrying reason.
type protocolError struct {
	reason byte
	msg    string
}

func (e *protocolError) Error() string { return e.msg }

func violation(reason byte, format string, args ...any) error {
	return &protocolError{reason: reason, msg: fmt.Sprintf(format, args...)}
}

// AbortError reports that the peer aborted the association with an A-ABORT
// PDU (PS3.8 9.3.8).
type AbortError struct {
	Source byte // 0 service-user, 2 service-provider
	Reason byte // meaningful when Source is 2
}

func (e *AbortError) Error() string {
	if e.Source == abortSourceProvider {
		return fmt.Sprintf("association aborted by peer (service-provider, reason %d: %s)", e.Reason, abortReasonText(e.Reason))
	}
	return fmt.Sprintf("association aborted by peer (source %d, reason %d)", e.Source, e.Reason)
}

func abortReasonText(r byte) string {
	switch r {
	case abortReasonNotSpecified:
		return "not specified"
	case abortUnrecognizedPDU:
		return "unrecognized PDU"
	case abortUnexpectedPDU:
		return "unexpected PDU"
	case abortUnrecognizedPDUParam:
		return "unrecognized PDU parameter"
	case abortUnexpectedPDUParam:
		return "unexpected PDU parameter"
	case abortInvalidPDUParameterValue:
		return "invalid PDU parameter value"
	}
	return "unknown"
}

// RejectError reports an A-ASSOCIATE-RJ (PS3.8 9.3.4).
type RejectError struct {
	Result byte // 1 rejected-permanent, 2 rejected-transient
	Source byte // 1 service-user, 2 service-provider (ACSE), 3 service-provider (presentation)
	Reason byte
}

func (e *RejectError) Error() string {
	kind := "permanently"
	if e.Result == rejectTransient {
		kind = "transiently"
	}
	return fmt.Sprintf("association %s rejected: %s", kind, rejectReasonText(e.Source, e.Reason))
}

// Transient reports whether trying again later may succeed.
func (e *RejectError) Transient() bool { return e.Result == rejectTransient }

func rejectReasonText(source, reason byte) string {
	switch source {
	case rejectSourceUser:
		switch reason {
		case 1:
			return "no reason given (service-user)"
		case 2:
			return "application context name not supported"
		case 3:
			return "calling AE title not recognized"
		case 7:
			return "called AE title not recognized"
		}
	case rejectSourceACSE:
		switch reason {
		case 1:
			return "no reason given (ACSE)"
		case 2:
			return "protocol version not supported"
		}
	case rejectSourcePresentation:
		switch reason {
		case 1:
			return "temporary congestion"
		case 2:
			return "local limit exceeded"
		}
	}
	return fmt.Sprintf("source %d, reason %d", source, reason)
}

// appendFixed4 appends a PDU whose variable part is 4 bytes: A-ASSOCIATE-RJ,
// A-RELEASE-RQ/RP and A-ABORT.
func appendFixed4(b []byte, typ, b1, b2, b3 byte) []byte {
	return append(b, typ, 0, 0, 0, 0, 4, 0, b1, b2, b3)
}

func rejectPDU(result, source, reason byte) []byte {
	return appendFixed4(nil, pduAssociateRJ, result, source, reason)
}

func abortPDU(source, reason byte) []byte {
	return appendFixed4(nil, pduAbort, 0, source, reason)
}

var (
	releaseRQPDU = appendFixed4(nil, pduReleaseRQ, 0, 0, 0)
	releaseRPPDU = appendFixed4(nil, pduReleaseRP, 0, 0, 0)
)

// pduHeader is the fixed 6-byte start of every PDU.
type pduHeader struct {
	Type   byte
	Length uint32
}

// readPDUHeader reads a PDU header and checks its length against what its
// type allows before anything is allocated: maxPData bounds P-DATA-TF
// (0: unbounded, it is streamed anyway).
func readPDUHeader(r io.Reader, hdr *[6]byte, maxPData uint32) (pduHeader, error) {
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return pduHeader{}, err
	}
	h := pduHeader{Type: hdr[0], Length: binary.BigEndian.Uint32(hdr[2:])}
	switch h.Type {
	case pduAssociateRQ, pduAssociateAC:
		if h.Length < 68 || h.Length > maxAssociatePDU {
			return h, violation(abortInvalidPDUParameterValue, "PDU type 0x%02x of length %d (allowed 68..%d)", h.Type, h.Length, maxAssociatePDU)
		}
	case pduAssociateRJ, pduReleaseRQ, pduReleaseRP, pduAbort:
		if h.Length != 4 {
			return h, violation(abortInvalidPDUParameterValue, "PDU type 0x%02x of length %d, want 4", h.Type, h.Length)
		}
	case pduPData:
		// Some peers apply the negotiated maximum to the PDV rather than
		// to the PDU's variable field; tolerate the 6 bytes that makes.
		if h.Length < 6 || (maxPData != 0 && h.Length > maxPData+6) {
			return h, violation(abortInvalidPDUParameterValue, "P-DATA-TF of length %d exceeds the maximum %d we advertised", h.Length, maxPData)
		}
	default:
		return h, violation(abortUnrecognizedPDU, "unrecognized PDU type 0x%02x", h.Type)
	}
	return h, nil
}

// readPDU reads one whole PDU that is not a P-DATA-TF; the body is
// allocated only after its length has been checked.
func readPDU(r io.Reader, maxPData uint32) (pduHeader, []byte, error) {
	var hdr [6]byte
	h, err := readPDUHeader(r, &hdr, maxPData)
	if err != nil {
		return h, nil, err
	}
	if h.Type == pduPData {
		return h, nil, violation(abortUnexpectedPDU, "P-DATA-TF before association")
	}
	body := make([]byte, h.Length)
	if _, err := io.ReadFull(r, body); err != nil {
		return h, nil, truncated(err)
	}
	return h, body, nil
}

func truncated(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// pdvReader streams the presentation data values of consecutive P-DATA-TF
// PDUs. It never holds a PDU in memory: the fragment bodies are read
// through the bufio.Reader as the caller consumes them.
type pdvReader struct {
	br       *bufio.Reader
	maxPData uint32
	hdr      [6]byte

	pduLeft  uint32 // bytes of the current P-DATA-TF not yet consumed
	fragLeft uint32 // bytes of the current PDV's data not yet consumed
	pcid     byte   // presentation context of the current PDV
	mch      byte   // message control header of the current PDV

	// beforePDU is called before each PDU header is read (to set deadlines).
	beforePDU func()
}

// Message control header bits (PS3.8 E.2).
const (
	mchCommand = 0x01
	mchLast    = 0x02
)

// otherPDU is returned by nextPDV when a PDU other than P-DATA-TF arrives;
// the caller decides whether it was expected.
type otherPDU struct {
	Type byte
	Body [4]byte
}

func (o *otherPDU) Error() string { return fmt.Sprintf("PDU type 0x%02x", o.Type) }

// nextPDV advances to the header of the next PDV, reading a new PDU header
// when the current P-DATA-TF is exhausted. The previous PDV's data must have
// been consumed. A non-P-DATA PDU ends up as an *otherPDU error (A-ASSOCIATE
// PDUs at this point are protocol violations).
func (p *pdvReader) nextPDV() error {
	if p.fragLeft != 0 {
		return errors.New("dicom: internal error: PDV not consumed")
	}
	if p.pduLeft == 0 {
		if p.beforePDU != nil {
			p.beforePDU()
		}
		h, err := readPDUHeader(p.br, &p.hdr, p.maxPData)
		if err != nil {
			return err
		}
		switch h.Type {
		case pduPData:
			p.pduLeft = h.Length
		case pduAssociateRQ, pduAssociateAC:
			return violation(abortUnexpectedPDU, "unexpected A-ASSOCIATE PDU (type 0x%02x) in an established association", h.Type)
		default:
			o := &otherPDU{Type: h.Type}
			if _, err := io.ReadFull(p.br, o.Body[:]); err != nil {
				return truncated(err)
			}
			return o
		}
	}
	if p.pduLeft < 6 {
		return violation(abortInvalidPDUParameterValue, "P-DATA-TF has %d bytes left, too few for a PDV", p.pduLeft)
	}
	var ph [6]byte
	if _, err := io.ReadFull(p.br, ph[:]); err != nil {
		return truncated(err)
	}
	n := binary.BigEndian.Uint32(ph[:])
	if n < 2 || n > p.pduLeft-4 {
		return violation(abortInvalidPDUParameterValue, "PDV item length %d with %d bytes left in the P-DATA-TF", n, p.pduLeft-4)
	}
	p.pcid, p.mch = ph[4], ph[5]
	if p.pcid%2 == 0 {
		return violation(abortInvalidPDUParameterValue, "PDV for even presentation context ID %d", p.pcid)
	}
	if p.mch&^(mchCommand|mchLast) != 0 {
		return violation(abortInvalidPDUParameterValue, "PDV message control header 0x%02x has reserved bits set", p.mch)
	}
	p.pduLeft -= 4 + n
	p.fragLeft = n - 2
	return nil
}

// read reads from the current PDV's data.
func (p *pdvReader) read(b []byte) (int, error) {
	if uint32(len(b)) > p.fragLeft {
		b = b[:p.fragLeft]
	}
	n, err := p.br.Read(b)
	p.fragLeft -= uint32(n)
	if err != nil {
		return n, truncated(err)
	}
	return n, nil
}

// writeTo writes the rest of the current PDV's data to w straight from the
// read buffer, without copying it.
func (p *pdvReader) writeTo(w io.Writer) (int64, error) {
	var total int64
	for p.fragLeft > 0 {
		n := min(int(p.fragLeft), p.br.Size())
		if b := p.br.Buffered(); b > 0 {
			n = min(n, b)
		}
		buf, err := p.br.Peek(n)
		if len(buf) == 0 && err != nil {
			return total, truncated(err)
		}
		m, werr := w.Write(buf)
		p.br.Discard(m)
		p.fragLeft -= uint32(m)
		total += int64(m)
		if werr != nil {
			return total, werr
		}
	}
	return total, nil
}

// appendPDataHeader appends the headers of a P-DATA-TF holding one PDV of
// dataLen bytes.
func appendPDataHeader(b []byte, pcid, mch byte, dataLen int) []byte {
	b = append(b, pduPData, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(dataLen+6))
	b = binary.BigEndian.AppendUint32(b, uint32(dataLen+2))
	return append(b, pcid, mch)
}
