package main

import (
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/whatchanged/whatchanged/sources/github"
)

// GitHubSourceConfig: releases, deployments and compares of the
// repositories alerts map to. Credentials: http_config.authorization (a
// token, credentials_file re-read per request) or a GitHub App. Off unless
// enabled.
type GitHubSourceConfig struct {
	Enabled       bool            `yaml:"enabled"`
	HTTPConfig    HTTPConfig      `yaml:"http_config"`
	App           GitHubAppConfig `yaml:"app"`
	github.Config `yaml:",inline"`
}

type GitHubAppConfig struct {
	AppID          int64  `yaml:"app_id"`
	InstallationID int64  `yaml:"installation_id"`
	PrivateKeyFile string `yaml:"private_key_file"`
}

func (*GitHubSourceConfig) key() string { return "sources.github" }

func (g *GitHubSourceConfig) finish(_ *Config, p problems) {
	if !g.Enabled {
		return
	}
	finishSource(g, g.HTTPConfig, p)
	switch {
	case g.App.AppID != 0:
		if hasAuthorization(g.HTTPConfig) {
			p.bad("", "set http_config.authorization or app, not both")
		}
		if g.App.InstallationID == 0 || g.App.PrivateKeyFile == "" {
			p.bad("app", "app_id, installation_id and private_key_file are all required")
		} else if key, err := os.ReadFile(g.App.PrivateKeyFile); err != nil {
			p.bad("app.private_key_file", err.Error())
		} else {
			g.Config.App = &github.App{AppID: g.App.AppID, InstallationID: g.App.InstallationID, PrivateKey: key}
		}
	case !hasAuthorization(g.HTTPConfig):
		p.bad("", "http_config.authorization (a token) or app is required (anonymous access allows 60 requests an hour)")
	}
}

func (g *GitHubSourceConfig) build(b *builder) error {
	if !g.Enabled {
		return nil
	}
	rt, err := roundTripper(g.HTTPConfig, "github")
	if err != nil {
		return err
	}
	if rt, err = b.pollOnce(rt, "github", g.Refresh/2, 0, credentialIdentity(g.HTTPConfig, g.App)); err != nil {
		return err
	}
	src, err := github.New("github", g.Config, rt, b.log)
	if err != nil {
		return err
	}
	b.addSource(src, g.Timeout)
	b.register(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "whatchanged_github_rate_limit_remaining",
			Help: "Requests left in GitHub's rate-limit window, as GitHub last said (-1: not yet known).",
		}, func() float64 { return float64(src.Stats().Remaining) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "whatchanged_github_requests_total", Help: "Requests sent to GitHub.",
		}, func() float64 { return float64(src.Stats().Requests) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "whatchanged_github_not_modified_total", Help: "Requests GitHub answered 304 (free of rate limit).",
		}, func() float64 { return float64(src.Stats().NotModified) }),
	)
	return nil
}
