package hl7

import (
	"strconv"
	"time"
)

// Outcome is what the receiver did with a message, which its
// acknowledgement reports.
type Outcome uint8

const (
	// Accepted: the message is stored durably (AA, CA). Never report it
	// before the commit.
	Accepted Outcome = iota
	// Failed: the message's content could not be taken (it does not parse,
	// a required field is missing or wrong): AE, CE. Sending it again
	// unchanged will fail again.
	Failed
	// Rejected: the receiver does not take this message type, event,
	// version or processing id: AR, CR.
	Rejected
	// Busy: the message is fine but could not be stored now (the outbox is
	// full, the disk failed): AE, CE with the error code RetryCode in
	// ERR-5, so that the sender sends it again later. Nothing was kept.
	Busy
)

// HL7 table 0357 message error condition codes, for ERR-3 (ERR-1.4 before
// v2.5).
const (
	ErrSegmentSequence         = 100
	ErrRequiredFieldMissing    = 101
	ErrDataType                = 102
	ErrTableValueNotFound      = 103
	ErrUnsupportedMessageType  = 200
	ErrUnsupportedEvent        = 201
	ErrUnsupportedProcessingID = 202
	ErrUnsupportedVersion      = 203
	ErrUnknownKey              = 204
	ErrDuplicateKey            = 205
	ErrRecordLocked            = 206
	ErrInternal                = 207
)

var errorNames = map[int]string{
	ErrSegmentSequence:         "Segment sequence error",
	ErrRequiredFieldMissing:    "Required field missing",
	ErrDataType:                "Data type error",
	ErrTableValueNotFound:      "Table value not found",
	ErrUnsupportedMessageType:  "Unsupported message type",
	ErrUnsupportedEvent:        "Unsupported event code",
	ErrUnsupportedProcessingID: "Unsupported processing id",
	ErrUnsupportedVersion:      "Unsupported version id",
	ErrUnknownKey:              "Unknown key identifier",
	ErrDuplicateKey:            "Duplicate key identifier",
	ErrRecordLocked:            "Application record locked",
	ErrInternal:                "Application internal error",
}

// RetryCode is the application error code (ERR-5, HL7 table 0533, which
// is the user's to define) of a Busy acknowledgement: the message was not
// stored, send it again later.
const RetryCode = "RETRY"

// Reply is what an acknowledgement says about a message.
type Reply struct {
	Outcome Outcome
	// Code is the HL7 table 0357 code for the ERR segment; 0 takes the
	// outcome's: ErrDataType for Failed, ErrUnsupportedMessageType for
	// Rejected, ErrInternal for Busy.
	Code int
	// Where is the segment and field in error, when the error is about one.
	Where Location
	// Text is a short explanation for MSA-3 and ERR-8. It goes to the
	// sender and to its logs: never patient data.
	Text string
}

// AckOptions are the receiver's part of an acknowledgement.
type AckOptions struct {
	// ControlID is the acknowledgement's own MSH-10; unique per message
	// sent (a counter, a UUID). Empty: derived from Time.
	ControlID string
	// Time is the acknowledgement's MSH-7; zero: now.
	Time time.Time
	// Application and Facility name the receiver in MSH-3 and MSH-4 when
	// the message's MSH-5 and MSH-6 are empty; otherwise those are mirrored.
	Application, Facility string
}

// Mode is how a message asks to be acknowledged.
type Mode struct {
	// Enhanced: MSH-15 or MSH-16 is valued. Otherwise original mode: one
	// application acknowledgement (AA, AE, AR) for every message.
	Enhanced bool
	// Accept and Application are the conditions (HL7 table 0155: AL, NE,
	// ER, SU) under which an enhanced-mode sender wants an accept
	// acknowledgement (CA, CE, CR) and an application acknowledgement
	// (AA, AE, AR). An empty MSH-15 is taken as AL, an empty MSH-16 as NE,
	// a value outside the table as AL.
	Accept, Application string
}

// ModeOf reads MSH-15 and MSH-16 of m.
func ModeOf(m *Message) Mode {
	if m == nil {
		return Mode{}
	}
	acc, app := m.Field("MSH", 1, 15).Text(), m.Field("MSH", 1, 16).Text()
	if acc == "" && app == "" {
		return Mode{}
	}
	if acc == "" {
		acc = "AL"
	}
	if app == "" {
		app = "NE"
	}
	return Mode{Enhanced: true, Accept: acc, Application: app}
}

// wants reports whether condition cond asks for an acknowledgement of
// outcome o.
func wants(cond string, o Outcome) bool {
	switch cond {
	case "NE":
		return false
	case "ER":
		return o != Accepted
	case "SU":
		return o == Accepted
	}
	return true
}

// Acks are the acknowledgements to send for m, in order, as messages to
// frame (WriteFrame); none when the sender asked for none.
//
// In original mode it is one application acknowledgement: AA, AE, AR.
// In enhanced mode (ModeOf) it is the accept acknowledgement (CA, CE, CR)
// when MSH-15 asks for it, and the application acknowledgement (AA, AE,
// AR) when MSH-16 asks for it. The receiver's processing is the commit, so
// both are known at once: when both are asked for an accepted message, both
// are returned (CA, then AA); for a message not accepted only the first
// asked for is, since one error report is enough. A sender with MSH-16 NE
// (Mindray's AL|NE) gets only CA; one with MSH-15 NE (GE's NE|AL) only AA.
//
// m may be nil for a message whose MSH could not be read: the
// acknowledgement is then written in "|^~\&" with an empty MSA-2, so the
// sender at least learns that its message was refused.
func Acks(m *Message, r Reply, o AckOptions) [][]byte {
	mode := ModeOf(m)
	if !mode.Enhanced {
		return [][]byte{ack(m, r, o, false, mode)}
	}
	var out [][]byte
	if wants(mode.Accept, r.Outcome) {
		out = append(out, ack(m, r, o, true, mode))
	}
	if wants(mode.Application, r.Outcome) && (r.Outcome == Accepted || len(out) == 0) {
		out = append(out, ack(m, r, o, false, mode))
	}
	return out
}

// Code is the MSA-1 acknowledgement code for an outcome: accept is true
// for the accept acknowledgement of enhanced mode.
func (o Outcome) Code(accept bool) string {
	codes := [...]string{Accepted: "AA", Failed: "AE", Rejected: "AR", Busy: "AE"}
	if accept {
		codes = [...]string{Accepted: "CA", Failed: "CE", Rejected: "CR", Busy: "CE"}
	}
	if int(o) < len(codes) {
		return codes[o]
	}
	return codes[Failed]
}

func ack(m *Message, r Reply, o AckOptions, accept bool, mode Mode) []byte {
	d := DefaultDelimiters
	var msh Segment
	if m != nil {
		d = m.Delimiters()
		msh = m.Segment(0)
	}
	b := NewBuilder(d)
	t := o.Time
	if t.IsZero() {
		t = time.Now()
	}
	id := o.ControlID
	if id == "" {
		id = t.UTC().Format("20060102150405.000000")
	}
	app, fac := msh.Field(5).Raw(), msh.Field(6).Raw()
	if app == "" && fac == "" {
		app, fac = b.Text(o.Application), b.Text(o.Facility)
	}
	version := msh.Field(12).Raw()
	major, minor := versionOf(msh.Field(12).Comp(1).Text())
	typ := "ACK"
	if ev := msh.Field(9).Comp(2).Raw(); ev != "" {
		typ = b.Comps("ACK", ev)
		if major > 2 || major == 2 && minor >= 4 || msh.Field(12).Comp(1).Text() == "2.3.1" {
			typ = b.Comps("ACK", ev, "ACK")
		}
	}
	var ackModes [2]string
	if mode.Enhanced {
		ackModes = [2]string{"NE", "NE"}
	}
	b.MSH(app, fac, msh.Field(3).Raw(), msh.Field(4).Raw(),
		t.Format("20060102150405-0700"), "", typ, b.Text(id),
		msh.Field(11).Raw(), version, "", "", ackModes[0], ackModes[1], "", msh.Field(18).Raw())

	code := r.Outcome.Code(accept)
	if r.Outcome == Busy && r.Text == "" {
		r.Text = "Not stored now: send again"
	}
	text := b.Text(r.Text)
	if r.Outcome == Accepted {
		b.Segment("MSA", code, msh.Field(10).Raw())
		return b.Bytes()
	}
	ec := r.Code
	if ec == 0 {
		ec = [...]int{Failed: ErrDataType, Rejected: ErrUnsupportedMessageType, Busy: ErrInternal}[min(r.Outcome, Busy)]
	}
	cwe := b.Comps(strconv.Itoa(ec), errorNames[ec], "HL70357")
	w := r.Where
	num := func(n int) string {
		if n <= 0 {
			return ""
		}
		return strconv.Itoa(n)
	}
	if major > 2 || major == 2 && minor >= 5 {
		b.Segment("MSA", code, msh.Field(10).Raw(), text)
		erl := ""
		if w.Segment != "" {
			erl = b.Comps(w.Segment, num(max(w.Seq, 1)), num(w.Field), num(w.Rep), num(w.Comp), num(w.Sub))
		}
		appCode := ""
		if r.Outcome == Busy {
			appCode = b.Comps(RetryCode, "Not stored now: send again", "HL70533")
		}
		b.Segment("ERR", "", erl, cwe, "E", appCode, "", "", text)
		return b.Bytes()
	}
	// Before v2.5: MSA-6 error condition, ERR-1 segment^seq^field^code.
	b.Segment("MSA", code, msh.Field(10).Raw(), text, "", "", cwe)
	eld := b.Comps(w.Segment, num(w.Seq), num(w.Field), b.Subs(strconv.Itoa(ec), errorNames[ec], "HL70357"))
	b.Segment("ERR", eld)
	return b.Bytes()
}

// versionOf reads "2.5.1" as 2, 5; 0, 0 when unreadable.
func versionOf(v string) (major, minor int) {
	dot := 0
	for dot < len(v) && v[dot] != '.' {
		dot++
	}
	major, err := strconv.Atoi(v[:dot])
	if err != nil || dot == len(v) {
		return 0, 0
	}
	rest := v[dot+1:]
	end := 0
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	minor, _ = strconv.Atoi(rest[:end])
	return major, minor
}
