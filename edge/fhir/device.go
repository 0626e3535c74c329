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

// deviceEntry returns the Device entry for r's device when this run has not
// written that device yet (or its firmware changed), else nil.
func (m *Mapper) deviceEntry(r devices.Reading) (*Entry, error) {
	id := deviceIdentity(r)
	stamp := id + "|" + r.Firmware + "|" + r.Profile
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.devices[r.Device] == stamp {
		return nil, nil
	}
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
	if m.devices == nil {
		m.devices = map[string]string{}
	}
	m.devices[r.Device] = stamp
	return &e, nil
}

// Forget makes the next reading of device write its Device entry again: for a
// caller whose entries did not reach the outbox.
func (m *Mapper) Forget(device string) {
	m.mu.Lock()
	delete(m.devices, device)
	m.mu.Unlock()
}
