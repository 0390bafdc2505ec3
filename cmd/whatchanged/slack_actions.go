package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/whatchanged/whatchanged/enrich/deliver/slack"
)

// SlackActionsConfig is downstreams.<name>.slack.actions: buttons on the
// parent message, and how Slack reaches whatchanged when one is clicked.
type SlackActionsConfig struct {
	// Mode is socket_mode (default: an outbound WebSocket, no ingress) or
	// request_url (Slack posts to /slack/actions).
	Mode              string `yaml:"mode"`
	AppToken          Secret `yaml:"app_token"`
	AppTokenFile      string `yaml:"app_token_file"`
	SigningSecret     Secret `yaml:"signing_secret"`
	SigningSecretFile string `yaml:"signing_secret_file"`
	// AlertmanagerURL is where silences are created; HTTPConfig its client.
	AlertmanagerURL string     `yaml:"alertmanager_url"`
	HTTPConfig      HTTPConfig `yaml:"http_config"`
	AllowedUsers    []string   `yaml:"allowed_users"`
	AllowedGroups   []string   `yaml:"allowed_groups"`
}

const (
	modeSocket     = "socket_mode"
	modeRequestURL = "request_url"
)

var (
	slackUserID  = regexp.MustCompile(`^[UW][A-Z0-9]{2,}$`)
	slackGroupID = regexp.MustCompile(`^S[A-Z0-9]{2,}$`)
)

func (a *SlackActionsConfig) finish(p problems) {
	p.secret(&a.AppToken, a.AppTokenFile, "app_token")
	p.secret(&a.SigningSecret, a.SigningSecretFile, "signing_secret")
	switch a.Mode {
	case "", modeSocket:
		a.Mode = modeSocket
		if a.AppToken.Empty() {
			p.bad("app_token", "required in socket_mode (an app-level token, xapp-…, with connections:write), or app_token_file")
		}
	case modeRequestURL:
		if a.SigningSecret.Empty() {
			p.bad("signing_secret", "required in request_url mode (the Slack app's signing secret), or signing_secret_file")
		}
	default:
		p.bad("mode", fmt.Sprintf("%q: must be socket_mode or request_url", a.Mode))
	}
	if a.AlertmanagerURL == "" {
		p.bad("alertmanager_url", "required (where silences are created, e.g. http://alertmanager:9093)")
	} else if err := checkURL(a.AlertmanagerURL); err != nil {
		p.bad("alertmanager_url", err.Error())
	}
	checkHTTPConfig(a.HTTPConfig, "http_config", p)
	if len(a.AllowedUsers) == 0 && len(a.AllowedGroups) == 0 {
		p.bad("", "allowed_users or allowed_groups is required: nobody else may act")
	}
	for i, u := range a.AllowedUsers {
		if !slackUserID.MatchString(u) {
			p.bad(fmt.Sprintf("allowed_users[%d]", i), fmt.Sprintf("%q is not a Slack user ID (U… or W…)", u))
		}
	}
	for i, g := range a.AllowedGroups {
		if !slackGroupID.MatchString(g) {
			p.bad(fmt.Sprintf("allowed_groups[%d]", i), fmt.Sprintf("%q is not a Slack user group ID (S…)", g))
		}
	}
}

// build is the target's actions config; nil when actions are off.
func (a *SlackActionsConfig) build(b *builder, name string) (*slack.ActionsConfig, error) {
	if a == nil {
		return nil, nil
	}
	rt, err := roundTripper(a.HTTPConfig, "slack-actions-"+name)
	if err != nil {
		return nil, fmt.Errorf("slack.actions.http_config: %w", err)
	}
	counter := slack.NewActionsCounter()
	if b.reg != nil {
		if err := b.reg.Register(counter); err != nil {
			var are prometheus.AlreadyRegisteredError // another Slack downstream's
			if !errors.As(err, &are) {
				return nil, err
			}
			counter = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	return &slack.ActionsConfig{RequestURL: a.Mode == modeRequestURL, AppToken: a.AppToken.Reveal(), SigningSecret: a.SigningSecret.Reveal(),
		AlertmanagerURL: a.AlertmanagerURL, Alertmanager: &http.Client{Transport: rt, Timeout: 10 * time.Second},
		AllowedUsers: a.AllowedUsers, AllowedGroups: a.AllowedGroups, Counter: counter}, nil
}

// socketRetry is the pause before opening Socket Mode again after it
// stopped (slack-go reconnects by itself; this is when it gave up).
const socketRetry = 10 * time.Second

// start opens Socket Mode for a serving app (not for one-shot commands),
// until the app is closed (shutdown, or replaced by a reload).
func (a *SlackActionsConfig) start(b *builder, name string, t *slack.Target) {
	if a == nil || a.Mode != modeSocket || b.reg == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			err := t.RunSocketMode(ctx, &http.Client{Timeout: 10 * time.Second})
			if ctx.Err() != nil {
				return
			}
			b.log.Warn("slack socket mode stopped; reconnecting", "downstream", name, "err", err, "in", socketRetry)
			select {
			case <-ctx.Done():
				return
			case <-time.After(socketRetry):
			}
		}
	}()
	b.onClose(func() error { cancel(); <-done; return nil })
}
