package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/wardgate/wardgate/dicom"
)

// stowResult is what a STOW-RS answer (PS3.18 10.5.3, the Store Instances
// Response Module, in the DICOM JSON Model of PS3.18 F.2) says of the
// instances of its request: those the archive stored, by SOP Instance UID,
// and those it did not, with their Failure Reason (a C-STORE status).
type stowResult struct {
	Referenced map[string]struct{}
	Failed     map[string]uint16
}

// Attributes of the Store Instances Response Module.
const (
	tagFailedSOPSequence     = "00081198"
	tagReferencedSOPSequence = "00081199"
	tagReferencedSOPInstance = "00081155"
	tagFailureReason         = "00081197"
)

// jsonElement is one attribute in the DICOM JSON Model.
type jsonElement struct {
	VR    string            `json:"vr"`
	Value []json.RawMessage `json:"Value"`
}

// parseSTOWResponse reads an answer in application/dicom+json: one data
// set, or an array whose first data set is the answer. A failed item
// without a Failure Reason, or with one that is not a 16-bit number, gets
// 0110 (processing failure), which is retried. An item without a SOP
// Instance UID is skipped. An error means the body is not such an answer;
// the result is then empty.
func parseSTOWResponse(body []byte) (stowResult, error) {
	res := stowResult{Referenced: map[string]struct{}{}, Failed: map[string]uint16{}}
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return res, errors.New("empty answer")
	}
	if body[0] == '[' {
		var sets []json.RawMessage
		if err := json.Unmarshal(body, &sets); err != nil {
			return res, fmt.Errorf("not DICOM JSON: %w", err)
		}
		if len(sets) == 0 {
			return res, errors.New("an empty array of data sets")
		}
		body = sets[0]
	}
	var ds map[string]jsonElement
	if err := json.Unmarshal(body, &ds); err != nil {
		return res, fmt.Errorf("not DICOM JSON: %w", err)
	}
	for _, item := range sequenceItems(ds[tagReferencedSOPSequence]) {
		if uid := uidOf(item[tagReferencedSOPInstance]); uid != "" {
			res.Referenced[uid] = struct{}{}
		}
	}
	for _, item := range sequenceItems(ds[tagFailedSOPSequence]) {
		uid := uidOf(item[tagReferencedSOPInstance])
		if uid == "" {
			continue
		}
		reason, ok := usOf(item[tagFailureReason])
		if !ok || !dicom.IsFailureStatus(reason) {
			// An item in the failed list failed, whatever its reason says.
			reason = dicom.StatusProcessingFailure
		}
		res.Failed[uid] = reason
	}
	// An instance listed as both stored and failed: it is not known to be
	// stored.
	for uid := range res.Failed {
		delete(res.Referenced, uid)
	}
	return res, nil
}

// sequenceItems decodes an SQ's items; what is not an item is skipped.
func sequenceItems(e jsonElement) []map[string]jsonElement {
	var out []map[string]jsonElement
	for _, raw := range e.Value {
		var item map[string]jsonElement
		if json.Unmarshal(raw, &item) == nil && item != nil {
			out = append(out, item)
		}
	}
	return out
}

// uidOf is a UI element's first value, or "".
func uidOf(e jsonElement) string {
	if len(e.Value) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(e.Value[0], &s) != nil {
		return ""
	}
	return strings.TrimRight(strings.TrimSpace(s), "\x00")
}

// usOf is a US element's first value: a JSON number, or (leniently) a
// string of digits.
func usOf(e jsonElement) (uint16, bool) {
	if len(e.Value) == 0 {
		return 0, false
	}
	raw := bytes.TrimSpace(e.Value[0])
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0, false
		}
		raw = []byte(strings.TrimSpace(s))
	}
	n, err := strconv.ParseUint(string(raw), 10, 16)
	return uint16(n), err == nil
}
