package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
	_ "time/tzdata" // time_zone works in an image without /usr/share/zoneinfo

	"github.com/whatchanged/whatchanged/enrich/history"
	"github.com/whatchanged/whatchanged/enrich/timeline"
	"github.com/whatchanged/whatchanged/enrich/timeline/ui"
	"github.com/whatchanged/whatchanged/sources/store"
)

// TimelineConfig is the alert history behind the incident timeline (GET
// /api/v1/timeline, whatchanged timeline, the page at /ui/), kept in the
// store (data_dir, or redis). On by default when there is one.
type TimelineConfig struct {
	Enabled *bool `yaml:"enabled"`
	// Retention drops alerts that ended (or were last seen) longer ago.
	Retention time.Duration `yaml:"retention"`
	// MaxAlerts bounds the alerts kept; the oldest go first.
	MaxAlerts int `yaml:"max_alerts"`
	// TimeZone (IANA name) of the Markdown timeline and the page.
	TimeZone string `yaml:"time_zone"`

	loc *time.Location
}

func (c TimelineConfig) On() bool { return c.Enabled != nil && *c.Enabled }

func (*TimelineConfig) key() string { return "timeline" }

func (c *TimelineConfig) finish(cfg *Config, p problems) {
	if c.Enabled == nil {
		on := cfg.DataDir != "" || cfg.Redis != nil
		c.Enabled = &on // explicit, so config check --show says it
	}
	if c.Retention == 0 {
		c.Retention = history.DefaultRetention
	}
	if c.MaxAlerts == 0 {
		c.MaxAlerts = history.DefaultMaxAlerts
	}
	if c.TimeZone == "" {
		c.TimeZone = "UTC"
	}
	loc, err := time.LoadLocation(c.TimeZone)
	if err != nil {
		p.bad("time_zone", fmt.Sprintf("%q is not an IANA time zone such as UTC or Europe/Berlin", c.TimeZone))
	}
	c.loc = loc
	if c.Retention < time.Hour {
		p.bad("retention", "must be at least 1h")
	}
	if c.MaxAlerts < 1 {
		p.bad("max_alerts", "must be at least 1")
	}
	if c.On() && cfg.DataDir == "" && cfg.Redis == nil {
		p.root().bad("data_dir", "required when timeline is enabled, unless redis is set (the alert history is kept there)")
	}
}

// build keeps the alert history in the store and serves the timeline from
// it and the enricher's sources; it is an output, built after the enricher.
func (c *TimelineConfig) build(b *builder) error {
	if !c.On() {
		return nil
	}
	st, err := b.store()
	if err != nil {
		return err
	}
	h := history.New(st, history.Config{Retention: c.Retention, MaxAlerts: c.MaxAlerts}, b.a.enricher.Resolve, b.log)
	b.register(h.Collectors()...)
	b.onClose(func() error { h.Close(5 * time.Second); return nil })
	b.a.history = h
	b.a.timeline = &timeline.Builder{History: h, Sources: b.a.enricher, Location: c.loc}
	b.a.ui = ui.Handler(b.a.timeline.Build, ui.Options{Location: c.loc, ExternalURL: b.cfg.Server.ExternalURL, Log: b.log})
	return nil
}

// startHistory starts recording (serve only: a one-shot command reads).
func (a *app) startHistory(ctx context.Context) {
	if a.history != nil {
		a.history.Start(ctx)
	}
}

// timelineCmd prints the timeline of a window: from a running server
// (--server), or from the store and sources a config file names.
func timelineCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("timeline", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf commonFlags
	cf.register(fs, false)
	serverURL := fs.String("server", "", "ask a running whatchanged at this URL instead of reading the store")
	tokenFile := fs.String("token-file", "", "bearer token file for --server")
	since := fs.String("since", "6h", "start of the window: a duration ago (3h, 2d) or RFC 3339")
	until := fs.String("until", "", "end of the window: a duration ago or RFC 3339 (default: now)")
	format := fs.String("format", "md", "md (Markdown, to paste into an incident report) or json")
	var f timeline.Filter
	fs.StringVar(&f.Namespace, "namespace", "", "only this namespace's alerts and changes")
	fs.StringVar(&f.Workload, "workload", "", "only this workload's (any kind) alerts and changes")
	fs.StringVar(&f.App, "app", "", "only this application's alerts and changes")
	fs.StringVar(&f.Alertname, "alertname", "", "only alerts of this name")
	fs.StringVar(&f.Cluster, "cluster", "", "only this cluster's")
	fs.StringVar(&f.Matchers, "matchers", "", `label matchers in Alertmanager's syntax, e.g. '{severity="critical"}'`)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("timeline takes no arguments, got %q", fs.Args())}
	}
	if *format != "md" && *format != "json" {
		return usageError{fmt.Sprintf("--format %q: want md or json", *format)}
	}
	now := time.Now()
	from, err := timeline.ParseTime("--since", *since, now)
	if err != nil {
		return usageError{err.Error()}
	}
	to := now
	if *until != "" {
		if to, err = timeline.ParseTime("--until", *until, now); err != nil {
			return usageError{err.Error()}
		}
	}
	if err := f.Validate(); err != nil {
		return usageError{"--" + err.Error()}
	}
	if *serverURL != "" {
		return timelineRemote(ctx, stdout, *serverURL, *tokenFile, f, *since, *until, *format)
	}

	cfg, err := cf.load()
	if err != nil {
		return err
	}
	if !cfg.Timeline.On() {
		return errors.New("the timeline is off in this config (timeline.enabled, or no data_dir): there is no alert history to read")
	}
	log := newLogger(LogConfig{Level: "warn", Format: cfg.Log.Format}, stderr)
	a, err := build(cfg, log, false)
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("%w\nwhatchanged serve is running on this data_dir and holds its lock; ask it instead: whatchanged timeline --server http://ADDR", err)
	}
	if err != nil {
		return err
	}
	defer a.close()
	if err := a.startOneShot(ctx); err != nil {
		return err
	}
	tl, err := a.timeline.Build(ctx, f, from, to)
	if err != nil {
		return err
	}
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(tl)
	}
	_, err = io.WriteString(stdout, tl.Markdown(a.timeline.Loc()))
	return err
}

// timelineRemote prints GET /api/v1/timeline of a running server as it
// answers (the server's time zone; since and until as given).
func timelineRemote(ctx context.Context, stdout io.Writer, base, tokenFile string, f timeline.Filter, since, until, format string) error {
	q := url.Values{"from": {since}, "format": {format}}
	for k, v := range map[string]string{"to": until, "namespace": f.Namespace, "workload": f.Workload, "app": f.App,
		"alertname": f.Alertname, "cluster": f.Cluster, "matchers": f.Matchers} {
		if v != "" {
			q.Set(k, v)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/api/v1/timeline?"+q.Encode(), nil)
	if err != nil {
		return fmt.Errorf("--server: %w", err)
	}
	if tokenFile != "" {
		tok, err := os.ReadFile(tokenFile)
		if err != nil {
			return fmt.Errorf("--token-file: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("--server: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("--server: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("--server answered %s: %s", resp.Status, strings.TrimSpace(string(data)))
	}
	_, err = stdout.Write(data)
	return err
}
