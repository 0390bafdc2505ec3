package main

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/whatchanged/whatchanged/enrich/deliver"
	"github.com/whatchanged/whatchanged/enrich/server"
)

// InlineConfig is the inline Alertmanager proxy: Prometheus posts alerts to
// whatchanged, which enriches them and forwards to every upstream.
type InlineConfig struct {
	Enabled    bool   `yaml:"enabled"`
	PathPrefix string `yaml:"path_prefix"`
	// Listen, when set, is a listener of its own that serves Alertmanager's
	// paths only (every one but POST {path_prefix}/api/v2/alerts is
	// proxied, /metrics and /-/reload included): point Prometheus and
	// Alertmanager's users at it when whatchanged stands in for
	// Alertmanager's host, and keep listen for whatchanged's own endpoints.
	// Empty: the inline paths are served on listen, where whatchanged's own
	// (/metrics, /-/…, /debug/…) shadow Alertmanager's.
	Listen    string           `yaml:"listen"`
	Upstreams []UpstreamConfig `yaml:"upstreams"`
}

// UpstreamConfig is one Alertmanager behind the inline proxy.
type UpstreamConfig struct {
	Name    string        `yaml:"name"`
	URL     string        `yaml:"url"`
	Timeout time.Duration `yaml:"timeout"`
	// Discovery "dns" forwards to every address the URL's host resolves
	// to: every replica behind a headless Service.
	Discovery  string     `yaml:"discovery"`
	HTTPConfig HTTPConfig `yaml:"http_config"`
}

func (*InlineConfig) key() string { return "inline" }

func (in *InlineConfig) finish(c *Config, p problems) {
	if !in.Enabled {
		return
	}
	if len(in.Upstreams) == 0 {
		p.bad("upstreams", "at least one Alertmanager is required when inline.enabled is true")
	}
	if in.PathPrefix != "" && !strings.HasPrefix(in.PathPrefix, "/") {
		p.bad("path_prefix", "must start with /")
	}
	if in.Listen != "" {
		if _, _, err := splitHostPort(in.Listen); err != nil {
			p.bad("listen", err.Error())
		} else if in.Listen == c.Listen {
			p.bad("listen", fmt.Sprintf("%q is also the main listen address; use another port", in.Listen))
		}
	}
	names := map[string]bool{}
	for i := range in.Upstreams {
		u := &in.Upstreams[i]
		up := p.in(fmt.Sprintf("upstreams[%d]", i))
		if u.Name == "" {
			u.Name = fmt.Sprintf("alertmanager-%d", i)
		}
		if names[u.Name] {
			up.bad("name", fmt.Sprintf("%q is used twice", u.Name))
		}
		names[u.Name] = true
		if u.URL == "" {
			up.bad("url", "required")
		} else if err := checkURL(u.URL); err != nil {
			up.bad("url", err.Error())
		}
		switch u.Discovery {
		case "", "dns":
		default:
			up.bad("discovery", fmt.Sprintf("%q is not one of dns (or empty: the URL as it is)", u.Discovery))
		}
		if u.Timeout < 0 {
			up.bad("timeout", "must not be negative")
		}
		checkHTTPConfig(u.HTTPConfig, "http_config", up)
	}
}

func (in *InlineConfig) build(b *builder) error {
	if !in.Enabled {
		return nil
	}
	var ups []deliver.UpstreamConfig
	for _, u := range in.Upstreams {
		rt, err := roundTripper(u.HTTPConfig, "upstream-"+u.Name)
		if err != nil {
			return fmt.Errorf("inline upstream %s: %w", u.Name, err)
		}
		ups = append(ups, deliver.UpstreamConfig{Name: u.Name, URL: u.URL, Timeout: u.Timeout, DNSDiscovery: u.Discovery == "dns", Transport: rt})
	}
	am, err := deliver.NewAlertmanagers(ups)
	if err != nil {
		return err
	}
	b.a.alertmanagers = am
	return nil
}

// maxTimeout is the longest a forward may take (two sends: the enriched
// alerts, then the original after a refusal).
func (in InlineConfig) maxTimeout() time.Duration {
	longest := 10 * time.Second // deliver's default per upstream
	for _, u := range in.Upstreams {
		longest = max(longest, u.Timeout)
	}
	return 2 * longest
}

// serveInline starts the inline listener (inline.listen) when one is
// configured, sending its end to errc; the caller shuts the returned
// server down (nil: none).
func serveInline(cfg Config, srv *server.Server, errc chan<- error) (*http.Server, error) {
	if !cfg.Inline.Enabled || cfg.Inline.Listen == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", cfg.Inline.Listen)
	if err != nil {
		return nil, fmt.Errorf("inline.listen: %w", err)
	}
	h := srv.InlineHTTPServer(cfg.Inline.Listen, writeTimeout(cfg))
	go func() { errc <- h.Serve(ln) }()
	return h, nil
}
