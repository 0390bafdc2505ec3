package e2e

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// startAlertmanager runs one Alertmanager whose webhook receiver posts to
// capture; it returns the base URL.
func startAlertmanager(t *testing.T, name string, capture *capture) string {
	t.Helper()
	dir := t.TempDir()
	ds := httptest.NewServer(capture)
	t.Cleanup(ds.Close)
	port := freePort(t)
	cfg := writeFile(t, dir, "am.yml", fmt.Sprintf(`route:
  receiver: capture
  group_by: [alertname]
  group_wait: 1s
  group_interval: 5s
  repeat_interval: 1h
receivers:
  - name: capture
    webhook_configs:
      - url: %s/%s
`, ds.URL, name))
	exited := startProcess(t, name, alertmanagerBin, "--config.file="+cfg, "--storage.path="+dir+"/data",
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port), "--cluster.listen-address=")
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitReady(t, url+"/-/ready", exited)
	return url
}

// startInline runs whatchanged in inline mode in front of the upstreams.
func startInline(t *testing.T, upstreams ...string) string {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	var ups strings.Builder
	for i, u := range upstreams {
		fmt.Fprintf(&ups, "    - {name: am-%d, url: %q, timeout: 2s}\n", i, u)
	}
	cfg := writeFile(t, dir, "wc.yaml", fmt.Sprintf(`listen: 127.0.0.1:%d
data_dir: %s/data
log: {level: debug}
auth:
  bearer_token: %s
inline:
  enabled: true
  upstreams:
%s`, port, dir, token, ups.String()))
	exited := startProcess(t, "whatchanged", whatchangedBin, "serve", "--config", cfg)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitReady(t, url+"/readyz", exited)
	return url
}

type storedAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

func amAlerts(t *testing.T, amURL string) []storedAlert {
	t.Helper()
	var alerts []storedAlert
	if err := json.Unmarshal([]byte(get(t, amURL+"/api/v2/alerts")), &alerts); err != nil {
		t.Fatalf("GET %s/api/v2/alerts: %v", amURL, err)
	}
	return alerts
}

// waitForAlert polls an Alertmanager until an alert with that name is stored.
func waitForAlert(t *testing.T, amURL, alertname string) storedAlert {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, a := range amAlerts(t, amURL) {
			if a.Labels["alertname"] == alertname {
				return a
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s never stored alert %s", amURL, alertname)
	return storedAlert{}
}

func TestPrometheusThroughInlineProxyToTwoAlertmanagers(t *testing.T) {
	capture1, capture2 := newCapture(200), newCapture(200)
	am1 := startAlertmanager(t, "am1", capture1)
	am2 := startAlertmanager(t, "am2", capture2)
	wc := startInline(t, am1, am2)

	status, body := post(t, wc+"/api/v1/changes", fmt.Sprintf(`{"id":"ci-77","kind":"deploy",
	  "subject":{"namespace":"shop","kind":"Deployment","name":"checkout"},"version":"checkout:2.0.1","author":"bob",
	  "time":%q}`, time.Now().UTC().Add(-7*time.Minute).Format(time.RFC3339)), "Authorization", "Bearer "+token)
	if status != 201 {
		t.Fatalf("push change: %d %s", status, body)
	}

	// Real Prometheus with an always-firing rule, alerting pointed at whatchanged.
	dir := t.TempDir()
	promPort := freePort(t)
	writeFile(t, dir, "rules.yml", `groups:
  - name: e2e
    interval: 1s
    rules:
      - alert: CheckoutErrors
        expr: vector(1)
        labels: {namespace: shop, deployment: checkout, severity: page}
        annotations: {description: "checkout 5xx"}
`)
	promCfg := writeFile(t, dir, "prometheus.yml", fmt.Sprintf(`global:
  evaluation_interval: 1s
rule_files: [%s/rules.yml]
alerting:
  alertmanagers:
    - api_version: v2
      authorization: {credentials: %s}
      static_configs:
        - targets: ["%s"]
`, dir, token, strings.TrimPrefix(wc, "http://")))
	promExited := startProcess(t, "prometheus", prometheusBin, "--config.file="+promCfg, "--storage.tsdb.path="+dir+"/tsdb",
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", promPort), "--rules.alert.resend-delay=2s")
	waitReady(t, fmt.Sprintf("http://127.0.0.1:%d/-/ready", promPort), promExited)

	// Both Alertmanagers store the enriched alert.
	var suspects []string
	for _, am := range []string{am1, am2} {
		a := waitForAlert(t, am, "CheckoutErrors")
		s := a.Annotations["whatchanged_suspect"]
		if !strings.HasPrefix(s, "deploy of shop/checkout checkout:2.0.1 by bob, 7m before the alert started") {
			t.Errorf("%s: whatchanged_suspect = %q (annotations %v)", am, s, a.Annotations)
		}
		if a.Annotations["description"] != "checkout 5xx" {
			t.Errorf("%s: rule annotation lost: %v", am, a.Annotations)
		}
		suspects = append(suspects, s)
	}
	if len(suspects) == 2 && suspects[0] != suspects[1] {
		t.Errorf("the two replicas got different enrichment: %q vs %q", suspects[0], suspects[1])
	}

	// Each Alertmanager's own receiver sees it in the notification.
	for name, c := range map[string]*capture{"am1": capture1, "am2": capture2} {
		got := c.waitAccepted(t, 30*time.Second)
		n := decodeNotification(t, got.body)
		if !strings.Contains(n.Alerts[0].Annotations["whatchanged_suspect"], "checkout:2.0.1") {
			t.Errorf("%s notification lacks the enrichment: %v", name, n.Alerts[0].Annotations)
		}
	}

	// Re-sends (every 2s here) keep the stored annotations byte-identical.
	before := waitForAlert(t, am1, "CheckoutErrors").Annotations
	time.Sleep(5 * time.Second)
	after := waitForAlert(t, am1, "CheckoutErrors").Annotations
	for k, v := range before {
		if after[k] != v {
			t.Errorf("annotation %s churned across re-sends:\n%q\n%q", k, v, after[k])
		}
	}

	// amtool works through whatchanged (reverse-proxied, with our auth).
	cfg := writeFile(t, dir, "http.yml", "authorization:\n  credentials: "+token+"\n")
	out, err := exec.Command(amtoolBin, "--alertmanager.url="+wc, "--http.config.file="+cfg, "alert", "query", "-o", "extended").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "CheckoutErrors") || !strings.Contains(string(out), "whatchanged_suspect") {
		t.Errorf("amtool alert query through whatchanged: %v\n%s", err, out)
	}
	out, err = exec.Command(amtoolBin, "--alertmanager.url="+wc, "--http.config.file="+cfg, "silence", "add", "alertname=CheckoutErrors", "-c", "e2e", "-d", "5m").CombinedOutput()
	if err != nil {
		t.Errorf("amtool silence add through whatchanged: %v\n%s", err, out)
	}
	if status, _ := request(t, "GET", wc+"/api/v2/status", ""); status != 401 {
		t.Errorf("proxied API without credentials: %d, want 401", status)
	}
}

func TestInlineUpstreamFailures(t *testing.T) {
	dead := fmt.Sprintf("http://127.0.0.1:%d", freePort(t)) // nothing listens there
	live := startAlertmanager(t, "am-live", newCapture(200))
	auth := []string{"Authorization", "Bearer " + token}
	alerts := func(name string) string {
		return fmt.Sprintf(`[{"labels":{"alertname":%q,"namespace":"shop"},"startsAt":%q}]`, name, time.Now().UTC().Format(time.RFC3339))
	}

	t.Run("one upstream down", func(t *testing.T) {
		wc := startInline(t, dead, live)
		status, body := post(t, wc+"/api/v2/alerts", alerts("OneDown"), auth...)
		if status != 200 {
			t.Fatalf("answer %d %s, want 200", status, body)
		}
		a := waitForAlert(t, live, "OneDown")
		if !strings.Contains(a.Annotations["whatchanged_summary"], "No changes of namespace shop") {
			t.Errorf("not enriched: %v", a.Annotations)
		}
		// Reads go to the healthy upstream even though the dead one is first.
		if status, body := request(t, "GET", wc+"/api/v2/status", "", auth...); status != 200 || !strings.Contains(body, "versionInfo") {
			t.Errorf("proxied status: %d %s", status, body)
		}
	})
	t.Run("invalid alerts get the upstream's 400", func(t *testing.T) {
		wc := startInline(t, live)
		status, body := post(t, wc+"/api/v2/alerts", `[{"labels":{},"startsAt":"2026-01-01T00:00:00Z"}]`, auth...)
		if status != 400 || body == "" {
			t.Fatalf("answer %d %s, want Alertmanager's 400", status, body)
		}
	})
	t.Run("all upstreams down", func(t *testing.T) {
		wc := startInline(t, dead)
		status, body := post(t, wc+"/api/v2/alerts", alerts("AllDown"), auth...)
		if status != 503 || !strings.Contains(body, "am-0: dial: connect: connection refused") {
			t.Fatalf("answer %d %s, want 503 naming the upstream", status, body)
		}
	})
}
