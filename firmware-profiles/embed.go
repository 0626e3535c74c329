// Package firmwareprofiles holds the firmware profiles built into wardgate:
// one YAML file per monitor model, <vendor>/<model>.yaml, beside the capture
// its test replays and the readings that capture must give.
package firmwareprofiles

import "embed"

// FS is this folder: profiles, captures and expected readings.
//
//go:embed */*
var FS embed.FS
