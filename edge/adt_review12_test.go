package edge

import "testing"

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
