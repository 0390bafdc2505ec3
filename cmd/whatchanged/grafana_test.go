package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/whatchanged/whatchanged/enrich"
)

const grafanaToken = "grafana-token-MARKER"

func TestGrafanaConfig(t *testing.T) {
	dir := t.TempDir()
	tok := writeTestFile(t, dir, "tok", grafanaToken+"\n")
	cfg, err := parseConfig("c.yaml", []byte(`data_dir: `+dir+`
sources:
  grafana:
    enabled: true
    url: https://grafana.example.com/
    org_id: 2
    http_config: {authorization: {credentials_file: `+tok+`}}
    tags: [deploy]
    rules:
      - tags: [deploy, "service:payments"]
        subject: {app: payments, namespace: payments}
      - tag_pattern: "^service:(.+)$"
        subject: {app: "$1"}
        kind: deploy
`))
	if err != nil {
		t.Fatal(err)
	}
	g := cfg.Sources.Grafana
	if g.URL != "https://grafana.example.com" || g.UIURL != g.URL || g.Refresh != time.Minute || g.Lookback != 7*24*time.Hour || g.Limit != 500 ||
		g.OrgID != 2 || len(g.Rules) != 2 || g.Rules[1].Subject.App != "$1" || g.Rules[1].Kind != "deploy" {
		t.Errorf("grafana config = %+v", g.Config)
	}
	if strings.Contains(cfg.marshalRedacted(), grafanaToken) {
		t.Error("the token shows in the printed config")
	}
	report := strings.Join(cfg.secretsReport(), "\n")
	if !strings.Contains(report, "sources.grafana.http_config.authorization.credentials_file: "+tok) {
		t.Errorf("secrets report lacks the token file:\n%s", report)
	}
}

func TestGrafanaConfigErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{name: "bad tag_pattern, no token", yaml: `sources:
  grafana:
    enabled: true
    url: https://grafana.example.com
    rules:
      - tags: [deploy]
        subject: {app: x}
      - tag_pattern: "^service:(.+$"
        subject: {app: "$1"}
`, want: []string{
			"c.yaml:2: sources.grafana.http_config.authorization: required (a service-account token",
			"c.yaml:8: sources.grafana.rules[1].tag_pattern: error parsing regexp: missing closing )",
		}},
		{name: "unknown key in a rule", yaml: `sources:
  grafana:
    enabled: true
    url: https://grafana.example.com
    http_config: {authorization: {credentials: ` + grafanaToken + `}}
    rules:
      - tags: [deploy]
        subject: {app: x, workload: y}
        kind: rollout
`, want: []string{
			"c.yaml:8: sources.grafana.rules[0].subject.workload: unknown key (known: app, kind, name, namespace, repo)",
			`c.yaml:9: sources.grafana.rules[0].kind: "rollout" is not one of deploy, config, flag, migration, other`,
		}},
		{name: "missing url and rules, bad durations", yaml: `sources:
  grafana:
    enabled: true
    http_config: {authorization: {credentials: ` + grafanaToken + `}}
    refresh: 1s
    limit: 0
`, want: []string{
			"sources.grafana.url: required",
			"sources.grafana.rules: at least one rule is required",
			"c.yaml:5: sources.grafana.refresh: must be at least 10s",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig("c.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%s\nlacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "MARKER") {
				t.Errorf("error quotes the token: %v", err)
			}
		})
	}
}

// Wired: the token from http_config reaches Grafana, an alert of the
// annotated app gets the annotation, the metrics count the reads.
func TestGrafanaSourceWired(t *testing.T) {
	deployed := time.Now().Add(-10 * time.Minute).UnixMilli()
	grafana := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Authorization") != "Bearer "+grafanaToken {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"message":"Unauthorized"}`)
			return
		}
		if r.URL.Path != "/api/annotations" || r.URL.Query().Get("tags") != "deploy" {
			t.Errorf("unexpected request %s", r.URL)
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, `[{"id":77,"dashboardId":3,"dashboardUID":"pay","panelId":1,"userId":4,"login":"sa-1-ci","time":%d,"timeEnd":%d,"created":%d,"updated":%d,"text":"Deployed payments 1.8.4","tags":["deploy","service:payments","version:1.8.4"],"data":{}}]`,
			deployed, deployed, deployed, deployed)
	}))
	defer grafana.Close()
	dir := t.TempDir()
	tok := writeTestFile(t, dir, "tok", grafanaToken+"\n")
	cfg, err := parseConfig("c.yaml", []byte(`data_dir: `+dir+`
sources:
  grafana:
    enabled: true
    url: `+grafana.URL+`
    http_config: {authorization: {credentials_file: `+tok+`}}
    tags: [deploy]
    rules:
      - tag_pattern: "^service:(.+)$"
        subject: {app: "$1"}
`))
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	a, err := build(cfg, slog.New(slog.NewTextHandler(&logs, nil)), true)
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := a.start(ctx); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if ok, _ := a.ready(); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not ready")
		}
	}
	report := a.enricher.Enrich(ctx, []*enrich.Alert{{Labels: map[string]string{"alertname": "PaymentsErrors", "app": "payments"}, StartsAt: time.Now()}}, nil)
	ar := report.Alerts[0]
	if len(ar.Ranking) != 1 || ar.Ranking[0].ID != "grafana/77" || ar.Ranking[0].Version != "1.8.4" || ar.Ranking[0].Source != "grafana" {
		t.Fatalf("ranking %+v (sources %+v)", ar.Ranking, ar.Sources)
	}
	families, err := a.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	requests := -1.0
	for _, mf := range families {
		if mf.GetName() == "whatchanged_grafana_requests_total" {
			requests = mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	if requests < 1 {
		t.Errorf("whatchanged_grafana_requests_total = %v, want at least 1", requests)
	}
	if strings.Contains(logs.String(), "MARKER") {
		t.Errorf("the token shows in the log:\n%s", logs.String())
	}
}
