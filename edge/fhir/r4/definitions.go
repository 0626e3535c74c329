package r4

import "strings"

// The elements of R4 (4.0.1) that wardgate writes, from the specification's
// StructureDefinitions: Observation (vital signs and their panels), Device,
// ImagingStudy, Endpoint, and the datatypes they use. Every other element
// these types have in R4 is listed too, as "not written" (tOther,
// tOtherPrimitive), so that such an element is told apart from a name R4
// does not know. Datatypes wardgate never fills in (Narrative, Extension,
// Range …) are not described: an element of such a type is not written, and
// is refused before its content matters.

// typ is an element's type as far as checking it goes.
type typ uint8

const (
	tString typ = iota
	tMarkdown
	tCode // a code of a required binding when codes are given
	tID
	tURI
	tURL
	tCanonical
	tDateTime
	tInstant
	tDate
	tDecimal
	tUnsignedInt
	tPositiveInt
	tOID
	tUUID
	tSamples        // SampledData.data: decimals, E, U or L, one space apart
	tLiteral        // Reference.reference: a literal or conditional reference
	tObject         // a datatype or backbone element: def
	tReference      // a Reference: targets
	tOther          // an R4 element of a complex type that wardgate does not write
	tOtherPrimitive // an R4 element of a primitive type that wardgate does not write
)

// element is one element of a structure.
type element struct {
	name    string
	typ     typ
	min1    bool     // cardinality 1..
	many    bool     // cardinality ..*
	codes   []string // a required binding
	def     *structure
	targets []string // the resource types a Reference may point at
}

func (e element) primitive() bool {
	return e.typ != tObject && e.typ != tReference && e.typ != tOther
}

func (e element) required() element              { e.min1 = true; return e }
func (e element) list() element                  { e.many = true; return e }
func (e element) in(codes ...string) element     { e.codes = codes; return e }
func (e element) to(resources ...string) element { e.targets = resources; return e }

func el(name string, t typ) element { return element{name: name, typ: t} }
func of(name string, def *structure) element {
	return element{name: name, typ: tObject, def: def}
}
func ref(name string, targets ...string) element {
	return element{name: name, typ: tReference, targets: targets}
}

// others are the R4 elements, of complex types, that wardgate does not write.
func others(names string) []element {
	var out []element
	for _, n := range strings.Fields(names) {
		out = append(out, element{name: n, typ: tOther})
	}
	return out
}

// otherPrimitives are the R4 elements, of primitive types, that wardgate
// does not write.
func otherPrimitives(names string) []element {
	var out []element
	for _, n := range strings.Fields(names) {
		out = append(out, element{name: n, typ: tOtherPrimitive})
	}
	return out
}

// structure is a resource, a datatype or a backbone element.
type structure struct {
	name     string
	byName   map[string]*element
	required []*element
	// choices are the names of its choice elements ("value" for
	// value[x]): R4 allows one type of each.
	choices []string
	// invariant, when set, checks a rule across the elements of an object
	// (Period's per-1); it passes over values refused for themselves.
	invariant func(members []member) (k kind, msg string, bad bool)
}

// oneOf declares s's choice elements.
func (s *structure) oneOf(choices ...string) *structure { s.choices = choices; return s }

// choice returns the choice element ("value") that an element of s
// ("valueQuantity") is a type of, or "".
func (s *structure) choice(name string) string {
	for _, c := range s.choices {
		if len(name) > len(c) && name[:len(c)] == c && name[len(c)] >= 'A' && name[len(c)] <= 'Z' {
			return c
		}
	}
	return ""
}

func def(name string, groups ...[]element) *structure {
	s := &structure{name: name, byName: map[string]*element{}}
	for _, g := range groups {
		for i := range g {
			e := &g[i]
			if s.byName[e.name] != nil {
				panic("r4: " + name + "." + e.name + " defined twice")
			}
			s.byName[e.name] = e
			if e.min1 {
				s.required = append(s.required, e)
			}
		}
	}
	return s
}

func els(e ...element) []element { return e }

// The elements every resource, datatype and backbone element has.
var (
	resourceBase = func() []element {
		return append(els(el("id", tID), of("meta", meta)),
			append(others("text contained extension modifierExtension"), otherPrimitives("implicitRules language")...)...)
	}
	elementBase  = func() []element { return append(others("extension"), otherPrimitives("id")...) }
	backboneBase = func() []element { return append(elementBase(), others("modifierExtension")...) }
)

// Datatypes.
var (
	meta = def("Meta", elementBase(),
		els(el("versionId", tID), el("lastUpdated", tInstant), el("profile", tCanonical).list()),
		others("security tag"), otherPrimitives("source"))

	coding = def("Coding", elementBase(),
		els(el("system", tURI), el("code", tCode), el("display", tString)),
		otherPrimitives("version userSelected"))

	codeableConcept = def("CodeableConcept", elementBase(),
		els(of("coding", coding).list(), el("text", tString)))

	identifier = def("Identifier", elementBase(),
		els(el("use", tCode).in("usual", "official", "temp", "secondary", "old"),
			of("type", codeableConcept), el("system", tURI), el("value", tString)),
		others("period assigner"))

	reference = def("Reference", elementBase(),
		els(el("reference", tLiteral), el("display", tString)),
		others("identifier"), otherPrimitives("type"))

	quantity = def("Quantity", elementBase(),
		els(el("value", tDecimal), el("comparator", tCode).in("<", "<=", ">=", ">"),
			el("unit", tString), el("system", tURI), el("code", tCode)))

	// SimpleQuantity is a Quantity without comparator (R4 profiles
	// Quantity: comparator 0..0, sqty-1); google/fhir's has no such field.
	simpleQuantity = def("SimpleQuantity", elementBase(),
		els(el("value", tDecimal), el("unit", tString), el("system", tURI), el("code", tCode)))

	annotation = def("Annotation", elementBase(),
		els(el("text", tMarkdown).required()),
		others("authorReference"), otherPrimitives("authorString time"))

	// period: start and end are dateTimes, and per-1 (start <= end) holds.
	period = func() *structure {
		p := def("Period", elementBase(), els(el("start", tDateTime), el("end", tDateTime)))
		p.invariant = startNotAfterEnd
		return p
	}()

	// sampledData: data is "decimal values separated by a single space
	// (character u20); the special values E (error), L (below detection
	// limit) and U (above detection limit) can also be used in place of a
	// decimal value".
	sampledData = def("SampledData", elementBase(),
		els(of("origin", simpleQuantity).required(), el("period", tDecimal).required(),
			el("factor", tDecimal), el("lowerLimit", tDecimal), el("upperLimit", tDecimal),
			el("dimensions", tPositiveInt).required(), el("data", tSamples)))
)

// Observation: a vital sign, or a blood-pressure panel with its components.
var (
	observationComponent = def("Observation.component", backboneBase(),
		els(of("code", codeableConcept).required(), of("valueQuantity", quantity), of("valueSampledData", sampledData)),
		others("valueCodeableConcept valueRange valueRatio valuePeriod dataAbsentReason interpretation referenceRange"),
		otherPrimitives("valueString valueBoolean valueInteger valueTime valueDateTime")).oneOf("value")

	observation = def("Observation", resourceBase(),
		els(of("identifier", identifier).list(),
			el("status", tCode).required().in("registered", "preliminary", "final", "amended", "corrected", "cancelled", "entered-in-error", "unknown"),
			of("category", codeableConcept).list(),
			of("code", codeableConcept).required(),
			ref("subject", "Patient", "Group", "Device", "Location"),
			el("effectiveDateTime", tDateTime),
			of("effectivePeriod", period),
			el("issued", tInstant),
			of("valueQuantity", quantity),
			of("valueSampledData", sampledData),
			of("interpretation", codeableConcept).list(),
			of("note", annotation).list(),
			of("method", codeableConcept),
			ref("device", "Device", "DeviceMetric"),
			of("component", observationComponent).list()),
		others("basedOn partOf focus encounter effectiveTiming performer "+
			"valueCodeableConcept valueRange valueRatio valuePeriod "+
			"dataAbsentReason bodySite specimen referenceRange hasMember derivedFrom"),
		otherPrimitives("effectiveInstant valueString valueBoolean valueInteger valueTime valueDateTime")).oneOf("effective", "value")
)

// Device: the monitor a reading came from.
var (
	deviceName = def("Device.deviceName", backboneBase(),
		els(el("name", tString).required(),
			el("type", tCode).required().in("udi-label-name", "user-friendly-name", "patient-reported-name", "manufacturer-name", "model-name", "other")))

	deviceVersion = def("Device.version", backboneBase(),
		els(el("value", tString).required()),
		others("type component"))

	device = def("Device", resourceBase(),
		els(of("identifier", identifier).list(),
			el("status", tCode).in("active", "inactive", "entered-in-error", "unknown"),
			el("manufacturer", tString),
			el("serialNumber", tString),
			of("deviceName", deviceName).list(),
			of("version", deviceVersion).list(),
			of("note", annotation).list()),
		others("definition udiCarrier statusReason type specialization property patient owner contact location safety parent"),
		otherPrimitives("distinctIdentifier manufactureDate expirationDate lotNumber modelNumber partNumber url"))
)

// ImagingStudy: a DICOM study with its series and instances.
var (
	imagingInstance = def("ImagingStudy.series.instance", backboneBase(),
		els(el("uid", tID).required(), of("sopClass", coding).required(), el("number", tUnsignedInt)),
		otherPrimitives("title"))

	imagingSeries = def("ImagingStudy.series", backboneBase(),
		els(el("uid", tID).required(), el("number", tUnsignedInt), of("modality", coding).required(),
			el("description", tString), el("numberOfInstances", tUnsignedInt),
			ref("endpoint", "Endpoint").list(), of("bodySite", coding), of("laterality", coding),
			el("started", tDateTime), of("instance", imagingInstance).list()),
		others("specimen performer"))

	imagingStudy = def("ImagingStudy", resourceBase(),
		els(of("identifier", identifier).list(),
			el("status", tCode).required().in("registered", "available", "cancelled", "entered-in-error", "unknown"),
			of("modality", coding).list(),
			ref("subject", "Patient", "Device", "Group").required(),
			el("started", tDateTime),
			ref("referrer", "Practitioner", "PractitionerRole"),
			ref("endpoint", "Endpoint").list(),
			el("numberOfSeries", tUnsignedInt),
			el("numberOfInstances", tUnsignedInt),
			el("description", tString),
			of("series", imagingSeries).list()),
		others("encounter basedOn interpreter procedureReference procedureCode location reasonCode reasonReference note"))
)

// Endpoint: the PACS's DICOMweb base.
var endpoint = def("Endpoint", resourceBase(),
	els(of("identifier", identifier).list(),
		el("status", tCode).required().in("active", "suspended", "error", "off", "entered-in-error", "test"),
		of("connectionType", coding).required(),
		el("name", tString),
		of("payloadType", codeableConcept).list().required(),
		el("address", tURL).required()),
	others("managingOrganization contact period"),
	otherPrimitives("payloadMimeType header"))

// resources are the resource types wardgate writes.
var resources = map[string]*structure{
	"Observation":  observation,
	"Device":       device,
	"ImagingStudy": imagingStudy,
	"Endpoint":     endpoint,
}
