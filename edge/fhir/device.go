package fhir

import (
	"strings"

	"github.com/wardgate/wardgate/devices"
)

// DeviceResource is an R4 Device as wardgate writes it.
type DeviceResource struct {
	ResourceType string        `json:"resourceType"`
	Identifier   []Identifier  `json:"identifier,omitempty"`
	Status       string        `json:"status,omitempty"`
	Manufacturer string        `json:"manufacturer,omitempty"`
	SerialNumber string        `json:"serialNumber,omitempty"`
	DeviceName   []DeviceName  `json:"deviceName,omitempty"`
	Version      []DeviceValue `json:"version,omitempty"`
	Note         []Annotation  `json:"note,omitempty"`
}

// DeviceName is a name of the device.
type DeviceName struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// DeviceValue is a device version.
type DeviceValue struct {
	Value string `json:"value"`
}

// Annotation is a free-text note.
type Annotation struct {
	Text string `json:"text"`
}

// deviceIdentity identifies the physical device: the configured monitor id,
// and its serial number when it reports one, so that a monitor swapped at the
// same bed becomes a Device of its own.
func deviceIdentity(r devices.Reading) string {
	if r.SerialNumber != "" {
		return r.Device + "/" + r.SerialNumber
	}
	return r.Device
}

// deviceStamp is what a written Device says of a reading's device: a new
// serial number, firmware or profile is a Device to write again.
func deviceStamp(r devices.Reading) string {
	return deviceIdentity(r) + "|" + r.Firmware + "|" + r.Profile
}

// deviceEntry returns the Device entry for r's device unless a Device with
// its stamp is known to be in the outbox (ConfirmDevices), or the caller
// has one from this mapping already (emitted).
func (m *Mapper) deviceEntry(r devices.Reading, emitted *map[string]bool) (*Entry, error) {
	stamp := deviceStamp(r)
	m.mu.Lock()
	written := m.devices[r.Device] == stamp
	m.mu.Unlock()
	if written || (*emitted)[stamp] {
		return nil, nil
	}
	id := deviceIdentity(r)
	vendor, model, _ := strings.Cut(r.Profile, "/")
	d := DeviceResource{
		ResourceType: "Device",
		Identifier:   []Identifier{{System: m.system("device"), Value: id}},
		Status:       "active",
		Manufacturer: vendor,
		SerialNumber: r.SerialNumber,
		Note:         []Annotation{{Text: "monitor " + r.Device + " at " + r.Location + ", decoded with profile " + r.Profile}},
	}
	if model != "" {
		d.DeviceName = []DeviceName{{Name: model, Type: "model-name"}}
	}
	if r.Firmware != "" {
		d.Version = []DeviceValue{{Value: r.Firmware}}
	}
	// A conditional update, so that a new firmware version reaches the record.
	e, err := entry(d, Request{Method: "PUT", URL: conditional("Device", m.system("device"), id)})
	if err != nil {
		return nil, err
	}
	if *emitted == nil {
		*emitted = map[string]bool{}
	}
	(*emitted)[stamp] = true
	e.device, e.stamp = r.Device, stamp
	return &e, nil
}

// ConfirmDevices records that the Device entries among entries are in the
// outbox (the Append that carried them committed): later readings of those
// devices no longer carry a Device entry. Until then every mapping of a
// device carries one, so that no Observation can reach the outbox before
// the Device it refers to, whoever maps at once (a source and the resolver
// of held readings). The record takes the repeats as updates, and the
// deliverer sends one of each Bundle. Only what the entries carried is
// confirmed: a mapping without a Device entry confirms nothing (a Device
// the record refused, and Forget, meanwhile stays forgotten).
func (m *Mapper) ConfirmDevices(entries []Entry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range entries {
		if e.device == "" {
			continue
		}
		if m.devices == nil {
			m.devices = map[string]string{}
		}
		m.devices[e.device] = e.stamp
	}
}

// Forget makes the next reading of device write its Device entry again:
// for a Device the record refused.
func (m *Mapper) Forget(device string) {
	m.mu.Lock()
	delete(m.devices, device)
	m.mu.Unlock()
}
