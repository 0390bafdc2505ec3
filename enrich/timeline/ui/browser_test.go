package ui

import (
	"bytes"
	"fmt"
	"html"
	"image/png"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/whatchanged/whatchanged/test/uitest"
)

// The page in a real headless Chromium: every alert bar and change marker
// is drawn inside its chart, every link leads somewhere that answers, the
// page works with JavaScript off, and a screenshot is kept for a person
// to look at.
func TestPageInChromium(t *testing.T) {
	browser := uitest.Start(t)

	// GitHub and Argo CD, as far as the page's links go: the pages exist.
	var mu sync.Mutex
	visited := map[string]bool{}
	external := map[string]bool{
		"/acme/orders/compare/1a2b3c4d5e6f...5f2c1e9a7b8c": true, // GitHub compare
		"/acme/payments/releases/tag/v2.3.0":               true, // GitHub release
		"/applications/argocd/orders":                      true, // Argo CD application
	}
	ext := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case external[r.URL.Path]:
			mu.Lock()
			visited[r.URL.Path] = true
			mu.Unlock()
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprintf(w, "<!DOCTYPE html><title>%s</title><h1>%[1]s</h1>", html.EscapeString(r.URL.Path))
		case r.URL.Path == "/favicon.ico":
			http.NotFound(w, r)
		default:
			t.Errorf("the page linked to %s on the GitHub/Argo CD stand-in, which has no such page", r.URL)
			http.NotFound(w, r)
		}
	}))
	defer ext.Close()

	var page http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { page.ServeHTTP(w, r) }))
	defer srv.Close()
	mux := http.NewServeMux()
	mux.Handle(Path, Handler(fakeBuild(t, fixture(ext.URL), nil),
		Options{Location: berlin, Now: func() time.Time { return fixtureNow }, ExternalURL: srv.URL}))
	page = mux

	tab := browser.Tab(t)
	if status := tab.Open(srv.URL + shopURL); status != http.StatusOK {
		t.Fatalf("GET %s: %d", shopURL, status)
	}
	checkDrawn(t, tab)

	// The style sheet is applied (the Content-Security-Policy lets it
	// through): bars have their severity's colour.
	if fill := tab.Style(`[data-alert="`+fpDB+`"] rect`, "fill"); fill != "rgb(213, 94, 0)" {
		t.Errorf("critical bar's fill %q, want the style sheet's rgb(213, 94, 0)", fill)
	}
	// Untrusted text is shown, never run.
	if n := len(tab.Elements("script")); n != 0 {
		t.Errorf("%d <script> elements on the page", n)
	}
	if s := tab.Text("#entries"); !strings.Contains(s, `“retry card declines <script>alert(1)</script>”`) ||
		!strings.Contains(s, `summary=p99 above 2s <script>document.title="pwned"</script>`) {
		t.Errorf("the list does not show the message and the label with markup as text:\n%s", s)
	}
	if title := tab.Text("title"); !strings.HasPrefix(title, "whatchanged") {
		t.Errorf("page title %q", title)
	}

	path := uitest.OutputPath(t, "timeline.png")
	tab.Screenshot(path)
	checkScreenshot(t, path)
	t.Logf("screenshot: %s", path)

	// Every link leads somewhere that answers: the page's own views (each
	// alert's shows that alert) and the GitHub/Argo CD pages.
	links := map[string]string{} // absolute URL → the data-alert it shows, if any
	for _, a := range tab.Elements("a[href]") {
		links[tab.Resolve(a.Attrs["href"])] = a.Attrs["data-alert"]
	}
	follow := browser.Tab(t)
	var ownLinks, extLinks int
	for _, u := range slices.Sorted(maps.Keys(links)) {
		status := follow.Open(u)
		switch {
		case strings.HasPrefix(u, srv.URL+"/ui/"):
			ownLinks++
			if status != http.StatusOK || len(follow.Elements("#error")) != 0 {
				t.Errorf("link %s: %d %s", u, status, follow.Text("#error"))
			}
			if fp := links[u]; fp != "" && len(follow.Elements(`svg [data-alert="`+fp+`"]`)) != 1 {
				t.Errorf("alert %s links to %s, which does not show it", fp, u)
			}
		case strings.HasPrefix(u, ext.URL+"/"):
			extLinks++
			if p, _ := url.Parse(u); status != http.StatusOK || follow.Text("h1") != p.Path {
				t.Errorf("link %s: %d %q", u, status, follow.Text("h1"))
			}
		default:
			t.Errorf("link %s leads outside the page and the stand-in", u)
		}
	}
	mu.Lock()
	if len(visited) != len(external) {
		t.Errorf("external pages visited %v, want every one of %v", slices.Sorted(maps.Keys(visited)), slices.Sorted(maps.Keys(external)))
	}
	mu.Unlock()
	t.Logf("followed %d links to the page's own views and %d to GitHub/Argo CD", ownLinks, extLinks)

	// Without JavaScript: the same drawing, and the filter form works.
	noJS := browser.Tab(t, uitest.WithoutJavaScript())
	if status := noJS.Open(srv.URL + shopURL); status != http.StatusOK {
		t.Fatalf("without JavaScript: GET %s: %d", shopURL, status)
	}
	checkDrawn(t, noJS)
	if status := noJS.Submit(map[string]string{"workload": "orders"}, "#filters button"); status != http.StatusOK {
		t.Fatalf("without JavaScript: submitting the filter: %d", status)
	}
	loc, err := url.Parse(noJS.Location())
	if err != nil {
		t.Fatal(err)
	}
	if q := loc.Query(); q.Get("workload") != "orders" || q.Get("namespace") != "shop" || q.Get("from") != "2025-03-04T12:00:00Z" {
		t.Errorf("the form led to %s: want the workload added to the same window and namespace", loc)
	}
	var got []string
	for _, e := range noJS.Elements("svg [data-alert], svg [data-change]") {
		got = append(got, e.Attrs["data-alert"]+e.Attrs["data-change"])
	}
	if want := []string{fpDB, fpLatency, idSync, idOrdersRollout}; !sameSet(got, want) {
		t.Errorf("filtered to orders, the chart shows %q, want %q", got, want)
	}
}

// checkDrawn checks that each of the fixture's alerts and changes is drawn
// once, with a box of its own inside the chart, in time order.
func checkDrawn(t *testing.T, tab *uitest.Tab) {
	t.Helper()
	charts := tab.Elements("svg.timeline")
	if len(charts) != 1 || !charts[0].Drawn || charts[0].Box.Width < 600 || charts[0].Box.Height < 60 {
		t.Fatalf("charts %+v, want one drawn at a readable size", charts)
	}
	chart := charts[0].Box
	boxes := map[string]uitest.Box{}
	severities := map[string]int{}
	sources := map[string]int{}
	for _, kind := range []string{"alert", "change"} {
		for _, e := range tab.Elements("svg.timeline [data-" + kind + "]") {
			id := e.Attrs["data-"+kind]
			if _, dup := boxes[id]; dup {
				t.Errorf("%s %s is drawn twice", kind, id)
			}
			boxes[id] = e.Box
			severities[e.Attrs["data-severity"]]++
			sources[e.Attrs["data-source"]]++
			if !e.Drawn || e.Box.Width <= 0 || e.Box.Height <= 0 || !e.Box.Inside(chart) {
				t.Errorf("%s %s drawn=%v at %s: want a box inside the chart %s", kind, id, e.Drawn, e.Box, chart)
			}
		}
	}
	if want := []string{fpDB, fpLatency, fpPayments, idSync, idOrdersRollout, idRelease, idPaymentsRollout}; !sameSet(slices.Collect(maps.Keys(boxes)), want) {
		t.Errorf("drawn %q, want %q", slices.Sorted(maps.Keys(boxes)), want)
	}
	if severities["critical"] != 2 || severities["warning"] != 1 {
		t.Errorf("severities %v, want 2 critical and 1 warning", severities)
	}
	if sources["argocd"] != 1 || sources["kubernetes"] != 2 || sources["github"] != 1 {
		t.Errorf("sources %v, want argocd 1, kubernetes 2, github 1", sources)
	}
	// The shapes themselves (an alert's element holds its name too): 14:02
	// sync, 14:08 alert, 14:55 release, 15:05 alert still firing.
	shapes := map[string]uitest.Box{}
	for _, id := range []string{fpDB, fpLatency, fpPayments} {
		if s := tab.Elements(`svg.timeline [data-alert="` + id + `"] > rect`); len(s) == 1 {
			shapes[id] = s[0].Box
		}
	}
	for _, id := range []string{idSync, idRelease} {
		if s := tab.Elements(`svg.timeline [data-change="` + id + `"] > polygon`); len(s) == 1 {
			shapes[id] = s[0].Box
		}
	}
	if !(shapes[idSync].X < shapes[fpDB].X && shapes[fpDB].X < shapes[idRelease].X && shapes[idRelease].X < shapes[fpPayments].X) {
		t.Errorf("x: sync %s, alert %s, release %s, firing alert %s: want time order", shapes[idSync], shapes[fpDB], shapes[idRelease], shapes[fpPayments])
	}
	// The overlapping orders alerts are apart.
	if a, b := shapes[fpDB], shapes[fpLatency]; a.Y+a.Height > b.Y && b.Y+b.Height > a.Y {
		t.Errorf("overlapping alerts drawn over each other: %s and %s", a, b)
	}
}

func checkScreenshot(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot %s: %v", path, err)
	}
	// The whole page, not the window: taller than the 900-pixel window as
	// the list of nine entries runs below it.
	if cfg.Width != 1280 || cfg.Height <= 900 {
		t.Errorf("screenshot %s is %d×%d, want the whole page 1280 wide and taller than the window", path, cfg.Width, cfg.Height)
	}
}

func sameSet(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}
