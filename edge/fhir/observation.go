package fhir

import (
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/wardgate/wardgate/devices"
)

var vitalSignsCategory = []CodeableConcept{{
	Coding: []Coding{{System: CategorySystem, Code: "vital-signs", Display: "Vital Signs"}},
	Text:   "Vital Signs",
}}

// alternateUnits are the other units a parameter's profile accepts.
var alternateUnits = map[string][]string{"Cel": {"[degF]"}}

// PatientReading is a reading with the patient it belongs to: the one who
// lay in its bed at its time, as the gateway's association model resolved
// it. The mapper never looks a patient up itself.
type PatientReading struct {
	devices.Reading
	Patient string // "Patient/123"
	// Interval, when set, makes the reading an interval's charted value
	// (or its samples): see Interval.
	Interval *Interval `json:",omitempty"`
}

// keyTime is the time that groups a reading with the other members of its
// blood-pressure panel: its identity time, or its interval's start.
func keyTime(r PatientReading) time.Time {
	if r.Interval != nil {
		return r.Interval.Start
	}
	return identityTime(r.Reading)
}

// samples tells whether a reading is an interval's samples: one
// Observation per parameter, never a panel.
func (r PatientReading) samples() bool { return r.Interval != nil && r.Interval.Samples != "" }

// MapReadings maps the readings of one frame (or message) to entries: a
// Device entry the first time a device is seen in this run, then one
// Observation per reading, except that the systolic and diastolic (and mean)
// readings of one blood pressure become one panel. Readings that cannot be
// mapped are returned with the reason.
func (m *Mapper) MapReadings(readings []PatientReading) ([]Entry, []Rejected) {
	var out []Entry
	var rejected []Rejected
	reject := func(r PatientReading, err error) {
		rejected = append(rejected, Rejected{What: r.Device + "/" + strconv.FormatUint(uint64(r.Code.Code), 10), Reason: err, Reading: r.Reading})
	}

	// Blood-pressure members sharing a device, patient, family and time
	// form a panel.
	type panelKey struct {
		device, patient string
		family          uint32
		at              int64 // UnixNano: times of one instant in two zones are equal
	}
	panels := map[panelKey][4]*PatientReading{}
	var order []panelKey
	for i := range readings {
		r := &readings[i]
		if f, member := bpOf(r.Code.Code); f != nil && !r.samples() {
			k := panelKey{r.Device, r.Patient, f.Panel, keyTime(*r).UnixNano()}
			p, seen := panels[k]
			if !seen {
				order = append(order, k)
			}
			p[member] = r
			panels[k] = p
		}
	}

	var emitted map[string]bool // Device stamps this mapping carries
	for i := range readings {
		r := readings[i]
		dev, err := m.deviceEntry(r.Reading, &emitted)
		if err != nil {
			reject(r, err)
			continue
		}
		if dev != nil {
			out = append(out, *dev)
		}
		var e Entry
		switch f, member := bpOf(r.Code.Code); {
		case f != nil && !r.samples():
			continue // below, as a panel
		case f != nil:
			e, err = m.bpMember(f, member, r)
		default:
			e, err = m.observation(r)
		}
		if err != nil {
			reject(r, err)
			continue
		}
		out = append(out, e)
	}
	for _, k := range order {
		p := panels[k]
		f, _ := bpOf(k.family + 1)
		if p[1] != nil && p[2] != nil {
			e, err := m.bloodPressure(f, p)
			if err != nil {
				for _, r := range p[1:] {
					if r != nil {
						reject(*r, err)
					}
				}
				continue
			}
			out = append(out, e)
			continue
		}
		// Without both systolic and diastolic there is no bp panel: each
		// member stands alone, claiming no profile.
		for member, r := range p {
			if r == nil || member == 0 {
				continue
			}
			e, err := m.bpMember(f, member, *r)
			if err != nil {
				reject(*r, err)
				continue
			}
			out = append(out, e)
		}
	}
	return out, rejected
}

// identityTime is the time that identifies a reading: the device's own
// clock when it sends one (so that reading the same frame again maps to the
// same Observation, whatever the clock offset estimate is now), else the
// time the gateway first received it (a redelivered message keeps the
// receipt time of its first delivery).
func identityTime(r devices.Reading) time.Time {
	if !r.DeviceTime.IsZero() {
		return r.DeviceTime
	}
	return r.Received
}

// observationID names the measurement: device, code and time. Two readings
// of one device and code at two times are two Observations, whatever their
// values. A device clock that was set back shows device times it showed
// before: a reading at such a time carries how many times it was shown
// (devices.Reading.ClockRepeat), so the second showing names another
// measurement. Nothing that depends on the offset estimate is in the name:
// every gateway that saw the same frames names them alike.
func (m *Mapper) observationID(r devices.Reading, code uint32) Identifier {
	v := fmt.Sprintf("%s/%d/%s", r.Device, code, fhirTime(identityTime(r)))
	if !r.DeviceTime.IsZero() && r.ClockRepeat > 0 {
		v += "/repeat" + strconv.Itoa(r.ClockRepeat)
	}
	return Identifier{System: m.system("observation"), Value: v}
}

// observationStatus is the status the site asked for, final by default.
func (m *Mapper) observationStatus() string {
	if m.ObservationStatus == "" {
		return "final"
	}
	return m.ObservationStatus
}

// base fills what every Observation of a reading has.
func (m *Mapper) base(r PatientReading, code uint32) (*Observation, error) {
	if r.Patient == "" {
		return nil, fmt.Errorf("%w (%s)", ErrNoPatient, r.Location)
	}
	o := &Observation{
		ResourceType:      "Observation",
		Status:            m.observationStatus(),
		Subject:           &Reference{Reference: r.Patient},
		EffectiveDateTime: fhirTime(r.Effective()),
		Device:            &Reference{Reference: conditional("Device", m.system("device"), deviceIdentity(r.Reading))},
	}
	if r.Interval != nil {
		o.Identifier = []Identifier{m.intervalID(r, code)}
		intervalParts(o, r.Interval)
	} else {
		o.Identifier = []Identifier{m.observationID(r.Reading, code)}
	}
	if !r.Received.IsZero() {
		o.Issued = fhirTime(r.Received)
	}
	if r.Quality&devices.Questionable != 0 {
		o.Interpretation = []CodeableConcept{{
			Coding: []Coding{{System: V3Interp, Code: "IND", Display: "Indeterminate"}},
			Text:   "flagged as questionable by the device",
		}}
	}
	return o, nil
}

func quantity(v float64, unit string) *Quantity {
	return &Quantity{Value: Decimal(v), Unit: unit, System: UCUM, Code: unit}
}

// request writes an Observation once: a conditional create. An amended
// interval replaces the Observation it charted before (a conditional
// update on its identifier).
func request(o *Observation) Request {
	id := o.Identifier[0]
	if o.Status == "amended" {
		return Request{Method: "PUT", URL: conditional("Observation", id.System, id.Value)}
	}
	return Request{Method: "POST", URL: "Observation", IfNoneExist: ifNoneExist(id.System, id.Value)}
}

// value sets an Observation's value: the reading's quantity, or its
// interval's samples (which claim no vital-signs profile: those ask for a
// Quantity).
func value(o *Observation, r PatientReading) {
	if r.samples() {
		o.ValueSampledData = sampledData(r)
		o.Meta = nil
		return
	}
	o.ValueQuantity = quantity(r.Value, r.Unit)
}

func checkUnit(r PatientReading, want string) error {
	if r.Unit == want || slices.Contains(alternateUnits[want], r.Unit) {
		return nil
	}
	return fmt.Errorf("unit %q where %s needs %q", r.Unit, r.Code.RefID, want)
}

func mdcCoding(code uint32, ref string) Coding {
	return Coding{System: MDCSystem, Code: strconv.FormatUint(uint64(code), 10), Display: ref}
}

func (m *Mapper) observation(r PatientReading) (Entry, error) {
	p, ok := paramOf(r.Code.Code)
	if !ok {
		return Entry{}, fmt.Errorf("no mapping for MDC code %d (%s)", r.Code.Code, r.Code.RefID)
	}
	if err := checkUnit(r, p.UCUM); err != nil {
		return Entry{}, err
	}
	o, err := m.base(r, p.MDC)
	if err != nil {
		return Entry{}, err
	}
	o.Code = CodeableConcept{Coding: append(slices.Clone(p.LOINC), mdcCoding(p.MDC, p.RefID)), Text: p.Display}
	if p.Profile != "" {
		o.Meta = &Meta{Profile: []string{profileBase, p.Profile}}
		o.Category = vitalSignsCategory
	}
	value(o, r)
	return m.observationEntry(o)
}

func (m *Mapper) bloodPressure(f *bpFamily, p [4]*PatientReading) (Entry, error) {
	for _, r := range p[1:] {
		if r != nil {
			if err := checkUnit(*r, "mm[Hg]"); err != nil {
				return Entry{}, err
			}
		}
	}
	o, err := m.base(*p[1], f.Panel)
	if err != nil {
		return Entry{}, err
	}
	o.Meta = &Meta{Profile: []string{profileBase, profileBP}}
	o.Category = vitalSignsCategory
	o.Code = CodeableConcept{Coding: []Coding{loincBP, mdcCoding(f.Panel, f.RefID)}, Text: f.Display}
	members := [...][]Coding{nil, f.Sys, f.Dia, f.Mean}
	for member := 1; member <= 3; member++ {
		r := p[member]
		if r == nil {
			continue
		}
		o.Component = append(o.Component, ObservationComponent{
			Code:          CodeableConcept{Coding: append(slices.Clone(members[member]), mdcCoding(f.Panel+uint32(member), f.RefID+bpMemberRef[member]))},
			ValueQuantity: quantity(r.Value, r.Unit),
		})
	}
	return m.observationEntry(o)
}

func (m *Mapper) bpMember(f *bpFamily, member int, r PatientReading) (Entry, error) {
	if err := checkUnit(r, "mm[Hg]"); err != nil {
		return Entry{}, err
	}
	o, err := m.base(r, r.Code.Code)
	if err != nil {
		return Entry{}, err
	}
	codings := [...][]Coding{nil, f.Sys, f.Dia, f.Mean}[member]
	o.Code = CodeableConcept{Coding: append(slices.Clone(codings), mdcCoding(r.Code.Code, f.RefID+bpMemberRef[member]))}
	value(o, r)
	return m.observationEntry(o)
}
