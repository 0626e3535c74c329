package dicom

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"
)

// DefaultMaxPDULength is the maximum P-DATA-TF length wardgate advertises
// when none is configured.
const DefaultMaxPDULength = 256 << 10

// readBufferSize is the size of the one read buffer each association has.
const readBufferSize = 64 << 10

// Timeouts bound how long an association waits on its peer. A zero field
// takes its default.
type Timeouts struct {
	// ARTIM bounds the wait for the A-ASSOCIATE-AC/RJ after a request is
	// sent, and for the peer to close the connection after an
	// A-ASSOCIATE-RJ, A-RELEASE-RP or A-ABORT (PS3.8 9.1.5). Default 30 s.
	ARTIM time.Duration
	// Request bounds the wait for an A-ASSOCIATE-RQ after a connection
	// opens (the ARTIM of PS3.8 9.1.5 for that state, shorter: a modality
	// asks at once, and a connection that does not is only holding a
	// socket). Default 10 s, never more than ARTIM.
	Request time.Duration
	// Read bounds the arrival of one whole PDU once it has started, and
	// every write. A peer trickling bytes is cut off by it. Default 30 s.
	Read time.Duration
	// Idle bounds the wait for the next DIMSE message, and the wait for a
	// response (which a peer may send only after storing a large instance).
	// Default 5 min.
	Idle time.Duration
}

func (t Timeouts) withDefaults() Timeouts {
	if t.ARTIM <= 0 {
		t.ARTIM = 30 * time.Second
	}
	if t.Request <= 0 {
		t.Request = 10 * time.Second
	}
	t.Request = min(t.Request, t.ARTIM)
	if t.Read <= 0 {
		t.Read = 30 * time.Second
	}
	if t.Idle <= 0 {
		t.Idle = 5 * time.Minute
	}
	return t
}

// acceptedContext is a presentation context both sides agreed on.
type acceptedContext struct {
	AbstractSyntax string
	TransferSyntax string
}

// assoc is the established part of an association that requestor and
// acceptor share: PDU and PDV reading and writing under the negotiated
// limits and timeouts. It is used by one goroutine at a time, except that
// nc may be closed from another one to break it.
type assoc struct {
	nc       net.Conn
	br       *bufio.Reader
	pdv      pdvReader
	t        Timeouts
	ourMax   uint32 // what we advertised (never 0)
	peerMax  uint32 // what the peer advertised (0: unlimited)
	contexts map[byte]acceptedContext
	idle     bool // the next PDU header read is the start of a message
	// accepted: the A-ASSOCIATE-AC went out (until then the connection
	// counts against its address, and Shutdown closes it at once).
	accepted atomic.Bool
}

func newAssoc(nc net.Conn, t Timeouts, ourMax uint32) *assoc {
	a := &assoc{
		nc:       nc,
		br:       bufio.NewReaderSize(nc, readBufferSize),
		t:        t.withDefaults(),
		ourMax:   ourMax,
		contexts: map[byte]acceptedContext{},
	}
	a.pdv = pdvReader{br: a.br, maxPData: ourMax, beforePDU: a.setPDUDeadline}
	return a
}

// setPDUDeadline gives the next PDU Idle to start when a new message is
// awaited, and Read otherwise. The deadline covers the whole PDU, so a peer
// that sends a byte now and then cannot hold the association.
func (a *assoc) setPDUDeadline() {
	d := a.t.Read
	if a.idle {
		d = a.t.Idle
		a.idle = false
	}
	a.nc.SetReadDeadline(time.Now().Add(d))
}

// write sends b in one write, so that a PDU never waits on Nagle's
// algorithm or a delayed ACK at the peer.
func (a *assoc) write(b []byte) error {
	a.nc.SetWriteDeadline(time.Now().Add(a.t.Read))
	_, err := a.nc.Write(b)
	return err
}

// maxFragment is the largest PDV data we may put in one P-DATA-TF for the
// peer: its maximum PDU length less the PDV item header (4 + 2 bytes).
func (a *assoc) maxFragment() int {
	m := a.peerMax
	if m == 0 || m > DefaultMaxPDULength*4 {
		// Unlimited, or more than is useful: fragments this big already
		// amortise the headers.
		m = DefaultMaxPDULength * 4
	}
	if m < 64 {
		// A peer advertising less cannot carry a command set anyway.
		m = 64
	}
	// Even, because DCMTK refuses odd fragment lengths.
	return int(m-6) &^ 1
}

// readCommand reads the next command set, assembled from its fragments.
// It waits up to Idle for the message to start. A PDU other than P-DATA-TF
// comes back as an *otherPDU, *AbortError or protocol error.
func (a *assoc) readCommand() (byte, *command, error) {
	a.idle = a.pdv.pduLeft == 0
	if !a.idle {
		// The message starts inside a PDU whose deadline was set before
		// the previous message was handled (a Commit may have taken long).
		a.nc.SetReadDeadline(time.Now().Add(a.t.Read))
	}
	var buf []byte
	var pcid byte
	for first := true; ; first = false {
		if err := a.pdv.nextPDV(); err != nil {
			if !first {
				return 0, nil, a.midMessage(err)
			}
			return 0, nil, a.peerPDU(err)
		}
		if a.pdv.mch&mchCommand == 0 {
			return 0, nil, violation(abortUnexpectedPDUParam, "data set fragment where a command was expected")
		}
		if first {
			pcid = a.pdv.pcid
			if _, ok := a.contexts[pcid]; !ok {
				return 0, nil, violation(abortInvalidPDUParameterValue, "command on presentation context %d, which was not accepted", pcid)
			}
		} else if a.pdv.pcid != pcid {
			return 0, nil, violation(abortInvalidPDUParameterValue, "command fragments on presentation contexts %d and %d", pcid, a.pdv.pcid)
		}
		if len(buf)+int(a.pdv.fragLeft) > maxCommandSet {
			return 0, nil, violation(abortInvalidPDUParameterValue, "command set larger than %d bytes", maxCommandSet)
		}
		start := len(buf)
		buf = append(buf, make([]byte, a.pdv.fragLeft)...)
		if _, err := io.ReadFull(readerFunc(a.pdv.read), buf[start:]); err != nil {
			return 0, nil, err
		}
		if a.pdv.mch&mchLast != 0 {
			break
		}
	}
	cmd, err := decodeCommand(buf)
	if err != nil {
		return 0, nil, violation(abortInvalidPDUParameterValue, "%v", err)
	}
	return pcid, cmd, nil
}

// peerPDU turns an A-ABORT into an *AbortError and leaves other PDUs (and
// errors) to the caller.
func (a *assoc) peerPDU(err error) error {
	var o *otherPDU
	if errors.As(err, &o) && o.Type == pduAbort {
		return &AbortError{Source: o.Body[2], Reason: o.Body[3]}
	}
	return err
}

// midMessage classifies an error met inside a DIMSE message, where any PDU
// but P-DATA-TF and A-ABORT is a violation.
func (a *assoc) midMessage(err error) error {
	if err == io.EOF {
		// The connection ended, not the message: never mistake this
		// for the end of a data set.
		return io.ErrUnexpectedEOF
	}
	err = a.peerPDU(err)
	var o *otherPDU
	if errors.As(err, &o) {
		return violation(abortUnexpectedPDU, "PDU type 0x%02x inside a DIMSE message", o.Type)
	}
	return err
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(b []byte) (int, error) { return f(b) }

// dataSetReader streams the data set that follows a command, fragment by
// fragment, checking each fragment's presentation context and type.
type dataSetReader struct {
	a    *assoc
	pcid byte
	last bool // the current fragment is the last one
	err  error
	n    int64
}

func (a *assoc) dataSet(pcid byte) *dataSetReader { return &dataSetReader{a: a, pcid: pcid} }

// ensure positions the reader at unread fragment data, or returns io.EOF
// after the last fragment.
func (d *dataSetReader) ensure() error {
	if d.err != nil {
		return d.err
	}
	p := &d.a.pdv
	for p.fragLeft == 0 {
		if d.last {
			d.err = io.EOF
			return d.err
		}
		if err := p.nextPDV(); err != nil {
			d.err = d.a.midMessage(err)
			return d.err
		}
		switch {
		case p.mch&mchCommand != 0:
			d.err = violation(abortUnexpectedPDUParam, "command fragment inside a data set")
		case p.pcid != d.pcid:
			d.err = violation(abortInvalidPDUParameterValue, "data set fragment on presentation context %d after a command on %d", p.pcid, d.pcid)
		}
		if d.err != nil {
			return d.err
		}
		d.last = p.mch&mchLast != 0
	}
	return nil
}

func (d *dataSetReader) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if err := d.ensure(); err != nil {
		return 0, err
	}
	n, err := d.a.pdv.read(b)
	d.n += int64(n)
	if err != nil {
		d.err = err
	}
	return n, err
}

// WriteTo lets io.Copy move fragment data from the read buffer to w without
// an intermediate copy.
func (d *dataSetReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if err := d.ensure(); err == io.EOF {
			return total, nil
		} else if err != nil {
			return total, err
		}
		n, err := d.a.pdv.writeTo(w)
		total += n
		d.n += n
		if err != nil {
			d.err = err
			return total, err
		}
	}
}

// sendCommand sends a command set, fragmented to the peer's maximum, as
// consecutive P-DATA-TF PDUs in one write.
func (a *assoc) sendCommand(pcid byte, c *command) error {
	enc := encodeCommand(c)
	max := a.maxFragment()
	buf := make([]byte, 0, len(enc)+12*(len(enc)/max+1))
	for len(enc) > 0 {
		n := min(len(enc), max)
		mch := byte(mchCommand)
		if n == len(enc) {
			mch |= mchLast
		}
		buf = appendPDataHeader(buf, pcid, mch, n)
		buf = append(buf, enc[:n]...)
		enc = enc[n:]
	}
	return a.write(buf)
}

// DataSetSourceError marks a failure to read the data set being sent (as
// opposed to a failure of the association).
type DataSetSourceError struct{ err error }

func (e *DataSetSourceError) Error() string { return "reading the data set to send: " + e.err.Error() }
func (e *DataSetSourceError) Unwrap() error { return e.err }

// sendDataSet streams r as data set fragments of at most the peer's maximum,
// each P-DATA-TF in one write. An odd-length data set gets a trailing NUL. It reads one fragment ahead to know which one
// is the last, so two fragment buffers are the whole memory cost.
func (a *assoc) sendDataSet(pcid byte, r io.Reader) (int64, error) {
	max := a.maxFragment()
	cur := make([]byte, 12+max)
	next := make([]byte, 12+max)
	fill := func(b []byte) (int, error) {
		n, err := io.ReadFull(r, b[12:])
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return n, io.EOF
		}
		if err != nil {
			return n, &DataSetSourceError{err}
		}
		return n, nil
	}
	n, err := fill(cur)
	if err != nil && err != io.EOF {
		return 0, err
	}
	if n == 0 {
		return 0, &DataSetSourceError{errors.New("empty data set")}
	}
	var total int64
	for {
		last := err == io.EOF
		var m int
		if !last {
			m, err = fill(next)
			if err != nil && err != io.EOF {
				return total, err
			}
			last = m == 0
		}
		mch := byte(0)
		if last {
			mch = mchLast
			if n%2 == 1 {
				// Data sets have even length; only a deflated one may
				// come out odd, and PS3.5 A.5 pads it with one NUL.
				// DCMTK aborts on an odd fragment, so pad here too.
				// (n < max, which is even, so there is room.)
				cur[12+n] = 0
				n++
			}
		}
		hdr := appendPDataHeader(cur[:0], pcid, mch, n)
		_ = hdr // written in place at the front of cur
		if werr := a.write(cur[:12+n]); werr != nil {
			return total, werr
		}
		total += int64(n)
		if last {
			return total, nil
		}
		cur, next, n = next, cur, m
	}
}

// closeGracefully waits up to ARTIM for the peer to close the connection
// (as PS3.8 has the side that sent A-RELEASE-RP, A-ASSOCIATE-RJ or A-ABORT
// do), then closes it.
func (a *assoc) closeGracefully() {
	a.nc.SetReadDeadline(time.Now().Add(a.t.ARTIM))
	io.Copy(io.Discard, io.LimitReader(a.br, 1<<20))
	a.nc.Close()
}

// abort sends an A-ABORT, half-closes, and waits up to ARTIM for the peer
// to close (PS3.8 Sta13), so that the peer reads the A-ABORT instead of a
// connection reset. Only the goroutine reading the association may call it.
func (a *assoc) abort(source, reason byte) {
	a.nc.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := a.nc.Write(abortPDU(source, reason)); err == nil {
		if hc, ok := a.nc.(interface{ CloseWrite() error }); ok {
			hc.CloseWrite()
		}
		a.nc.SetReadDeadline(time.Now().Add(a.t.ARTIM))
		io.Copy(io.Discard, io.LimitReader(a.nc, 1<<20))
	}
	a.nc.Close()
}

// abortNow sends an A-ABORT and closes at once; any goroutine may call it.
func (a *assoc) abortNow(source, reason byte) {
	a.nc.SetWriteDeadline(time.Now().Add(time.Second))
	a.nc.Write(abortPDU(source, reason))
	a.nc.Close()
}

// failWith ends the association after err: protocol violations and timeouts
// get an A-ABORT, a peer's A-ABORT or a broken connection just a close.
func (a *assoc) failWith(err error) {
	var pe *protocolError
	var ae *AbortError
	switch {
	case errors.As(err, &pe):
		a.abort(abortSourceProvider, pe.reason)
	case errors.As(err, &ae):
		a.nc.Close()
	case errors.Is(err, os.ErrDeadlineExceeded):
		a.abort(abortSourceProvider, abortReasonNotSpecified)
	default:
		a.nc.Close()
	}
}

// isTimeout reports whether err is a deadline expiring.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func describe(err error) string {
	if isTimeout(err) {
		return fmt.Sprintf("timed out (%v)", err)
	}
	return err.Error()
}
