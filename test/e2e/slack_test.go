package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// slackCall is one Web API call the fake Slack received.
type slackCall struct{ method, threadTS, ts, blocks string }

// A real Alertmanager's firing → repeat → resolved cycle, with a restart of
// whatchanged in the middle, makes exactly one Slack thread: the parent
// shows the suspect and ends edited as resolved, repeats are replies.
func TestAlertmanagerToSlackThread(t *testing.T) {
	var mu sync.Mutex
	var calls []slackCall
	next := 0
	slack := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		mu.Lock()
		defer mu.Unlock()
		method := strings.TrimPrefix(r.URL.Path, "/api/")
		calls = append(calls, slackCall{method, r.FormValue("thread_ts"), r.FormValue("ts"), r.FormValue("blocks")})
		w.Header().Set("Content-Type", "application/json")
		if method == "chat.update" {
			fmt.Fprintf(w, `{"ok":true,"channel":"C1","ts":%q}`, r.FormValue("ts"))
			return
		}
		next++
		fmt.Fprintf(w, `{"ok":true,"channel":"C1","ts":"1763700000.%06d"}`, next)
	}))
	defer slack.Close()
	snapshot := func() []slackCall {
		mu.Lock()
		defer mu.Unlock()
		return append([]slackCall(nil), calls...)
	}
	waitCalls := func(what string, ok func([]slackCall) bool) []slackCall {
		t.Helper()
		deadline := time.Now().Add(40 * time.Second)
		for time.Now().Before(deadline) {
			if c := snapshot(); ok(c) {
				return c
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("%s: not within 40s; calls %+v", what, snapshot())
		return nil
	}

	dir := t.TempDir()
	wcPort, amPort := freePort(t), freePort(t)
	tokenFile := writeFile(t, dir, "slack-token", "xoxb-e2e\n")
	cfg := writeFile(t, dir, "wc.yaml", fmt.Sprintf(`listen: 127.0.0.1:%d
data_dir: %s/data
downstreams:
  default:
    slack:
      token_file: %s
      api_url: %s/api/
      channel: "#oncall"
      severity: {oncall: "<!subteam^S0NCALL>"}
`, wcPort, dir, tokenFile, slack.URL))
	stop := startProcessStoppable(t, "whatchanged", whatchangedBin, "serve", "--config", cfg)
	wcURL := fmt.Sprintf("http://127.0.0.1:%d", wcPort)
	waitReady(t, wcURL+"/readyz", nil)

	amURL := runAlertmanager(t, dir, amPort, fmt.Sprintf(`route:
  receiver: whatchanged
  group_by: [alertname]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 3s
receivers:
  - name: whatchanged
    webhook_configs:
      - url: http://127.0.0.1:%d/webhook
        send_resolved: true
`, wcPort))

	startsAt := time.Now().UTC().Truncate(time.Second)
	if status, body := post(t, wcURL+"/api/v1/changes", fmt.Sprintf(`{"id":"ci-9","kind":"deploy","subject":{"namespace":"shop","kind":"Deployment","name":"api"},"version":"api:2.0","author":"erin","time":%q}`,
		startsAt.Add(-4*time.Minute).Format(time.RFC3339))); status != 201 {
		t.Fatalf("push change: %d %s", status, body)
	}
	alert := func(endsAt string) string {
		return fmt.Sprintf(`[{"labels":{"alertname":"PaymentsDown","namespace":"shop","deployment":"api","severity":"critical"},"startsAt":%q%s}]`, startsAt.Format(time.RFC3339), endsAt)
	}
	if status, body := post(t, amURL+"/api/v2/alerts", alert("")); status != 200 {
		t.Fatalf("post alert: %d %s", status, body)
	}
	c := waitCalls("the parent message", func(c []slackCall) bool { return len(c) >= 1 })
	parent := "1763700000.000001"
	if c[0].method != "chat.postMessage" || c[0].threadTS != "" || !strings.Contains(c[0].blocks, "Changed just before:* deploy of shop/api api:2.0 by erin, 4m before the alert started") ||
		!strings.Contains(c[0].blocks, "S0NCALL") || !strings.Contains(c[0].blocks, `\u003c!here\u003e`) {
		t.Fatalf("parent = %+v", c[0])
	}
	waitCalls("a repeat in the thread", func(c []slackCall) bool { return len(c) >= 2 })

	// whatchanged restarts; the thread must survive in its file store.
	stop()
	startProcess(t, "whatchanged-2", whatchangedBin, "serve", "--config", cfg)
	waitReady(t, wcURL+"/readyz", nil)

	if status, body := post(t, amURL+"/api/v2/alerts", alert(fmt.Sprintf(`,"endsAt":%q`, time.Now().UTC().Add(-time.Second).Format(time.RFC3339)))); status != 200 {
		t.Fatalf("resolve: %d %s", status, body)
	}
	waitCalls("the parent edited as resolved", func(c []slackCall) bool {
		for _, x := range c {
			if x.method == "chat.update" {
				return true
			}
		}
		return false
	})
	time.Sleep(500 * time.Millisecond) // the resolve reply follows the update
	c = snapshot()
	parents, updates := 0, 0
	for i, x := range c {
		switch {
		case x.method == "chat.update":
			updates++
			if x.ts != parent || !strings.Contains(x.blocks, "RESOLVED") {
				t.Errorf("update %d = %+v", i, x)
			}
		case x.threadTS == "":
			parents++
		case x.threadTS != parent:
			t.Errorf("reply %d in another thread: %+v", i, x)
		case strings.Contains(x.blocks, "S0NCALL"):
			t.Errorf("reply %d mentions on-call again: %+v", i, x)
		}
	}
	if parents != 1 || updates != 1 {
		t.Errorf("%d parents and %d updates, want exactly one of each: %+v", parents, updates, c)
	}
	if last := c[len(c)-1]; last.threadTS != parent || !strings.Contains(last.blocks, "Resolved after") {
		t.Errorf("last call should be the resolve reply: %+v", last)
	}
}
