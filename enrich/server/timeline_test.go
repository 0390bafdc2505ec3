package server

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/whatchanged/whatchanged/enrich"
	"github.com/whatchanged/whatchanged/enrich/deliver"
	"github.com/whatchanged/whatchanged/enrich/history"
	"github.com/whatchanged/whatchanged/enrich/timeline"
	"github.com/whatchanged/whatchanged/sources/changes"
	"github.com/whatchanged/whatchanged/sources/store"
	"github.com/whatchanged/whatchanged/sources/store/storetest"
)

type timelineEnv struct {
	*env
	history *history.History
	reg     *prometheus.Registry
}

// newTimelineEnv is the real server with the pipeline, the pushed-changes
// source, the alert history on its own store (histStore) and the timeline;
// ui is served at /ui/.
func newTimelineEnv(t *testing.T, cfg Config, histStore store.Store, ui http.Handler) *timelineEnv {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st := storetest.Bolt(t)
	src := changes.New("changes", changes.Config{}, st, log)
	resolver, _ := enrich.NewResolver(nil)
	reg := prometheus.NewRegistry()
	enricher := enrich.New(enrich.Options{}, resolver, []enrich.SourceEntry{{Source: src}}, nil)
	h := history.New(histStore, history.Config{}, enricher.Resolve, log)
	reg.MustRegister(h.Collectors()...)
	h.Start(t.Context())
	t.Cleanup(func() { h.Close(5 * time.Second) })
	e := &env{capture: &capture{status: 200}}
	ds := httptest.NewServer(e.capture)
	t.Cleanup(ds.Close)
	e.serve(t, cfg, Deps{
		Enricher: enricher, Changes: src,
		Targets: map[string]deliver.Target{"default": deliver.NewWebhook("default", deliver.WebhookConfig{URL: ds.URL}, http.DefaultTransport)},
		History: h, Timeline: &timeline.Builder{History: h, Sources: enricher}, UI: ui,
		Ready: func() (bool, string) { return true, "" }, Gatherer: reg, Metrics: NewMetrics(reg), Log: log,
	})
	return &timelineEnv{env: e, history: h, reg: reg}
}

func TestTimelineAPI(t *testing.T) {
	e := newTimelineEnv(t, Config{}, storetest.Bolt(t), nil)
	startsAt := time.Now().UTC().Truncate(time.Second).Add(-10 * time.Minute)
	pushChange(t, e.env, startsAt.Add(-12*time.Minute))
	if status, body := e.do(t, "POST", "/webhook", notification(startsAt)); status != 200 {
		t.Fatalf("webhook: %d %s", status, body)
	}
	if err := e.history.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}

	status, body := e.do(t, "GET", "/api/v1/timeline?from=1h&namespace=shop", "")
	if status != 200 {
		t.Fatalf("timeline: %d %s", status, body)
	}
	var tl timeline.Timeline
	if err := json.Unmarshal([]byte(body), &tl); err != nil {
		t.Fatal(err)
	}
	if len(tl.Entries) != 2 || tl.Entries[0].Type != "change" || tl.Entries[1].Type != "firing" ||
		tl.Alerts[0].Via != "webhook default" || !strings.Contains(tl.Alerts[0].Suspect, "deploy of shop/api api:1.8.4 by alice") {
		t.Errorf("timeline: %s", body)
	}
	if got := time.Since(tl.From); got < 59*time.Minute || got > 61*time.Minute {
		t.Errorf("from=1h gave %s", tl.From)
	}

	for _, tc := range []struct{ query, accept string }{{"format=md", ""}, {"", "text/markdown"}, {"", "text/html, text/markdown;q=0.9"}} {
		req, _ := http.NewRequest("GET", e.url+"/api/v1/timeline?namespace=shop&"+tc.query, nil)
		if tc.accept != "" {
			req.Header.Set("Accept", tc.accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := fmt.Sprintf(" %s FIRING HighErrorRate api\n  - suspect: deploy of shop/api", startsAt.Format("15:04"))
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/markdown; charset=utf-8" || !strings.Contains(string(b), want) {
			t.Errorf("%q %q: %d %s\n%s", tc.query, tc.accept, resp.StatusCode, resp.Header.Get("Content-Type"), b)
		}
	}
}

func TestTimelineAPIRefusesBadParameters(t *testing.T) {
	e := newTimelineEnv(t, Config{}, storetest.Bolt(t), nil)
	for _, tc := range []struct{ query, field string }{
		{"from=yesterday", "from"},
		{"to=2026-13-01", "to"},
		{"from=1h&to=2h", "from"},
		{"matchers=" + `{severity=~"("}`, "matchers"},
		{"format=xml", "format"},
	} {
		status, body := e.do(t, "GET", "/api/v1/timeline?"+strings.ReplaceAll(tc.query, `"`, "%22"), "")
		var eb errorBody
		_ = json.Unmarshal([]byte(body), &eb)
		if status != 400 || eb.Field != tc.field || !strings.HasPrefix(eb.Error, tc.field+": ") {
			t.Errorf("%s: %d %s, want 400 naming %s", tc.query, status, body, tc.field)
		}
	}
}

func TestTimelineNeedsTheHistory(t *testing.T) {
	e := newEnv(t, Config{}, 200)
	status, body := e.do(t, "GET", "/api/v1/timeline", "")
	if status != 404 || !strings.Contains(body, "the timeline needs the alert history (data_dir or redis)") {
		t.Errorf("%d %s", status, body)
	}
	if status, _ := e.do(t, "GET", "/ui/", ""); status != 404 {
		t.Errorf("/ui/ without a page: %d", status)
	}
}

func TestTimelineAndPageAuth(t *testing.T) {
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "page "+r.URL.Path) })
	e := newTimelineEnv(t, Config{Listen: "0.0.0.0:8080", Auth: Auth{BearerToken: "s3cret"}}, storetest.Bolt(t), page)
	if status, _ := e.do(t, "GET", "/api/v1/timeline", ""); status != 401 {
		t.Errorf("timeline without credentials: %d", status)
	}
	if status, _ := e.do(t, "GET", "/ui/", ""); status != 401 {
		t.Errorf("/ui/ without credentials: %d", status)
	}
	if status, body := e.do(t, "GET", "/ui/?namespace=shop", "", "Authorization", "Bearer s3cret"); status != 200 || body != "page /ui/" {
		t.Errorf("/ui/: %d %q", status, body)
	}
	if status, _ := e.do(t, "GET", "/api/v1/timeline", "", "Authorization", "Bearer s3cret"); status != 200 {
		t.Errorf("timeline: %d", status)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(e.url + "/ui")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/ui/" {
		t.Errorf("/ui: %d → %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	// The page shows alerts and changes: like /debug, not on an open
	// non-loopback listener.
	open := newTimelineEnv(t, Config{Listen: "0.0.0.0:8080"}, storetest.Bolt(t), page)
	if status, body := open.do(t, "GET", "/ui/", ""); status != 403 || !strings.Contains(body, "non-loopback") {
		t.Errorf("/ui/ on an open non-loopback listener: %d %s", status, body)
	}
}

func TestHistoryStoreFailureNeverFailsANotification(t *testing.T) {
	st := storetest.Bolt(t)
	e := newTimelineEnv(t, Config{}, st, nil)
	st.Close() // the history's store is gone
	if status, body := e.do(t, "POST", "/webhook", notification(time.Now().Add(-time.Minute))); status != 200 {
		t.Fatalf("webhook: %d %s", status, body)
	}
	if len(e.capture.bodies) != 1 {
		t.Errorf("delivered %d notifications, want 1", len(e.capture.bodies))
	}
	if err := e.history.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if v := counter(t, e.reg, "whatchanged_history_write_failures_total"); v != 1 {
		t.Errorf("whatchanged_history_write_failures_total = %v, want 1", v)
	}
	if status, body := e.do(t, "GET", "/api/v1/timeline", ""); status != 500 || !strings.Contains(body, "could not build the timeline") {
		t.Errorf("timeline on a dead store: %d %s", status, body)
	}
}

// counter is the value of a registered counter without labels.
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("%s not registered", name)
	return 0
}
