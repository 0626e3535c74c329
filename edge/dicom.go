package edge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/wardgate/wardgate/dicom"
	"github.com/wardgate/wardgate/dicom/gateway"

	"github.com/wardgate/wardgate/buffer"
	"github.com/wardgate/wardgate/edge/config"
	"github.com/wardgate/wardgate/edge/fhir"
)

// dicomParts builds the DICOM node when the config has one and listens on
// dicom.listen (and dicom.tls.listen): the allow list's resolver, the SCP
// storing into the spool, the study assembler handing stable studies to
// the gateway (IngestStudy), a forwarder per dicom.forward destination
// (C-STORE or STOW-RS), storage commitment and the spool's pruner, as parts
// to run. The last part makes
// the node visible to the delivery hook and the status page; stopped first,
// it hides it again (a delivery acknowledged after that is recorded after
// the restart, when the study is handed over again). closeNode closes the
// ledger once every part has stopped.
func (g *Gateway) dicomParts() (parts []part, closeNode func() error, err error) {
	c := g.cfg.DICOM
	if c == nil {
		return nil, func() error { return nil }, nil
	}
	allowed := newAllowList(c.Allow, g.log)
	var allow func(dicom.Peer) bool
	if allowed != nil {
		allow = allowed.allow
		parts = append(parts, part{"dicom allow-list resolver", allowed.run})
	}
	serverTLS, err := dicomTLS(c.TLS)
	if err != nil {
		return nil, nil, err
	}
	forward, err := forwardDestinations(c.Forward)
	if err != nil {
		return nil, nil, err
	}
	node, err := gateway.NewNode(gateway.NodeConfig{
		AETitle: c.AETitle, Allow: allow, MaxAssociations: c.MaxAssociations, TLS: serverTLS,
		Spool: g.spool, LedgerPath: g.cfg.LedgerPath(), Sink: g, StableAfter: c.StudyStableAfter.D(),
		Forward: forward, Retention: c.Retention.D(), RefusedForGoodAfter: c.RefusedForGoodAfter.D(), Logger: g.log,
		ShutdownTimeout: ShutdownTimeout, RefuseSuspectReplacements: c.Replacements == "refuse",
		OnRefused:  func(r gateway.Refusal) { g.forwardRefused(context.Background(), r) },
		Commitment: commitmentConfig(c, serverTLS),
	})
	if err != nil {
		return nil, nil, err
	}
	// dicom.listen is plain, unless dicom.tls has no listen of its own:
	// then it speaks TLS.
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		node.Close()
		return nil, nil, fmt.Errorf("dicom.listen %s: %w", c.Listen, err)
	}
	plain, secure := ln, net.Listener(nil)
	switch {
	case c.TLS != nil && c.TLS.Listen == "":
		plain, secure = nil, ln
	case c.TLS != nil:
		if secure, err = net.Listen("tcp", c.TLS.Listen); err != nil {
			ln.Close()
			node.Close()
			return nil, nil, fmt.Errorf("dicom.tls.listen %s: %w", c.TLS.Listen, err)
		}
	}
	for _, p := range node.Parts(plain, secure) {
		parts = append(parts, part{p.Name, p.Run})
	}
	g.mu.Lock()
	if plain != nil {
		g.dicomAddr = plain.Addr().String()
	} else {
		g.dicomAddr = secure.Addr().String()
	}
	g.mu.Unlock()
	parts = append(parts, part{"dicom node on view", func(ctx context.Context) error {
		g.mu.Lock()
		g.dicom = node
		g.mu.Unlock()
		g.reconcileRefusals(ctx, node)
		if plain != nil {
			g.log.Info("dicom listening", "ae_title", c.AETitle, "listen", plain.Addr().String(), "forward", len(forward))
		}
		if secure != nil {
			g.log.Info("dicom listening for TLS", "ae_title", c.AETitle, "listen", secure.Addr().String(), "forward", len(forward))
		}
		<-ctx.Done()
		g.mu.Lock()
		g.dicom = nil
		g.mu.Unlock()
		return nil
	}})
	return parts, node.Close, nil
}

// forwardDestinations builds dicom.forward's destinations, reading their
// TLS files and credentials.
func forwardDestinations(fs []config.DICOMPeer) ([]gateway.Destination, error) {
	var forward []gateway.Destination
	for i, f := range fs {
		if f.StowRS != "" {
			d, err := stowDestination(f)
			if err != nil {
				return nil, fmt.Errorf("dicom.forward[%d].%w", i, err)
			}
			forward = append(forward, d)
			continue
		}
		t, err := forwardTLS(f.TLS)
		if err != nil {
			return nil, fmt.Errorf("dicom.forward[%d].tls: %w", i, err)
		}
		forward = append(forward, gateway.Destination{AETitle: f.AETitle, Host: f.Host, Port: f.Port, TLS: t})
	}
	return forward, nil
}

// allowList is dicom.allow as the SCP's check: the calling AE title must
// be listed, and come from the listed host (see hosts) when one is given,
// and over TLS with a verified certificate of the listed subject when
// tls_subject is given.
type allowList struct {
	entries []allowEntry
	*hosts
}

type allowEntry struct {
	ae      string
	subject string // canonical; empty: any certificate, or none
}

func newAllowList(peers []config.DICOMPeer, log *slog.Logger) *allowList {
	if len(peers) == 0 {
		return nil
	}
	a := &allowList{}
	names := make([]string, len(peers))
	for i, p := range peers {
		a.entries = append(a.entries, allowEntry{ae: strings.TrimSpace(p.AETitle), subject: canonicalSubject(p.TLSSubject)})
		names[i] = p.Host
	}
	a.hosts = newHosts("dicom.allow", names, log)
	return a
}

// allow is the SCP's check (dicom.Server.Allow).
func (a *allowList) allow(p dicom.Peer) bool {
	ae := strings.TrimSpace(p.CallingAE)
	subject := ""
	if p.Certificate != nil {
		subject = canonicalSubject(config.TLSSubjectOf(p.Certificate))
	}
	for i, e := range a.entries {
		if e.ae == ae && a.match(i, p.Remote) && (e.subject == "" || e.subject == subject) {
			return true
		}
	}
	return false
}

// canonicalSubject makes an RFC 2253 subject comparable: attribute types
// in upper case, no spaces around separators; values are compared as
// written (escapes included).
func canonicalSubject(s string) string {
	var rdns []string
	var cur strings.Builder
	flush := func() {
		rdn := strings.TrimSpace(cur.String())
		cur.Reset()
		if typ, val, ok := strings.Cut(rdn, "="); ok {
			rdn = strings.ToUpper(strings.TrimSpace(typ)) + "=" + strings.TrimSpace(val)
		}
		if rdn != "" {
			rdns = append(rdns, rdn)
		}
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s):
			cur.WriteByte(c)
			i++
			cur.WriteByte(s[i])
		case c == ',':
			flush()
		default:
			cur.WriteByte(c)
		}
	}
	flush()
	return strings.Join(rdns, ",")
}

// dicomTLS builds the listener's TLS settings from dicom.tls, restricted
// to the BCP 195 profile.
func dicomTLS(t *config.DICOMTLS) (*tls.Config, error) {
	if t == nil {
		return nil, nil
	}
	cert, err := os.ReadFile(t.CertFile)
	if err != nil {
		return nil, fmt.Errorf("dicom.tls.cert_file: %w", err)
	}
	pair, err := tls.X509KeyPair(cert, []byte(t.KeyFile.Value()))
	if err != nil {
		return nil, fmt.Errorf("dicom.tls: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.NoClientCert}
	if t.ClientCAFile != "" {
		b, err := os.ReadFile(t.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("dicom.tls.client_ca_file: %w", err)
		}
		cfg.ClientCAs = x509.NewCertPool()
		if !cfg.ClientCAs.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("dicom.tls.client_ca_file: %s holds no PEM certificate", t.ClientCAFile)
		}
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	if t.ClientCertRequired() {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return dicom.BCP195(cfg), nil
}

// forwardTLS builds a destination's client TLS settings, restricted to the
// BCP 195 profile; nil without tls.
func forwardTLS(t *config.TLS) (*tls.Config, error) {
	if t == nil {
		return nil, nil
	}
	cfg, err := fhir.TLSConfig(t.CAFile, t.CertFile, []byte(t.KeyFile.Value()))
	if err != nil {
		return nil, err
	}
	return dicom.BCP195(cfg), nil
}

// delivered is told of every entry the record acknowledged: for the
// status page and metrics, and, for an ImagingStudy, so that the DICOM
// node may let its instances leave the spool.
func (g *Gateway) delivered(entries []fhir.Settled) {
	g.deliveries.delivered(entries)
	g.mu.Lock()
	node := g.dicom
	g.mu.Unlock()
	if node == nil {
		return
	}
	for _, e := range entries {
		uid, ok := buffer.StudyOfKey(e.Key)
		if !ok || e.ResourceType != "ImagingStudy" {
			continue
		}
		if err := node.StudyDelivered(uid, e.Enqueued); err != nil {
			g.log.Error("dicom: recording a delivered study failed; its files stay until it is delivered again", "err", err)
		}
	}
}

// KindForward marks a dead letter that is an instance a PACS refused for
// good; its payload is the gateway.Refusal. The instance stays in the spool
// until the dead letter is retried (sent again) or dropped (never sent
// there; the instance may then leave the spool).
const KindForward = "forward"

// forwardRefused puts a PACS refusal among the dead letters, once: the
// refusal is durable in the ledger first, so a crash in between, or a
// refusal from before this kind of dead letter existed, is put there by
// reconcileRefusals at the next start.
func (g *Gateway) forwardRefused(ctx context.Context, r gateway.Refusal) {
	g.refusalMu.Lock()
	defer g.refusalMu.Unlock()
	have, err := g.refusalLetters()
	if err != nil {
		g.log.Error("dicom: listing the dead letters failed; a PACS refusal is counted but not listed until the next start", "err", err)
		return
	}
	g.addRefusalLetter(ctx, have, r)
}

// reconcileRefusals lists, at start, every refusal the ledger keeps that
// the dead letters do not have.
func (g *Gateway) reconcileRefusals(ctx context.Context, node *gateway.Node) {
	rs, err := node.Refusals()
	if err != nil {
		g.log.Error("dicom: reading the PACS refusals failed; they are counted but not listed until the next start", "err", err)
		return
	}
	if len(rs) == 0 {
		return
	}
	g.refusalMu.Lock()
	defer g.refusalMu.Unlock()
	have, err := g.refusalLetters()
	if err != nil {
		g.log.Error("dicom: listing the dead letters failed; PACS refusals are counted but not listed until the next start", "err", err)
		return
	}
	for _, r := range rs {
		g.addRefusalLetter(ctx, have, r)
	}
}

// refusalKey tells two refusals of the same content by the same PACS.
func refusalKey(r gateway.Refusal) string { return r.Destination + " " + r.Key + " " + r.SHA256 }

func (g *Gateway) refusalLetters() (map[string]bool, error) {
	dls, err := g.outbox.DeadLetters(0)
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, d := range dls {
		if r, ok := refusalOf(d); ok {
			have[refusalKey(r)] = true
		}
	}
	return have, nil
}

func (g *Gateway) addRefusalLetter(ctx context.Context, have map[string]bool, r gateway.Refusal) {
	if have[refusalKey(r)] {
		return
	}
	b, err := json.Marshal(r)
	if err == nil {
		_, err = g.outbox.AddDeadLetter(ctx, buffer.Item{Key: r.Key, Kind: KindForward, Payload: b}, r.Reason+", for good, by "+r.Destination)
	}
	if err != nil {
		g.log.Error("dicom: listing a PACS refusal among the dead letters failed; it is counted and listed at the next start", "err", err)
		return
	}
	have[refusalKey(r)] = true
}

// refusalOf reads a KindForward dead letter's refusal.
func refusalOf(d buffer.DeadLetter) (gateway.Refusal, bool) {
	var r gateway.Refusal
	if d.Kind != KindForward || json.Unmarshal(d.Payload, &r) != nil || r.Destination == "" || r.Key == "" {
		return gateway.Refusal{}, false
	}
	return r, true
}

// dropRefusalInLedger marks a refusal Dropped in the ledger of a gateway
// that runs without a dicom section (the ledger is there from when it had
// one), so that it is not listed again if DICOM comes back.
func (g *Gateway) dropRefusalInLedger(r gateway.Refusal) error {
	path := g.cfg.LedgerPath()
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	l, err := gateway.OpenLedger(path)
	if err != nil {
		return err
	}
	defer l.Close()
	_, err = l.DropForwardMark(r.Destination, r.Key, r.SHA256)
	return err
}
