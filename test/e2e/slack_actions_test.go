package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// fakeSlackApp is Slack's Web API as the actions use it: chat.postMessage,
// chat.update, chat.postEphemeral, usergroups.users.list.
type fakeSlackApp struct {
	srv   *httptest.Server
	mu    sync.Mutex
	calls []slackCall
	next  int
}

func newFakeSlackApp(t *testing.T) *fakeSlackApp {
	f := &fakeSlackApp{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		method := strings.TrimPrefix(r.URL.Path, "/api/")
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Authorization") != "Bearer xoxb-e2e" && r.FormValue("token") != "xoxb-e2e" {
			fmt.Fprint(w, `{"ok":false,"error":"invalid_auth"}`)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.calls = append(f.calls, slackCall{method, r.FormValue("thread_ts"), r.FormValue("ts"), r.FormValue("blocks") + r.FormValue("user")})
		switch method {
		case "chat.postMessage":
			f.next++
			fmt.Fprintf(w, `{"ok":true,"channel":"C0ONCALL","ts":"1763700000.%06d"}`, f.next)
		case "chat.update":
			fmt.Fprintf(w, `{"ok":true,"channel":"C0ONCALL","ts":%q}`, r.FormValue("ts"))
		case "chat.postEphemeral":
			fmt.Fprint(w, `{"ok":true,"message_ts":"1763700000.999999"}`)
		case "usergroups.users.list":
			fmt.Fprint(w, `{"ok":true,"users":["U0BOB"]}`)
		default:
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"ok":false,"error":"unknown_method"}`)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeSlackApp) snapshot() []slackCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]slackCall(nil), f.calls...)
}

func (f *fakeSlackApp) wait(t *testing.T, what string, ok func([]slackCall) bool) []slackCall {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if c := f.snapshot(); ok(c) {
			return c
		}
	}
	t.Fatalf("%s: not within 30s; %d calls", what, len(f.snapshot()))
	return nil
}

func count(calls []slackCall, ok func(slackCall) bool) int {
	n := 0
	for _, c := range calls {
		if ok(c) {
			n++
		}
	}
	return n
}

// button is the value of a button of a posted message's actions row.
func button(t *testing.T, blocks, actionID string) string {
	t.Helper()
	var bs []struct {
		BlockID  string `json:"block_id"`
		Elements []struct {
			ActionID string `json:"action_id"`
			Value    string `json:"value"`
		} `json:"elements"`
	}
	if err := json.Unmarshal([]byte(blocks), &bs); err != nil {
		t.Fatalf("blocks: %v", err)
	}
	for _, b := range bs {
		for _, e := range b.Elements {
			if b.BlockID == "whatchanged_actions" && e.ActionID == actionID {
				return e.Value
			}
		}
	}
	t.Fatalf("no %s button in %s", actionID, blocks)
	return ""
}

// clickBody is what Slack posts to the request URL when a button of the
// parent message is clicked.
func clickBody(t *testing.T, user, actionID, value, ts, blocks string) string {
	t.Helper()
	p, err := json.Marshal(map[string]any{
		"type": "block_actions", "api_app_id": "A0E2E", "team": map[string]string{"id": "T0E2E"},
		"user":      map[string]string{"id": user, "username": strings.ToLower(user[2:]), "name": strings.ToLower(user[2:])},
		"container": map[string]any{"type": "message", "message_ts": ts, "channel_id": "C0ONCALL"},
		"channel":   map[string]string{"id": "C0ONCALL"},
		"message":   map[string]any{"type": "message", "ts": ts, "text": "[firing] CheckoutSlow", "blocks": json.RawMessage(blocks)},
		"actions": []map[string]any{{"action_id": actionID, "block_id": "whatchanged_actions", "type": "button", "value": value,
			"action_ts": strconv.FormatInt(time.Now().Unix(), 10)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return url.Values{"payload": {string(p)}}.Encode()
}

// signed is Slack's signature headers of body (v0, HMAC-SHA256).
func signed(secret string, at time.Time, body string) []string {
	stamp := strconv.FormatInt(at.Unix(), 10)
	m := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(m, "v0:%s:%s", stamp, body)
	return []string{"Content-Type", "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp", stamp, "X-Slack-Signature", "v0=" + hex.EncodeToString(m.Sum(nil))}
}

type amSilence struct {
	ID       string `json:"id"`
	Matchers []struct {
		Name    string `json:"name"`
		Value   string `json:"value"`
		IsRegex bool   `json:"isRegex"`
		IsEqual *bool  `json:"isEqual"`
	} `json:"matchers"`
	CreatedBy string `json:"createdBy"`
	Comment   string `json:"comment"`
	EndsAt    time.Time
	Status    struct {
		State string `json:"state"`
	} `json:"status"`
}

func silences(t *testing.T, amURL string) []amSilence {
	t.Helper()
	var out []amSilence
	if err := json.Unmarshal([]byte(get(t, amURL+"/api/v2/silences")), &out); err != nil {
		t.Fatalf("silences: %v", err)
	}
	return out
}

// A click on Silence in Slack makes a silence in a real Alertmanager for
// the group's labels; Alertmanager then sends nothing more for the group
// until Unsilence expires it. Unsigned, replayed and not-allowed clicks
// change nothing.
func TestSlackActionsSilenceInRealAlertmanager(t *testing.T) {
	const secret = "e2e-signing-secret-MARKER"
	slack := newFakeSlackApp(t)
	dir := t.TempDir()
	wcPort, amPort := freePort(t), freePort(t)
	amURL := fmt.Sprintf("http://127.0.0.1:%d", amPort)
	cfg := writeFile(t, dir, "wc.yaml", fmt.Sprintf(`listen: 127.0.0.1:%d
data_dir: %s/data
downstreams:
  default:
    slack:
      token: xoxb-e2e
      api_url: %s/api/
      channel: "#oncall"
      actions:
        mode: request_url
        signing_secret_file: %s
        alertmanager_url: %s
        allowed_users: [U0ALICE]
        allowed_groups: [S0ONCALL]
`, wcPort, dir, slack.srv.URL, writeFile(t, dir, "signing-secret", secret+"\n"), amURL))
	startProcess(t, "whatchanged", whatchangedBin, "serve", "--config", cfg)
	wcURL := fmt.Sprintf("http://127.0.0.1:%d", wcPort)
	waitReady(t, wcURL+"/readyz", nil)
	runAlertmanager(t, dir, amPort, fmt.Sprintf(`route:
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

	fire := func(instance string) {
		t.Helper()
		body := fmt.Sprintf(`[{"labels":{"alertname":"CheckoutSlow","namespace":"shop","instance":%q},"annotations":{"runbook_url":"https://runbooks.example.com/checkout-slow"}}]`, instance)
		if status, resp := post(t, amURL+"/api/v2/alerts", body); status != 200 {
			t.Fatalf("post alert: %d %s", status, resp)
		}
	}
	fire("a")
	c := slack.wait(t, "the parent", func(c []slackCall) bool { return len(c) >= 1 })
	parentTS, parentBlocks := "1763700000.000001", c[0].blocks
	if c[0].method != "chat.postMessage" || c[0].threadTS != "" {
		t.Fatalf("first call %+v", c[0])
	}
	silence1h := button(t, parentBlocks, "silence_1h")
	click := func(user, action, value, blocks string, at time.Time, key string) (int, string) {
		body := clickBody(t, user, action, value, parentTS, blocks)
		return post(t, wcURL+"/slack/actions", body, signed(key, at, body)...)
	}

	// Refused: not signed by Slack, a replay, a user outside the allow-list.
	if status, _ := click("U0ALICE", "silence_1h", silence1h, parentBlocks, time.Now(), "not-the-secret"); status != http.StatusUnauthorized {
		t.Errorf("bad signature: %d, want 401", status)
	}
	if status, _ := click("U0ALICE", "silence_1h", silence1h, parentBlocks, time.Now().Add(-6*time.Minute), secret); status != http.StatusUnauthorized {
		t.Errorf("replayed 6 minutes later: %d, want 401", status)
	}
	if status, body := click("U0MALLORY", "silence_1h", silence1h, parentBlocks, time.Now(), secret); status != http.StatusOK {
		t.Errorf("signed click of another user: %d %s, want 200 (then refused)", status, body)
	}
	slack.wait(t, "the refusal told to the user", func(c []slackCall) bool {
		return count(c, func(x slackCall) bool {
			return x.method == "chat.postEphemeral" && strings.Contains(x.blocks, "U0MALLORY")
		}) == 1
	})
	waitMetric(t, wcURL, `whatchanged_slack_actions_total{action="silence_1h",outcome="refused"}`, "1")
	if s := silences(t, amURL); len(s) != 0 {
		t.Fatalf("refused clicks made silences: %+v", s)
	}

	// Alice silences it for an hour.
	if status, body := click("U0ALICE", "silence_1h", silence1h, parentBlocks, time.Now(), secret); status != http.StatusOK {
		t.Fatalf("click: %d %s", status, body)
	}
	c = slack.wait(t, "the parent showing the silence", func(c []slackCall) bool {
		return count(c, func(x slackCall) bool { return x.method == "chat.update" && strings.Contains(x.blocks, "Silenced by") }) == 1
	})
	var edited string
	for _, x := range c {
		if x.method == "chat.update" {
			edited = x.blocks
		}
	}
	s := silences(t, amURL)
	if len(s) != 1 || s[0].Status.State != "active" || len(s[0].Matchers) != 1 || s[0].Matchers[0].Name != "alertname" || s[0].Matchers[0].Value != "CheckoutSlow" ||
		s[0].Matchers[0].IsRegex || (s[0].Matchers[0].IsEqual != nil && !*s[0].Matchers[0].IsEqual) ||
		!strings.Contains(s[0].CreatedBy, "alice") || !strings.Contains(s[0].Comment, "silenced from Slack by alice") ||
		s[0].EndsAt.Sub(time.Now()) < 55*time.Minute || s[0].EndsAt.Sub(time.Now()) > 61*time.Minute {
		t.Fatalf("silence = %+v", s)
	}
	waitMetric(t, wcURL, `whatchanged_slack_actions_total{action="silence_1h",outcome="done"}`, "1")

	// Suppressed: neither the repeats nor a new alert of the group reach Slack.
	time.Sleep(1500 * time.Millisecond) // a notification already on its way
	before := count(slack.snapshot(), func(x slackCall) bool { return x.method == "chat.postMessage" })
	fire("b")
	time.Sleep(8 * time.Second) // group_interval 2s, repeat_interval 3s: two or more without the silence
	if after := count(slack.snapshot(), func(x slackCall) bool { return x.method == "chat.postMessage" }); after != before {
		t.Fatalf("%d messages while silenced", after-before)
	}

	// Unsilence: the silence expires and the notifications resume in the thread.
	unsilence := button(t, edited, "unsilence")
	if status, body := click("U0ALICE", "unsilence", unsilence, edited, time.Now(), secret); status != http.StatusOK {
		t.Fatalf("unsilence: %d %s", status, body)
	}
	slack.wait(t, "the parent showing the unsilence", func(c []slackCall) bool {
		return count(c, func(x slackCall) bool {
			return x.method == "chat.update" && strings.Contains(x.blocks, "Unsilenced by")
		}) == 1
	})
	if s := silences(t, amURL); len(s) != 1 || s[0].Status.State != "expired" {
		t.Fatalf("after unsilence: %+v", s)
	}
	slack.wait(t, "notifications resumed in the thread", func(c []slackCall) bool {
		return count(c, func(x slackCall) bool { return x.method == "chat.postMessage" && x.threadTS == parentTS }) > 0
	})
	waitMetric(t, wcURL, `whatchanged_slack_actions_total{action="unsilence",outcome="done"}`, "1")
}

// Over Socket Mode (the default): whatchanged opens the WebSocket with the
// app-level token, acknowledges the envelope of a click on Silence 4h, and
// the silence is in the real Alertmanager.
func TestSlackActionsSocketModeSilence(t *testing.T) {
	slack := newFakeSlackApp(t)
	envelopes, acks := make(chan []byte, 4), make(chan string, 4)
	mux := http.NewServeMux()
	mux.Handle("/api/", slack.srv.Config.Handler)
	var wsURL string
	mux.HandleFunc("/api/apps.connections.open", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Authorization") != "Bearer xapp-1-e2e" {
			fmt.Fprint(w, `{"ok":false,"error":"invalid_auth"}`)
			return
		}
		fmt.Fprintf(w, `{"ok":true,"url":%q}`, wsURL)
	})
	mux.HandleFunc("/link", func(w http.ResponseWriter, r *http.Request) {
		conn, err := (&websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		if conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"hello","num_connections":1,"connection_info":{"app_id":"A0E2E"}}`)) != nil {
			return
		}
		go func() {
			for {
				_, msg, err := conn.ReadMessage()
				if err != nil {
					return
				}
				var ack struct {
					EnvelopeID string `json:"envelope_id"`
				}
				if json.Unmarshal(msg, &ack) == nil {
					acks <- ack.EnvelopeID
				}
			}
		}()
		for {
			select {
			case env := <-envelopes:
				if conn.WriteMessage(websocket.TextMessage, env) != nil {
					return
				}
			case <-r.Context().Done():
				return
			}
		}
	})
	front := httptest.NewServer(mux)
	defer front.Close()
	wsURL = "ws" + strings.TrimPrefix(front.URL, "http") + "/link"

	dir := t.TempDir()
	wcPort, amPort := freePort(t), freePort(t)
	amURL := fmt.Sprintf("http://127.0.0.1:%d", amPort)
	cfg := writeFile(t, dir, "wc.yaml", fmt.Sprintf(`listen: 127.0.0.1:%d
data_dir: %s/data
downstreams:
  default:
    slack:
      token: xoxb-e2e
      api_url: %s/api/
      channel: "#oncall"
      actions:
        app_token_file: %s
        alertmanager_url: %s
        allowed_groups: [S0ONCALL]
`, wcPort, dir, front.URL, writeFile(t, dir, "app-token", "xapp-1-e2e\n"), amURL))
	startProcess(t, "whatchanged", whatchangedBin, "serve", "--config", cfg)
	wcURL := fmt.Sprintf("http://127.0.0.1:%d", wcPort)
	waitReady(t, wcURL+"/readyz", nil)
	runAlertmanager(t, dir, amPort, "route: {receiver: none}\nreceivers: [{name: none}]\n")

	// The parent, as whatchanged posts it for a notification.
	body := `{"version":"4","status":"firing","receiver":"x","groupKey":"{}:{alertname=\"DiskFull\"}","groupLabels":{"alertname":"DiskFull"},"commonLabels":{"alertname":"DiskFull"},` +
		`"alerts":[{"status":"firing","labels":{"alertname":"DiskFull","instance":"db-1"},"annotations":{},"startsAt":"` + time.Now().UTC().Format(time.RFC3339) + `"}]}`
	if status, resp := post(t, wcURL+"/webhook", body); status != 200 {
		t.Fatalf("webhook: %d %s", status, resp)
	}
	parent := slack.wait(t, "the parent", func(c []slackCall) bool { return len(c) >= 1 })[0]

	p := clickBody(t, "U0BOB", "silence_4h", button(t, parent.blocks, "silence_4h"), "1763700000.000001", parent.blocks)
	form, _ := url.ParseQuery(p)
	env, _ := json.Marshal(map[string]any{"envelope_id": "e2e-env-1", "type": "interactive", "accepts_response_payload": false, "payload": json.RawMessage(form.Get("payload"))})
	envelopes <- env
	select {
	case id := <-acks:
		if id != "e2e-env-1" {
			t.Fatalf("acknowledged %q", id)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the envelope was not acknowledged within 30s")
	}
	slack.wait(t, "the parent showing the silence", func(c []slackCall) bool {
		return count(c, func(x slackCall) bool { return x.method == "chat.update" && strings.Contains(x.blocks, "Silenced by") }) == 1
	})
	s := silences(t, amURL)
	if len(s) != 1 || s[0].Status.State != "active" || len(s[0].Matchers) != 1 || s[0].Matchers[0].Value != "DiskFull" || !strings.Contains(s[0].CreatedBy, "U0BOB") ||
		s[0].EndsAt.Sub(time.Now()) < 235*time.Minute {
		t.Fatalf("silence = %+v", s)
	}
	waitMetric(t, wcURL, `whatchanged_slack_actions_total{action="silence_4h",outcome="done"}`, "1")
}
