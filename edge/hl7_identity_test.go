package edge

import (
	"strings"
	"testing"

	"github.com/wardgate/wardgate/devices/hl7"
	"github.com/wardgate/wardgate/edge/fhir"
)

// A part that holds the template's separator would let two of the
// sender's beds make one id: refused, with what to do.
func TestBedTemplateRefusesAPartHoldingItsSeparator(t *testing.T) {
	tpl := bedTemplate("{point_of_care}-{bed}")
	if b, err := tpl.bedOfPL(hl7.PL{PointOfCare: "ICU", Bed: "12"}); err != nil || b != "ICU-12" {
		t.Fatalf("ICU^^12: %q %v", b, err)
	}
	for _, pl := range []hl7.PL{{PointOfCare: "ICU-1", Bed: "2"}, {PointOfCare: "ICU", Bed: "1-2"}} {
		if b, err := tpl.bedOfPL(pl); err == nil || !strings.Contains(err.Error(), "another separator") {
			t.Errorf("%+v made %q (%v): ICU-1^^2 and ICU^^1-2 would be one bed", pl, b, err)
		}
	}
	if b, err := bedTemplate("{point_of_care}_{bed}").bedOfPL(hl7.PL{PointOfCare: "ICU-1", Bed: "2"}); err != nil || b != "ICU-1_2" {
		t.Fatalf("with another separator: %q %v", b, err)
	}
}

// PID-3: an authority written with another OID than the system's is
// another authority, whatever its namespace; the medical record number
// (CX-5 MR) is taken before the same authority's account number.
func TestRecordNumbersByAuthorityAndType(t *testing.T) {
	r := recordNumbers{system: "urn:oid:1.2.3.4", authority: "HOSP"}
	cx := func(v, ns, oid, typ string) hl7.CX {
		a := hl7.HD{Namespace: ns}
		if oid != "" {
			a.UniversalID, a.UniversalIDType = oid, "ISO"
		}
		return hl7.CX{Value: v, Authority: a, Type: typ}
	}
	for _, tc := range []struct {
		name string
		ids  []hl7.CX
		want string // value, "" none, "error"
	}{
		{"namespace", []hl7.CX{cx("1", "HOSP", "", "MR")}, "1"},
		{"the system's OID", []hl7.CX{cx("2", "", "1.2.3.4", "MR")}, "2"},
		{"HOSP with another OID", []hl7.CX{cx("3", "HOSP", "9.9.9", "MR")}, ""},
		{"MR before AN", []hl7.CX{cx("4", "HOSP", "", "AN"), cx("5", "HOSP", "", "MR")}, "5"},
		{"two MRs", []hl7.CX{cx("6", "HOSP", "", "MR"), cx("7", "HOSP", "", "MR")}, "error"},
		{"another authority", []hl7.CX{cx("8", "OTHER", "", "MR")}, ""},
	} {
		got, err := r.patient(tc.ids)
		switch {
		case tc.want == "error":
			if err == nil {
				t.Errorf("%s: %q, want an error", tc.name, got)
			}
		case tc.want == "" && (got != "" || err != nil):
			t.Errorf("%s: %q %v, want none", tc.name, got, err)
		case tc.want != "":
			if _, v, _ := fhir.ParseConditionalPatient(got); err != nil || v != tc.want {
				t.Errorf("%s: %q %v, want %s", tc.name, got, err, tc.want)
			}
		}
	}
}
