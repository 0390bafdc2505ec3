// Package ui is the timeline page, GET /ui/: what fired and what changed in
// a window, as a chart per namespace (a lane per workload, alerts as bars
// coloured by severity, changes as markers coloured by source) and a list
// in time order. It is rendered on the server with html/template and inline
// SVG, works without JavaScript, and takes its filters from the query so
// that a view can be shared as a link.
package ui

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/whatchanged/whatchanged/enrich/timeline"
)

// Path is where the page is served; the handler expects the full path.
const Path = "/ui/"

//go:embed templates/page.html.tmpl static/style.css
var files embed.FS

var (
	tmpl = template.Must(template.New("page.html.tmpl").Funcs(template.FuncMap{
		// SVG coordinates to a tenth of a pixel, "12" rather than "12.0".
		"px": func(f float64) string { return strings.TrimSuffix(strconv.FormatFloat(f, 'f', 1, 64), ".0") },
	}).ParseFS(files, "templates/page.html.tmpl"))
	css = mustRead("static/style.css")
	// The page runs no script at all; its one inline style sheet is allowed
	// by hash, so an injected <style> or <script> would do nothing either.
	csp = "default-src 'none'; style-src 'sha256-" + hashOf(css) + "'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)

// BuildFunc builds the timeline of a window and filter (timeline.Builder's
// Build, or a client of GET /api/v1/timeline).
type BuildFunc func(ctx context.Context, f timeline.Filter, from, to time.Time) (*timeline.Timeline, error)

// Options of the page.
type Options struct {
	// Location is the time zone of the axis and the times shown (default
	// UTC).
	Location *time.Location
	// Now is the clock (default time.Now): firing alerts are drawn to now.
	Now func() time.Time
	// ExternalURL is whatchanged as the on-call reaches it
	// (server.external_url); the page's share link starts with it.
	ExternalURL string
	Log         *slog.Logger
}

type handler struct {
	build BuildFunc
	opts  Options
}

// Handler serves the page at Path (and redirects the path without its
// slash there).
func Handler(build BuildFunc, opts Options) http.Handler {
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	opts.ExternalURL = strings.TrimSuffix(opts.ExternalURL, "/")
	return &handler{build: build, opts: opts}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	loc, now := h.opts.Location, h.opts.Now()
	p := &page{Status: http.StatusOK, Zone: loc.String(), CSS: template.CSS(css),
		Severities: []string{"critical", "warning", "info", "none"}}
	switch {
	case r.URL.Path == strings.TrimSuffix(Path, "/"):
		http.Redirect(w, r, Path, http.StatusMovedPermanently)
		return
	case r.URL.Path != Path:
		p.Status, p.Error = http.StatusNotFound, "no such page: "+r.URL.Path+" (the timeline is at "+Path+")"
		h.write(w, p)
		return
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		w.Header().Set("Allow", "GET, HEAD")
		p.Status, p.Error = http.StatusMethodNotAllowed, r.Method+" is not allowed on "+Path+": the page is read-only"
		h.write(w, p)
		return
	}

	q, err := parseQuery(r.URL.Query(), now, loc)
	p.Query = q
	if err != nil { // a *timeline.FieldError naming the parameter
		p.Status, p.Error = http.StatusBadRequest, err.Error()
		h.write(w, p)
		return
	}
	p.Window = windowText(q.Start, q.End, loc)
	p.Share = h.opts.ExternalURL + Path + "?" + q.values(q.Start, q.End).Encode()

	tl, err := h.build(r.Context(), q.Filter, q.Start, q.End)
	if err != nil {
		p.Status, p.Error = http.StatusInternalServerError, "building the timeline failed: "+err.Error()
		if fe := (*timeline.FieldError)(nil); errors.As(err, &fe) {
			p.Status, p.Error = http.StatusBadRequest, fe.Error()
		} else {
			h.opts.Log.Warn("timeline page: build failed", "err", err)
		}
		h.write(w, p)
		return
	}
	if tl == nil {
		tl = &timeline.Timeline{}
	}
	p.SourceErrors = tl.Errors
	p.Empty = len(tl.Alerts) == 0 && len(tl.Changes) == 0
	p.Charts = layout(tl, q, now, loc)
	p.Rows = rows(tl, now, loc, q.Start.In(loc).YearDay() != q.End.In(loc).YearDay() || q.End.Sub(q.Start) > 24*time.Hour)
	p.Sources = legendSources(tl)
	h.write(w, p)
}

// write renders the whole page before sending it, so that a template error
// is a 500 and never half a page.
func (h *handler) write(w http.ResponseWriter, p *page) {
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, p); err != nil {
		h.opts.Log.Error("timeline page: render", "err", err)
		http.Error(w, "rendering the timeline page failed; see whatchanged's log", http.StatusInternalServerError)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Content-Security-Policy", csp)
	hd.Set("X-Content-Type-Options", "nosniff")
	// Internal host names stay inside when someone follows a compare link.
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_, _ = w.Write(buf.Bytes())
}

func mustRead(name string) string {
	b, err := files.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func hashOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.StdEncoding.EncodeToString(sum[:])
}
