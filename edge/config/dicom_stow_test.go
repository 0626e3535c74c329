package config

import (
	"maps"
	"strings"
	"testing"
)

// A forward destination may be a DICOMweb archive (stow_rs) with the
// FHIR side's auth keys and an HTTPS client's TLS; check says what is
// wrong with one, each problem at its key.
func TestDICOMForwardSTOWRS(t *testing.T) {
	one := "  forward: [{ae_title: PACS, host: pacs.example.org, port: 104}]\n"
	files := maps.Clone(retentionFiles)
	files["secrets/archive-token"] = "abc\n"
	ok := `  forward:
    - {ae_title: PACS, host: pacs.example.org, port: 104}
    - stow_rs: https://archive.example.org/dicomweb/
      auth: {type: bearer, token_file: secrets/archive-token}
    - {stow_rs: http://127.0.0.1:8042/dicom-web}
`
	c, ps, err := Load(write(t, strings.Replace(full, one, ok, 1), files))
	if err != nil {
		t.Fatalf("a valid STOW-RS destination: %v", err)
	}
	if f := c.DICOM.Forward[1]; f.Auth.Type != "bearer" || f.Auth.TokenFile.Value() != "abc" || !strings.HasSuffix(f.Auth.TokenFile.Path, "/secrets/archive-token") {
		t.Fatalf("auth of the archive: %+v", f.Auth)
	}
	if len(ps.Warnings()) != 0 {
		t.Fatalf("warnings for https and loopback http: %v", ps.Warnings())
	}

	warn := "  forward: [{stow_rs: http://archive.example.org/dicomweb}]\n"
	_, ps, err = Load(write(t, strings.Replace(full, one, warn, 1), files))
	if err != nil || len(ps.Warnings()) != 1 || !strings.Contains(ps.Warnings()[0].String(), "dicom.forward[0].stow_rs") {
		t.Fatalf("plain http to another host: err %v, warnings %v", err, ps.Warnings())
	}

	bad := `  forward:
    - {stow_rs: https://archive.example.org/dicomweb, ae_title: PACS, host: pacs.example.org, port: 104}
    - {stow_rs: ftp://archive.example.org/dicomweb}
    - {stow_rs: "https://user:pw@archive.example.org/dicomweb"}
    - {stow_rs: https://archive.example.org/dicomweb/studies}
    - {stow_rs: https://archive.example.org/dicomweb, auth: {type: bearer}}
    - {ae_title: PACS, host: pacs.example.org, port: 104, auth: {type: bearer, token_file: secrets/archive-token}}
    - {stow_rs: https://archive.example.org/dicomweb/}
    - {stow_rs: https://archive.example.org/dicomweb2, tls: {cert_file: secrets/none.pem}}
`
	_, _, err = Load(write(t, strings.Replace(full, one, bad, 1), files))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"dicom.forward[0]: is either a PACS",
		"dicom.forward[1].stow_rs: \"ftp://",
		"dicom.forward[2].stow_rs: must not hold credentials",
		"dicom.forward[3].stow_rs: ends in /studies",
		"dicom.forward[4].auth.token_file: is required",
		"dicom.forward[5].auth: is used only with stow_rs",
		"dicom.forward[6]: repeats dicom.forward[0]",
		"dicom.forward[7].tls",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("no %q in:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "pw") {
		t.Errorf("a password in the problems:\n%v", err)
	}
}
