package dataset

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/wardgate/wardgate/dicom"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// The converter between the two uncompressed Little Endian transfer
// syntaxes (Implicit VR ↔ Explicit VR), for a destination that accepts
// only the other one. Values are never changed: only element headers are
// (a VR added from the data dictionary, or dropped). It streams: a value is
// copied through as it is read, and only what must be measured before it
// is written is held, up to convertBufferLimit bytes of input:
//   - a sequence or an item of defined length is re-encoded in memory to
//     write its new length (explicit headers of OB, OW, SQ, UN… are 12
//     bytes, implicit ones 8). A longer one is written with undefined
//     length and delimiters instead, which means the same;
//   - a group length (gggg,0000) is recomputed from its group re-encoded
//     ahead of time; a group longer than that (the pixel data's), or one
//     whose group length does not match its elements, loses the (retired)
//     group length element.
const (
	convertBufferLimit = 1 << 20
	// convertSmallValue: values up to this long are read whole (into a
	// reused buffer); longer ones are copied through in pieces.
	convertSmallValue = 64 << 10
)

// ConvertError is a data set that cannot be converted. Its message names
// tags and offsets, never a value.
type ConvertError struct{ err error }

func (e *ConvertError) Error() string { return "transfer syntax conversion: " + e.err.Error() }
func (e *ConvertError) Unwrap() error { return e.err }

func convErr(format string, args ...any) error {
	return &ConvertError{fmt.Errorf(format, args...)}
}

// ErrEncapsulated is wrapped by the ConvertError of a data set with
// encapsulated (undefined-length) pixel data: never native Little Endian.
var ErrEncapsulated = errors.New("encapsulated pixel data")

// OtherLittleEndian returns Explicit VR Little Endian for Implicit, Implicit
// for Explicit, and "" for any other transfer syntax.
func OtherLittleEndian(ts string) string {
	switch ts {
	case dicom.ImplicitVRLittleEndian:
		return dicom.ExplicitVRLittleEndian
	case dicom.ExplicitVRLittleEndian:
		return dicom.ImplicitVRLittleEndian
	}
	return ""
}

// ConvertLE writes the data set src (no preamble, no meta header), encoded
// in transfer syntax from, to dst encoded in to; both are Implicit or
// Explicit VR Little Endian. An Implicit VR data set gets its VRs from the
// data dictionary: group lengths are UL, private creators LO, other private
// and unknown tags UN (or SQ, when of undefined length, and their items are
// converted too); US/SS follows Pixel Representation (0028,0103), pixel
// data is OB when Bits Allocated (0028,0100) is 8 or less, else OW; other
// tags with several VRs take the first one. A value too long for the
// 2-byte length of its explicit VR, encapsulated pixel data, sequences
// nested deeper than 16 and malformed elements are a *ConvertError; what
// was written before it is then not a data set.
func ConvertLE(dst io.Writer, src io.Reader, from, to string) error {
	if !dicom.IsUncompressedLittleEndian(from) || !dicom.IsUncompressedLittleEndian(to) {
		return convErr("only Implicit and Explicit VR Little Endian convert, not %s to %s", from, to)
	}
	if from == to {
		_, err := io.Copy(dst, src)
		return err
	}
	c := &leConverter{
		r:           bufio.NewReaderSize(src, convertBufferLimit+64<<10),
		outImplicit: to == dicom.ImplicitVRLittleEndian,
	}
	st := dsState{pixelRep: -1, bitsAllocated: -1}
	return c.elements(dst, -1, false, from == dicom.ImplicitVRLittleEndian, 0, &st)
}

// NewLEConverter returns a reader of src converted as ConvertLE does, and
// a function to call when done reading (also early): it ends the
// conversion and waits for it, so src may then be closed.
func NewLEConverter(src io.Reader, from, to string) (io.Reader, func()) {
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		bw := bufio.NewWriterSize(pw, 64<<10)
		err := ConvertLE(bw, src, from, to)
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
	}()
	return pr, func() {
		pr.CloseWithError(errors.New("conversion abandoned"))
		<-done
	}
}

// dsState is what a data set (or item) has said so far that decides VRs
// of later elements.
type dsState struct {
	pixelRep      int // -1: not seen
	bitsAllocated int
}

type leConverter struct {
	r           *bufio.Reader
	pos         int64 // input bytes consumed
	outImplicit bool
	small       []byte
	hdr         [12]byte
}

func (c *leConverter) readFull(b []byte) error {
	n, err := io.ReadFull(c.r, b)
	c.pos += int64(n)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return convErr("data set cut short at byte %d", c.pos)
		}
		return err
	}
	return nil
}

// copyN copies n input bytes to w without allocating.
func (c *leConverter) copyN(w io.Writer, n int64) error {
	for n > 0 {
		if c.r.Buffered() == 0 {
			if _, err := c.r.Peek(1); err != nil {
				if errors.Is(err, io.EOF) {
					return convErr("data set cut short at byte %d", c.pos)
				}
				return err
			}
		}
		b, _ := c.r.Peek(int(min(n, int64(c.r.Buffered()))))
		if _, err := w.Write(b); err != nil {
			return err
		}
		c.r.Discard(len(b))
		c.pos += int64(len(b))
		n -= int64(len(b))
	}
	return nil
}

// header is one element's header as read.
type header struct {
	t      tag.Tag
	vr     string // explicit input: as read; implicit: ""
	length uint32
}

func (c *leConverter) readHeader(implicit bool) (header, error) {
	b := c.hdr[:8]
	if err := c.readFull(b); err != nil {
		return header{}, err
	}
	h := header{t: tag.Tag{Group: binary.LittleEndian.Uint16(b[0:2]), Element: binary.LittleEndian.Uint16(b[2:4])}}
	if implicit || h.t.Group == 0xFFFE {
		h.length = binary.LittleEndian.Uint32(b[4:8])
		return h, nil
	}
	h.vr = string(b[4:6])
	if !knownVR[h.vr] {
		return header{}, convErr("element (%04X,%04X) at byte %d has no valid VR", h.t.Group, h.t.Element, c.pos-8)
	}
	if explicitLong[h.vr] {
		if err := c.readFull(b[:4]); err != nil {
			return header{}, err
		}
		h.length = binary.LittleEndian.Uint32(b[:4])
	} else {
		h.length = uint32(binary.LittleEndian.Uint16(b[6:8]))
	}
	return h, nil
}

var knownVR = map[string]bool{}

func init() {
	for _, vr := range []string{"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD",
		"OF", "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN", "UR", "US", "UT", "UV"} {
		knownVR[vr] = true
	}
}

// writeHeader writes an element header in the output encoding; vr matters
// only for Explicit VR.
func (c *leConverter) writeHeader(w io.Writer, t tag.Tag, vr string, length uint32) error {
	b := c.hdr[:0]
	b = binary.LittleEndian.AppendUint16(b, t.Group)
	b = binary.LittleEndian.AppendUint16(b, t.Element)
	switch {
	case c.outImplicit || t.Group == 0xFFFE:
		b = binary.LittleEndian.AppendUint32(b, length)
	case explicitLong[vr]:
		b = append(b, vr[0], vr[1], 0, 0)
		b = binary.LittleEndian.AppendUint32(b, length)
	default:
		if length > 0xFFFF {
			return convErr("element (%04X,%04X) is %d bytes long: too long for VR %s in Explicit VR", t.Group, t.Element, length, vr)
		}
		b = append(b, vr[0], vr[1])
		b = binary.LittleEndian.AppendUint16(b, uint16(length))
	}
	_, err := w.Write(b)
	return err
}

// dictVR is the VR an Implicit VR element gets in Explicit VR: "" when the
// dictionary does not know the tag.
func dictVR(t tag.Tag, length uint32, st *dsState) string {
	if t.Element == 0x0000 {
		return "UL"
	}
	if t.Group%2 == 1 {
		if t.Element >= 0x0010 && t.Element <= 0x00FF {
			return "LO" // private creator
		}
		return ""
	}
	look := t
	if (t.Group&0xFF00 == 0x6000 || t.Group&0xFF00 == 0x5000) && t.Group&0x00FF != 0 {
		look.Group = t.Group & 0xFF00 // repeating groups: overlays, curves
	}
	info, err := tag.Find(look)
	if err != nil || len(info.VRs) == 0 {
		return ""
	}
	vrs := info.VRs
	if t == tag.PixelData || t == tag.VariablePixelData {
		if st.bitsAllocated > 0 && st.bitsAllocated <= 8 {
			return "OB"
		}
		return "OW"
	}
	has := func(vr string) bool {
		for _, v := range vrs {
			if v == vr {
				return true
			}
		}
		return false
	}
	vr := vrs[0]
	if has("US") && has("SS") {
		vr = "US"
		if st.pixelRep == 1 {
			vr = "SS"
		}
	}
	if length > 0xFFFF && length != undefinedLength && !explicitLong[vr] {
		for _, v := range vrs { // e.g. LUT Data: US or OW
			if explicitLong[v] {
				return v
			}
		}
	}
	if vr == "NA" {
		return ""
	}
	return vr
}

// elements converts the elements of a data set or item to w, up to input
// position end (-1: the end of the input), or, when delimited (an item of
// undefined length), up to its delimiter, which it writes; that must come
// before end too.
func (c *leConverter) elements(w io.Writer, end int64, delimited bool, implicit bool, depth int, st *dsState) error {
	for {
		if end >= 0 && c.pos == end && !delimited {
			return nil
		}
		b, err := c.r.Peek(8)
		if !delimited && end < 0 && len(b) == 0 && errors.Is(err, io.EOF) {
			return nil
		}
		if delimited && len(b) >= 4 && binary.LittleEndian.Uint16(b[0:2]) == 0xFFFE && binary.LittleEndian.Uint16(b[2:4]) == 0xE00D {
			at := c.pos
			if end >= 0 && end-at < 8 {
				return convErr("an item delimiter at byte %d runs past what holds it", at)
			}
			if err := c.readFull(c.hdr[:8]); err != nil {
				return err
			}
			if l := binary.LittleEndian.Uint32(c.hdr[4:8]); l != 0 {
				return convErr("an item delimiter at byte %d has length %d", at, l)
			}
			return c.writeHeader(w, tag.Tag{Group: 0xFFFE, Element: 0xE00D}, "", 0)
		}
		if err := c.element(w, end, implicit, depth, st); err != nil {
			return err
		}
	}
}

// element converts one element that must end by input position end (-1:
// no bound).
func (c *leConverter) element(w io.Writer, end int64, implicit bool, depth int, st *dsState) error {
	at := c.pos
	room := int64(-1)
	if end >= 0 {
		room = end - at
	}
	h, err := c.readHeader(implicit)
	if err != nil {
		return err
	}
	t := h.t
	if t.Group == 0xFFFE {
		return convErr("(%04X,%04X) at byte %d where a data element belongs", t.Group, t.Element, at)
	}
	if room >= 0 && (c.pos-at > room || (h.length != undefinedLength && int64(h.length) > room-(c.pos-at))) {
		return convErr("element (%04X,%04X) at byte %d is longer than what holds it", t.Group, t.Element, at)
	}
	vr := h.vr
	itemsImplicit := implicit
	if implicit {
		vr = dictVR(t, h.length, st)
	}
	isPixels := t == tag.PixelData || t == tag.FloatPixelData || t == tag.DoubleFloatPixelData
	sequence := vr == "SQ"
	if h.length == undefinedLength {
		switch {
		case isPixels:
			return convErr("(%04X,%04X) at byte %d: %w: the data set is not native Little Endian", t.Group, t.Element, at, ErrEncapsulated)
		case vr == "SQ":
		case (vr == "" || vr == "UN") && implicit:
			vr = "SQ" // unknown, of undefined length: a sequence
		case vr == "UN" && !implicit:
			// UN of undefined length holds an Implicit VR sequence.
			itemsImplicit = true
		default:
			return convErr("element (%04X,%04X) at byte %d has undefined length but is no sequence", t.Group, t.Element, at)
		}
		sequence = true
	}
	if vr == "" {
		vr = "UN"
	}
	if sequence {
		if depth >= maxSequenceDepth {
			return convErr("sequences nested deeper than %d", maxSequenceDepth)
		}
		outVR := vr
		if outVR == "UN" && !c.outImplicit {
			outVR = "SQ"
		}
		return c.container(w, t, outVR, h.length, end, func(w io.Writer, end int64) error {
			return c.items(w, end, h.length == undefinedLength, itemsImplicit, depth+1, st)
		})
	}
	if t.Element == 0x0000 && h.length == 4 {
		left := int64(-1)
		if room >= 0 {
			left = room - (c.pos - at) - 4
		}
		return c.groupLength(w, t, left, implicit, depth, st)
	}
	if h.length <= convertSmallValue {
		if cap(c.small) < int(h.length) {
			c.small = make([]byte, h.length, max(h.length, 256))
		}
		v := c.small[:h.length]
		if err := c.readFull(v); err != nil {
			return err
		}
		if len(v) == 2 && t.Group == 0x0028 {
			switch t.Element {
			case 0x0103:
				st.pixelRep = int(binary.LittleEndian.Uint16(v))
			case 0x0100:
				st.bitsAllocated = int(binary.LittleEndian.Uint16(v))
			}
		}
		if err := c.writeHeader(w, t, vr, h.length); err != nil {
			return err
		}
		_, err := w.Write(v)
		return err
	}
	if err := c.writeHeader(w, t, vr, h.length); err != nil {
		return err
	}
	return c.copyN(w, int64(h.length))
}

// container writes a sequence or item (t) whose content body converts up
// to an input position (or its delimiter): with its new length when it
// had a defined one that fits the buffer, else with undefined length and
// a delimiter (for an undefined length, body writes the one it reads).
// outerEnd bounds a container of undefined length.
func (c *leConverter) container(w io.Writer, t tag.Tag, vr string, length uint32, outerEnd int64, body func(w io.Writer, end int64) error) error {
	if length != undefinedLength && length <= convertBufferLimit {
		var buf bytes.Buffer
		if err := body(&buf, c.pos+int64(length)); err != nil {
			return err
		}
		if err := c.writeHeader(w, t, vr, uint32(buf.Len())); err != nil {
			return err
		}
		_, err := buf.WriteTo(w)
		return err
	}
	if err := c.writeHeader(w, t, vr, undefinedLength); err != nil {
		return err
	}
	end := outerEnd
	if length != undefinedLength {
		end = c.pos + int64(length)
	}
	if err := body(w, end); err != nil {
		return err
	}
	if length == undefinedLength {
		return nil
	}
	delim := tag.Tag{Group: 0xFFFE, Element: 0xE0DD}
	if t == (tag.Tag{Group: 0xFFFE, Element: 0xE000}) {
		delim.Element = 0xE00D
	}
	return c.writeHeader(w, delim, "", 0)
}

// items converts a sequence's items up to input position end, or, when
// delimited, up to the sequence delimiter (which it writes), which must
// come before end (-1: no bound).
func (c *leConverter) items(w io.Writer, end int64, delimited bool, implicit bool, depth int, st *dsState) error {
	for delimited || c.pos < end {
		at := c.pos
		if end >= 0 && end-at < 8 {
			return convErr("an item at byte %d runs past its sequence", at)
		}
		if err := c.readFull(c.hdr[:8]); err != nil {
			return err
		}
		g, e, l := binary.LittleEndian.Uint16(c.hdr[0:2]), binary.LittleEndian.Uint16(c.hdr[2:4]), binary.LittleEndian.Uint32(c.hdr[4:8])
		switch {
		case g == 0xFFFE && e == 0xE0DD:
			if !delimited {
				return convErr("a sequence delimiter at byte %d in a sequence of defined length", at)
			}
			return c.writeHeader(w, tag.Tag{Group: 0xFFFE, Element: 0xE0DD}, "", 0)
		case g != 0xFFFE || e != 0xE000:
			return convErr("a sequence holds (%04X,%04X) at byte %d where an item belongs", g, e, at)
		}
		if end >= 0 && l != undefinedLength && int64(l) > end-c.pos {
			return convErr("the item at byte %d is longer than its sequence", at)
		}
		item := *st // an item may have its own pixel module (an icon)
		err := c.container(w, tag.Tag{Group: 0xFFFE, Element: 0xE000}, "", l, end, func(w io.Writer, iend int64) error {
			return c.elements(w, iend, l == undefinedLength, implicit, depth, &item)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// groupLength converts a group length element (its 4-byte value not read
// yet; left: the input bytes after it in what holds it, -1 unbounded): the group that follows is re-encoded ahead of time to know its new
// length. When it cannot be (too long, or the value does not end at the
// end of the group's elements), the element is dropped: group lengths are
// retired, and a wrong one is worse than none.
func (c *leConverter) groupLength(w io.Writer, t tag.Tag, left int64, implicit bool, depth int, st *dsState) error {
	var v [4]byte
	if err := c.readFull(v[:]); err != nil {
		return err
	}
	n := binary.LittleEndian.Uint32(v[:])
	if n > convertBufferLimit || (left >= 0 && int64(n) > left) {
		return nil
	}
	ahead, err := c.r.Peek(int(n))
	if err != nil {
		return nil // the data set ends first: the value is wrong
	}
	dry := &leConverter{r: bufio.NewReaderSize(bytes.NewReader(ahead), max(int(n), 16)), outImplicit: c.outImplicit}
	var cw countingWriter
	ds := *st
	for dry.pos < int64(n) {
		b, err := dry.r.Peek(2)
		if err != nil || binary.LittleEndian.Uint16(b) != t.Group {
			return nil
		}
		if err := dry.element(&cw, int64(n), implicit, depth, &ds); err != nil {
			return nil
		}
	}
	if err := c.writeHeader(w, t, "UL", 4); err != nil {
		return err
	}
	_, err = w.Write(binary.LittleEndian.AppendUint32(nil, uint32(cw)))
	return err
}

type countingWriter int64

func (c *countingWriter) Write(b []byte) (int, error) {
	*c += countingWriter(len(b))
	return len(b), nil
}
