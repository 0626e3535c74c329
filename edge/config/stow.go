package config

import (
	"strings"
)

// validateSTOWForward checks a forward destination that is a DICOMweb
// archive (stow_rs): a base URL without credentials, query or fragment,
// none of a PACS's keys, the auth and TLS of an HTTPS client. The URL,
// without a trailing slash, names the destination in the ledger: the same
// URL twice would be one archive sent everything twice.
func validateSTOWForward(ps *Problems, p string, f *DICOMPeer, seen map[string]int, i int) {
	if f.AETitle != "" || f.Host != "" || f.Port != 0 {
		ps.At(p, "is either a PACS (ae_title, host, port: C-STORE) or a DICOMweb archive (stow_rs), not both")
	}
	if f.TLSSubject != "" {
		ps.At(p+".tls_subject", "is not used in forward (it binds an allowed modality to its certificate)")
	}
	if u, ok := validURL(ps, p+".stow_rs", f.StowRS, "https", "http"); ok {
		switch {
		case u.User != nil:
			ps.At(p+".stow_rs", "must not hold credentials: give them in %s.auth (token_file, client_secret_file)", p)
		case u.RawQuery != "" || u.Fragment != "":
			ps.At(p+".stow_rs", "must not have a query or fragment: it is the DICOMweb base URL")
		case strings.HasSuffix(strings.TrimRight(u.Path, "/"), "/studies"):
			ps.At(p+".stow_rs", "ends in /studies: give the DICOMweb base URL (studies are posted to {base}/studies/{uid})")
		default:
			if u.Scheme == "http" && !isLoopback(u.Hostname()) {
				ps.Warn(p+".stow_rs", "plain http to %s sends studies (and any credentials) unencrypted; use https", u.Hostname())
			}
			id := "stow_rs " + strings.TrimRight(f.StowRS, "/")
			if j, dup := seen[id]; dup {
				ps.At(p, "repeats dicom.forward[%d] (stow_rs %s): each destination must differ", j, f.StowRS)
			} else {
				seen[id] = i
			}
		}
	}
	if f.Auth != nil {
		if f.Auth.Type == "" {
			f.Auth.Type = "none"
		}
		validateHTTPAuth(ps, p+".auth", f.Auth)
	}
	if f.TLS != nil {
		validateClientTLS(ps, p+".tls", f.TLS)
	}
}
