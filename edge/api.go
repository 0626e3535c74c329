package edge

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wardgate/wardgate/buffer"
	"github.com/wardgate/wardgate/dicom/gateway"
)

// The JSON API under /api/ shows what the status page shows, and carries
// the admin actions: retrying and dropping dead letters, setting and
// ending a bed's patient. Actions, the beds' patients and dead-letter
// payloads need the token of http.admin_token_file as
// "Authorization: Bearer <token>"; without a configured token they are
// refused with 403, with a missing or wrong one with 401.

// apiRoutes registers the API on mux.
func (g *Gateway) apiRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) {
		if snap, ok := g.viewSnapshot(w, r); ok {
			writeJSON(w, http.StatusOK, snap)
		}
	})
	mux.HandleFunc("GET /api/monitors", func(w http.ResponseWriter, r *http.Request) {
		if snap, ok := g.viewSnapshot(w, r); ok {
			writeJSON(w, http.StatusOK, map[string]any{"monitors": snap.Monitors, "values_hidden": snap.ValuesHidden})
		}
	})
	mux.HandleFunc("GET /api/dicom", func(w http.ResponseWriter, r *http.Request) {
		d := g.dicomReport(true)
		if d == nil {
			writeError(w, http.StatusNotFound, "no DICOM node: the config has no dicom section")
			return
		}
		writeJSON(w, http.StatusOK, d)
	})
	mux.HandleFunc("GET /api/outbox", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, g.snapshot().Outbox)
	})
	mux.HandleFunc("GET /api/dead-letters", g.listDeadLetters)
	mux.HandleFunc("POST /api/dead-letters/retry", g.adminOnly(g.retryDeadLetters))
	mux.HandleFunc("POST /api/dead-letters/drop", g.adminOnly(g.dropDeadLetters))
	mux.HandleFunc("POST /api/backup", g.adminOnly(g.serveBackup))
	mux.HandleFunc("GET /api/beds", g.adminOnly(g.listBeds))
	mux.HandleFunc("PUT /api/beds/{bed}", g.adminOnly(g.setBed))
	mux.HandleFunc("DELETE /api/beds/{bed}", g.adminOnly(g.endBed))
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such API: see GET /api/status, /api/monitors, /api/dicom, /api/outbox, /api/dead-letters, /api/beds")
	})
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// viewSnapshot is the snapshot as the request may see it: without live
// values when they need the token and it has none. A wrong token or a
// blocked peer is answered here, and ok is false.
func (g *Gateway) viewSnapshot(w http.ResponseWriter, r *http.Request) (snap snapshot, ok bool) {
	show, ok := g.showValues(w, r)
	if !ok {
		return snap, false
	}
	snap = g.snapshot()
	if !show {
		snap.hideValues()
	}
	return snap, true
}

// errNoAdminToken is the answer to an admin action when no token is set.
const errNoAdminToken = "admin actions are disabled: set http.admin_token_file"

// tokenVerdict is what a request's admin token is worth.
type tokenVerdict int

const (
	tokenNone    tokenVerdict = iota // none presented, or none configured
	tokenRight                       // the admin token
	tokenWrong                       // presented and wrong: a failed attempt
	tokenBlocked                     // the peer failed too often: 429
)

// viewCookie holds, in a browser, what shows live values on a page served
// to the ward's network: a hash of the admin token, not the token, so a
// cookie taken from a browser cannot call admin actions. Admin actions
// take the token as a bearer token only, which no other site can make a
// browser send.
const viewCookie = "wardgate_view"

func viewCookieValue(token string) string {
	h := sha256.Sum256([]byte("wardgate view cookie\x00" + token))
	return hex.EncodeToString(h[:])
}

// tokenConfigured reports whether http.admin_token_file is set.
func (g *Gateway) tokenConfigured() bool {
	return g.cfg.HTTP.AdminTokenFile.Set() && g.cfg.HTTP.AdminTokenFile.Value() != ""
}

// judgeToken judges the admin token a request carries: as
// "Authorization: Bearer <token>", or with cookie also as the view
// cookie. A wrong one is a failed attempt of the request's peer, counted
// by the rate limit; a blocked peer gets how long it still is.
func (g *Gateway) judgeToken(r *http.Request, cookie bool) (tokenVerdict, time.Duration) {
	if !g.tokenConfigured() {
		return tokenNone, 0
	}
	want := g.cfg.HTTP.AdminTokenFile.Value()
	if h := r.Header.Get("Authorization"); h != "" {
		got, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			got = "\x00" // a token without "Bearer " is a wrong one
		}
		return g.compareToken(r, strings.TrimSpace(got), want)
	}
	if c, err := r.Cookie(viewCookie); cookie && err == nil {
		return g.compareToken(r, c.Value, viewCookieValue(want))
	}
	return tokenNone, 0
}

// compareToken compares what a request presented with what is wanted,
// unless the request's peer is blocked.
func (g *Gateway) compareToken(r *http.Request, got, want string) (tokenVerdict, time.Duration) {
	peer, now := peerOf(remoteHost(r)), time.Now()
	if d := g.auth.retryAfter(peer, now); d > 0 {
		return tokenBlocked, d
	}
	// Hashes first: the comparison then takes the same time whatever the
	// lengths.
	gh, wh := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	if subtle.ConstantTimeCompare(gh[:], wh[:]) == 1 {
		g.auth.succeeded(peer)
		return tokenRight, 0
	}
	g.auth.fail(peer, r.Method, r.URL.Path, now)
	return tokenWrong, 0
}

// refuseBlocked answers a token attempt from a blocked peer.
func refuseBlocked(w http.ResponseWriter, d time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(int((d+time.Second-1)/time.Second)))
	writeError(w, http.StatusTooManyRequests, "too many attempts with a wrong admin token from this address: try again after "+d.Round(time.Second).String())
}

// refuseWrongToken answers a request whose token is missing or wrong.
func refuseWrongToken(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="wardgate"`)
	writeError(w, http.StatusUnauthorized, "this needs the admin token (of http.admin_token_file) as \"Authorization: Bearer <token>\"")
}

// authorized checks the admin token of an admin action; when it is not
// there or wrong it answers the request and returns false. A request
// without the token counts as a failed attempt too: a scanner trying
// the actions is guessing.
func (g *Gateway) authorized(w http.ResponseWriter, r *http.Request) bool {
	if !g.tokenConfigured() {
		writeError(w, http.StatusForbidden, errNoAdminToken)
		return false
	}
	v, d := g.judgeToken(r, false)
	if v == tokenNone {
		v, d = g.compareToken(r, "", g.cfg.HTTP.AdminTokenFile.Value())
	}
	switch v {
	case tokenRight:
		return true
	case tokenBlocked:
		refuseBlocked(w, d)
	default:
		refuseWrongToken(w)
	}
	return false
}

// showValues reports whether the request may see live values and trends:
// always on a loopback listener or with http.public_values, else with the
// token (bearer or view cookie). A wrong token or a blocked peer is
// answered here, and ok is false.
func (g *Gateway) showValues(w http.ResponseWriter, r *http.Request) (show, ok bool) {
	v, d := g.judgeToken(r, true)
	switch v {
	case tokenBlocked:
		refuseBlocked(w, d)
		return false, false
	case tokenWrong:
		if _, err := r.Cookie(viewCookie); err == nil && r.Header.Get("Authorization") == "" {
			http.SetCookie(w, &http.Cookie{Name: viewCookie, Path: "/", MaxAge: -1})
			writeError(w, http.StatusUnauthorized, "the cookie of an earlier admin token is no longer valid (the token changed?): it is cleared, reload the page")
			return false, false
		}
		refuseWrongToken(w)
		return false, false
	}
	return v == tokenRight || !g.cfg.HTTP.ValuesNeedToken(), true
}

func (g *Gateway) adminOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if g.authorized(w, r) {
			h(w, r)
		}
	}
}

func remoteHost(r *http.Request) string {
	h, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return h
}

// decodeBody reads a small JSON body strictly.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "the body must be JSON: "+err.Error())
		return false
	}
	return true
}

// defaultDeadLetterList bounds a listing without ?max=.
const defaultDeadLetterList = 1000

// GET /api/dead-letters[?payload=1][&max=N]
func (g *Gateway) listDeadLetters(w http.ResponseWriter, r *http.Request) {
	withPayload := r.URL.Query().Get("payload") == "1"
	if withPayload && !g.authorized(w, r) {
		return
	}
	// Bounded by default: every dead letter is read with its payload.
	max := defaultDeadLetterList
	if s := r.URL.Query().Get("max"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "max must be a whole number ≥ 0")
			return
		}
		max = n
	}
	dls, err := g.outbox.DeadLetters(max)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "reading the dead letters: "+err.Error())
		return
	}
	// The record's words (an OperationOutcome) and a study's UID may be
	// patient data: whole only with the token, as the page shows them
	// otherwise.
	full := false
	if !withPayload {
		v, d := g.judgeToken(r, false)
		switch v {
		case tokenBlocked:
			refuseBlocked(w, d)
			return
		case tokenWrong:
			refuseWrongToken(w)
			return
		}
		full = v == tokenRight
	} else {
		full = true // authorized above
	}
	out := make([]deadLetterReport, 0, len(dls))
	for _, d := range dls {
		rep := deadLetterOf(d)
		if full {
			rep.Key, rep.Reason = d.Key, d.Reason
		}
		if withPayload {
			p := string(d.Payload)
			if !json.Valid(d.Payload) {
				p = fmt.Sprintf("%q", d.Payload) // raw device bytes, quoted
			}
			rep.Payload = &p
		}
		out = append(out, rep)
	}
	writeJSON(w, http.StatusOK, map[string]any{"count": g.outbox.Stats().Dead, "dead_letters": out})
}

// deadLetterIDs is the body of the retry and drop actions.
type deadLetterIDs struct {
	IDs []flexID `json:"ids"`
	All bool     `json:"all"`
}

// flexID takes a dead letter's id as a JSON number or string: the ids
// are above 2^53 for some, which JavaScript numbers cannot hold.
type flexID uint64

func (f *flexID) UnmarshalJSON(b []byte) error {
	s := string(bytes.Trim(b, `"`))
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return fmt.Errorf("id %s is not a dead letter id", b)
	}
	*f = flexID(n)
	return nil
}

// selectDeadLetters resolves the body to dead letters; it answers the
// request itself when it cannot.
func (g *Gateway) selectDeadLetters(w http.ResponseWriter, r *http.Request) (dls []buffer.DeadLetter, all, ok bool) {
	var req deadLetterIDs
	if !decodeBody(w, r, &req) {
		return nil, false, false
	}
	if req.All == (len(req.IDs) > 0) {
		writeError(w, http.StatusBadRequest, `give either {"ids": [...]} or {"all": true}`)
		return nil, false, false
	}
	dls, err := g.outbox.DeadLetters(0)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "reading the dead letters: "+err.Error())
		return nil, false, false
	}
	if req.All {
		return dls, true, true
	}
	var out []buffer.DeadLetter
	for _, id := range req.IDs {
		i := slices.IndexFunc(dls, func(d buffer.DeadLetter) bool { return d.ID == uint64(id) })
		if i < 0 {
			writeError(w, http.StatusNotFound, fmt.Sprintf("no dead letter %d", uint64(id)))
			return nil, false, false
		}
		out = append(out, dls[i])
	}
	return out, false, true
}

func ids(dls []buffer.DeadLetter) []uint64 {
	out := make([]uint64, len(dls))
	for i, d := range dls {
		out[i] = d.ID
	}
	return out
}

// POST /api/dead-letters/retry {"ids": [...]} | {"all": true}
//
// A refused FHIR entry goes back to the outbox; a held frame that expired
// goes back to wait for its patient; a study that was not charted is handed
// over again (its instances are checked anew); an instance a PACS refused is
// sent to it again.
func (g *Gateway) retryDeadLetters(w http.ResponseWriter, r *http.Request) {
	dls, all, ok := g.selectDeadLetters(w, r)
	if !ok {
		return
	}
	// With "all", what cannot be retried is skipped; named, it is refused.
	var again, reheld, rehanded, resent []buffer.DeadLetter
	skipped := 0
	node := g.dicomNode()
	for _, d := range dls {
		why := ""
		switch {
		case d.Kind == KindHeld:
			reheld = append(reheld, d)
			continue
		case d.Kind == KindStudy && node != nil:
			rehanded = append(rehanded, d)
			continue
		case d.Kind == KindStudy:
			why = fmt.Sprintf("dead letter %d is a study that was not charted; the DICOM node is not running to hand it over again", d.ID)
		case d.Kind == KindForward && node == nil:
			why = fmt.Sprintf("dead letter %d is an instance a PACS refused; the DICOM node is not running to send it again", d.ID)
		case d.Kind == KindForward:
			if rf, ok := refusalOf(d); ok && !node.HasDestination(rf.Destination) {
				why = fmt.Sprintf("dead letter %d is an instance refused by %s, which is no longer configured in dicom.forward: drop it instead", d.ID, rf.Destination)
				break
			}
			resent = append(resent, d)
			continue
		case deadLetterOf(d).Retryable:
			again = append(again, d)
			continue
		default:
			why = fmt.Sprintf("dead letter %d holds what a device sent that could not be decoded (kind %q): retrying cannot deliver it. Drop it, or fix the profile and let the device send again", d.ID, d.Kind)
		}
		skipped++
		if !all {
			writeError(w, http.StatusConflict, why)
			return
		}
	}
	n := 0
	if len(again) > 0 {
		var err error
		if n, err = g.outbox.RetryDead(r.Context(), ids(again)...); err != nil {
			g.answerOutboxError(w, err)
			return
		}
	}
	// A frame waits again before its dead letter goes: a failure in
	// between leaves it in both places, never in neither.
	for _, d := range reheld {
		if err := g.rehold(r.Context(), d.Payload); err != nil {
			g.answerOutboxError(w, err)
			return
		}
		if _, err := g.outbox.DropDead(r.Context(), d.ID); err != nil {
			g.answerOutboxError(w, err)
			return
		}
		n++
	}
	for _, d := range rehanded {
		uid, _ := buffer.StudyOfKey(d.Key)
		node.Rehand(uid)
		if _, err := g.outbox.DropDead(r.Context(), d.ID); err != nil {
			g.answerOutboxError(w, err)
			return
		}
		g.forgetStudyDeadLetters([]uint64{d.ID})
		n++
	}
	// The refusal goes from the ledger (the instance is queued) before its
	// dead letter goes: a failure in between leaves a dead letter whose
	// retry finds nothing to do, never a refusal nobody can see.
	for _, d := range resent {
		if rf, ok := refusalOf(d); ok {
			if err := node.RetryRefusal(rf); err != nil && !errors.Is(err, gateway.ErrNoRefusal) {
				writeError(w, http.StatusConflict, fmt.Sprintf("dead letter %d: %v", d.ID, err))
				return
			}
		}
		if _, err := g.outbox.DropDead(r.Context(), d.ID); err != nil {
			g.answerOutboxError(w, err)
			return
		}
		n++
	}
	g.log.Info("admin API: dead letters retried", "count", n, "not_retryable", skipped, "from", remoteHost(r))
	writeJSON(w, http.StatusOK, map[string]int{"retried": n, "not_retryable": skipped})
}

// POST /api/dead-letters/drop {"ids": [...]} | {"all": true}
func (g *Gateway) dropDeadLetters(w http.ResponseWriter, r *http.Request) {
	dls, all, ok := g.selectDeadLetters(w, r)
	if !ok {
		return
	}
	// A PACS refusal is dropped in the ledger first, so that its instance
	// may leave the spool and is not listed again at the next start. With a
	// DICOM node configured but not running (starting or stopping) that
	// waits; with no dicom section the ledger is opened for it.
	node := g.dicomNode()
	skipped := 0
	dls = slices.DeleteFunc(dls, func(d buffer.DeadLetter) bool {
		if _, ok := refusalOf(d); ok && node == nil && g.cfg.DICOM != nil {
			skipped++
			return true
		}
		return false
	})
	if skipped > 0 && !all {
		writeError(w, http.StatusConflict, "a dead letter named is an instance a PACS refused; the DICOM node is starting or stopping: try again in a moment")
		return
	}
	for _, d := range dls {
		rf, ok := refusalOf(d)
		if !ok {
			continue
		}
		var err error
		if node != nil {
			err = node.DropRefusal(rf)
		} else {
			err = g.dropRefusalInLedger(rf)
		}
		if err != nil && !errors.Is(err, gateway.ErrNoRefusal) {
			writeError(w, http.StatusInternalServerError, fmt.Sprintf("dead letter %d: %v", d.ID, err))
			return
		}
	}
	n := 0
	if len(dls) > 0 {
		var err error
		if n, err = g.outbox.DropDead(r.Context(), ids(dls)...); err != nil {
			g.answerOutboxError(w, err)
			return
		}
		g.forgetStudyDeadLetters(ids(dls))
	}
	g.log.Info("admin API: dead letters dropped", "count", n, "kept", skipped, "from", remoteHost(r))
	writeJSON(w, http.StatusOK, map[string]int{"dropped": n, "not_droppable": skipped})
}

func (g *Gateway) answerOutboxError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, buffer.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error()+" (retried or dropped meanwhile?)")
	case errors.Is(err, buffer.ErrFull):
		writeError(w, http.StatusInsufficientStorage, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

// GET /api/beds: every bed the gateway knows of, with its patient now and
// where that comes from, and the manual associations kept.
func (g *Gateway) listBeds(w http.ResponseWriter, r *http.Request) {
	names := map[string]bool{}
	for _, m := range g.monitorConfigs() {
		if m.Location != "" {
			names[m.Location] = true
		}
	}
	for _, b := range g.beds.staticBeds() {
		names[b] = true
	}
	for _, b := range g.beds.manual.beds() {
		names[b] = true
	}
	sorted := make([]string, 0, len(names))
	for b := range names {
		sorted = append(sorted, b)
	}
	slices.Sort(sorted)
	beds := make([]bedSource, 0, len(sorted))
	for _, b := range sorted {
		beds = append(beds, g.beds.current(b))
	}
	g.beds.manual.mu.Lock()
	manual := append([]stay{}, g.beds.manual.stays...)
	g.beds.manual.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"beds": beds, "manual": manual})
}

// PUT /api/beds/{bed} {"patient": "Patient/123", "since": RFC 3339 (optional), "by": "..." (optional)}
func (g *Gateway) setBed(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Patient string    `json:"patient"`
		Since   time.Time `json:"since"`
		By      string    `json:"by"`
	}
	if !decodeBody(w, r, &req) {
		return
	}
	bed := r.PathValue("bed")
	st, err := g.beds.manual.set(bed, req.Patient, req.Since, who(req.By, r))
	switch {
	case errors.Is(err, errBadBed), errors.Is(err, errBadPatient), errors.Is(err, errInFuture):
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case errors.Is(err, errOverlapsBefore):
		writeError(w, http.StatusConflict, err.Error())
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	g.log.Info("admin API: a patient was associated with a bed", "bed", bed, "since", st.Start, "from", remoteHost(r))
	writeJSON(w, http.StatusOK, st)
}

// DELETE /api/beds/{bed}: the bed's manual association ends now.
func (g *Gateway) endBed(w http.ResponseWriter, r *http.Request) {
	bed := r.PathValue("bed")
	st, err := g.beds.manual.end(bed, who(r.URL.Query().Get("by"), r))
	switch {
	case errors.Is(err, errNoManualStay):
		writeError(w, http.StatusNotFound, err.Error()+" (patients.static and the Encounter lookup are not changed here)")
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	g.log.Info("admin API: a bed's patient association ended", "bed", bed, "from", remoteHost(r))
	writeJSON(w, http.StatusOK, st)
}

// who records who made a change: what the operator says, and from where.
func who(by string, r *http.Request) string {
	by = strings.TrimSpace(by)
	if len(by) > 100 {
		by = by[:100]
	}
	if by == "" {
		return "admin API from " + remoteHost(r)
	}
	return by + " (admin API from " + remoteHost(r) + ")"
}
