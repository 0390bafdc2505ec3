package ui

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/whatchanged/whatchanged/enrich/timeline"
	"github.com/whatchanged/whatchanged/sources"
)

// get serves one request to a handler over the fixture and parses the
// page.
func get(t *testing.T, h http.Handler, target string) (*httptest.ResponseRecorder, *html.Node) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	doc, err := html.Parse(strings.NewReader(rec.Body.String()))
	if err != nil {
		t.Fatalf("GET %s: the page does not parse: %v", target, err)
	}
	return rec, doc
}

func fixtureHandler(t *testing.T, calls chan<- call) http.Handler {
	return Handler(fakeBuild(t, fixture("https://github.example"), calls), Options{Location: berlin, Now: func() time.Time { return fixtureNow }})
}

const shopURL = "/ui/?namespace=shop&from=2025-03-04T12:00:00Z&to=2025-03-04T16:00:00Z"

// all returns the elements below n for which match is true, in document
// order.
func all(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	for d := range n.Descendants() {
		if d.Type == html.ElementNode && match(d) {
			out = append(out, d)
		}
	}
	return out
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func hasAttr(key string) func(*html.Node) bool {
	return func(n *html.Node) bool {
		return slices.ContainsFunc(n.Attr, func(a html.Attribute) bool { return a.Key == key })
	}
}

func tag(name string) func(*html.Node) bool {
	return func(n *html.Node) bool { return n.Data == name }
}

func text(n *html.Node) string {
	var b strings.Builder
	for d := range n.Descendants() {
		if d.Type == html.TextNode {
			b.WriteString(d.Data)
		}
	}
	return b.String()
}

// titleOf is the hover text of an SVG element.
func titleOf(n *html.Node) string {
	for _, t := range all(n, tag("title")) {
		return text(t)
	}
	return ""
}

func byAttr(t *testing.T, doc *html.Node, key, val string) *html.Node {
	t.Helper()
	for _, n := range all(doc, hasAttr(key)) {
		if attr(n, key) == val {
			return n
		}
	}
	t.Fatalf("no element with %s=%q", key, val)
	return nil
}

// rectOf is the x, y, width and height of an alert's bar.
func rectOf(t *testing.T, n *html.Node) (x, y, w, h float64) {
	t.Helper()
	r := all(n, tag("rect"))
	if len(r) != 1 {
		t.Fatalf("alert %s has %d rects, want 1", attr(n, "data-alert"), len(r))
	}
	f := func(k string) float64 {
		v, err := strconv.ParseFloat(attr(r[0], k), 64)
		if err != nil {
			t.Fatalf("rect %s=%q: %v", k, attr(r[0], k), err)
		}
		return v
	}
	return f("x"), f("y"), f("width"), f("height")
}

// markerX is the x of a change's diamond (its top point).
func markerX(t *testing.T, n *html.Node) float64 {
	t.Helper()
	p := all(n, tag("polygon"))
	if len(p) != 1 {
		t.Fatalf("change %s has %d polygons, want 1", attr(n, "data-change"), len(p))
	}
	first, _, _ := strings.Cut(attr(p[0], "points"), " ")
	xs, _, _ := strings.Cut(first, ",")
	x, err := strconv.ParseFloat(xs, 64)
	if err != nil {
		t.Fatalf("points %q: %v", attr(p[0], "points"), err)
	}
	return x
}

func TestPageDrawsAlertsAndChanges(t *testing.T) {
	rec, doc := get(t, fixtureHandler(t, nil), shopURL)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d, want 200:\n%s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}

	charts := all(doc, func(n *html.Node) bool { return n.Data == "svg" && attr(n, "class") == "timeline" })
	if len(charts) != 1 || attr(charts[0], "data-chart") != "namespace shop" {
		t.Fatalf("charts %v, want one for namespace shop", func() (s []string) {
			for _, c := range charts {
				s = append(s, attr(c, "data-chart"))
			}
			return
		}())
	}
	// The release names only its app and repository: it joins the
	// payments lane rather than one of its own.
	var lanes []string
	for _, l := range all(charts[0], func(n *html.Node) bool { return attr(n, "class") == "lane-label" }) {
		lanes = append(lanes, strings.TrimSpace(strings.TrimPrefix(text(l), titleOf(l))))
	}
	if !slices.Equal(lanes, []string{"orders", "payments"}) {
		t.Errorf("lanes %q, want orders and payments", lanes)
	}

	alerts := all(charts[0], hasAttr("data-alert"))
	if len(alerts) != 3 {
		t.Fatalf("%d alert bars, want 3", len(alerts))
	}
	for fp, want := range map[string]struct{ sev, status, class string }{
		fpDB:       {"critical", "resolved", "alert sev-critical"},
		fpLatency:  {"warning", "resolved", "alert sev-warning"},
		fpPayments: {"critical", "firing", "alert sev-critical firing"},
	} {
		a := byAttr(t, charts[0], "data-alert", fp)
		if a.Data != "a" || attr(a, "data-severity") != want.sev || attr(a, "data-status") != want.status || attr(a, "class") != want.class {
			t.Errorf("alert %s: <%s data-severity=%q data-status=%q class=%q>, want <a> %+v", fp, a.Data,
				attr(a, "data-severity"), attr(a, "data-status"), attr(a, "class"), want)
		}
	}
	// The firing alert is drawn to now (15:30 of 12:00–16:00: 7/8 of the
	// plot) and goes on (the arrow).
	pay := byAttr(t, charts[0], "data-alert", fpPayments)
	x, _, w, _ := rectOf(t, pay)
	if end, want := x+w, gutter+(chartWidth-rightMargin-gutter)*7/8; end < want-0.2 || end > want+0.2 {
		t.Errorf("firing bar ends at x=%.1f, want now at %.1f", end, want)
	}
	if len(all(pay, tag("polygon"))) != 1 {
		t.Error("the firing alert has no arrow")
	}
	if tt := titleOf(pay); !strings.Contains(tt, "firing since Tue 4 Mar 16:05 CET") || !strings.Contains(tt, "suspect: github release payments v2.3.0") {
		t.Errorf("firing alert's title %q: want its start in Berlin time and its suspect", tt)
	}
	// The two orders alerts overlap: they are drawn in two rows.
	_, y1, _, _ := rectOf(t, byAttr(t, charts[0], "data-alert", fpDB))
	_, y2, _, h2 := rectOf(t, byAttr(t, charts[0], "data-alert", fpLatency))
	if y2 < y1+h2 {
		t.Errorf("overlapping alerts at y=%.1f and y=%.1f: want them stacked", y1, y2)
	}
	// An alert links to the page filtered to its workload and window.
	href, err := url.Parse(attr(byAttr(t, charts[0], "data-alert", fpDB), "href"))
	if err != nil {
		t.Fatal(err)
	}
	if q := href.Query(); href.Path != "" || q.Get("namespace") != "shop" || q.Get("workload") != "orders" ||
		q.Get("from") != "2025-03-04T13:08:00Z" || q.Get("to") != "2025-03-04T15:10:00Z" {
		t.Errorf("alert link %q: want ?namespace=shop&workload=orders from an hour before to half an hour after", href)
	}

	changes := all(charts[0], hasAttr("data-change"))
	if len(changes) != 4 {
		t.Fatalf("%d change markers, want 4", len(changes))
	}
	for id, want := range map[string]struct{ tag, source, href, class string }{
		idSync:            {"a", "argocd", "https://github.example/acme/orders/compare/1a2b3c4d5e6f...5f2c1e9a7b8c", "change src-argocd"},
		idOrdersRollout:   {"g", "kubernetes", "", "change src-kubernetes"},
		idRelease:         {"a", "github", "https://github.example/acme/payments/releases/tag/v2.3.0", "change src-github"},
		idPaymentsRollout: {"g", "kubernetes", "", "change src-kubernetes"},
	} {
		c := byAttr(t, charts[0], "data-change", id)
		if c.Data != want.tag || attr(c, "data-source") != want.source || attr(c, "href") != want.href || attr(c, "class") != want.class {
			t.Errorf("change %s: <%s data-source=%q href=%q class=%q>, want %+v", id, c.Data, attr(c, "data-source"), attr(c, "href"), attr(c, "class"), want)
		}
	}
	sync := byAttr(t, charts[0], "data-change", idSync)
	if tt := titleOf(sync); !strings.Contains(tt, "by Alice Kim") || !strings.Contains(tt, "“raise DB pool”") ||
		!strings.Contains(tt, "5f2c1e9") || !strings.Contains(tt, "Tue 4 Mar 15:02:00 CET") || strings.Contains(tt, "from 20 to 80") {
		t.Errorf("sync's title %q: want author, the message's first line, revision and the time in Berlin", tt)
	}
	// The time axis: the sync (14:02) is left of the alert it caused
	// (14:08), which is left of the release (14:55).
	dbX, _, _, _ := rectOf(t, byAttr(t, charts[0], "data-alert", fpDB))
	if sx, rx := markerX(t, sync), markerX(t, byAttr(t, charts[0], "data-change", idRelease)); !(sx < dbX && dbX < rx) {
		t.Errorf("x: sync %.1f, alert %.1f, release %.1f: want them in time order", sx, dbX, rx)
	}

	// Ticks every 30 minutes, in Berlin time.
	var ticks []string
	for _, n := range all(charts[0], func(n *html.Node) bool { return attr(n, "class") == "tick" }) {
		ticks = append(ticks, text(n))
	}
	if want := []string{"13:00", "13:30", "14:00", "14:30", "15:00", "15:30", "16:00", "16:30", "17:00"}; !slices.Equal(ticks, want) {
		t.Errorf("ticks %q, want %q", ticks, want)
	}

	// The legend names every severity and the sources present.
	legend := text(byAttr(t, doc, "id", "legend"))
	for _, s := range []string{"alert: critical", "alert: warning", "alert: info", "alert: none", "change: kubernetes", "change: argocd", "change: github"} {
		if !strings.Contains(legend, s) {
			t.Errorf("legend %q lacks %q", legend, s)
		}
	}
	if strings.Contains(legend, "flux") {
		t.Errorf("legend %q names a source with no change here", legend)
	}

	// The list: every entry in time order, in Berlin time.
	var list []string
	for _, tr := range all(doc, hasAttr("data-entry")) {
		list = append(list, strings.Join(strings.Fields(text(all(tr, tag("td"))[0])+" "+text(all(tr, tag("td"))[1])), " "))
	}
	want := []string{"15:02 sync", "15:03 rollout", "15:08 FIRING", "15:10 FIRING", "15:35 RESOLVED", "15:40 RESOLVED", "15:55 release", "15:56 rollout", "16:05 FIRING"}
	if !slices.Equal(list, want) {
		t.Errorf("list %q, want %q", list, want)
	}
}

func TestUntrustedTextIsShownAsText(t *testing.T) {
	tl := fixture("https://github.example")
	tl.Alerts[0].Labels["team"] = `"><script>alert("label")</script>`
	tl.Alerts[0].Suspect = `<img src=x onerror=alert(1)>`
	tl.Changes[0].Author = `<b>Mallory</b>`
	tl.Changes[2].URL = `javascript:alert(1)`
	tl.Changes[2].Links = []sources.Link{{Name: "<i>x</i>", URL: "javascript:alert(2)"}}
	h := Handler(fakeBuild(t, tl, nil), Options{Location: berlin, Now: func() time.Time { return fixtureNow }})
	rec, doc := get(t, h, shopURL+`&alertname=`+url.QueryEscape(`<script>alert("q")</script>`))

	if n := len(all(doc, tag("script"))); n != 0 {
		t.Errorf("%d <script> elements on the page, want none", n)
	}
	if n := len(all(doc, tag("img"))) + len(all(doc, tag("b"))) + len(all(doc, tag("i"))); n != 0 {
		t.Errorf("%d elements injected through text", n)
	}
	body := rec.Body.String()
	for _, s := range []string{`&lt;script&gt;alert(&#34;label&#34;)&lt;/script&gt;`, `&lt;img src=x onerror=alert(1)&gt;`, `&lt;b&gt;Mallory&lt;/b&gt;`} {
		if !strings.Contains(body, s) {
			t.Errorf("the page does not show %s as text", s)
		}
	}
	if in := all(doc, func(n *html.Node) bool { return n.Data == "input" && attr(n, "name") == "alertname" }); len(in) != 1 || attr(in[0], "value") != `<script>alert("q")</script>` {
		t.Errorf("the alertname field does not show the query back as typed")
	}
	for _, a := range all(doc, hasAttr("href")) {
		if strings.HasPrefix(strings.ToLower(attr(a, "href")), "javascript:") {
			t.Errorf("a javascript: link made it to the page: %q", attr(a, "href"))
		}
	}
}

func TestBadQueryIsA400Page(t *testing.T) {
	for _, tc := range []struct{ name, query, field string }{
		{"from not a time", "from=yesterday", "from: \"yesterday\" is not a time"},
		{"to not a time", "to=2025-13-45", "to: \"2025-13-45\" is not a time"},
		{"from after to", "from=2025-03-04T16:00:00Z&to=2025-03-04T12:00:00Z", "from: 2025-03-04T17:00:00+01:00 is not before to (2025-03-04T13:00:00+01:00)"},
		{"empty window", "from=now", "from: "},
		{"markup in the value", "from=" + url.QueryEscape(`"><script>x</script>`), `from: "\"><script>x</script>" is not a time`},
		{"matchers not in Alertmanager's syntax", "matchers=" + url.QueryEscape(`{severity=="x"`), "matchers: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := make(chan call, 1)
			rec, doc := get(t, fixtureHandler(t, calls), "/ui/?namespace=shop&"+tc.query)
			if rec.Code != http.StatusBadRequest {
				t.Errorf("status %d, want 400", rec.Code)
			}
			msg := text(byAttr(t, doc, "id", "error"))
			if !strings.HasPrefix(msg, tc.field) {
				t.Errorf("error %q, want it to start with %q", msg, tc.field)
			}
			if len(all(doc, tag("script"))) != 0 {
				t.Error("the error message made a <script> element")
			}
			if len(all(doc, func(n *html.Node) bool { return n.Data == "form" })) != 1 {
				t.Error("the 400 page has no form to fix the query in")
			}
			if len(calls) != 0 {
				t.Error("the timeline was built for a bad query")
			}
		})
	}
}

func TestEmptyWindowSaysSo(t *testing.T) {
	build := func(ctx context.Context, f timeline.Filter, from, to time.Time) (*timeline.Timeline, error) {
		return &timeline.Timeline{From: from, To: to, Filter: f}, nil
	}
	h := Handler(build, Options{Now: func() time.Time { return fixtureNow }})
	rec, doc := get(t, h, "/ui/?namespace=quiet")
	if rec.Code != http.StatusOK {
		t.Errorf("status %d, want 200", rec.Code)
	}
	if msg := text(byAttr(t, doc, "id", "empty")); !strings.Contains(msg, "Nothing fired and nothing changed in this window for these filters") {
		t.Errorf("empty message %q", msg)
	}
	if n := len(all(doc, tag("svg"))); n != 0 {
		t.Errorf("%d charts for an empty timeline", n)
	}
	if n := len(all(doc, hasAttr("data-entry"))); n != 0 {
		t.Errorf("%d entries for an empty timeline", n)
	}
}

func TestBuildErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		status int
		msg    string
	}{
		{"store down", errors.New("alert history: bolt: timeout"), http.StatusInternalServerError, "building the timeline failed: alert history: bolt: timeout"},
		// The builder's answer to what the page cannot check (a filter the
		// history refuses): 400 naming the field, without the wrapping.
		{"bad field", fmt.Errorf("timeline: %w", &timeline.FieldError{Field: "cluster", Msg: "no cluster named x"}), http.StatusBadRequest, "cluster: no cluster named x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			build := func(context.Context, timeline.Filter, time.Time, time.Time) (*timeline.Timeline, error) {
				return nil, tc.err
			}
			rec, doc := get(t, Handler(build, Options{}), "/ui/?namespace=shop")
			if rec.Code != tc.status {
				t.Errorf("status %d, want %d", rec.Code, tc.status)
			}
			if msg := text(byAttr(t, doc, "id", "error")); msg != tc.msg {
				t.Errorf("error %q, want %q", msg, tc.msg)
			}
		})
	}
}

func TestWindowAndShareLink(t *testing.T) {
	for _, tc := range []struct {
		name, query string
		from, to    time.Time
	}{
		{"default: the last 3 hours", "", fixtureNow.Add(-3 * time.Hour), fixtureNow},
		{"relative", "from=90m", fixtureNow.Add(-90 * time.Minute), fixtureNow},
		{"days back to hours back", "from=2d&to=1h", fixtureNow.Add(-48 * time.Hour), fixtureNow.Add(-time.Hour)},
		{"local time in the page's zone", "from=2025-03-04+13:00&to=2025-03-04T14:30", day.Add(12 * time.Hour), day.Add(13*time.Hour + 30*time.Minute)},
		{"RFC 3339", "from=2025-03-04T12:00:00Z&to=now", day.Add(12 * time.Hour), fixtureNow},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := make(chan call, 1)
			h := Handler(fakeBuild(t, fixture("https://github.example"), calls),
				Options{Location: berlin, Now: func() time.Time { return fixtureNow }, ExternalURL: "https://whatchanged.example/"})
			rec, doc := get(t, h, "/ui/?namespace=shop&"+tc.query)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d:\n%s", rec.Code, rec.Body)
			}
			c := <-calls
			if !c.From.Equal(tc.from) || !c.To.Equal(tc.to) || c.Filter != (timeline.Filter{Namespace: "shop"}) {
				t.Errorf("built %v – %v %+v, want %v – %v for namespace shop", c.From, c.To, c.Filter, tc.from, tc.to)
			}
			share := attr(byAttr(t, doc, "id", "share"), "href")
			want := "https://whatchanged.example/ui/?" + url.Values{"namespace": {"shop"},
				"from": {tc.from.UTC().Format(time.RFC3339)}, "to": {tc.to.UTC().Format(time.RFC3339)}}.Encode()
			if share != want {
				t.Errorf("share link %q, want %q (absolute, so it shows the same window later)", share, want)
			}
		})
	}
}

func TestPathsAndMethods(t *testing.T) {
	h := fixtureHandler(t, nil)
	for _, tc := range []struct {
		method, target string
		status         int
		location, msg  string
	}{
		{http.MethodGet, "/ui", http.StatusMovedPermanently, "/ui/", ""},
		{http.MethodGet, "/ui/style.css", http.StatusNotFound, "", "no such page: /ui/style.css"},
		{http.MethodPost, "/ui/", http.StatusMethodNotAllowed, "", "POST is not allowed on /ui/"},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.target, nil))
		if rec.Code != tc.status || rec.Header().Get("Location") != tc.location || !strings.Contains(rec.Body.String(), tc.msg) {
			t.Errorf("%s %s: %d Location %q, want %d %q with %q:\n%s", tc.method, tc.target, rec.Code, rec.Header().Get("Location"),
				tc.status, tc.location, tc.msg, rec.Body)
		}
	}
}

// The page runs no script and allows only its own style sheet: the
// Content-Security-Policy's hash must match the <style> served, or the
// browser would show the page unstyled.
func TestContentSecurityPolicyAllowsTheStyleSheet(t *testing.T) {
	rec, doc := get(t, fixtureHandler(t, nil), shopURL)
	styles := all(doc, tag("style"))
	if len(styles) != 1 {
		t.Fatalf("%d <style> elements, want 1", len(styles))
	}
	sum := sha256.Sum256([]byte(text(styles[0])))
	policy := rec.Header().Get("Content-Security-Policy")
	if want := "style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(policy, want) {
		t.Errorf("policy %q lacks %q", policy, want)
	}
	if !strings.Contains(policy, "default-src 'none'") {
		t.Errorf("policy %q allows more than the style sheet", policy)
	}
}

func TestTicksFollowTheWindow(t *testing.T) {
	for _, tc := range []struct {
		name       string
		start, end time.Time
		loc        *time.Location
		want       []string
	}{
		{"20 minutes", day.Add(14 * time.Hour), day.Add(14*time.Hour + 20*time.Minute), time.UTC,
			[]string{"14:00", "14:05", "14:10", "14:15", "14:20"}},
		{"a day across midnight in Berlin", day.Add(12 * time.Hour), day.Add(36 * time.Hour), berlin,
			[]string{"15:00", "18:00", "21:00", "00:00", "03:00", "06:00", "09:00", "12:00"}},
		{"half-hour zone", day.Add(12 * time.Hour), day.Add(15 * time.Hour), mustZone("Asia/Kolkata"),
			[]string{"17:30", "18:00", "18:30", "19:00", "19:30", "20:00", "20:30"}},
		{"a week", day, day.Add(7 * 24 * time.Hour), time.UTC,
			[]string{"Tue 4 Mar", "Wed 5 Mar", "Thu 6 Mar", "Fri 7 Mar", "Sat 8 Mar", "Sun 9 Mar", "Mon 10 Mar", "Tue 11 Mar"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, tk := range timeTicks(scale{start: tc.start, end: tc.end, left: gutter, right: chartWidth - rightMargin}, tc.loc) {
				got = append(got, tk.Label)
				if tk.X < gutter || tk.X > chartWidth-rightMargin {
					t.Errorf("tick %s at x=%.1f is outside the plot", tk.Label, tk.X)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("ticks %q, want %q", got, tc.want)
			}
		})
	}
}
