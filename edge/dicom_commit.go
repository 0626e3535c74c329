package edge

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wardgate/wardgate/dicom"
	"github.com/wardgate/wardgate/dicom/gateway"
	"github.com/wardgate/wardgate/edge/config"
)

// commitmentConfig is dicom.commitment for the node: what committed means,
// how long a reference may wait, and where each requester's reports go on
// a new association (an allow entry with a port: its host and port).
//
// A requester that comes over DICOM TLS is reported to over TLS too: one
// whose entry binds it to a certificate (tls_subject), and every one when
// dicom.listen itself speaks TLS. We show the node's certificate and
// verify the requester's against dicom.tls.client_ca_file (the system's
// roots without one): by the bound subject when there is one, else by the
// entry's host.
func commitmentConfig(c *config.DICOM, serverTLS *tls.Config) *gateway.CommitmentConfig {
	if c.Commitment == nil {
		return nil
	}
	cc := &gateway.CommitmentConfig{Timeout: c.Commitment.Timeout.D(), Peers: map[string]string{}, PeerTLS: map[string]*tls.Config{}}
	if c.Commitment.CommitAfter == "forwarded" {
		cc.After = gateway.CommitWhenForwarded
	}
	tlsOnly := c.TLS != nil && c.TLS.Listen == ""
	if serverTLS != nil {
		// A requester that asked over TLS gets its report over TLS,
		// whichever listener it used.
		cc.RequesterTLS = reportTLS(serverTLS, "")
	}
	for _, a := range c.Allow {
		ae := strings.TrimSpace(a.AETitle)
		if _, seen := cc.Peers[ae]; a.Port != 0 && a.Host != "" && !seen {
			cc.Peers[ae] = net.JoinHostPort(a.Host, strconv.Itoa(a.Port))
			if serverTLS != nil && (a.TLSSubject != "" || tlsOnly) {
				cc.PeerTLS[ae] = reportTLS(serverTLS, a.TLSSubject)
			}
		}
	}
	return cc
}

// reportTLS is the client side of a report association to a requester
// that speaks TLS: the node's certificate, the modalities' CA as roots,
// and, with subject, the requester's certificate checked by its subject
// (the identity dicom.allow binds) rather than by host name.
func reportTLS(server *tls.Config, subject string) *tls.Config {
	cfg := &tls.Config{Certificates: server.Certificates, RootCAs: server.ClientCAs}
	if subject != "" {
		want := canonicalSubject(subject)
		roots := server.ClientCAs
		cfg.InsecureSkipVerify = true // replaced by VerifyConnection: chain and subject
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the requester showed no certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			leaf := cs.PeerCertificates[0]
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				return err
			}
			if got := canonicalSubject(config.TLSSubjectOf(leaf)); got != want {
				return fmt.Errorf("the requester's certificate is %q, not the tls_subject of dicom.allow", got)
			}
			return nil
		}
	}
	return dicom.BCP195(cfg)
}

// commitmentErrors adds storage commitment's failures to the snapshot's
// error counts: requests refused, reports given up.
func commitmentErrors(errs map[string]uint64, st *gateway.CommitmentStats) {
	if st == nil {
		return
	}
	errs["dicom_commitment_requests_refused"] = st.Refused
	errs["dicom_commitment_reports_abandoned"] = st.ReportsAbandoned
	errs["dicom_commitment_reports_refused"] = st.ReportsRefused
}

var (
	mCommitPending    = desc("wardgate_dicom_commitment_pending", "Storage commitment requests not yet reported and answered.")
	mCommitWaiting    = desc("wardgate_dicom_commitment_waiting", "Storage commitment references waiting to be forwarded (commit_after: forwarded).")
	mCommitRetrying   = desc("wardgate_dicom_commitment_reports_retrying", "Storage commitment reports that could not be delivered yet.")
	mCommitRequests   = desc("wardgate_dicom_commitment_requests_total", "Storage commitment requests recorded.")
	mCommitReferences = desc("wardgate_dicom_commitment_references_total", "Storage commitment references reported, by result.", "result")
	mCommitReports    = desc("wardgate_dicom_commitment_reports_total", "Storage commitment reports the requester answered.")
	commitmentDescs   = []*prometheus.Desc{mCommitPending, mCommitWaiting, mCommitRetrying, mCommitRequests, mCommitReferences, mCommitReports}
)

// collectCommitment sends storage commitment's metrics (none without
// dicom.commitment).
func collectCommitment(st *gateway.CommitmentStats, gauge func(*prometheus.Desc, float64, ...string), counter func(*prometheus.Desc, uint64, ...string)) {
	if st == nil {
		return
	}
	gauge(mCommitPending, float64(st.Pending))
	gauge(mCommitWaiting, float64(st.Waiting))
	gauge(mCommitRetrying, float64(st.Retrying))
	counter(mCommitRequests, st.Requests)
	counter(mCommitReferences, st.Committed, "committed")
	counter(mCommitReferences, st.Failed, "failed")
	counter(mCommitReports, st.ReportsSent)
}
