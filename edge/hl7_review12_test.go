package edge

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/devices"
	"github.com/wardgate/wardgate/edge/fhir"
	"github.com/wardgate/wardgate/edge/fhir/fhirserver"
)

// A result's PID-3 names a record number that no Patient in the record
// carries (or several do), while the bed's stay names a Patient: the
// record answered, so the reading is uncertain and its hold runs out like
// any answer's (DESIGN 7: only a record that cannot be reached makes a
// reading wait without end). Before, it waited as "not yet asked" for
// ever, filling the held store until every message of the station was
// answered RETRY.
func TestReview12UnknownRecordNumberIsAnAnswerThatExpires(t *testing.T) {
	record := fhirserver.New()
	putPatient(record, "p1", "MRN1")
	putPatient(record, "d1", "DUP")
	putPatient(record, "d2", "DUP")
	g, _ := runGateway(t, record, "patients:\n  static: {WARD4-B1: Patient/p1}\n")
	for _, number := range []string{"NOBODY", "DUP"} {
		r := devices.Reading{Device: "hl7/x", Location: "WARD4-B1", DeviceTime: time.Now().Add(-time.Minute),
			NamedPatient: fhir.ConditionalPatient("urn:oid:1.2.3.4", number)}
		var why answer
		waitFor(t, "the record's answer on "+number, func() bool {
			_, _, why = g.associate(context.Background(), []devices.Reading{r}, askInBackground)
			return strings.Contains(why.reason, " carr")
		})
		if why.verdict != uncertain || !why.expires() || why.asOf.IsZero() {
			t.Errorf("%s: %v %q (as of %v): want uncertain, expiring, with the lookup's time", number, why.verdict, why.reason, why.asOf)
		}
	}
}
