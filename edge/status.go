package edge

import (
	_ "embed"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wardgate/wardgate/buffer"
	"github.com/wardgate/wardgate/devices"
)

// The status page (GET /) renders the gateway's snapshot (snapshot.go)
// with status.html.

//go:embed status.html
var statusHTML string

var statusPage = template.Must(template.New("status").Funcs(template.FuncMap{
	"ago":  ago,
	"join": strings.Join,
	"uptime": func(s int64) string {
		d := time.Duration(s) * time.Second
		if d < time.Minute {
			return d.String()
		}
		return strings.TrimSuffix(d.Truncate(time.Minute).String(), "0s")
	},
	"clock": clock,
	"bytes": humanBytes,
	"pct":   func(f float64) string { return strconv.FormatFloat(f, 'f', 0, 64) + " %" },
	"int64": func(n uint64) int64 { return int64(min(n, math.MaxInt64)) },
	"deref": func(b *bool) bool { return b != nil && *b },
}).Parse(statusHTML))

// pageKey shortens a study's key to its handle.
func pageKey(k string) string {
	if uid, ok := buffer.StudyOfKey(k); ok {
		return "study …" + uidHandle(uid)
	}
	return k
}

// pageReason keeps the start of a reason: an OperationOutcome's
// diagnostics or a validator's message may quote patient data further on
// (the API has it whole).
func pageReason(r string) string {
	if strings.HasPrefix(r, "HTTP ") {
		if i := strings.Index(r, ":"); i > 0 {
			return r[:i] + ": refused by the FHIR server (details: /api/dead-letters)"
		}
	}
	if i := strings.IndexAny(r, ":\n"); i > 0 && i < 80 {
		return r[:i]
	}
	if len(r) > 80 {
		return r[:80] + "…"
	}
	return r
}

func uidHandle(uid string) string {
	if len(uid) > 8 {
		return uid[len(uid)-8:]
	}
	return uid
}

// sparkline draws points over the last TrendSpan in a 120×24 box.
func sparkline(pts []devices.TrendPoint, now time.Time) (svg string, lastX, lastY, lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, p := range pts {
		lo, hi = min(lo, p.Value), max(hi, p.Value)
	}
	span := hi - lo
	if span == 0 {
		span = 1
	}
	from := now.Add(-devices.TrendSpan)
	var b strings.Builder
	for i, p := range pts {
		x := float64(p.At.Sub(from)) / float64(devices.TrendSpan) * 120
		y := 12.0 // a flat trend runs through the middle
		if hi > lo {
			y = 22 - (p.Value-lo)/span*20
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		lastX, lastY = math.Round(min(max(x, 0), 120)*10)/10, math.Round(y*10)/10
		fmt.Fprintf(&b, "%.1f,%.1f", lastX, lastY)
	}
	return b.String(), lastX, lastY, lo, hi
}

func (g *Gateway) serveStatusPage(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	rep, ok := g.viewSnapshot(w, r)
	if !ok {
		return
	}
	if _, err := r.Cookie(viewCookie); err == nil && !rep.ValuesHidden {
		rep.SignedIn = true
	}
	var b strings.Builder
	if err := statusPage.Execute(&b, rep); err != nil {
		g.log.Error("status page", "err", err)
		http.Error(w, "the status page failed to render; /api/status has the same data", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	w.Write([]byte(b.String()))
}

// login takes the admin token from the page's form (token=…) and sets
// the view cookie, which shows live values on a page served to the ward's
// network. A wrong token is a failed attempt like any other.
func (g *Gateway) login(w http.ResponseWriter, r *http.Request) {
	if !g.tokenConfigured() {
		writeError(w, http.StatusForbidden, "there is no admin token to sign in with: set http.admin_token_file")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	want := g.cfg.HTTP.AdminTokenFile.Value()
	v, d := g.compareToken(r, strings.TrimSpace(r.PostFormValue("token")), want)
	switch v {
	case tokenBlocked:
		refuseBlocked(w, d)
		return
	case tokenWrong:
		writeError(w, http.StatusUnauthorized, "that is not the admin token (of http.admin_token_file)")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: viewCookie, Value: viewCookieValue(want), Path: "/",
		MaxAge: 12 * 60 * 60, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// logout clears the view cookie.
func (g *Gateway) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: viewCookie, Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// ago says how long before now t was, briefly ("12 s", "3 min").
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "now"
	case d < time.Minute:
		return fmt.Sprintf("%d s ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h %d min ago", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%d days ago", int(d.Hours()/24))
	}
}

// clock is a time as the page shows it: local, to the second.
func clock(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
