package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/whatchanged/whatchanged/test/proctest"
)

func TestSlackActionsConfig(t *testing.T) {
	dir := t.TempDir()
	app := writeTestFile(t, dir, "app", "xapp-1-MARKER-app-token\n")
	opened := make(chan struct{}, 8)
	slackAPI := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/apps.connections.open" && r.Header.Get("Authorization") == "Bearer xapp-1-MARKER-app-token" {
			opened <- struct{}{}
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok":false,"error":"invalid_auth"}`) // a revoked app token, say
	}))
	defer slackAPI.Close()
	base := "data_dir: " + dir + "\ndownstreams:\n  oncall:\n    slack:\n      token: xoxb-MARKER-bot\n      api_url: " + slackAPI.URL + "/api/\n      channel: \"#oncall\"\n      actions:\n"
	cfg, err := parseConfig("c.yaml", []byte(base+"        app_token_file: "+app+"\n        alertmanager_url: http://alertmanager:9093\n        allowed_groups: [S0ONCALL]\n"))
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Downstreams["oncall"].Slack.Actions
	if a.Mode != "socket_mode" || a.AppToken.Reveal() != "xapp-1-MARKER-app-token" || a.AllowedGroups[0] != "S0ONCALL" {
		t.Errorf("actions = %+v", a)
	}
	if shown := cfg.marshalRedacted() + strings.Join(cfg.secretsReport(), "\n"); strings.Contains(shown, "MARKER") {
		t.Errorf("a secret shown:\n%s", shown)
	}
	if r := strings.Join(cfg.secretsReport(), "\n"); !strings.Contains(r, "downstreams.oncall.slack.actions.app_token_file: "+app) {
		t.Errorf("secrets report lacks the app token file:\n%s", r)
	}

	// Built for serving, it does not log the secrets either (Socket Mode
	// starts; the app is closed at once).
	var logs proctest.Log
	a2, err := buildFrom(cfg, slog.New(slog.NewTextHandler(&logs, nil)), true, nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-opened:
	case <-time.After(10 * time.Second):
		t.Error("socket mode did not open a connection with the app token")
	}
	a2.close()
	if strings.Contains(logs.String(), "MARKER") {
		t.Errorf("a secret logged:\n%s", logs.String())
	}

	for _, tc := range []struct{ yaml, want string }{
		{"        alertmanager_url: http://am:9093\n        allowed_users: [U0ALICE]\n", "c.yaml:8: downstreams.oncall.slack.actions.app_token: required in socket_mode"},
		{"        mode: request_url\n        alertmanager_url: http://am:9093\n        allowed_users: [U0ALICE]\n", "downstreams.oncall.slack.actions.signing_secret: required in request_url mode"},
		{"        mode: websocket\n        app_token: xapp-MARKER\n        alertmanager_url: http://am:9093\n        allowed_users: [U0ALICE]\n", `downstreams.oncall.slack.actions.mode: "websocket": must be socket_mode or request_url`},
		{"        app_token: xapp-MARKER\n        allowed_users: [U0ALICE]\n", "downstreams.oncall.slack.actions.alertmanager_url: required"},
		{"        app_token: xapp-MARKER\n        alertmanager_url: ftp://am\n        allowed_users: [U0ALICE]\n", "downstreams.oncall.slack.actions.alertmanager_url: scheme must be http or https"},
		{"        app_token: xapp-MARKER\n        alertmanager_url: http://am:9093\n", "downstreams.oncall.slack.actions: allowed_users or allowed_groups is required"},
		{"        app_token: xapp-MARKER\n        alertmanager_url: http://am:9093\n        allowed_users: [alice]\n        allowed_groups: [oncall]\n", `downstreams.oncall.slack.actions.allowed_users[0]: "alice" is not a Slack user ID`},
		{"        app_token: xapp-MARKER\n        alertmanager_url: http://am:9093\n        allowed_groups: [oncall]\n", `downstreams.oncall.slack.actions.allowed_groups[0]: "oncall" is not a Slack user group ID`},
		{"        app_token: xapp-MARKER\n        app_token_file: " + app + "\n        alertmanager_url: http://am:9093\n        allowed_users: [U0ALICE]\n", "downstreams.oncall.slack.actions.app_token: set either app_token or app_token_file"},
		{"        signing_secret_file: " + dir + "/missing\n        mode: request_url\n        alertmanager_url: http://am:9093\n        allowed_users: [U0ALICE]\n", "downstreams.oncall.slack.actions.signing_secret_file:"},
		{"        app_token: xapp-MARKER\n        alertmanager_url: http://am:9093\n        allowed_users: [U0ALICE]\n        http_config:\n          tls_config: {ca_file: " + dir + "/none.pem}\n", "downstreams.oncall.slack.actions.http_config.tls_config.ca_file:"},
	} {
		_, err := parseConfig("c.yaml", []byte(base+tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.yaml, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "MARKER") {
			t.Errorf("a secret in the error: %v", err)
		}
	}
}
