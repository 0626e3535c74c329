package buffer

import "strings"

// The words the outbox's users agree on: what kind of item an entry is, and
// how the entries of one DICOM study are keyed. edge, the FHIR deliverer and
// the DICOM application use these instead of spelling the strings.

// KindFHIR marks an outbox item that is a FHIR Bundle entry for the record:
// the only kind the deliverer posts. Other kinds (a held frame, a study's
// reason for not being charted, a raw device frame) are dead letters that
// say what could not be charted.
const KindFHIR = "fhir"

// StudyKey is the outbox key of everything about one DICOM study: its
// ImagingStudy and Endpoint entries and its dead letters.
type StudyKey string

const studyKeyPrefix = "study:"

// StudyKeyOf is the key of the study with this Study Instance UID.
func StudyKeyOf(uid string) StudyKey { return StudyKey(studyKeyPrefix + uid) }

// String is the key as items carry it.
func (k StudyKey) String() string { return string(k) }

// StudyOfKey returns the Study Instance UID an item's key names, and false
// when the key is not a study's.
func StudyOfKey(key string) (uid string, ok bool) {
	return strings.CutPrefix(key, studyKeyPrefix)
}
