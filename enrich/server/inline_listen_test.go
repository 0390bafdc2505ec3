package server

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/whatchanged/whatchanged/enrich"
	"github.com/whatchanged/whatchanged/enrich/deliver"
)

// syncBuffer is a log sink the handlers write to from their goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines are the JSON log records written so far.
func (b *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// inlineServer is the real server in inline mode in front of upstream,
// with its main listener and its inline listener: their URLs, and its log
// (JSON, debug level).
func inlineServer(t *testing.T, upstream http.Handler) (main, inline string, log *syncBuffer) {
	t.Helper()
	am := httptest.NewServer(upstream)
	t.Cleanup(am.Close)
	ams, err := deliver.NewAlertmanagers([]deliver.UpstreamConfig{{Name: "am", URL: am.URL}})
	if err != nil {
		t.Fatal(err)
	}
	resolver, _ := enrich.NewResolver(nil)
	reg := prometheus.NewRegistry()
	log = &syncBuffer{}
	s := New(Config{Listen: "127.0.0.1:8080"}, Deps{
		Enricher:      enrich.New(enrich.Options{}, resolver, nil, enrich.NewMetrics(reg)),
		Alertmanagers: ams,
		Ready:         func() (bool, string) { return true, "" },
		Gatherer:      reg, Metrics: NewMetrics(reg),
		Log:    slog.New(slog.NewJSONHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Reload: func() error { return nil },
	})
	m := httptest.NewServer(s.Handler())
	t.Cleanup(m.Close)
	i := httptest.NewServer(s.InlineHandler())
	t.Cleanup(i.Close)
	return m.URL, i.URL, log
}

// On the inline listener every path is Alertmanager's but the alerts'
// POST: /metrics, /-/reload, /-/healthy reach Alertmanager; whatchanged's
// own stay on the main listener.
func TestInlineListenerLeavesAlertmanagerPathsToIt(t *testing.T) {
	var (
		mu  sync.Mutex
		got []string
	)
	mainURL, inlineURL, _ := inlineServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.Path)
		mu.Unlock()
		io.WriteString(w, "alertmanager\n")
	}))
	for _, req := range []struct{ method, path string }{
		{http.MethodGet, "/metrics"}, {http.MethodPost, "/-/reload"}, {http.MethodGet, "/-/healthy"},
		{http.MethodGet, "/-/ready"}, {http.MethodGet, "/api/v2/status"}, {http.MethodGet, "/healthz"},
		{http.MethodGet, "/api/v2/alerts"},
	} {
		e := &env{url: inlineURL}
		status, body := e.do(t, req.method, req.path, "")
		if status != http.StatusOK || body != "alertmanager\n" {
			t.Errorf("inline listener: %s %s = %d %q, want Alertmanager's answer", req.method, req.path, status, body)
		}
	}
	mu.Lock()
	if len(got) != 7 {
		t.Errorf("Alertmanager got %q, want all 7 requests", got)
	}
	mu.Unlock()

	e := &env{url: inlineURL}
	if status, body := e.do(t, http.MethodPost, "/api/v2/alerts", `[{"labels":{"alertname":"A"}}]`); status != http.StatusOK {
		t.Fatalf("POST /api/v2/alerts on the inline listener: %d %s", status, body)
	}
	mu.Lock()
	if n := len(got); n != 8 || got[n-1] != "POST /api/v2/alerts" {
		t.Errorf("alerts not forwarded: %q", got)
	}
	mu.Unlock()

	// Ours on the main listener, untouched.
	m := &env{url: mainURL}
	if status, body := m.do(t, http.MethodGet, "/metrics", ""); status != http.StatusOK || !strings.Contains(body, "whatchanged_") {
		t.Errorf("main listener GET /metrics = %d, not whatchanged's metrics: %.200s", status, body)
	}
	if status, body := m.do(t, http.MethodPost, "/-/reload", ""); status != http.StatusOK || !strings.Contains(body, "reloaded") {
		t.Errorf("main listener POST /-/reload = %d %s, want whatchanged's reload", status, body)
	}
	if status, body := m.do(t, http.MethodGet, "/healthz", ""); status != http.StatusOK || body != "ok\n" {
		t.Errorf("main listener GET /healthz = %d %q", status, body)
	}
	mu.Lock()
	if len(got) != 8 {
		t.Errorf("the main listener's own paths reached Alertmanager: %q", got[8:])
	}
	mu.Unlock()
}

// Every log line about a notification carries its group key, receiver and
// alert count, so one notification's lines can be found together; a line
// about one alert carries its fingerprint.
func TestNotificationLogLinesCarryTheNotification(t *testing.T) {
	check := func(t *testing.T, lines []map[string]any, wantMsgs ...string) {
		t.Helper()
		seen := map[string]bool{}
		for _, l := range lines {
			msg, _ := l["msg"].(string)
			if msg == "request" { // the HTTP request's line, not the notification's
				continue
			}
			seen[msg] = true
			for _, k := range []string{"groupKey", "receiver", "alerts"} {
				if _, ok := l[k]; !ok {
					t.Errorf("log line %q has no %s: %v", msg, k, l)
				}
			}
		}
		for _, m := range wantMsgs {
			if !seen[m] {
				t.Errorf("no log line %q in %v", m, lines)
			}
		}
	}

	t.Run("webhook", func(t *testing.T) {
		log := &syncBuffer{}
		resolver, _ := enrich.NewResolver(nil)
		reg := prometheus.NewRegistry()
		status := http.StatusOK
		ds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(status) }))
		t.Cleanup(ds.Close)
		e := &env{}
		e.serve(t, Config{}, Deps{
			Enricher: enrich.New(enrich.Options{}, resolver, nil, enrich.NewMetrics(reg)),
			Targets:  map[string]deliver.Target{"default": deliver.NewWebhook("default", deliver.WebhookConfig{URL: ds.URL}, http.DefaultTransport)},
			Ready:    func() (bool, string) { return true, "" },
			Gatherer: reg, Metrics: NewMetrics(reg),
			Log: slog.New(slog.NewJSONHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		})
		e.do(t, http.MethodPost, "/webhook", notification(time.Now()))
		status = http.StatusServiceUnavailable
		e.do(t, http.MethodPost, "/webhook", notification(time.Now()))
		lines := log.lines(t)
		check(t, lines, "notification delivered", "delivery failed; asking Alertmanager to retry")
		for _, l := range lines {
			if l["msg"] != "request" && (l["groupKey"] != `{}:{alertname="HighErrorRate"}` || l["receiver"] != "wc" || l["alerts"] != 1.0) {
				t.Errorf("line %q: groupKey %v, receiver %v, alerts %v", l["msg"], l["groupKey"], l["receiver"], l["alerts"])
			}
		}
	})

	t.Run("inline", func(t *testing.T) {
		status := http.StatusOK
		_, inlineURL, log := inlineServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(status) }))
		e := &env{url: inlineURL}
		start := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
		e.do(t, http.MethodPost, "/api/v2/alerts", `[{"labels":{"alertname":"A"},"startsAt":"`+start+`"},{"labels":{"alertname":"B"}}]`)
		status = http.StatusInternalServerError
		e.do(t, http.MethodPost, "/api/v2/alerts", `[{"labels":{"alertname":"A"},"startsAt":"`+start+`","endsAt":"`+time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)+`"}]`)
		lines := log.lines(t)
		check(t, lines, "inline: alerts forwarded", "inline: alerts not accepted by every upstream",
			"inline: resolved alert keeps the annotations it had while firing")
		for _, l := range lines {
			if l["msg"] == "inline: resolved alert keeps the annotations it had while firing" && l["fingerprint"] == nil {
				t.Errorf("per-alert line without its fingerprint: %v", l)
			}
			if l["msg"] == "inline: alerts forwarded" && l["alerts"] != 2.0 {
				t.Errorf("alerts = %v, want 2", l["alerts"])
			}
		}
	})
}
