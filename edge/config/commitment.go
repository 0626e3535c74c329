package config

import (
	"fmt"
	"strings"
	"time"
)

// DICOMCommitment is dicom.commitment: the gateway answers Storage
// Commitment Push Model requests (PS3.4 Annex J).
type DICOMCommitment struct {
	// CommitAfter says what committed means: spooled (the default: durable
	// in the spool) or forwarded (held by every dicom.forward destination).
	CommitAfter string `yaml:"commit_after"`
	// Timeout bounds how long a reference waits to be forwarded before it
	// is reported failed (default 24h).
	Timeout Duration `yaml:"timeout"`
}

// DefaultCommitTimeout is dicom.commitment.timeout's default.
const DefaultCommitTimeout = Duration(24 * time.Hour)

func (c *DICOMCommitment) applyDefaults() {
	if c == nil {
		return
	}
	if c.CommitAfter == "" {
		c.CommitAfter = "spooled"
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultCommitTimeout
	}
}

// validateCommitment checks dicom.commitment, and the allow entries' ports
// (where reports go on a new association).
func validateCommitment(d *DICOM, ps *Problems) {
	c := d.Commitment
	if c == nil {
		for i, a := range d.Allow {
			if a.Port != 0 {
				ps.Warn(fmt.Sprintf("dicom.allow[%d].port", i), "is used only with dicom.commitment (where storage commitment reports go)")
			}
		}
		return
	}
	switch c.CommitAfter {
	case "spooled":
	case "forwarded":
		if len(d.Forward) == 0 {
			ps.At("dicom.commitment.commit_after", "is forwarded, but dicom.forward lists no destination: nothing could ever be committed")
		}
	default:
		ps.At("dicom.commitment.commit_after", "%q is not spooled or forwarded", c.CommitAfter)
	}
	if c.Timeout.D() < time.Minute || c.Timeout.D() > 30*24*time.Hour {
		ps.At("dicom.commitment.timeout", "%s is not from 1m to 720h", c.Timeout)
	}
	if d.AllowAny {
		ps.Warn("dicom.commitment", "with allow_any, no requester has an address: a report goes only on the requester's own associations, and waits for one when it has left")
	}
	ports := map[string]int{}
	for i, a := range d.Allow {
		ae := strings.TrimSpace(a.AETitle)
		switch j, seen := ports[ae]; {
		case a.Port == 0:
			ps.Warn(fmt.Sprintf("dicom.allow[%d]", i), "(%s) has no port: its storage commitment reports go only on its own associations, and wait for one when it has left", ae)
		case seen:
			ps.At(fmt.Sprintf("dicom.allow[%d].port", i), "%s has a port in dicom.allow[%d] already: its reports can go to one address only", ae, j)
		default:
			ports[ae] = i
		}
	}
}

// validateAllowPort checks an allow entry's port: a requester's address
// for storage commitment reports needs its host too.
func validateAllowPort(ps *Problems, path string, a DICOMPeer) {
	if a.Port == 0 {
		return
	}
	if a.Port < 1 || a.Port > 65535 {
		ps.At(path+".port", "%d is not from 1 to 65535", a.Port)
	}
	if a.Host == "" {
		ps.At(path+".port", "needs host: together they are where storage commitment reports go")
	}
}
