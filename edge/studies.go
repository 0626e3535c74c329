package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wardgate/wardgate/dicom/dataset"
	"github.com/wardgate/wardgate/dicom/gateway"

	"github.com/wardgate/wardgate/buffer"
	"github.com/wardgate/wardgate/edge/fhir"
	"github.com/wardgate/wardgate/edge/fhir/r4"
)

// A study is charted for one patient, or not at all:
//
//   - every instance must name the same patient: the same Patient ID and
//     the same Issuer of Patient ID. A study whose instances disagree is
//     not charted; it is a dead letter with the reason (KindStudy), and a
//     corrected re-send that makes it agree charts it (and removes that
//     dead letter);
//   - an Issuer of Patient ID other than dicom.issuer_of_patient_id means
//     the Patient ID is not an identifier of fhir.patient_identifier_system:
//     no patient here;
//   - with fhir.patient_reference: resolve, the gateway finds the Patient
//     itself; none or several is no patient (the study waits, and after
//     patients.hold_unassociated it is a dead letter);
//   - an ImagingStudy is never written from a subset: the record's
//     ImagingStudy of the study, when there is one, is read first and what
//     it lists is kept (a late instance after the ledger was lost or the
//     study forgotten re-describes the whole study). One that names another
//     patient stops the study, as a dead letter.

// KindStudy marks a dead letter that says why a study was not charted:
// retrying hands the study over again.
const KindStudy = "study"

// studyKey is the outbox key of a study's entries and dead letters.
func studyKey(uid string) string { return buffer.StudyKeyOf(uid).String() }

// studyRefusal is a study that cannot be charted as it is.
type studyRefusal struct {
	reason string // no patient data
	detail any    // kept with the dead letter (may hold patient data)
}

func (r *studyRefusal) Error() string { return r.reason }

// patientOfStudy is the one patient a study's instances name.
func patientOfStudy(instances []dataset.InstanceHeader, issuer string) (id, iss string, err error) {
	type who struct{ ID, Issuer string }
	names := map[who][]string{}
	var order []who
	for _, in := range instances {
		w := who{strings.TrimSpace(in.PatientID), strings.TrimSpace(in.IssuerOfPatientID)}
		if _, ok := names[w]; !ok {
			order = append(order, w)
		}
		names[w] = append(names[w], in.SOPInstanceUID)
	}
	if len(order) > 1 {
		type group struct {
			PatientID         string   `json:"patient_id"`
			IssuerOfPatientID string   `json:"issuer_of_patient_id,omitempty"`
			Instances         []string `json:"sop_instance_uids"`
		}
		var detail []group
		for _, w := range order {
			detail = append(detail, group{w.ID, w.Issuer, names[w]})
		}
		return "", "", &studyRefusal{
			reason: fmt.Sprintf("its instances name %d different patients (Patient ID or Issuer of Patient ID); it is charted once a corrected re-send makes them agree", len(order)),
			detail: map[string]any{"patients": detail},
		}
	}
	w := order[0]
	if w.ID == "" {
		return "", "", &studyRefusal{reason: "it has no Patient ID (0010,0020)"}
	}
	if w.Issuer != "" && w.Issuer != issuer {
		return "", "", &studyRefusal{
			reason: "its Issuer of Patient ID is not dicom.issuer_of_patient_id: its Patient ID is not a record number of fhir.patient_identifier_system",
			detail: map[string]any{"issuer_of_patient_id": w.Issuer, "configured": issuer},
		}
	}
	return w.ID, w.Issuer, nil
}

// studyWaits remembers since when a study has had no patient in the record
// (fhir.patient_reference: resolve), for patients.hold_unassociated.
type studyWaits struct {
	mu sync.Mutex
	m  map[string]time.Time
}

func (w *studyWaits) since(uid string, now time.Time) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = map[string]time.Time{}
	}
	if t, ok := w.m[uid]; ok {
		return t
	}
	if len(w.m) > 10000 {
		w.m = map[string]time.Time{}
	}
	w.m[uid] = now
	return now
}

func (w *studyWaits) done(uid string) {
	w.mu.Lock()
	delete(w.m, uid)
	w.mu.Unlock()
}

// IngestStudy maps every instance header received for one study to its
// ImagingStudy (with the Endpoint first, when one is configured) and stores
// them in the outbox, durably (gateway.StudySink). A study that cannot be
// charted as it is returns an error wrapping gateway.ErrStudyRefused, after
// its dead letter is kept; any other error is retried by the assembler.
func (g *Gateway) IngestStudy(ctx context.Context, instances []dataset.InstanceHeader) error {
	g.ingest.studies.Add(1)
	uid := instances[0].StudyInstanceUID
	err := g.ingestStudy(ctx, uid, instances)
	var refusal *studyRefusal
	var invalid *r4.InvalidError
	switch {
	case err == nil:
		g.studyWaits.done(uid)
		g.dropStudyDeadLetters(ctx, uid)
		return nil
	case errors.As(err, &refusal):
		g.ingest.studyRefused.Add(1)
		detail, _ := json.Marshal(map[string]any{"study_instance_uid": uid, "instances": len(instances), "why": refusal.detail})
		if _, derr := g.addStudyDeadLetter(ctx, uid, detail, refusal.reason); derr != nil {
			return fmt.Errorf("a refused study could not be kept among the dead letters: %w", derr)
		}
		g.log.Warn("study not charted; it is in the dead letters", "study", "…"+uidHandle(uid), "reason", refusal.reason)
		return fmt.Errorf("%w: %s", gateway.ErrStudyRefused, refusal.reason)
	case errors.As(err, &invalid):
		g.ingest.studyRefused.Add(1)
		g.outbox.AddDeadLetter(ctx, buffer.Item{Key: studyKey(uid), Kind: KindInvalid, Payload: invalid.Resource}, err.Error())
		// The validator's words may quote the data set: not in the log.
		g.log.Error("an ImagingStudy failed validation; it is in the dead letters")
		return fmt.Errorf("%w: %v", gateway.ErrStudyRefused, err)
	}
	return err
}

func (g *Gateway) ingestStudy(ctx context.Context, uid string, instances []dataset.InstanceHeader) error {
	issuer := ""
	if g.cfg.DICOM != nil {
		issuer = g.cfg.DICOM.IssuerOfPatientID
	}
	pid, _, err := patientOfStudy(instances, issuer)
	if err != nil {
		return err
	}
	system := g.cfg.FHIR.PatientIdentifierSystem
	if system == "" {
		return &studyRefusal{reason: "fhir.patient_identifier_system is not set"}
	}
	client := g.deliverer.Client
	subject := fhir.ConditionalPatient(system, pid)
	if g.cfg.FHIR.PatientReference == "resolve" {
		refs, err := client.FindPatients(ctx, system, pid)
		if err != nil {
			return fmt.Errorf("finding the study's patient in the record: %w", err)
		}
		if len(refs) != 1 {
			why := "no Patient in the record carries its Patient ID"
			if len(refs) > 1 {
				why = "several Patients in the record carry its Patient ID"
			}
			hold := g.holdUnassociated()
			if time.Since(g.studyWaits.since(uid, time.Now())) < hold {
				return fmt.Errorf("%s: waiting for the record (patients.hold_unassociated %s)", why, hold)
			}
			return &studyRefusal{reason: why + ", for patients.hold_unassociated"}
		}
		subject = refs[0]
	}
	s, err := g.mapper.MapStudy(instances, subject)
	if err != nil {
		return &studyRefusal{reason: err.Error()}
	}
	// Never a subset: what the record lists of the study stays listed.
	rec, n, err := client.FindImagingStudy(ctx, uid)
	if err != nil {
		return fmt.Errorf("reading the record's ImagingStudy of the study first: %w", err)
	}
	if n > 1 {
		return &studyRefusal{reason: "the record holds several ImagingStudies with its Study Instance UID"}
	}
	if rec != nil {
		recSubject, err := s.Merge(rec)
		if err != nil {
			return &studyRefusal{reason: err.Error()}
		}
		same, err := g.samePatient(ctx, recSubject, subject, system, pid)
		if err != nil {
			return err
		}
		if !same {
			return &studyRefusal{reason: "the record's ImagingStudy of this study names another patient"}
		}
	}
	study, err := g.mapper.StudyEntry(s)
	if err != nil {
		return err
	}
	var items []buffer.Item
	ep, err := g.mapper.EndpointEntry()
	if err != nil {
		g.log.Error("the Endpoint of dicom.wado_rs_base failed validation; studies cannot be charted", "wado_rs_base", g.cfg.DICOM.WADORSBase)
		return &studyRefusal{reason: "the Endpoint of dicom.wado_rs_base is not valid"}
	}
	if ep != nil {
		b, _ := json.Marshal(ep)
		items = append(items, buffer.Item{Key: studyKey(uid), Kind: buffer.KindFHIR, Payload: b})
	}
	b, err := json.Marshal(study)
	if err != nil {
		return err
	}
	items = append(items, buffer.Item{Key: studyKey(uid), Kind: buffer.KindFHIR, Payload: b})
	if _, err := g.outbox.Append(ctx, items...); err != nil {
		return err
	}
	g.ingest.entries.Add(uint64(len(items)))
	return nil
}

// samePatient tells whether the record's ImagingStudy subject is the
// patient the gateway would chart the study for.
func (g *Gateway) samePatient(ctx context.Context, recSubject, subject, system, pid string) (bool, error) {
	// A record that keeps conditional references as sent (Medplum) holds
	// the one this study's Patient ID makes: the same patient, and the
	// literal reference of fhir.patient_reference: resolve repairs it.
	if recSubject == subject || recSubject == fhir.ConditionalPatient(system, pid) {
		return true, nil
	}
	if !strings.HasPrefix(subject, "Patient?") {
		return false, nil // two literal references
	}
	refs, err := g.deliverer.Client.FindPatients(ctx, system, pid)
	if err != nil {
		return false, fmt.Errorf("finding the study's patient in the record: %w", err)
	}
	return len(refs) == 1 && refs[0] == recSubject, nil
}

// studyDeadLetters knows which dead letters say why a study was not
// charted, so that charting it removes them.
type studyDeadLetters struct {
	mu     sync.Mutex
	loaded bool
	ids    map[string][]uint64 // study UID → dead letter ids
}

func (g *Gateway) studyDeadIDsLocked() error {
	d := &g.studyDead
	if d.loaded {
		return nil
	}
	dls, err := g.outbox.DeadLetters(0)
	if err != nil {
		return err
	}
	d.ids = map[string][]uint64{}
	for _, dl := range dls {
		if uid, ok := buffer.StudyOfKey(dl.Key); ok && dl.Kind == KindStudy {
			d.ids[uid] = append(d.ids[uid], dl.ID)
		}
	}
	d.loaded = true
	return nil
}

func (g *Gateway) addStudyDeadLetter(ctx context.Context, uid string, detail []byte, reason string) (uint64, error) {
	d := &g.studyDead
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := g.studyDeadIDsLocked(); err != nil {
		return 0, err
	}
	// One dead letter per study: the newest reason replaces the old.
	if old := d.ids[uid]; len(old) > 0 {
		g.outbox.DropDead(ctx, old...)
		delete(d.ids, uid)
	}
	id, err := g.outbox.AddDeadLetter(ctx, buffer.Item{Key: studyKey(uid), Kind: KindStudy, Payload: detail}, reason)
	if err != nil {
		return 0, err
	}
	d.ids[uid] = []uint64{id}
	return id, nil
}

func (g *Gateway) dropStudyDeadLetters(ctx context.Context, uid string) {
	d := &g.studyDead
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := g.studyDeadIDsLocked(); err != nil {
		return
	}
	if ids := d.ids[uid]; len(ids) > 0 {
		if _, err := g.outbox.DropDead(ctx, ids...); err != nil && !errors.Is(err, buffer.ErrNotFound) {
			g.log.Warn("a charted study's old dead letter could not be removed", "err", err)
			return
		}
		delete(d.ids, uid)
	}
}

// forgetStudyDeadLetters drops ids from what studyDead knows (after the
// API dropped or retried them).
func (g *Gateway) forgetStudyDeadLetters(ids []uint64) {
	d := &g.studyDead
	d.mu.Lock()
	defer d.mu.Unlock()
	for uid, have := range d.ids {
		d.ids[uid] = slices.DeleteFunc(have, func(id uint64) bool { return slices.Contains(ids, id) })
		if len(d.ids[uid]) == 0 {
			delete(d.ids, uid)
		}
	}
}
