package hl7

import (
	"strings"
	"testing"
)

// A message that declares only a component separator ("MSH|^|") has no
// repetitions: every field is its one repetition, and its components must
// still be read. Before the fix, Comp on a field of such a message gave the
// whole field as component 1 and nothing as component 2, so MSH-9 read as
// "ORU^R01" and its event as "".
func TestComponentsWithoutRepetitionCharacter_review12(t *testing.T) {
	m := mustParse(t, "MSH|^|APP^EUI|F|||20240305101500||ORU^R01|C1|P|2.6\rPV1||I|ICU^R1^B3")
	if got := m.Field("MSH", 1, 9).Comp(1).Text(); got != "ORU" {
		t.Errorf("MSH-9.1 = %q, want ORU", got)
	}
	if got := m.Field("MSH", 1, 9).Comp(2).Text(); got != "R01" {
		t.Errorf("MSH-9.2 = %q, want R01", got)
	}
	if got := m.Field("PV1", 1, 3).Comps(); got != 3 {
		t.Errorf("PV1-3 has %d components, want 3", got)
	}
	if got := m.Field("PV1", 1, 3).Rep(1).Comp(3).Text(); got != "B3" {
		t.Errorf("PV1-3(1).3 = %q, want B3", got)
	}
	if got := m.Field("PV1", 1, 3).Rep(2); !got.IsEmpty() {
		t.Errorf("PV1-3(2) = %q, want empty", got.Raw())
	}
	// Its acknowledgement names the event, as for any other message.
	ack := string(Acks(m, Reply{}, AckOptions{ControlID: "A", Time: ackTime})[0])
	if !strings.Contains(ack, "|ACK^R01^ACK|") {
		t.Errorf("ack %q does not name the event", ack)
	}
}
