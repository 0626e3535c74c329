package dataset

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// The data set parser (suyashkumar/dicom) allocates each element's declared
// length before reading it, recurses into sequences without a depth limit,
// and reads every element it is given. Fed a modality's bytes directly, one
// element claiming 4 GB would end the process, with every association and
// monitor in it. So the header is first walked here, with every length
// checked against what encloses it and against the limits below, and the
// parser is given only the bytes up to the first element past the groups
// wardgate reads.
const (
	// maxHeaderBytes bounds the part of a data set read for its header
	// (groups 0000–0020, private groups among them); real ones are a few
	// kilobytes.
	maxHeaderBytes = 8 << 20
	// maxSequenceDepth bounds nested sequences.
	maxSequenceDepth = 16
	// maxHeaderElements bounds the elements walked.
	maxHeaderElements = 200_000
)

const undefinedLength = 0xFFFFFFFF

// errHeaderBounds is the error of a header that breaks the bounds; the
// message says what, never a value.
type errHeaderBounds struct{ msg string }

func (e *errHeaderBounds) Error() string { return "data set header: " + e.msg }

func boundsErr(format string, args ...any) error {
	return &errHeaderBounds{fmt.Sprintf(format, args...)}
}

// headerWalker reads a data set from its start, copying what it consumes.
type headerWalker struct {
	r        *bufio.Reader
	bo       binary.ByteOrder
	implicit bool
	out      bytes.Buffer
	elements int
}

// boundedHeader returns the leading bytes of a data set that hold every
// element of groups up to lastHeaderGroup, after checking each element's
// length, the nesting of sequences and the total size.
func boundedHeader(r io.Reader, bo binary.ByteOrder, implicit bool) ([]byte, error) {
	w := &headerWalker{r: bufio.NewReaderSize(r, 64<<10), bo: bo, implicit: implicit}
	for {
		b, err := w.r.Peek(4)
		if len(b) == 0 && errors.Is(err, io.EOF) {
			return w.out.Bytes(), nil // the data set ends within the header groups
		}
		if err != nil {
			return nil, boundsErr("cut short after %d bytes", w.out.Len())
		}
		if w.bo.Uint16(b[0:2]) > lastHeaderGroup {
			return w.out.Bytes(), nil
		}
		if err := w.element(undefinedLength, 0); err != nil {
			return nil, err
		}
	}
}

// read consumes n bytes into the copy.
func (w *headerWalker) read(n int64) ([]byte, error) {
	if int64(w.out.Len())+n > maxHeaderBytes {
		return nil, boundsErr("longer than %d bytes before group %04X ends", maxHeaderBytes, lastHeaderGroup)
	}
	start := w.out.Len()
	if _, err := io.CopyN(&w.out, w.r, n); err != nil {
		return nil, boundsErr("cut short after %d bytes", w.out.Len())
	}
	return w.out.Bytes()[start:], nil
}

// explicitLong are the VRs with a 4-byte length in explicit VR.
var explicitLong = map[string]bool{"OB": true, "OD": true, "OF": true, "OL": true, "OV": true, "OW": true,
	"SQ": true, "SV": true, "UC": true, "UN": true, "UR": true, "UT": true, "UV": true}

// element walks one element (and, for a sequence, its items) that must fit
// in room bytes (undefinedLength: no enclosing length). It returns the bytes
// it consumed through w.out's growth.
func (w *headerWalker) element(room uint32, depth int) error {
	w.elements++
	if w.elements > maxHeaderElements {
		return boundsErr("more than %d elements", maxHeaderElements)
	}
	h, err := w.read(4)
	if err != nil {
		return err
	}
	t := tag.Tag{Group: w.bo.Uint16(h[0:2]), Element: w.bo.Uint16(h[2:4])}
	var vr string
	var length uint32
	used := uint32(4)
	if w.implicit || t.Group == 0xFFFE {
		l, err := w.read(4)
		if err != nil {
			return err
		}
		length, used = w.bo.Uint32(l), used+4
		if info, err := tag.Find(t); err == nil && len(info.VRs) > 0 {
			vr = info.VRs[0]
		}
	} else {
		v, err := w.read(2)
		if err != nil {
			return err
		}
		vr = string(v)
		if v[0] < 'A' || v[0] > 'Z' || v[1] < 'A' || v[1] > 'Z' {
			return boundsErr("element (%04X,%04X) has no valid VR", t.Group, t.Element)
		}
		if explicitLong[vr] {
			l, err := w.read(6)
			if err != nil {
				return err
			}
			length, used = w.bo.Uint32(l[2:]), used+8
		} else {
			l, err := w.read(2)
			if err != nil {
				return err
			}
			length, used = uint32(w.bo.Uint16(l)), used+4
		}
	}
	if room != undefinedLength && (used > room || (length != undefinedLength && length > room-used)) {
		return boundsErr("element (%04X,%04X) is longer than what holds it", t.Group, t.Element)
	}
	if vr == "SQ" || length == undefinedLength {
		if depth >= maxSequenceDepth {
			return boundsErr("sequences nested deeper than %d", maxSequenceDepth)
		}
		return w.items(length, depth+1)
	}
	_, err = w.read(int64(length))
	return err
}

// items walks a sequence's items: length bytes of them, or up to the
// sequence delimiter.
func (w *headerWalker) items(length uint32, depth int) error {
	start := w.out.Len()
	left := func() uint32 {
		if length == undefinedLength {
			return undefinedLength
		}
		return length - uint32(w.out.Len()-start)
	}
	for length == undefinedLength || left() > 0 {
		h, err := w.read(8)
		if err != nil {
			return err
		}
		group, elem, l := w.bo.Uint16(h[0:2]), w.bo.Uint16(h[2:4]), w.bo.Uint32(h[4:8])
		switch {
		case group == 0xFFFE && elem == 0xE0DD: // sequence delimiter
			if length != undefinedLength {
				return boundsErr("a sequence delimiter in a sequence of defined length")
			}
			return nil
		case group != 0xFFFE || elem != 0xE000:
			return boundsErr("a sequence holds (%04X,%04X) where an item belongs", group, elem)
		}
		if length != undefinedLength && int64(w.out.Len()-start) > int64(length) {
			return boundsErr("an item runs past its sequence")
		}
		if l == undefinedLength {
			if err := w.itemUntilDelimiter(depth); err != nil {
				return err
			}
			continue
		}
		if length != undefinedLength && l > left() {
			return boundsErr("an item is longer than its sequence")
		}
		end := w.out.Len() + int(l)
		for w.out.Len() < end {
			if err := w.element(uint32(end-w.out.Len()), depth); err != nil {
				return err
			}
		}
	}
	return nil
}

// itemUntilDelimiter walks an item of undefined length.
func (w *headerWalker) itemUntilDelimiter(depth int) error {
	for {
		b, err := w.r.Peek(4)
		if err != nil {
			return boundsErr("cut short in an item")
		}
		if w.bo.Uint16(b[0:2]) == 0xFFFE && w.bo.Uint16(b[2:4]) == 0xE00D {
			_, err := w.read(8)
			return err
		}
		if err := w.element(undefinedLength, depth); err != nil {
			return err
		}
	}
}
