package config

import (
	"strings"
	"testing"
)

// Two forward destinations may share an AE title (two PACS both called
// PACS) but not AE title, host and port all together.
func TestDICOMForwardDestinationsMustDiffer(t *testing.T) {
	one := "  forward: [{ae_title: PACS, host: pacs.example.org, port: 104}]\n"
	sameAE := "  forward: [{ae_title: PACS, host: pacs.example.org, port: 104}, {ae_title: PACS, host: pacs2.example.org, port: 104}, {ae_title: PACS, host: pacs.example.org, port: 11112}]\n"
	if _, _, err := Load(write(t, strings.Replace(full, one, sameAE, 1), retentionFiles)); err != nil {
		t.Fatalf("same AE title at different addresses: %v", err)
	}
	dup := "  forward: [{ae_title: PACS, host: pacs.example.org, port: 104}, {ae_title: ARCHIVE, host: pacs.example.org, port: 104}, {ae_title: PACS, host: PACS.example.org, port: 104}]\n"
	_, _, err := Load(write(t, strings.Replace(full, one, dup, 1), retentionFiles))
	if err == nil || !strings.Contains(err.Error(), "dicom.forward[2]") || !strings.Contains(err.Error(), "repeats dicom.forward[0]") {
		t.Fatalf("a repeated destination: %v", err)
	}
	if strings.Contains(err.Error(), "dicom.forward[1]") {
		t.Fatalf("another AE title at the same address is a different destination: %v", err)
	}
}
