package edge

import (
	"strconv"
	"testing"
	"time"
)

// A transfer that arrives after the discharge that followed it (an
// interface engine resending the A02 after the A03): the patient left the
// new bed at the discharge's time, and the bed is empty after it. Before
// the fix, the late A02 cut the first stay at its own time (losing the
// discharge's end) and opened a stay in the new bed that never ended: the
// next patient's readings from that bed went to the discharged patient.
func TestReview12LateTransferKeepsTheDischargeThatFollowedIt(t *testing.T) {
	g := adtGateway(t)
	p := mrn("4711")
	mustAccept(t, g, adtMessage(t, "1", "A01", at(0), party{"4711", "ICU-1", ""}))
	mustAccept(t, g, adtMessage(t, "3", "A03", at(120), party{"4711", "ICU-2", ""}))
	mustAccept(t, g, adtMessage(t, "2", "A02", at(60), party{"4711", "ICU-2", "ICU-1"}))
	expectWho(t, g,
		"ICU-1", at(30), p,
		"ICU-1", at(90), "vacant",
		"ICU-2", at(90), p,
		"ICU-2", at(130), "vacant", // discharged at 120
	)
	// A cancelled discharge still finds the discharge it cancels.
	mustAccept(t, g, adtMessage(t, "4", "A13", at(140), party{"4711", "ICU-2", ""}))
	expectWho(t, g, "ICU-2", at(130), p, "ICU-1", at(130), "vacant")
}

// A08s come with every demographic update. Each one that showed the
// patient in another bed than their stay added two more doubts, and past
// adtMaxDoubts the oldest were let go: the bed became certain again for
// the time the first A08 had made uncertain, and readings waiting from
// then were charted to the stay's patient after all.
func TestReview12RepeatedA08KeepsTheBedsUncertain(t *testing.T) {
	g := adtGateway(t)
	mustAccept(t, g, adtMessage(t, "1", "A01", at(0), party{"4711", "ICU-1", ""}))
	mustAccept(t, g, adtMessage(t, "2", "A08", at(60), party{"4711", "ICU-2", ""}))
	for i := range adtMaxDoubts/2 + 10 {
		mustAccept(t, g, adtMessage(t, "u"+strconv.Itoa(i), "A08", at(61).Add(time.Duration(i)*time.Second), party{"4711", "ICU-2", ""}))
	}
	expectWho(t, g, "ICU-1", at(30), mrn("4711"), "ICU-1", at(60), "uncertain", "ICU-2", at(60), "uncertain")
	if n := len(g.adt.st.Doubts); n > 4 {
		t.Errorf("%d doubts kept for one contradiction", n)
	}
}

// An update (A08) that arrives after the admission it came before (its
// EVN-6 earlier): the doubt it raises ends where the patient's next move
// begins, as it would have had it come in order. Before, it stayed open:
// the patient's bed was uncertain for their whole stay, and every reading
// waited until it expired.
func TestReview12LateA08EndsAtTheNextMove(t *testing.T) {
	g := adtGateway(t)
	p := mrn("4711")
	mustAccept(t, g, adtMessage(t, "1", "A01", at(10), party{"4711", "ICU-1", ""}))
	mustAccept(t, g, adtMessage(t, "2", "A08", at(0), party{"4711", "ICU-1", ""}))
	expectWho(t, g, "ICU-1", at(5), "uncertain", "ICU-1", at(10), p, "ICU-1", at(60), p)
}

// The same for a swap (A17) placed late, after the discharge of one of
// its patients: that patient's stay in the new bed ends at the discharge.
func TestReview12LateSwapKeepsTheDischargeThatFollowedIt(t *testing.T) {
	g := adtGateway(t)
	mustAccept(t, g, adtMessage(t, "1", "A01", at(0), party{"4711", "ICU-1", ""}))
	mustAccept(t, g, adtMessage(t, "2", "A01", at(0), party{"4712", "ICU-2", ""}))
	mustAccept(t, g, adtMessage(t, "4", "A03", at(100), party{"4711", "ICU-2", ""}))
	mustAccept(t, g, adtMessage(t, "3", "A17", at(30), party{"4711", "ICU-2", "ICU-1"}, party{"4712", "ICU-1", "ICU-2"}))
	expectWho(t, g,
		"ICU-1", at(40), mrn("4712"),
		"ICU-2", at(40), mrn("4711"),
		"ICU-2", at(110), "vacant",
		"ICU-1", at(110), mrn("4712"))
}

// A cancelled transfer (A12) of a patient who was discharged from the
// transfer's bed since: the stay re-opened in the bed they return to ends
// at that discharge. Before, it was re-opened without end, and the
// discharged patient lay in the bed for ever after.
func TestReview12CancelledTransferKeepsTheLaterDischarge(t *testing.T) {
	g := adtGateway(t)
	p := mrn("4711")
	mustAccept(t, g, adtMessage(t, "1", "A01", at(0), party{"4711", "ICU-1", ""}))
	mustAccept(t, g, adtMessage(t, "2", "A02", at(60), party{"4711", "ICU-2", "ICU-1"}))
	mustAccept(t, g, adtMessage(t, "3", "A03", at(100), party{"4711", "ICU-2", ""}))
	mustAccept(t, g, adtMessage(t, "4", "A12", at(110), party{"4711", "ICU-1", "ICU-2"}))
	expectWho(t, g,
		"ICU-1", at(70), p,
		"ICU-2", at(70), "vacant",
		"ICU-1", at(120), "vacant")
}
