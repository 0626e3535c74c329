package config

import (
	"strings"
	"testing"
	"time"
)

func TestDICOMRetention(t *testing.T) {
	c, _, err := Load(write(t, full, retentionFiles))
	if err != nil {
		t.Fatal(err)
	}
	if c.DICOM.Retention != 0 {
		t.Fatalf("default retention %s, want 0", c.DICOM.Retention)
	}
	c, _, err = Load(write(t, strings.Replace(full, "  study_stable_after: 90s\n", "  study_stable_after: 90s\n  retention: 72h\n", 1), retentionFiles))
	if err != nil {
		t.Fatal(err)
	}
	if c.DICOM.Retention.D() != 72*time.Hour {
		t.Fatalf("retention %s", c.DICOM.Retention)
	}
	_, _, err = Load(write(t, strings.Replace(full, "  study_stable_after: 90s\n", "  study_stable_after: 90s\n  retention: -1h\n", 1), retentionFiles))
	if err == nil || !strings.Contains(err.Error(), "dicom.retention") {
		t.Fatalf("negative retention: %v", err)
	}
}

var retentionFiles = map[string]string{"secrets/admin": "0123456789abcdef0123456789abcdef\n", "secrets/client": "s3cret\n", "profiles/.keep": ""}
