package slack

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/slack-go/slack"

	"github.com/whatchanged/whatchanged/enrich"
	"github.com/whatchanged/whatchanged/test/proctest"
)

func actionsTarget(t *testing.T, f *fakeSlackApp, a *ActionsConfig, log *slog.Logger) *Target {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	tg := New("slack", Config{Token: "xoxb-test-token", APIURL: f.url(), Channel: "#alerts", Actions: a}, &BoltThreads{Store: newBolt(t, t.TempDir())}, http.DefaultClient, log)
	tg.now = func() time.Time { return t0.Add(30 * time.Minute) }
	return tg
}

// actionsRow finds the buttons of a posted parent.
func actionsRow(t *testing.T, blocks json.RawMessage) map[string]*slack.ButtonBlockElement {
	t.Helper()
	var bs slack.Blocks
	if err := json.Unmarshal(blocks, &bs); err != nil {
		t.Fatalf("blocks: %v", err)
	}
	out := map[string]*slack.ButtonBlockElement{}
	for _, b := range bs.BlockSet {
		if ab, ok := b.(*slack.ActionBlock); ok && ab.BlockID == actionsBlockID {
			for _, e := range ab.Elements.ElementSet {
				btn := e.(*slack.ButtonBlockElement)
				out[btn.ActionID] = btn
			}
		}
	}
	return out
}

func TestActionsOnlyWhenConfigured(t *testing.T) {
	f := newFakeSlackApp(t)
	deliverOK(t, actionsTarget(t, f, nil, nil), payload("firing", "critical", 1, true))
	deliverOK(t, actionsTarget(t, f, &ActionsConfig{AllowedUsers: []string{"U0ALICE"}}, nil), payload("firing", "critical", 1, true))
	c := f.recorded()
	if len(c) != 2 {
		t.Fatalf("calls %+v", c)
	}
	if row := actionsRow(t, c[0].Blocks); len(row) != 0 {
		t.Errorf("actions off, yet buttons: %v", row)
	}
	row := actionsRow(t, c[1].Blocks)
	for _, id := range []string{actSilence1h, actSilence4h, actSilenceResolved, actAck} {
		if row[id] == nil {
			t.Errorf("no %s button in %s", id, c[1].Blocks)
		}
	}
	var v actionValue
	if err := json.Unmarshal([]byte(row[actSilence1h].Value), &v); err != nil || v.Matchers["alertname"] != "HighErrorRate" || len(v.Matchers) != 1 ||
		v.Key != `{}:{alertname="HighErrorRate"}` {
		t.Errorf("silence value %q (%v): want the group labels and key", row[actSilence1h].Value, err)
	}
}

func TestRollbackAndRunbookLinks(t *testing.T) {
	p := enrich.DefaultAnnotationPrefix
	changes := `[{"role":"related","rollouts":[{"namespace":"shop","kind":"Deployment","name":"web","previousRevision":"3"}]},` +
		`{"role":"suspect","rollouts":[{"namespace":"shop","kind":"Deployment","name":"api","revision":"42","previousRevision":"41"}]}]`
	for _, tc := range []struct {
		name     string
		ann      map[string]string
		link     string
		command  string
		runbook  bool
		silences bool
	}{
		{"argocd first", map[string]string{p + "suspect": "sync", p + "argocd_url": "https://argocd.example.com/applications/argocd/shop-api", p + "compare_url": "https://github.com/acme/api/compare/a...b", p + "changes": changes},
			"https://argocd.example.com/applications/argocd/shop-api?rollback=0", "", false, true},
		{"then the compare", map[string]string{p + "suspect": "deploy", p + "compare_url": "https://github.com/acme/api/compare/a...b", p + "changes": changes, "runbook_url": "https://runbooks.example.com/high-error-rate"},
			"https://github.com/acme/api/compare/a...b", "", true, true},
		{"then kubectl for the suspect's rollout", map[string]string{p + "suspect": "rollout", p + "changes": changes},
			"", "kubectl rollout undo deployment/api -n shop --to-revision=41", false, true},
		{"changes JSON off: nothing", map[string]string{p + "suspect": "rollout"}, "", "", false, true},
		{"no suspect: nothing", map[string]string{p + "compare_url": "https://github.com/acme/api/compare/a...b", "runbook_url": "javascript:alert(1)"}, "", "", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := notification{GroupKey: "k", group: group{Status: "firing", GroupLabels: map[string]string{"alertname": "X"},
				Alerts: []*enrich.Alert{{Status: "firing", Annotations: tc.ann}}}}
			blocks := actionBlocks(n, p)
			b, _ := json.Marshal(blocks)
			row := actionsRow(t, b)
			if got := row[actRollback]; (got == nil) != (tc.link == "") || got != nil && got.URL != tc.link {
				t.Errorf("rollback button %+v, want link %q", got, tc.link)
			}
			if (row[actRunbook] != nil) != tc.runbook {
				t.Errorf("runbook button %+v, want %v", row[actRunbook], tc.runbook)
			}
			if hasCmd := strings.Contains(string(b), "To roll back"); hasCmd != (tc.command != "") || !strings.Contains(string(b), tc.command) {
				t.Errorf("blocks %s, want command %q", b, tc.command)
			}
		})
	}
	n := notification{GroupKey: "k", group: group{Status: "firing", Alerts: []*enrich.Alert{{Status: "firing"}}}}
	b, _ := json.Marshal(actionBlocks(n, p))
	if row := actionsRow(t, b); row[actSilence1h] != nil || row[actAck] == nil {
		t.Errorf("no labels to match: no silence buttons, still acknowledge; got %s", b)
	}
}

// clickPayload is a block_actions payload as Slack sends it for a click on
// the parent message.
func clickPayload(t *testing.T, user, actionID, value, ts string, blocks json.RawMessage) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"type": "block_actions", "api_app_id": "A0TEST", "team": map[string]string{"id": "T0TEAM", "domain": "acme"},
		"user":       map[string]string{"id": user, "username": strings.ToLower(strings.TrimPrefix(user, "U0")), "name": strings.ToLower(strings.TrimPrefix(user, "U0")), "team_id": "T0TEAM"},
		"container":  map[string]any{"type": "message", "message_ts": ts, "channel_id": "C0123", "is_ephemeral": false},
		"channel":    map[string]string{"id": "C0123", "name": "alerts"},
		"message":    map[string]any{"type": "message", "ts": ts, "text": "[firing] HighErrorRate", "blocks": blocks},
		"trigger_id": "1.2.3", "response_url": "https://hooks.slack.com/actions/T0TEAM/1/x",
		"actions": []map[string]any{{"action_id": actionID, "block_id": actionsBlockID, "type": "button", "value": value,
			"text": map[string]string{"type": "plain_text", "text": actionID}, "action_ts": "1763701800.000100"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("%s: not within 10s", what)
}

// Over Socket Mode: hello, an interactive envelope, its acknowledgement;
// then the acknowledgement is in the thread and on the parent. A user
// outside the allowed group is refused and nothing changes; the group's
// members were asked once.
func TestSocketModeAcknowledge(t *testing.T) {
	f := newFakeSlackApp(t)
	f.groups["S0ONCALL"] = []string{"U0BOB", "U0ALICE"}
	var logs proctest.Log
	counter := NewActionsCounter()
	tg := actionsTarget(t, f, &ActionsConfig{AppToken: testAppToken, AllowedUsers: []string{"U0CAROL"}, AllowedGroups: []string{"S0ONCALL"}, Counter: counter},
		slog.New(slog.NewTextHandler(&logs, nil)))
	deliverOK(t, tg, payload("firing", "critical", 2, true))
	parent := f.recorded()[0]
	row := actionsRow(t, parent.Blocks)
	ts := "1763700000.000001"

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tg.RunSocketMode(ctx, http.DefaultClient) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("RunSocketMode after cancel: %v", err)
		}
	}()

	f.click("env-1", clickPayload(t, "U0ALICE", actAck, row[actAck].Value, ts, parent.Blocks))
	select {
	case id := <-f.acks:
		if id != "env-1" {
			t.Fatalf("acknowledged %q, want env-1", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the envelope was not acknowledged")
	}
	waitFor(t, "the reply and the parent edited", func() bool { return len(f.recorded()) >= 3 || strings.Contains(logs.String(), "failed") })
	c := f.recorded()
	if len(c) < 3 {
		t.Fatalf("%d calls; log:\n%s", len(c), logs.String())
	}
	if c[1].Method != "chat.postMessage" || c[1].ThreadTS != ts || c[1].Channel != "C0123" || !strings.Contains(string(c[1].Blocks), `\u003c@U0ALICE\u003e is on it`) {
		t.Errorf("thread reply = %s %s %s", c[1].Method, c[1].ThreadTS, c[1].Blocks)
	}
	if c[2].Method != "chat.update" || c[2].TS != ts || !strings.Contains(string(c[2].Blocks), `\u003c@U0ALICE\u003e is on it`) || actionsRow(t, c[2].Blocks)[actSilence1h] == nil {
		t.Errorf("parent edit = %s %s %s (want the status and the buttons kept)", c[2].Method, c[2].TS, c[2].Blocks)
	}

	f.click("env-2", clickPayload(t, "U0MALLORY", actAck, row[actAck].Value, ts, parent.Blocks))
	if id := <-f.acks; id != "env-2" {
		t.Fatalf("acknowledged %q, want env-2", id)
	}
	waitFor(t, "the refusal", func() bool { return len(f.ephemerals()) == 1 })
	if e := f.ephemerals()[0]; e.TS != "U0MALLORY" || e.Channel != "C0123" {
		t.Errorf("ephemeral = %+v", e)
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(f.recorded()); n != 3 {
		t.Errorf("a refused click changed the messages: %+v", f.recorded()[3:])
	}
	f.mu.Lock()
	groupCalls, opens := f.groupCalls, f.opens
	f.mu.Unlock()
	if groupCalls != 1 || opens != 1 {
		t.Errorf("usergroups.users.list called %d times (want 1: cached), apps.connections.open %d (want 1)", groupCalls, opens)
	}
	if done, refused := testutil.ToFloat64(counter.WithLabelValues(actAck, "done")), testutil.ToFloat64(counter.WithLabelValues(actAck, "refused")); done != 1 || refused != 1 {
		t.Errorf("counted done %v refused %v, want 1 and 1", done, refused)
	}
	l := logs.String()
	for _, want := range []string{`msg="slack action" target=slack action=acknowledge user=U0ALICE user_name=alice group_key="{}:{alertname=\"HighErrorRate\"}"`, "slack action refused", "user=U0MALLORY"} {
		if !strings.Contains(l, want) {
			t.Errorf("log lacks %q:\n%s", want, l)
		}
	}
	if strings.Contains(l, testAppToken) || strings.Contains(l, "xoxb-test-token") {
		t.Errorf("a token in the log:\n%s", l)
	}
}

func sign(secret string, ts time.Time, body []byte) http.Header {
	stamp := strconv.FormatInt(ts.Unix(), 10)
	m := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(m, "v0:%s:%s", stamp, body)
	h := http.Header{}
	h.Set("X-Slack-Request-Timestamp", stamp)
	h.Set("X-Slack-Signature", "v0="+hex.EncodeToString(m.Sum(nil)))
	return h
}

func TestVerifyRequest(t *testing.T) {
	f := newFakeSlackApp(t)
	tg := actionsTarget(t, f, &ActionsConfig{RequestURL: true, SigningSecret: "signing-secret-marker", AllowedUsers: []string{"U0ALICE"}}, nil)
	body := []byte("payload=%7B%7D")
	if err := tg.VerifyRequest(sign("signing-secret-marker", time.Now(), body), body); err != nil {
		t.Errorf("signed now: %v", err)
	}
	for name, h := range map[string]http.Header{
		"another secret": sign("other", time.Now(), body),
		"replayed (6m)":  sign("signing-secret-marker", time.Now().Add(-6*time.Minute), body),
		"unsigned":       {},
		"another body":   sign("signing-secret-marker", time.Now(), []byte("payload=%7B%22x%22%7D")),
	} {
		if err := tg.VerifyRequest(h, body); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
	socket := actionsTarget(t, f, &ActionsConfig{AppToken: testAppToken, SigningSecret: "signing-secret-marker"}, nil)
	if socket.ActionsByRequestURL() || socket.VerifyRequest(sign("signing-secret-marker", time.Now(), body), body) == nil {
		t.Error("a Socket Mode target took a request-URL request")
	}
}

func TestSwapSilence(t *testing.T) {
	n := notification{GroupKey: "k", group: group{Status: "firing", GroupLabels: map[string]string{"alertname": "X"}, Alerts: []*enrich.Alert{{Status: "firing",
		Annotations: map[string]string{"runbook_url": "https://runbooks.example.com/x"}}}}}
	blocks := actionBlocks(n, "whatchanged_")
	blocks = swapSilence(blocks, actionValue{Key: "k", Matchers: map[string]string{"alertname": "X"}, Silence: "s-1"}, "silenced by alice")
	b, _ := json.Marshal(blocks)
	row := actionsRow(t, b)
	if row[actUnsilence] == nil || row[actSilence1h] != nil || row[actAck] == nil || row[actRunbook] == nil || !strings.Contains(string(b), "silenced by alice") {
		t.Fatalf("after silence: %s", b)
	}
	var v actionValue
	if json.Unmarshal([]byte(row[actUnsilence].Value), &v); v.Silence != "s-1" || v.Matchers["alertname"] != "X" {
		t.Errorf("unsilence value %q", row[actUnsilence].Value)
	}
	blocks = swapSilence(blocks, actionValue{Key: "k", Matchers: v.Matchers}, "unsilenced by bob")
	b, _ = json.Marshal(blocks)
	row = actionsRow(t, b)
	if row[actUnsilence] != nil || row[actSilence4h] == nil || strings.Contains(string(b), "silenced by alice") || !strings.Contains(string(b), "unsilenced by bob") {
		t.Errorf("after unsilence: %s", b)
	}
}
