package github

import (
	"net/url"
	"strings"
	"time"
)

// Config of the GitHub source. Credentials are never part of it: a token
// travels in the transport given to New, an App's key in App.
type Config struct {
	// BaseURL is the API root: https://api.github.com/ (default) or a GitHub
	// Enterprise Server's https://ghe.example.com/api/v3/.
	BaseURL string `yaml:"base_url"`
	// Environments limits deployments to these environments (empty: all).
	Environments []string `yaml:"environments"`
	// Refresh is how often repositories seen recently are re-read in the
	// background (conditional requests: an unchanged repository costs no
	// rate limit).
	Refresh time.Duration `yaml:"refresh"`
	// KeepFor: a repository no alert asked about for this long is no longer
	// refreshed.
	KeepFor time.Duration `yaml:"keep_for"`
	// Timeout is this source's deadline per query (within the total budget).
	Timeout time.Duration `yaml:"timeout"`

	// App authenticates as a GitHub App installation (from the config
	// file's app section); without it the caller's transport carries a token.
	App *App `yaml:"-"`
}

// App is GitHub App authentication.
type App struct {
	AppID          int64
	InstallationID int64
	PrivateKey     []byte
}

// Defaults fills unset fields.
func (c *Config) Defaults() {
	if c.BaseURL == "" {
		c.BaseURL = "https://api.github.com/"
	}
	if !strings.HasSuffix(c.BaseURL, "/") {
		c.BaseURL += "/"
	}
	if c.Refresh == 0 {
		c.Refresh = 5 * time.Minute
	}
	if c.KeepFor == 0 {
		c.KeepFor = 24 * time.Hour
	}
}

// Validate returns problems by key.
func (c Config) Validate() map[string]string {
	errs := map[string]string{}
	if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		errs["base_url"] = "not an http(s) URL"
	}
	if c.Refresh < 30*time.Second {
		errs["refresh"] = "must be at least 30s"
	}
	if c.KeepFor < c.Refresh {
		errs["keep_for"] = "must be at least refresh"
	}
	return errs
}

// host is the web host repositories live on: github.com for the public
// API, the server's host for GitHub Enterprise.
func (c Config) host() string {
	u, err := url.Parse(c.BaseURL)
	if err != nil || u.Host == "api.github.com" {
		return "github.com"
	}
	return u.Hostname()
}
