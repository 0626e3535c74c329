package edge

import (
	"net"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wardgate/wardgate/dicom/gateway"
	"github.com/wardgate/wardgate/edge/config"
)

// commitmentConfig is dicom.commitment for the node: what committed means,
// how long a reference may wait, and where each requester's reports go on
// a new association (an allow entry with a port: its host and port).
func commitmentConfig(c *config.DICOM) *gateway.CommitmentConfig {
	if c.Commitment == nil {
		return nil
	}
	cc := &gateway.CommitmentConfig{Timeout: c.Commitment.Timeout.D(), Peers: map[string]string{}}
	if c.Commitment.CommitAfter == "forwarded" {
		cc.After = gateway.CommitWhenForwarded
	}
	for _, a := range c.Allow {
		ae := strings.TrimSpace(a.AETitle)
		if _, seen := cc.Peers[ae]; a.Port != 0 && a.Host != "" && !seen {
			cc.Peers[ae] = net.JoinHostPort(a.Host, strconv.Itoa(a.Port))
		}
	}
	return cc
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
