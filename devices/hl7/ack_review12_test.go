package hl7

import (
	"bytes"
	"testing"
)

// An acknowledgement is written in the sender's delimiters. A sender that
// declared no sub-component separator (or no repetition separator) gets
// no NUL bytes where that separator would be: they are not HL7, and some
// receivers end a string at the first one.
func TestAckWithFewEncodingCharactersHasNoNUL_review12(t *testing.T) {
	for _, msh := range []string{
		"MSH|^|A|F|||20240305101500||ORU^R01|C1|P|2.3",
		"MSH|^~|A|F|||20240305101500||ORU^R01|C1|P|2.3",
		"MSH|^~\\|A|F|||20240305101500||ORU^R01|C1|P|2.4",
		"MSH|^|A|F|||20240305101500||ORU^R01|C1|P|2.6",
	} {
		m := mustParse(t, msh)
		for _, o := range []Outcome{Accepted, Failed, Rejected, Busy} {
			for _, a := range Acks(m, Reply{Outcome: o, Where: Location{Segment: "OBX", Seq: 2, Field: 5}, Text: "a|b^c"}, AckOptions{ControlID: "A", Time: ackTime}) {
				if bytes.IndexByte(a, 0) >= 0 {
					t.Errorf("%s, outcome %d: acknowledgement holds a NUL byte: %q", msh, o, a)
				}
				am, err := Parse(a, Limits{})
				if err != nil {
					t.Errorf("%s: acknowledgement does not parse: %v", msh, err)
					continue
				}
				if got := am.Field("MSA", 1, 2).Text(); got != "C1" {
					t.Errorf("%s: MSA-2 = %q", msh, got)
				}
				if o != Accepted {
					if got := am.Field("ERR", 1, 1).Comp(1).Text() + am.Field("ERR", 1, 2).Comp(1).Text(); got != "OBX" {
						t.Errorf("%s: ERR does not name OBX: %q", msh, a)
					}
				}
			}
		}
	}
}
