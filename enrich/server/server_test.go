package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/whatchanged/whatchanged/enrich"
	"github.com/whatchanged/whatchanged/enrich/deliver"
	"github.com/whatchanged/whatchanged/sources/changes"
	"github.com/whatchanged/whatchanged/sources/store/storetest"
)

// capture is a downstream that records bodies and answers a fixed status.
type capture struct {
	mu     sync.Mutex
	status int
	bodies [][]byte
}

func (c *capture) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	c.bodies = append(c.bodies, b)
	status := c.status
	c.mu.Unlock()
	w.WriteHeader(status)
}

type env struct {
	url     string
	handler http.Handler
	capture *capture
	keeper  *deliver.Keeper
}

// newEnv runs the real server with the real pipeline and pushed-changes
// source. downstream: 0 means none (the keeper), else the capture's status.
func newEnv(t testing.TB, cfg Config, downstream int) *env {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st := storetest.Bolt(t)
	src := changes.New("changes", changes.Config{}, st, log)
	resolver, _ := enrich.NewResolver(nil)
	reg := prometheus.NewRegistry()
	e := &env{}
	targets := map[string]deliver.Target{}
	if downstream == 0 {
		e.keeper = deliver.NewKeeper(10, 1<<20)
		targets["default"] = e.keeper
	} else {
		e.capture = &capture{status: downstream}
		ds := httptest.NewServer(e.capture)
		t.Cleanup(ds.Close)
		targets["default"] = deliver.NewWebhook("default", deliver.WebhookConfig{URL: ds.URL}, http.DefaultTransport)
		targets["pager"] = deliver.NewWebhook("pager", deliver.WebhookConfig{URL: ds.URL + "/pager"}, http.DefaultTransport)
	}
	e.serve(t, cfg, Deps{
		Enricher: enrich.New(enrich.Options{}, resolver, []enrich.SourceEntry{{Source: src}}, enrich.NewMetrics(reg)),
		Targets:  targets, Keeper: e.keeper, Changes: src,
		Ready:    func() (bool, string) { return src.Ready(), "waiting for sources: changes" },
		Gatherer: reg, Metrics: NewMetrics(reg), Log: log,
	})
	return e
}

// serve runs the real server on deps behind a test HTTP server: e.url and
// e.handler are its. Without a Listen address the server is told the
// loopback one.
func (e *env) serve(t testing.TB, cfg Config, deps Deps) {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:8080"
	}
	e.handler = New(cfg, deps).Handler()
	srv := httptest.NewServer(e.handler)
	t.Cleanup(srv.Close)
	e.url = srv.URL
}

// do sends one request; a body goes as application/json, as Alertmanager
// and Prometheus send it, unless header (name, value pairs) says otherwise.
func (e *env) do(t *testing.T, method, path, body string, header ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func notification(startsAt time.Time) string {
	return fmt.Sprintf(`{"version":"4","groupKey":"{}:{alertname=\"HighErrorRate\"}","status":"firing","receiver":"wc",
	  "routeLabels":{"team":"shop"},
	  "alerts":[{"status":"firing","labels":{"alertname":"HighErrorRate","namespace":"shop","deployment":"api"},
	    "annotations":{"description":"5xx"},"startsAt":%q,"endsAt":"0001-01-01T00:00:00Z","fingerprint":"f1"}]}`,
		startsAt.Format(time.RFC3339))
}

func pushChange(t *testing.T, e *env, at time.Time) {
	t.Helper()
	status, body := e.do(t, "POST", "/api/v1/changes", fmt.Sprintf(`{"id":"ci-42","kind":"deploy",
	  "subject":{"namespace":"shop","kind":"Deployment","name":"api"},"version":"api:1.8.4","author":"alice","time":%q}`, at.Format(time.RFC3339)))
	if status != http.StatusCreated {
		t.Fatalf("push change: %d %s", status, body)
	}
}

func TestWebhookEnrichesAndDelivers(t *testing.T) {
	e := newEnv(t, Config{}, http.StatusOK)
	now := time.Now().UTC().Truncate(time.Second)
	pushChange(t, e, now.Add(-12*time.Minute))

	status, body := e.do(t, "POST", "/webhook", notification(now))
	if status != http.StatusOK || !strings.Contains(body, `"status":"delivered"`) {
		t.Fatalf("answer %d %s", status, body)
	}
	if len(e.capture.bodies) != 1 {
		t.Fatalf("downstream got %d notifications", len(e.capture.bodies))
	}
	var got struct {
		RouteLabels map[string]string `json:"routeLabels"`
		Alerts      []struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"alerts"`
		CommonAnnotations map[string]string `json:"commonAnnotations"`
	}
	if err := json.Unmarshal(e.capture.bodies[0], &got); err != nil {
		t.Fatal(err)
	}
	ann := got.Alerts[0].Annotations
	if want := "deploy of shop/api api:1.8.4 by alice, 12m before the alert started [changes]"; ann["whatchanged_suspect"] != want {
		t.Errorf("suspect = %q, want %q", ann["whatchanged_suspect"], want)
	}
	if ann["description"] != "5xx" || got.RouteLabels["team"] != "shop" {
		t.Errorf("lost fields: %+v", got)
	}
	if got.CommonAnnotations["whatchanged_suspect"] != ann["whatchanged_suspect"] {
		t.Errorf("commonAnnotations not recomputed: %v", got.CommonAnnotations)
	}

	// A named route goes to its own downstream.
	if status, body := e.do(t, "POST", "/webhook/pager", notification(now)); status != 200 {
		t.Fatalf("named route: %d %s", status, body)
	}
	_, metrics := e.do(t, "GET", "/metrics", "")
	for _, want := range []string{
		`whatchanged_notifications_total{outcome="delivered",route="default"} 1`,
		`whatchanged_notifications_total{outcome="delivered",route="pager"} 1`,
		`whatchanged_source_calls_total{outcome="ok",source="changes"} 2`,
		`whatchanged_enrich_duration_seconds_count 2`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestDownstreamFailureAsksForRetry(t *testing.T) {
	e := newEnv(t, Config{}, http.StatusInternalServerError)
	status, body := e.do(t, "POST", "/webhook", notification(time.Now()))
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "downstream default: answered 500") {
		t.Fatalf("answer %d %s, want 503 naming the downstream", status, body)
	}
}

func TestNoDownstreamKeepsForInspection(t *testing.T) {
	e := newEnv(t, Config{}, 0)
	if status, body := e.do(t, "POST", "/webhook", notification(time.Now())); status != 200 || !strings.Contains(body, `"kept"`) {
		t.Fatalf("answer %d %s", status, body)
	}
	status, body := e.do(t, "GET", "/debug/notifications", "")
	if status != 200 || !strings.Contains(body, `whatchanged_summary`) {
		t.Fatalf("kept notifications: %d %s", status, body)
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t, Config{MaxBodyBytes: 4096}, http.StatusOK)
	tests := []struct {
		name, method, path, body string
		status                   int
		want                     string
	}{
		{"invalid JSON", "POST", "/webhook", `{"alerts": [`, 400, "body: invalid JSON at byte"},
		{"custom payload", "POST", "/webhook", `{"text":"hi"}`, 400, `no \"alerts\" field`},
		{"alert without labels", "POST", "/webhook", `{"version":"4","alerts":[{}]}`, 400, "alerts[0].labels: missing"},
		{"oversize", "POST", "/webhook", `{"alerts":[` + strings.Repeat(" ", 5000) + `]}`, 413, "larger than the limit of 4 KiB"},
		{"unknown route", "POST", "/webhook/nope", notification(time.Now()), 404, `no downstream named \"nope\"`},
		{"wrong method", "GET", "/webhook", "", 405, "GET is not allowed"},
		{"unknown path", "GET", "/nope", "", 404, "no such endpoint"},
		{"change field", "POST", "/api/v1/changes", `{"kind":"deploy","subject":{"namespace":"x"},"autor":"a"}`, 400, `"field":"autor"`},
		{"debug enrich garbage", "POST", "/debug/enrich", `nope`, 400, "invalid JSON"},
		{"debug changes since", "GET", "/debug/changes?since=yesterday", "", 400, "since: want a positive duration"},
		{"control character in a change id", "POST", "/api/v1/changes", `{"id":"ci\u001b[2J","kind":"deploy","subject":{"namespace":"x"}}`,
			400, `{"error":"id: control character U+001B at byte 2; this field takes one line of printable text","field":"id"}`},
		{"zero time of a change", "POST", "/api/v1/changes", `{"kind":"deploy","subject":{"namespace":"x"},"time":"0001-01-01T00:00:00Z"}`,
			400, `"field":"time"`},
		{"Go type in a change error", "POST", "/api/v1/changes", `{"kind":"deploy","subject":{"namespace":"x","images":"a"}}`,
			400, `{"error":"subject.images: expected an array, got a string","field":"subject.images"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := e.do(t, tt.method, tt.path, tt.body)
			if status != tt.status || !strings.Contains(body, tt.want) {
				t.Fatalf("got %d %s, want %d containing %q", status, body, tt.status, tt.want)
			}
		})
	}
	if n := len(e.capture.bodies); n != 0 {
		t.Errorf("bad input reached the downstream %d times", n)
	}
}

func TestAuth(t *testing.T) {
	e := newEnv(t, Config{Auth: Auth{BearerToken: "tok", BasicUser: "am", BasicPassword: "pw"}}, http.StatusOK)
	body := notification(time.Now())
	tests := []struct {
		name, method, path string
		header             []string
		status             int
	}{
		{"no credentials", "POST", "/webhook", nil, 401},
		{"wrong bearer", "POST", "/webhook", []string{"Authorization", "Bearer nope"}, 401},
		{"bearer", "POST", "/webhook", []string{"Authorization", "Bearer tok"}, 200},
		{"basic", "POST", "/webhook", []string{"Authorization", "Basic YW06cHc="}, 200}, // am:pw
		{"wrong basic", "POST", "/webhook", []string{"Authorization", "Basic YW06eA=="}, 401},
		{"changes API needs auth", "POST", "/api/v1/changes", nil, 401},
		{"debug needs auth", "GET", "/debug/changes", nil, 401},
		{"debug with auth on any listener", "GET", "/debug/changes", []string{"Authorization", "Bearer tok"}, 200},
		{"healthz open", "GET", "/healthz", nil, 200},
		{"readyz open", "GET", "/readyz", nil, 503}, // source not started: not ready, but not 401
		{"metrics open by default", "GET", "/metrics", nil, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if status, got := e.do(t, tt.method, tt.path, body, tt.header...); status != tt.status {
				t.Fatalf("got %d %s, want %d", status, got, tt.status)
			}
		})
	}
	p := newEnv(t, Config{Auth: Auth{BearerToken: "tok", ProtectMetrics: true}}, http.StatusOK)
	if status, _ := p.do(t, "GET", "/metrics", ""); status != 401 {
		t.Errorf("protected metrics without credentials: %d", status)
	}
}

func TestDebugRefusedOnNonLoopbackWithoutAuth(t *testing.T) {
	e := newEnv(t, Config{Listen: "0.0.0.0:8080"}, 0)
	status, body := e.do(t, "POST", "/debug/enrich", `{"labels":{"namespace":"shop"}}`)
	if status != http.StatusForbidden || !strings.Contains(body, "non-loopback") {
		t.Fatalf("got %d %s, want 403", status, body)
	}
	// The webhook itself still works there.
	if status, _ := e.do(t, "POST", "/webhook", notification(time.Now())); status != 200 {
		t.Fatalf("webhook on non-loopback: %d", status)
	}
}

func TestDebugEnrichAcceptsThreeForms(t *testing.T) {
	e := newEnv(t, Config{}, 0)
	now := time.Now().UTC()
	pushChange(t, e, now.Add(-5*time.Minute))
	forms := map[string]string{
		"webhook":  notification(now),
		"array":    fmt.Sprintf(`[{"labels":{"namespace":"shop","deployment":"api"},"startsAt":%q}]`, now.Format(time.RFC3339)),
		"labels":   `{"labels":{"namespace":"shop","deployment":"api"}}`,
		"labels+t": fmt.Sprintf(`{"labels":{"namespace":"shop","deployment":"api"},"startsAt":%q}`, now.Format(time.RFC3339)),
	}
	for name, body := range forms {
		t.Run(name, func(t *testing.T) {
			status, got := e.do(t, "POST", "/debug/enrich", body)
			if status != 200 {
				t.Fatalf("%d %s", status, got)
			}
			var out struct {
				Explanation enrich.Report `json:"explanation"`
			}
			if err := json.Unmarshal([]byte(got), &out); err != nil {
				t.Fatal(err)
			}
			a := out.Explanation.Alerts[0]
			if a.Subject.Name != "api" || len(a.Sources) != 1 || a.Sources[0].Count != 1 || a.Suspect == nil || len(a.Resolution) == 0 {
				t.Fatalf("explanation lacks subject, source result or suspect: %+v", a)
			}
		})
	}
	if n := len(e.keeper.List()); n != 0 {
		t.Errorf("/debug/enrich delivered %d notifications; it must never deliver", n)
	}
}

func TestChangesAPI(t *testing.T) {
	e := newEnv(t, Config{}, 0)
	body := `{"id":"x1","kind":"deploy","subject":{"app":"shop-api"},"version":"1.2.3"}`
	if status, got := e.do(t, "POST", "/api/v1/changes", body); status != 201 || !strings.Contains(got, `"created":true`) {
		t.Fatalf("first push: %d %s", status, got)
	}
	if status, got := e.do(t, "POST", "/api/v1/changes", body); status != 200 || !strings.Contains(got, `"created":false`) {
		t.Fatalf("repeat push: %d %s", status, got)
	}
	status, got := e.do(t, "GET", "/debug/changes?since=1h&limit=5", "")
	if status != 200 || strings.Count(got, `"id":"x1"`) != 1 {
		t.Fatalf("list: %d %s", status, got)
	}
}

// inlineEnv runs the real server in inline mode in front of one upstream.
func inlineEnv(t *testing.T, upstream http.Handler) string {
	t.Helper()
	am := httptest.NewServer(upstream)
	t.Cleanup(am.Close)
	ams, err := deliver.NewAlertmanagers([]deliver.UpstreamConfig{{Name: "am", URL: am.URL}})
	if err != nil {
		t.Fatal(err)
	}
	resolver, _ := enrich.NewResolver(nil)
	reg := prometheus.NewRegistry()
	s := New(Config{Listen: "127.0.0.1:8080"}, Deps{
		Enricher:      enrich.New(enrich.Options{}, resolver, nil, enrich.NewMetrics(reg)),
		Alertmanagers: ams,
		Ready:         func() (bool, string) { return true, "" },
		Gatherer:      reg, Metrics: NewMetrics(reg), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestPostTakesOnlyJSON: a browser page can POST text/plain, a form or
// multipart across origins without asking; application/json it cannot
// send without a preflight, which whatchanged never allows. Alertmanager
// and Prometheus send application/json.
func TestPostTakesOnlyJSON(t *testing.T) {
	e := newEnv(t, Config{}, http.StatusOK)
	var upstreamGot int
	inline := &env{url: inlineEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstreamGot++
		w.WriteHeader(http.StatusOK)
	}))}
	endpoints := []struct {
		name string
		e    *env
		path string
		body string
	}{
		{"webhook", e, "/webhook", notification(time.Now())},
		{"named route", e, "/webhook/pager", notification(time.Now())},
		{"changes", e, "/api/v1/changes", `{"kind":"deploy","subject":{"namespace":"shop","name":"api"}}`},
		{"debug enrich", e, "/debug/enrich", `{"labels":{"namespace":"shop"}}`},
		{"inline alerts", inline, "/api/v2/alerts", `[{"labels":{"alertname":"A"}}]`},
	}
	types := []struct {
		ctype string
		ok    bool
	}{
		{"", false},
		{"text/plain", false},
		{"text/plain; charset=utf-8", false},
		{"application/x-www-form-urlencoded", false},
		{"multipart/form-data; boundary=x", false},
		{"application/json-seq", false},
		{"application/json; charset=latin1", false},
		{"application/json;;", false},
		{"application/json", true},
		{"application/json; charset=utf-8", true},
		{"Application/JSON; Charset=UTF-8", true},
	}
	for _, ep := range endpoints {
		for _, ty := range types {
			t.Run(ep.name+" "+ty.ctype, func(t *testing.T) {
				status, body := ep.e.do(t, "POST", ep.path, ep.body, "Content-Type", ty.ctype)
				if !ty.ok {
					if status != http.StatusUnsupportedMediaType || !strings.Contains(body, "Content-Type must be application/json") {
						t.Fatalf("got %d %s, want 415 asking for application/json", status, body)
					}
					return
				}
				if status == http.StatusUnsupportedMediaType || status >= 400 {
					t.Fatalf("got %d %s, want it taken", status, body)
				}
			})
		}
	}
	if n := len(e.capture.bodies); n != 2*3 { // the accepted types, to the two webhook routes
		t.Errorf("downstream got %d notifications, want 6", n)
	}
	if upstreamGot != 3 {
		t.Errorf("upstream Alertmanager got %d posts, want 3", upstreamGot)
	}
}

// TestNoCrossOriginPreflight: a browser asks before it POSTs JSON to
// another origin. No endpoint says yes, inline mode included, where the
// question would otherwise reach Alertmanager, which says yes to all.
func TestNoCrossOriginPreflight(t *testing.T) {
	e := newEnv(t, Config{}, http.StatusOK)
	inline := &env{url: inlineEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Alertmanager v0.31.1's answer to a preflight of its API (rs/cors
		// Default around api/v2); other paths answer 404 without CORS.
		if r.Method == http.MethodOptions && r.Header.Get("Origin") != "" && strings.HasPrefix(r.URL.Path, "/api/v2/") {
			w.Header().Set("Access-Control-Allow-Origin", "*")
			w.Header().Set("Access-Control-Allow-Methods", "POST")
			w.Header().Set("Access-Control-Allow-Headers", "content-type")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))}
	preflight := []string{"Origin", "http://evil.example", "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type"}
	for _, tt := range []struct {
		e    *env
		path string
	}{{e, "/webhook"}, {e, "/webhook/pager"}, {e, "/api/v1/changes"}, {e, "/debug/enrich"},
		{inline, "/api/v2/alerts"}, {inline, "/api/v1/changes"}, {inline, "/webhook"}} {
		req, _ := http.NewRequest(http.MethodOptions, tt.e.url+tt.path, nil)
		for i := 0; i < len(preflight); i += 2 {
			req.Header.Set(preflight[i], preflight[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		for k, v := range resp.Header {
			if strings.HasPrefix(k, "Access-Control-") {
				t.Errorf("OPTIONS %s (inline %v): %d with %s: %v", tt.path, tt.e != e, resp.StatusCode, k, v)
			}
		}
	}
}

// TestInlinePassesTheUpstreamRefusalBack: alerts Alertmanager refuses with
// 422 get that 422 and its body, not a 503 Prometheus would retry.
func TestInlinePassesTheUpstreamRefusalBack(t *testing.T) {
	// What Alertmanager v0.31.1 answers for [{"annotations":{}}], captured.
	const refusal = `{"code":602,"message":"0.labels in body is required"}`
	url := inlineEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnprocessableEntity)
		_, _ = w.Write([]byte(refusal))
	}))
	e := &env{url: url}
	status, body := e.do(t, "POST", "/api/v2/alerts", `[{"annotations":{}}]`)
	if status != http.StatusUnprocessableEntity || body != refusal {
		t.Fatalf("got %d %s, want Alertmanager's 422 and body", status, body)
	}
	_, metrics := e.do(t, "GET", "/metrics", "")
	if want := `whatchanged_notifications_total{outcome="rejected",route="inline"} 1`; !strings.Contains(metrics, want) {
		t.Errorf("metrics lack %s", want)
	}
}

// TestDebugEnrichNeverAnswersEmpty: a time whose window (look-back before,
// look-ahead after) leaves the years 0001–9999 cannot be shown in JSON;
// the answer is a 400 naming the field, never a 200 with no body.
func TestDebugEnrichNeverAnswersEmpty(t *testing.T) {
	e := newEnv(t, Config{}, 0)
	late := "9999-12-31T23:58:00Z" // the 5-minute look-ahead ends in the year 10000
	tests := []struct{ name, body, field string }{
		{"labels", `{"labels":{"namespace":"shop"},"startsAt":"` + late + `"}`, "startsAt"},
		{"array", `[{"labels":{"namespace":"shop"}},{"labels":{"namespace":"shop"},"startsAt":"` + late + `"}]`, "body[1].startsAt"},
		{"webhook", `{"alerts":[{"labels":{"namespace":"shop"},"startsAt":"` + late + `"}]}`, "alerts[0].startsAt"},
		{"in its own zone", `{"labels":{"namespace":"shop"},"startsAt":"9999-12-31T23:58:00-23:00"}`, "startsAt"},
		{"no subject", `{"labels":{"alertname":"x"},"startsAt":"` + late + `"}`, "startsAt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := e.do(t, "POST", "/debug/enrich", tt.body)
			var got errorBody
			if status != http.StatusBadRequest || json.Unmarshal([]byte(body), &got) != nil || got.Field != tt.field ||
				!strings.Contains(got.Error, "outside the years 0001-9999") {
				t.Fatalf("got %d %s, want 400 naming %s", status, body, tt.field)
			}
		})
	}
	// The last time that fits is answered.
	status, body := e.do(t, "POST", "/debug/enrich", `{"labels":{"namespace":"shop"},"startsAt":"9999-12-31T23:54:59Z"}`)
	if status != http.StatusOK || !json.Valid([]byte(body)) || !strings.Contains(body, `"until":"9999-12-31T23:59:59Z"`) {
		t.Fatalf("got %d %s", status, body)
	}
}

// FuzzDebugEnrich: whatever is posted, /debug/enrich answers 200 with an
// explanation or 400 with an error, in valid JSON — never an empty body.
func FuzzDebugEnrich(f *testing.F) {
	e := newEnv(f, Config{}, 0)
	for _, body := range []string{
		notification(time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)),
		`[{"labels":{"namespace":"shop","deployment":"api"},"startsAt":"2026-11-21T10:00:00Z"}]`,
		`{"labels":{"namespace":"shop","deployment":"api"}}`,
		`{"labels":{"namespace":"shop"},"startsAt":"9999-12-31T23:58:00Z"}`,
		`{"labels":{"namespace":"shop"},"startsAt":"9999-12-31T23:54:59Z"}`,
		`[{"labels":{"namespace":"shop"},"startsAt":"9999-12-31T23:58:00-23:00"}]`,
		`{"alerts":[{"labels":{"namespace":"shop"},"startsAt":"0000-01-01T00:00:00Z","endsAt":"0001-01-01T00:00:00Z"}]}`,
		`{"labels":{"namespace":"shop"},"startsAt":"0002-01-01T00:00:00Z","endsAt":"9999-12-31T23:59:59Z"}`,
		"{\"labels\":{\"namespace\":\"sh\xffop\",\"d\":\"ci\\u0000\\u001b\"}}",
		`[{"annotations":{}}]`,
		`nope`, ``, `{}`, `[]`, `null`,
	} {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/debug/enrich", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		e.handler.ServeHTTP(rec, req)
		var got map[string]json.RawMessage
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || !utf8.Valid(rec.Body.Bytes()) {
			t.Fatalf("%d with a body that is not JSON (%v): %q", rec.Code, err, rec.Body.String())
		}
		switch {
		case rec.Code == http.StatusOK && got["explanation"] != nil:
		case rec.Code == http.StatusBadRequest && got["error"] != nil:
		default:
			t.Fatalf("answer %d %s", rec.Code, rec.Body.String())
		}
	})
}
