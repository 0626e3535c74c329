package dicom

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// This file holds the small data set reader and writer that the DIMSE-N
// services need (Storage Commitment's N-ACTION and N-EVENT-REPORT data
// sets): Implicit and Explicit VR Little Endian, sequences of defined and
// undefined length, nothing else. Instances received by C-STORE are never
// parsed here: they stream to the StoreHandler as received, and
// dicom/dataset reads their headers.

// element is one data element: its tag (group<<16 | element), its VR (as
// sent in Explicit VR; in Implicit VR "SQ" for a sequence, "" otherwise),
// its value, or, for a sequence, its items.
type element struct {
	tag   uint32
	vr    string
	value []byte
	items [][]element
}

// Item and delimitation tags (PS3.5 7.5).
const (
	tagItem              = 0xFFFEE000
	tagItemDelimitation  = 0xFFFEE00D
	tagSequenceDelimiter = 0xFFFEE0DD
	undefinedLength      = 0xFFFFFFFF
)

// maxNesting bounds how deep sequences may nest: the data sets read here
// nest one level; a hostile one must not make the reader recurse without
// end.
const maxNesting = 8

// implicitSequences are the tags read as sequences when they come with a
// defined length in Implicit VR, where nothing else says so. An undefined
// length always means a sequence.
var implicitSequences = map[uint32]bool{
	tagReferencedSOPSequence: true,
	tagFailedSOPSequence:     true,
}

// longVR are the explicit VRs with a reserved field and a 32-bit length
// (PS3.5 7.1.2).
func longVR(vr string) bool {
	switch vr {
	case "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV":
		return true
	}
	return false
}

// parseDataSet reads a whole data set in Implicit (explicit false) or
// Explicit VR Little Endian. Every length is checked against what is left
// before anything is taken; a malformed data set is an error, never a
// panic or an allocation it asked for.
func parseDataSet(b []byte, explicit bool) ([]element, error) {
	r := &elementReader{b: b, explicit: explicit}
	els, err := r.elements(len(b), 0, false)
	if err != nil {
		return nil, fmt.Errorf("data set: %w", err)
	}
	return els, nil
}

type elementReader struct {
	b        []byte
	off      int
	explicit bool
}

// elements reads elements until end (an offset), or, when delimited, until
// an item delimitation item.
func (r *elementReader) elements(end, depth int, delimited bool) ([]element, error) {
	var out []element
	var last uint32
	for r.off < end {
		if end-r.off < 8 {
			return nil, fmt.Errorf("truncated element header at offset %d", r.off)
		}
		group := binary.LittleEndian.Uint16(r.b[r.off:])
		tag := uint32(group)<<16 | uint32(binary.LittleEndian.Uint16(r.b[r.off+2:]))
		if tag == tagItemDelimitation {
			if !delimited {
				return nil, fmt.Errorf("item delimiter outside an item of undefined length at offset %d", r.off)
			}
			r.off += 8
			return out, nil
		}
		if group == 0xFFFE {
			return nil, fmt.Errorf("item tag (%04X,%04X) among elements at offset %d", group, tag&0xFFFF, r.off)
		}
		if len(out) > 0 && tag <= last {
			return nil, fmt.Errorf("element (%04X,%04X) out of order at offset %d", group, tag&0xFFFF, r.off)
		}
		last = tag
		e := element{tag: tag}
		var n uint32
		explicit := r.explicit
		if explicit {
			e.vr = string(r.b[r.off+4 : r.off+6])
			if e.vr[0] < 'A' || e.vr[0] > 'Z' || e.vr[1] < 'A' || e.vr[1] > 'Z' {
				return nil, fmt.Errorf("element (%04X,%04X): VR %q is not two capital letters", group, tag&0xFFFF, e.vr)
			}
			if longVR(e.vr) {
				if end-r.off < 12 {
					return nil, fmt.Errorf("truncated element header at offset %d", r.off)
				}
				n = binary.LittleEndian.Uint32(r.b[r.off+8:])
				r.off += 12
			} else {
				n = uint32(binary.LittleEndian.Uint16(r.b[r.off+6:]))
				r.off += 8
			}
		} else {
			n = binary.LittleEndian.Uint32(r.b[r.off+4:])
			r.off += 8
		}
		seq := e.vr == "SQ" || n == undefinedLength || !explicit && implicitSequences[tag]
		if seq && explicit && e.vr == "UN" {
			// A sequence of unknown VR is encoded in Implicit VR
			// (PS3.5 6.2.2).
			explicit = false
		}
		if n == undefinedLength && !seq {
			return nil, fmt.Errorf("element (%04X,%04X) of undefined length is not a sequence", group, tag&0xFFFF)
		}
		if seq {
			if depth >= maxNesting {
				return nil, fmt.Errorf("sequences nested deeper than %d", maxNesting)
			}
			seqEnd := end
			if n != undefinedLength {
				if uint64(n) > uint64(end-r.off) {
					return nil, fmt.Errorf("sequence (%04X,%04X) claims %d bytes, %d left", group, tag&0xFFFF, n, end-r.off)
				}
				seqEnd = r.off + int(n)
			}
			saved := r.explicit
			r.explicit = explicit
			items, err := r.items(seqEnd, depth+1, n == undefinedLength)
			r.explicit = saved
			if err != nil {
				return nil, fmt.Errorf("sequence (%04X,%04X): %w", group, tag&0xFFFF, err)
			}
			e.vr, e.items = "SQ", items
		} else {
			if uint64(n) > uint64(end-r.off) {
				return nil, fmt.Errorf("element (%04X,%04X) claims %d bytes, %d left", group, tag&0xFFFF, n, end-r.off)
			}
			e.value = r.b[r.off : r.off+int(n)]
			r.off += int(n)
		}
		out = append(out, e)
	}
	if delimited {
		return nil, fmt.Errorf("item of undefined length without its delimiter")
	}
	if r.off != end {
		return nil, fmt.Errorf("element overruns its enclosing item by %d bytes", r.off-end)
	}
	return out, nil
}

// items reads a sequence's items until end, or, when delimited, until the
// sequence delimiter.
func (r *elementReader) items(end, depth int, delimited bool) ([][]element, error) {
	var out [][]element
	for r.off < end {
		if end-r.off < 8 {
			return nil, fmt.Errorf("truncated item header at offset %d", r.off)
		}
		tag := uint32(binary.LittleEndian.Uint16(r.b[r.off:]))<<16 | uint32(binary.LittleEndian.Uint16(r.b[r.off+2:]))
		n := binary.LittleEndian.Uint32(r.b[r.off+4:])
		r.off += 8
		switch tag {
		case tagSequenceDelimiter:
			if !delimited {
				return nil, fmt.Errorf("sequence delimiter in a sequence of defined length")
			}
			return out, nil
		case tagItem:
		default:
			return nil, fmt.Errorf("(%04X,%04X) where an item was expected", tag>>16, tag&0xFFFF)
		}
		itemEnd := end
		if n != undefinedLength {
			if uint64(n) > uint64(end-r.off) {
				return nil, fmt.Errorf("item claims %d bytes, %d left", n, end-r.off)
			}
			itemEnd = r.off + int(n)
		}
		els, err := r.elements(itemEnd, depth, n == undefinedLength)
		if err != nil {
			return nil, fmt.Errorf("item %d: %w", len(out)+1, err)
		}
		out = append(out, els)
	}
	if delimited {
		return nil, fmt.Errorf("sequence of undefined length without its delimiter")
	}
	return out, nil
}

// find returns the element with tag among els.
func find(els []element, tag uint32) (element, bool) {
	for _, e := range els {
		if e.tag == tag {
			return e, true
		}
	}
	return element{}, false
}

// elementWriter appends elements, in tag order as the caller gives them,
// in Implicit or Explicit VR Little Endian. Sequences and items get defined
// lengths: every peer reads those.
type elementWriter struct {
	b        []byte
	explicit bool
}

func (w *elementWriter) header(tag uint32, vr string, n int) {
	w.b = binary.LittleEndian.AppendUint16(w.b, uint16(tag>>16))
	w.b = binary.LittleEndian.AppendUint16(w.b, uint16(tag))
	switch {
	case !w.explicit:
		w.b = binary.LittleEndian.AppendUint32(w.b, uint32(n))
	case longVR(vr):
		w.b = append(w.b, vr[0], vr[1], 0, 0)
		w.b = binary.LittleEndian.AppendUint32(w.b, uint32(n))
	default:
		w.b = append(w.b, vr[0], vr[1])
		w.b = binary.LittleEndian.AppendUint16(w.b, uint16(n))
	}
}

// uid appends a UI element, padded with a NUL to even length.
func (w *elementWriter) uid(tag uint32, v string) {
	p := padUID(v)
	w.header(tag, "UI", len(p))
	w.b = append(w.b, p...)
}

// us appends a US element.
func (w *elementWriter) us(tag uint32, v uint16) {
	w.header(tag, "US", 2)
	w.b = binary.LittleEndian.AppendUint16(w.b, v)
}

// sequence appends a sequence whose items each write writes.
func (w *elementWriter) sequence(tag uint32, n int, item func(w *elementWriter, i int)) {
	w.header(tag, "SQ", 0)
	seqLen := len(w.b) - 4
	start := len(w.b)
	for i := range n {
		w.b = binary.LittleEndian.AppendUint16(w.b, 0xFFFE)
		w.b = binary.LittleEndian.AppendUint16(w.b, 0xE000)
		w.b = append(w.b, 0, 0, 0, 0)
		itemLen := len(w.b) - 4
		itemStart := len(w.b)
		item(w, i)
		binary.LittleEndian.PutUint32(w.b[itemLen:], uint32(len(w.b)-itemStart))
	}
	binary.LittleEndian.PutUint32(w.b[seqLen:], uint32(len(w.b)-start))
}

// uidValue is the UID held by a UI element, without its padding; ok is
// false when it is not a plausible UID (PS3.5 9.1: at most 64 characters,
// digits and dots).
func uidValue(e element) (string, bool) {
	s := trimUID(e.value)
	if s == "" || len(s) > 64 || strings.Trim(s, "0123456789.") != "" {
		return s, false
	}
	return s, true
}
