package e2e

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const token = "e2e-inbound-token"

// stack is Alertmanager → whatchanged → capture, all real processes but the
// capture server.
type stack struct {
	wcURL, amURL string
	capture      *capture
}

func startStack(t *testing.T, capture *capture) stack {
	t.Helper()
	dir := t.TempDir()
	ds := httptest.NewServer(capture)
	t.Cleanup(ds.Close)

	wcPort, amPort := freePort(t), freePort(t)
	tokenFile := writeFile(t, dir, "token", token+"\n")
	wcCfg := writeFile(t, dir, "whatchanged.yaml", fmt.Sprintf(`listen: 127.0.0.1:%d
data_dir: %s/data
log: {level: debug}
auth:
  bearer_token_file: %s
downstreams:
  default:
    url: %s/notify
    timeout: 2s
`, wcPort, dir, tokenFile, ds.URL))
	wcExited := startProcess(t, "whatchanged", whatchangedBin, "serve", "--config", wcCfg)

	amURL := runAlertmanager(t, dir, amPort, fmt.Sprintf(`route:
  receiver: whatchanged
  group_by: [alertname]
  group_wait: 1s
  group_interval: 5s
  repeat_interval: 1h
receivers:
  - name: whatchanged
    webhook_configs:
      - url: http://127.0.0.1:%d/webhook
        send_resolved: true
        http_config:
          authorization:
            credentials_file: %s
`, wcPort, tokenFile))

	s := stack{wcURL: fmt.Sprintf("http://127.0.0.1:%d", wcPort), amURL: amURL, capture: capture}
	waitReady(t, s.wcURL+"/readyz", wcExited)
	return s
}

func (s stack) pushChange(t *testing.T, at time.Time) {
	t.Helper()
	status, body := post(t, s.wcURL+"/api/v1/changes", fmt.Sprintf(`{"id":"ci-4242","kind":"deploy",
	  "subject":{"namespace":"shop","kind":"Deployment","name":"api","app":"shop-api","repo":"github.com/acme/api"},
	  "version":"api:1.8.4","previousVersion":"api:1.8.3","author":"alice","message":"fix retry budget",
	  "compareUrl":"https://github.com/acme/api/compare/abc123...def456","time":%q}`, at.Format(time.RFC3339)),
		"Authorization", "Bearer "+token)
	if status != 201 {
		t.Fatalf("push change: %d %s", status, body)
	}
}

func (s stack) fire(t *testing.T, alertname string, startsAt time.Time) {
	t.Helper()
	status, body := post(t, s.amURL+"/api/v2/alerts", fmt.Sprintf(`[{"labels":{"alertname":%q,"namespace":"shop","deployment":"api","severity":"page"},
	  "annotations":{"description":"5xx above 5%%"},"startsAt":%q}]`, alertname, startsAt.Format(time.RFC3339)))
	if status != 200 {
		t.Fatalf("post alert to Alertmanager: %d %s", status, body)
	}
}

type notification struct {
	Version  string `json:"version"`
	GroupKey string `json:"groupKey"`
	Receiver string `json:"receiver"`
	Alerts   []struct {
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"alerts"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	TruncatedAlerts   *int              `json:"truncatedAlerts"`
}

func decodeNotification(t *testing.T, body []byte) notification {
	t.Helper()
	var n notification
	if err := json.Unmarshal(body, &n); err != nil {
		t.Fatalf("captured body is not JSON: %v\n%s", err, body)
	}
	if len(n.Alerts) == 0 {
		t.Fatalf("captured notification has no alerts: %s", body)
	}
	return n
}

func TestAlertmanagerNotificationArrivesEnriched(t *testing.T) {
	s := startStack(t, newCapture(200))
	startsAt := time.Now().UTC().Truncate(time.Second)
	s.pushChange(t, startsAt.Add(-12*time.Minute))
	s.fire(t, "HighErrorRate", startsAt)

	got := s.capture.waitAccepted(t, 30*time.Second)
	n := decodeNotification(t, got.body)
	ann := n.Alerts[0].Annotations
	if want := `deploy of shop/api api:1.8.4 (was api:1.8.3) by alice: "fix retry budget", 12m before the alert started [changes]`; ann["whatchanged_suspect"] != want {
		t.Errorf("whatchanged_suspect = %q\nwant %q", ann["whatchanged_suspect"], want)
	}
	if !strings.Contains(ann["whatchanged_links"], "https://github.com/acme/api/compare/abc123...def456") {
		t.Errorf("whatchanged_links = %q", ann["whatchanged_links"])
	}
	var changes []map[string]any
	if err := json.Unmarshal([]byte(ann["whatchanged_changes"]), &changes); err != nil || len(changes) != 1 || changes[0]["relation"] != "workload" {
		t.Errorf("whatchanged_changes = %s (%v)", ann["whatchanged_changes"], err)
	}
	if ann["description"] != "5xx above 5%" {
		t.Errorf("Alertmanager's own annotation changed: %q", ann["description"])
	}
	if n.Version != "4" || n.Receiver != "whatchanged" || n.TruncatedAlerts == nil || !strings.Contains(n.GroupKey, "HighErrorRate") {
		t.Errorf("Alertmanager's fields not passed through: %+v", n)
	}
	if n.CommonAnnotations["whatchanged_suspect"] != ann["whatchanged_suspect"] {
		t.Errorf("commonAnnotations not recomputed: %v", n.CommonAnnotations)
	}
	if ua := got.header.Get("User-Agent"); ua != "whatchanged" {
		t.Errorf("downstream saw User-Agent %q", ua)
	}

	// The resolve arrives enriched the same way (times relative to startsAt).
	status, body := post(t, s.amURL+"/api/v2/alerts", fmt.Sprintf(`[{"labels":{"alertname":"HighErrorRate","namespace":"shop","deployment":"api","severity":"page"},
	  "annotations":{"description":"5xx above 5%%"},"startsAt":%q,"endsAt":%q}]`,
		startsAt.Format(time.RFC3339), time.Now().UTC().Add(-time.Second).Format(time.RFC3339)))
	if status != 200 {
		t.Fatalf("resolve: %d %s", status, body)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		s.capture.mu.Lock()
		var resolved []byte
		for _, r := range s.capture.requests {
			if strings.Contains(string(r.body), `"status":"resolved"`) {
				resolved = r.body
			}
		}
		s.capture.mu.Unlock()
		if resolved != nil {
			if rn := decodeNotification(t, resolved); rn.Alerts[0].Annotations["whatchanged_suspect"] != ann["whatchanged_suspect"] {
				t.Errorf("resolved notification's suspect %q differs from the firing one", rn.Alerts[0].Annotations["whatchanged_suspect"])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("resolved notification did not arrive")
		}
		select {
		case <-s.capture.arrived:
		case <-time.After(time.Second):
		}
	}

	waitMetric(t, s.wcURL, `whatchanged_notifications_total{outcome="delivered",route="default"}`, "2")
}

func TestAlertmanagerRetriesThroughOur503(t *testing.T) {
	s := startStack(t, newCapture(500, 500, 200))
	startsAt := time.Now().UTC().Truncate(time.Second)
	s.pushChange(t, startsAt.Add(-3*time.Minute))
	s.fire(t, "LatencyHigh", startsAt)

	got := s.capture.waitAccepted(t, 40*time.Second)
	s.capture.mu.Lock()
	attempts := len(s.capture.requests)
	s.capture.mu.Unlock()
	if attempts != 3 {
		t.Errorf("capture saw %d attempts, want 3 (500, 500, 200)", attempts)
	}
	n := decodeNotification(t, got.body)
	if !strings.Contains(n.Alerts[0].Annotations["whatchanged_suspect"], "3m before the alert started") {
		t.Errorf("retried notification not enriched: %v", n.Alerts[0].Annotations)
	}
	waitMetric(t, s.wcURL, `whatchanged_notifications_total{outcome="retry",route="default"}`, "2")
}

func TestAlertmanagerWithoutCredentialsIsRefused(t *testing.T) {
	s := startStack(t, newCapture(200))
	status, body := post(t, s.wcURL+"/webhook", `{"version":"4","alerts":[]}`)
	if status != 401 {
		t.Fatalf("unauthenticated webhook: %d %s", status, body)
	}
}
