package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// startInlineListener runs whatchanged in inline mode with inline.listen:
// it returns the main listener's URL and the inline one's.
func startInlineListener(t *testing.T, upstream string) (mainURL, inlineURL string) {
	t.Helper()
	dir := t.TempDir()
	port, inlinePort := freePort(t), freePort(t)
	cfg := writeFile(t, dir, "wc.yaml", fmt.Sprintf(`listen: 127.0.0.1:%d
data_dir: %s/data
log: {level: debug}
auth:
  bearer_token: %s
inline:
  enabled: true
  listen: 127.0.0.1:%d
  upstreams:
    - {name: am, url: %q, timeout: 2s}
`, port, dir, token, inlinePort, upstream))
	exited := startProcess(t, "whatchanged", whatchangedBin, "serve", "--config", cfg)
	mainURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	waitReady(t, mainURL+"/readyz", exited)
	return mainURL, fmt.Sprintf("http://127.0.0.1:%d", inlinePort)
}

// The resolved notification Alertmanager sends still shows what whatchanged
// suspected while the alert fired, though the resolved post (as Prometheus
// sends it) has only the rule's annotations.
func TestInlineResolvedNotificationKeepsTheSuspect(t *testing.T) {
	c := newCapture(200)
	am := startAlertmanager(t, "am", c)
	wc, inline := startInlineListener(t, am)
	auth := []string{"Authorization", "Bearer " + token}

	started := time.Now().UTC().Add(-2 * time.Minute)
	if status, body := post(t, wc+"/api/v1/changes", fmt.Sprintf(`{"id":"ci-91","kind":"deploy",
	  "subject":{"namespace":"shop","kind":"Deployment","name":"cart"},"version":"cart:3.1.0","author":"carol",
	  "time":%q}`, started.Add(-5*time.Minute).Format(time.RFC3339)), auth...); status != 201 {
		t.Fatalf("push change: %d %s", status, body)
	}
	alert := func(endsAt string) string {
		return fmt.Sprintf(`[{"labels":{"alertname":"CartErrors","namespace":"shop","deployment":"cart"},
		  "annotations":{"description":"cart 5xx"},"startsAt":%q%s}]`, started.Format(time.RFC3339), endsAt)
	}
	if status, body := post(t, inline+"/api/v2/alerts", alert(""), auth...); status != 200 {
		t.Fatalf("firing post: %d %s", status, body)
	}
	firing := waitForAlert(t, am, "CartErrors").Annotations["whatchanged_suspect"]
	if !strings.Contains(firing, "cart:3.1.0") {
		t.Fatalf("firing alert not enriched: %q", firing)
	}
	ended := fmt.Sprintf(`,"endsAt":%q`, time.Now().UTC().Add(-time.Second).Format(time.RFC3339))
	if status, body := post(t, inline+"/api/v2/alerts", alert(ended), auth...); status != 200 {
		t.Fatalf("resolved post: %d %s", status, body)
	}

	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		reqs := append([]captured(nil), c.requests...)
		c.mu.Unlock()
		for _, r := range reqs {
			var n struct {
				Status string `json:"status"`
				Alerts []struct {
					Annotations map[string]string `json:"annotations"`
				} `json:"alerts"`
			}
			if json.Unmarshal(r.body, &n) != nil || n.Status != "resolved" {
				continue
			}
			if got := n.Alerts[0].Annotations["whatchanged_suspect"]; got != firing {
				t.Errorf("resolved notification's whatchanged_suspect = %q, want the firing one %q", got, firing)
			}
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatal("Alertmanager sent no resolved notification within 30s")
}

// With inline.listen, Alertmanager's own paths on the inline listener are
// Alertmanager's (its metrics, its reload); whatchanged's are on listen.
func TestInlineListenerServesAlertmanagersPaths(t *testing.T) {
	am := startAlertmanager(t, "am", newCapture(200))
	wc, inline := startInlineListener(t, am)
	auth := []string{"Authorization", "Bearer " + token}

	if status, body := request(t, "GET", inline+"/metrics", "", auth...); status != 200 || !strings.Contains(body, "alertmanager_build_info") {
		t.Errorf("inline GET /metrics = %d, not Alertmanager's metrics: %.200s", status, body)
	}
	if status, body := request(t, "POST", inline+"/-/reload", "", auth...); status != 200 {
		t.Errorf("inline POST /-/reload = %d %s, want Alertmanager's 200", status, body)
	}
	if status, body := request(t, "GET", inline+"/-/healthy", "", auth...); status != 200 || !strings.Contains(body, "OK") {
		t.Errorf("inline GET /-/healthy = %d %q", status, body)
	}
	if status, _ := request(t, "GET", inline+"/api/v2/status", ""); status != 401 {
		t.Errorf("inline listener without credentials: %d, want 401", status)
	}
	if status, body := request(t, "GET", wc+"/metrics", ""); status != 200 || !strings.Contains(body, "whatchanged_") || strings.Contains(body, "alertmanager_build_info") {
		t.Errorf("main GET /metrics = %d, not whatchanged's: %.200s", status, body)
	}
}
