// Package devices will hold the bedside-monitor sources (serial RS-232 and
// MQTT), the firmware-profile engine, protocol decoders and simulators. It
// produces devices.Reading values and never imports edge.
package devices
