package helm_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// ruleGroups renders the chart's PrometheusRule and returns its
// spec.groups, the shape of a Prometheus rules file.
func ruleGroups(t *testing.T) []any {
	t.Helper()
	var rule *unstructured.Unstructured
	for _, o := range render(t, "--set", "prometheusRule.enabled=true") {
		if u, ok := o.(*unstructured.Unstructured); ok && u.GetKind() == "PrometheusRule" {
			rule = u
		}
	}
	if rule == nil {
		t.Fatal("prometheusRule.enabled renders no PrometheusRule")
	}
	groups, _, _ := unstructured.NestedSlice(rule.Object, "spec", "groups")
	return groups
}

func writeYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func promtool(t *testing.T) string {
	t.Helper()
	p := filepath.Join(filepath.Dir(tool(t, "WHATCHANGED_PROMETHEUS")), "promtool")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("promtool is installed beside WHATCHANGED_PROMETHEUS (Debian's prometheus package): %v", err)
	}
	return p
}

// The rules parse (the real promtool checks expressions and annotation
// templates) and fire on the conditions they describe, and only then.
// promtool's unit tests compare annotations exactly, so they run on the
// rules without their annotations, which `check rules` has validated.
func TestPrometheusRuleChecksAndFires(t *testing.T) {
	groups := ruleGroups(t)
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yaml")
	writeYAML(t, rules, map[string]any{"groups": groups})
	if out, err := run(t, promtool(t), "check", "rules", rules); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}

	bare := filepath.Join(dir, "bare.yaml")
	var stripped []any
	for _, g := range groups {
		g := g.(map[string]any)
		var rs []any
		for _, r := range g["rules"].([]any) {
			r := r.(map[string]any)
			delete(r, "annotations")
			rs = append(rs, r)
		}
		stripped = append(stripped, map[string]any{"name": g["name"], "rules": rs})
	}
	writeYAML(t, bare, map[string]any{"groups": stripped})

	const sel = `namespace="monitoring", job="whatchanged"`
	series := func(s string, values string) map[string]any {
		return map[string]any{"series": s, "values": values}
	}
	lbl := func(kv ...string) map[string]any {
		m := map[string]any{"namespace": namespace, "job": "whatchanged"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	alerts := func(ls ...map[string]any) []any {
		var out []any
		for _, l := range ls {
			out = append(out, map[string]any{"exp_labels": l})
		}
		return out
	}
	test := map[string]any{
		"rule_files":          []string{"bare.yaml"},
		"evaluation_interval": "1m",
		"tests": []any{map[string]any{
			"interval": "1m",
			"input_series": []any{
				series(`up{`+sel+`, pod="whatchanged-a"}`, "0x40"),
				series(`up{`+sel+`, pod="whatchanged-b"}`, "1x40"),
				// Deliveries on the default route fail; the slack route is fine.
				series(`whatchanged_notifications_total{`+sel+`, route="default", outcome="retry"}`, "0+2x40"),
				series(`whatchanged_notifications_total{`+sel+`, route="slack", outcome="delivered"}`, "0+2x40"),
				// argocd fails 10 of 11 queries; github times out 5 of 15;
				// kubernetes answers.
				series(`whatchanged_source_calls_total{`+sel+`, source="argocd", outcome="error"}`, "0+10x40"),
				series(`whatchanged_source_calls_total{`+sel+`, source="argocd", outcome="ok"}`, "0+1x40"),
				series(`whatchanged_source_calls_total{`+sel+`, source="github", outcome="timeout"}`, "0+5x40"),
				series(`whatchanged_source_calls_total{`+sel+`, source="github", outcome="ok"}`, "0+10x40"),
				series(`whatchanged_source_calls_total{`+sel+`, source="kubernetes", outcome="ok"}`, "0+10x40"),
				// Pod a refused the config reloaded at minute 10; b took it.
				series(`whatchanged_config_last_reload_successful{`+sel+`, pod="whatchanged-a"}`, "1x10 0x30"),
				series(`whatchanged_config_last_reload_successful{`+sel+`, pod="whatchanged-b"}`, "1x40"),
			},
			"alert_rule_test": []any{
				map[string]any{"eval_time": "40m", "alertname": "WhatchangedDown",
					"exp_alerts": alerts(lbl("severity", "critical", "pod", "whatchanged-a"))},
				map[string]any{"eval_time": "40m", "alertname": "WhatchangedNotificationsFailing",
					"exp_alerts": alerts(lbl("severity", "critical", "route", "default", "outcome", "retry"))},
				map[string]any{"eval_time": "40m", "alertname": "WhatchangedSourceFailing",
					"exp_alerts": alerts(lbl("severity", "warning", "source", "argocd"))},
				map[string]any{"eval_time": "40m", "alertname": "WhatchangedEnrichmentBudgetExceeded",
					"exp_alerts": alerts(lbl("severity", "warning", "source", "github"))},
				map[string]any{"eval_time": "40m", "alertname": "WhatchangedConfigReloadFailed",
					"exp_alerts": alerts(lbl("severity", "warning", "pod", "whatchanged-a"))},
				// Not yet: each waits out its `for`.
				map[string]any{"eval_time": "15m", "alertname": "WhatchangedConfigReloadFailed"},
				map[string]any{"eval_time": "3m", "alertname": "WhatchangedDown"},
				map[string]any{"eval_time": "8m", "alertname": "WhatchangedSourceFailing"},
			},
		}},
	}
	tests := filepath.Join(dir, "tests.yaml")
	writeYAML(t, tests, test)
	if out, err := run(t, promtool(t), "test", "rules", tests); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// Every alert of the rule is covered above.
	var names []string
	for _, g := range groups {
		for _, r := range g.(map[string]any)["rules"].([]any) {
			names = append(names, r.(map[string]any)["alert"].(string))
		}
	}
	b, _ := yaml.Marshal(test)
	for _, n := range names {
		if !strings.Contains(string(b), "alertname: "+n) {
			t.Errorf("alert %s has no promtool test", n)
		}
	}
}

var (
	metricRef = regexp.MustCompile(`\b(whatchanged_[a-z_]+)\{([^}]*)\}`)
	matcher   = regexp.MustCompile(`(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"`)
	byClause  = regexp.MustCompile(`by \(([^)]*)\)`)
	helpList  = regexp.MustCompile(`\(([a-z_, ]+)\)\.?$`)
	labelName = regexp.MustCompile(`(\w+)="`)
)

// The labels Prometheus adds to every scraped series.
var targetLabels = setOf("namespace", "job", "pod", "instance", "service", "container", "endpoint")

// The rules are written against what the real whatchanged exports: each
// metric they name, with each label they match or group by, is on its
// /metrics after a notification, and each outcome they match is one the
// metric's help text lists.
func TestPrometheusRuleUsesExportedMetrics(t *testing.T) {
	metrics := scrapeWhatchanged(t)
	for _, g := range ruleGroups(t) {
		for _, r := range g.(map[string]any)["rules"].([]any) {
			r := r.(map[string]any)
			expr := r["expr"].(string)
			var by []string
			for _, m := range byClause.FindAllStringSubmatch(expr, -1) {
				for _, l := range strings.Split(m[1], ",") {
					by = append(by, strings.TrimSpace(l))
				}
			}
			for _, ref := range metricRef.FindAllStringSubmatch(expr, -1) {
				name := ref[1]
				m, ok := metrics[name]
				if !ok {
					t.Errorf("%s: whatchanged exports no %s (it has %v)", r["alert"], name, slices.Sorted(maps.Keys(metrics)))
					continue
				}
				labels := slices.Clone(by)
				for _, mm := range matcher.FindAllStringSubmatch(ref[2], -1) {
					labels = append(labels, mm[1])
					if mm[1] == "outcome" {
						for _, v := range strings.Split(mm[3], "|") {
							if !slices.Contains(m.outcomes, v) {
								t.Errorf("%s: %s has no outcome %q (its help lists %v)", r["alert"], name, v, m.outcomes)
							}
						}
					}
				}
				for _, l := range labels {
					if !targetLabels[l] && !m.labels[l] {
						t.Errorf("%s: %s has no label %q (it has %v)", r["alert"], name, l, m.labels)
					}
				}
			}
		}
	}
}

type exported struct {
	labels   map[string]bool
	outcomes []string // from the help text: "… by outcome (a, b, c)."
}

// scrapeWhatchanged runs the real binary with a notifier that cannot be
// reached, posts one alert (the pushed-changes source answers, delivery
// fails) and reads /metrics.
func scrapeWhatchanged(t *testing.T) map[string]exported {
	t.Helper()
	bin := whatchanged(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	if err := os.WriteFile(filepath.Join(dir, "downstream-url"), []byte("http://"+freeAddr(t)+"/hook\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf("listen: %s\ndata_dir: %s\ndownstreams:\n  default:\n    url_file: %s\n    timeout: 1s\nsources:\n  changes:\n    enabled: true\n",
		addr, filepath.Join(dir, "data"), filepath.Join(dir, "downstream-url"))
	cfgFile := filepath.Join(dir, "whatchanged.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "serve", "--config", cfgFile)
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	base := "http://" + addr
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("whatchanged did not get ready: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	alert := `{"version":"4","status":"firing","receiver":"whatchanged","groupKey":"{}:{alertname=\"HighErrorRate\"}",
	  "alerts":[{"status":"firing","labels":{"alertname":"HighErrorRate","namespace":"shop","deployment":"api"},
	  "annotations":{},"startsAt":"` + time.Now().UTC().Format(time.RFC3339) + `","endsAt":"0001-01-01T00:00:00Z"}]}`
	resp, err := http.Post(base+"/webhook", "application/json", strings.NewReader(alert))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode < 500 {
		t.Fatalf("a notification for an unreachable notifier was answered %d, want a 5xx\n%s", resp.StatusCode, logs.String())
	}
	resp, err = http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return parseMetrics(t, resp.Body)
}

// parseMetrics reads Prometheus' text format: each whatchanged_* family
// with the label names of its series and the outcomes its help lists.
func parseMetrics(t *testing.T, r io.Reader) map[string]exported {
	t.Helper()
	out := map[string]exported{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# HELP "); ok {
			name, help, _ := strings.Cut(rest, " ")
			e := out[name]
			if e.labels == nil {
				e.labels = map[string]bool{}
			}
			if m := helpList.FindStringSubmatch(help); m != nil && strings.Contains(help, "outcome") {
				for _, o := range strings.Split(m[1], ",") {
					e.outcomes = append(e.outcomes, strings.TrimSpace(o))
				}
			}
			out[name] = e
			continue
		}
		if strings.HasPrefix(line, "#") || !strings.HasPrefix(line, "whatchanged_") {
			continue
		}
		name, labels, found := strings.Cut(line, "{")
		if !found {
			name, _, _ = strings.Cut(line, " ")
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok {
				if _, known := out[base]; known {
					name = base
				}
			}
		}
		e := out[name]
		if e.labels == nil {
			e.labels = map[string]bool{}
		}
		for _, m := range labelName.FindAllStringSubmatch(labels, -1) {
			e.labels[m[1]] = true
		}
		out[name] = e
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
