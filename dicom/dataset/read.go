package dataset

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/wardgate/wardgate/dicom"

	sdicom "github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/dicomio"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// lastHeaderGroup is the highest group ReadInstanceHeader needs: elements
// are in ascending tag order, so parsing stops at the first element past it
// (usually group 0028, well before the pixel data).
const lastHeaderGroup = 0x0020

// ReadInstanceHeader reads the header fields of a data set (no Part 10
// preamble or meta header) encoded in transferSyntax, streaming from r and
// skipping pixel data. A Deflated data set is inflated for reading only.
// It fails when the data set cannot be parsed or lacks its Study or SOP
// Instance UID; the error then says where, never what a value was.
func ReadInstanceHeader(r io.Reader, transferSyntax string) (h InstanceHeader, err error) {
	defer func() {
		// The parser is a third party's, fed with bytes from the network.
		if p := recover(); p != nil {
			err = errors.New("data set: the parser failed on it")
		}
	}()
	var bo binary.ByteOrder = binary.LittleEndian
	implicit := false
	switch transferSyntax {
	case dicom.ImplicitVRLittleEndian:
		implicit = true
	case dicom.ExplicitVRBigEndian:
		bo = binary.BigEndian
	case dicom.DeflatedExplicitVRLittleEndian:
		fr := flate.NewReader(bufio.NewReaderSize(r, 64<<10))
		defer fr.Close()
		r = fr // boundedHeader reads at most maxHeaderBytes of it
	}
	head, err := boundedHeader(r, bo, implicit)
	if err != nil {
		return h, err
	}
	// The library is given a meta header naming the syntax: without one it
	// guesses the syntax by reading the first bytes under each candidate,
	// allocating whatever lengths that reading makes of them (and refuses a
	// data set under 100 bytes). A deflated data set is already inflated.
	parsedAs := transferSyntax
	if parsedAs == dicom.DeflatedExplicitVRLittleEndian {
		parsedAs = dicom.ExplicitVRLittleEndian
	}
	var withMeta bytes.Buffer
	if _, err := dicom.WriteFileMeta(&withMeta, dicom.FileMeta{SOPClassUID: "1.2", SOPInstanceUID: "1.2", TransferSyntaxUID: parsedAs}); err != nil {
		return h, err
	}
	withMeta.Write(head)
	p, err := sdicom.NewParser(&withMeta, dicomio.LimitReadUntilEOF, nil,
		sdicom.SkipPixelData(), sdicom.AllowUnknownSpecificCharacterSet())
	if err != nil {
		// The library's messages may quote a value: not passed on.
		return h, errors.New("data set: cannot be read")
	}
	h.TransferSyntaxUID = transferSyntax
	elements := 0
	for {
		e, err := p.Next()
		// The bytes end at an element boundary that boundedHeader
		// checked: the library's EOF there is the header's end.
		if errors.Is(err, sdicom.ErrorEndOfDICOM) || errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// The library's messages may quote an element's value: only
			// where it failed is passed on.
			return h, fmt.Errorf("data set: element %d cannot be read", elements+1)
		}
		elements++
		if e.Tag.Group > lastHeaderGroup {
			break
		}
		setHeaderField(&h, e)
	}
	if elements == 0 {
		return h, errors.New("data set is empty")
	}
	if h.SOPInstanceUID == "" || h.StudyInstanceUID == "" {
		return h, errors.New("data set lacks its SOP Instance UID (0008,0018) or Study Instance UID (0020,000D)")
	}
	return h, nil
}

func setHeaderField(h *InstanceHeader, e *sdicom.Element) {
	s := func() string {
		v := strs(e)
		if len(v) == 0 {
			return ""
		}
		return v[0]
	}
	n := func() int {
		if v, ok := e.Value.GetValue().([]int); ok && len(v) > 0 {
			return v[0]
		}
		i, _ := strconv.Atoi(s())
		return i
	}
	switch e.Tag {
	case tag.SOPClassUID:
		h.SOPClassUID = s()
	case tag.SOPInstanceUID:
		h.SOPInstanceUID = s()
	case tag.StudyInstanceUID:
		h.StudyInstanceUID = s()
	case tag.SeriesInstanceUID:
		h.SeriesInstanceUID = s()
	case tag.PatientID:
		h.PatientID = s()
	case tag.IssuerOfPatientID:
		h.IssuerOfPatientID = s()
	case tag.AccessionNumber:
		h.AccessionNumber = s()
	case tag.StudyDate:
		h.StudyDate = s()
	case tag.StudyTime:
		h.StudyTime = s()
	case tag.TimezoneOffsetFromUTC:
		h.TimezoneOffset = s()
	case tag.StudyDescription:
		h.StudyDescription = s()
	case tag.ModalitiesInStudy:
		h.ModalitiesInStudy = strs(e)
	case tag.ReferringPhysicianName:
		h.ReferringPhysician = s()
	case tag.Modality:
		h.Modality = s()
	case tag.SeriesNumber:
		h.SeriesNumber = n()
	case tag.SeriesDescription:
		h.SeriesDescription = s()
	case tag.SeriesDate:
		h.SeriesDate = s()
	case tag.SeriesTime:
		h.SeriesTime = s()
	case tag.BodyPartExamined:
		h.BodyPartExamined = s()
	case tag.Laterality:
		h.Laterality = s()
	case tag.InstanceNumber:
		h.InstanceNumber = n()
	}
}

// strs returns a string element's values with DICOM padding trimmed.
func strs(e *sdicom.Element) []string {
	v, ok := e.Value.GetValue().([]string)
	if !ok {
		return nil
	}
	out := make([]string, 0, len(v))
	for _, s := range v {
		if s = strings.Trim(s, " \x00"); s != "" {
			out = append(out, s)
		}
	}
	return out
}
