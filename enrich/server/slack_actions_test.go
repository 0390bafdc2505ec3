package server

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/whatchanged/whatchanged/enrich/deliver"
	"github.com/whatchanged/whatchanged/enrich/deliver/slack"
)

type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func slackSigned(secret string, at time.Time, body string) []string {
	stamp := strconv.FormatInt(at.Unix(), 10)
	m := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(m, "v0:%s:%s", stamp, body)
	return []string{"Content-Type", "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp", stamp, "X-Slack-Signature", "v0=" + hex.EncodeToString(m.Sum(nil))}
}

// POST /slack/actions takes only what Slack signed within 5 minutes, for
// the Slack downstream whose secret verifies it; the rest is 401 and its
// body is never logged.
func TestSlackActionsRequestURL(t *testing.T) {
	var logs syncLog
	log := slog.New(slog.NewTextHandler(&logs, nil))
	reg := prometheus.NewRegistry()
	counter := slack.NewActionsCounter()
	newSlack := func(name string, a *slack.ActionsConfig) deliver.Target {
		a.AllowedUsers, a.Counter = []string{"U0ALICE"}, counter
		return slack.New(name, slack.Config{Token: "xoxb-x", APIURL: "http://127.0.0.1:1/api/", Channel: "#c", Actions: a}, nil, http.DefaultClient, log)
	}
	e := &env{}
	e.serve(t, Config{}, Deps{Targets: map[string]deliver.Target{
		"a":      newSlack("a", &slack.ActionsConfig{RequestURL: true, SigningSecret: "secret-a"}),
		"b":      newSlack("b", &slack.ActionsConfig{RequestURL: true, SigningSecret: "secret-b"}),
		"socket": newSlack("socket", &slack.ActionsConfig{AppToken: "xapp-x", SigningSecret: "secret-socket"}),
	}, Gatherer: reg, Metrics: NewMetrics(reg), Log: log})

	// A click on the Runbook link: verified, acknowledged, nothing to do.
	body := url.Values{"payload": {`{"type":"block_actions","user":{"id":"U0ALICE"},"actions":[{"action_id":"runbook","block_id":"whatchanged_actions","type":"button"}],"x":"BODY-MARKER"}`}}.Encode()
	for _, secret := range []string{"secret-a", "secret-b"} {
		if status, resp := e.do(t, "POST", "/slack/actions", body, slackSigned(secret, time.Now(), body)...); status != http.StatusOK {
			t.Errorf("signed with %s: %d %s", secret, status, resp)
		}
	}
	for name, h := range map[string][]string{
		"unsigned":             {"Content-Type", "application/x-www-form-urlencoded"},
		"another secret":       slackSigned("secret-c", time.Now(), body),
		"a Socket Mode target": slackSigned("secret-socket", time.Now(), body),
		"replayed":             slackSigned("secret-a", time.Now().Add(-5*time.Minute-10*time.Second), body),
		"from the future":      slackSigned("secret-a", time.Now().Add(6*time.Minute), body),
	} {
		if status, resp := e.do(t, "POST", "/slack/actions", body, h...); status != http.StatusUnauthorized {
			t.Errorf("%s: %d %s, want 401", name, status, resp)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && strings.Count(logs.String(), "slack action refused") < 5 {
		time.Sleep(20 * time.Millisecond)
	}
	l := logs.String()
	if n := strings.Count(l, "slack action refused: not signed by Slack"); n != 5 {
		t.Errorf("%d refusals logged, want 5:\n%s", n, l)
	}
	for _, secret := range []string{"BODY-MARKER", "secret-a", "secret-b", "xoxb-x"} {
		if strings.Contains(l, secret) {
			t.Errorf("%s in the log:\n%s", secret, l)
		}
	}

	none := &env{}
	none.serve(t, Config{}, Deps{Targets: map[string]deliver.Target{}, Gatherer: reg, Metrics: NewMetrics(prometheus.NewRegistry()), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if status, _ := none.do(t, "POST", "/slack/actions", body, slackSigned("secret-a", time.Now(), body)...); status != http.StatusNotFound {
		t.Errorf("no Slack downstream with a request URL: %d, want 404", status)
	}
}
