package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"k8s.io/client-go/dynamic"

	"github.com/whatchanged/whatchanged/enrich"
	"github.com/whatchanged/whatchanged/enrich/deliver"
	"github.com/whatchanged/whatchanged/enrich/deliver/slack"
	"github.com/whatchanged/whatchanged/sources"
	"github.com/whatchanged/whatchanged/sources/argocd"
	"github.com/whatchanged/whatchanged/sources/changes"
	"github.com/whatchanged/whatchanged/sources/github"
	"github.com/whatchanged/whatchanged/sources/kube"
	"github.com/whatchanged/whatchanged/sources/store"
)

// app is everything built from a Config. Building does no network I/O;
// only the store is opened (it holds a file lock).
type app struct {
	cfg      Config
	log      *slog.Logger
	registry *prometheus.Registry
	store    *store.Bolt
	changes  *changes.Source
	kube     *kube.Source
	entries  []enrich.SourceEntry
	enricher *enrich.Enricher
	targets  map[string]deliver.Target
	keeper   *deliver.Keeper
	// alertmanagers is set in inline mode.
	alertmanagers *deliver.Alertmanagers
}

func newLogger(cfg LogConfig, w interface{ Write([]byte) (int, error) }) *slog.Logger {
	level := slog.LevelInfo
	_ = level.UnmarshalText([]byte(cfg.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// build wires sources, the pipeline and the delivery targets. withMetrics
// is false for one-shot commands.
func build(cfg Config, log *slog.Logger, withMetrics bool) (*app, error) {
	a := &app{cfg: cfg, log: log, registry: prometheus.NewRegistry()}
	// One transport for every outbound HTTP target without its own TLS
	// settings: connections are reused.
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 32
	var em *enrich.Metrics
	if withMetrics {
		a.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		em = enrich.NewMetrics(a.registry)
	}
	if cfg.Sources.Changes.On() {
		st, err := store.OpenBolt(cfg.DataDir, 2*time.Second)
		if err != nil {
			return nil, err
		}
		a.store = st
		a.changes = changes.New("changes", cfg.Sources.Changes.Config, st, log)
		a.entries = append(a.entries, enrich.SourceEntry{Source: a.changes, Timeout: cfg.Sources.Changes.Timeout})
	}
	var resolvers []sources.SubjectResolver
	if k := cfg.Sources.Kubernetes; k.Enabled {
		clients, _, err := kube.ClientsFromConfig(k.Config)
		if err != nil {
			a.close()
			return nil, err
		}
		a.kube = kube.New("kubernetes", k.Config, clients, log)
		a.entries = append(a.entries, enrich.SourceEntry{Source: a.kube, Timeout: k.Timeout})
		resolvers = append(resolvers, a.kube)
	}
	if g := cfg.Sources.GitHub; g.Enabled {
		src, err := github.New("github", g.Config, transport, log)
		if err != nil {
			a.close()
			return nil, err
		}
		a.entries = append(a.entries, enrich.SourceEntry{Source: src, Timeout: g.Timeout})
		if withMetrics {
			a.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "whatchanged_github_rate_limit_remaining",
				Help: "Requests left in GitHub's rate-limit window, as GitHub last said (-1: not yet known).",
			}, func() float64 { return float64(src.Stats().Remaining) }))
			a.registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "whatchanged_github_requests_total", Help: "Requests sent to GitHub.",
			}, func() float64 { return float64(src.Stats().Requests) }))
			a.registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "whatchanged_github_not_modified_total", Help: "Requests GitHub answered 304 (free of rate limit).",
			}, func() float64 { return float64(src.Stats().NotModified) }))
		}
	}
	if ac := cfg.Sources.ArgoCD; ac.Enabled {
		tr, err := transportFor(transport, ac.TLS)
		if err != nil {
			a.close()
			return nil, err
		}
		var dyn dynamic.Interface
		if ac.Kubernetes.Enabled {
			kc := ac.Kubernetes.Kubeconfig
			if kc == "" {
				kc = cfg.Sources.Kubernetes.Kubeconfig
			}
			clients, _, err := kube.ClientsFromConfig(kube.Config{Kubeconfig: kc})
			if err != nil {
				a.close()
				return nil, err
			}
			dyn = clients.Dynamic
		}
		src := argocd.New("argocd", ac.Config, &http.Client{Transport: tr}, dyn, log)
		a.entries = append(a.entries, enrich.SourceEntry{Source: src, Timeout: ac.Timeout})
		resolvers = append(resolvers, src)
	}
	resolver, err := enrich.NewResolver(cfg.Rules, resolvers...)
	if err != nil {
		a.close()
		return nil, err
	}
	a.enricher = enrich.New(cfg.Enrich, resolver, a.entries, em)

	a.targets = map[string]deliver.Target{}
	for name, d := range cfg.Downstreams {
		if d.Slack != nil {
			threads, err := a.slackThreads(d.Slack)
			if err != nil {
				a.close()
				return nil, err
			}
			a.targets[name] = slack.New(name, slack.Config{Token: d.Slack.Token.reveal(), APIURL: d.Slack.APIURL, Channel: d.Slack.Channel,
				Severity: d.Slack.Severity, ReplyBroadcast: d.Slack.ReplyBroadcast, ResolvedRetention: d.Slack.ResolvedRetention,
				AnnotationPrefix: cfg.Enrich.AnnotationPrefix}, threads, &http.Client{Transport: transport, Timeout: 10 * time.Second}, log)
			continue
		}
		tr, err := transportFor(transport, d.TLS)
		if err != nil {
			a.close()
			return nil, fmt.Errorf("downstreams.%s.tls: %w", name, err)
		}
		headers := authHeaders(d.BearerToken, d.BasicAuth, d.Headers)
		a.targets[name] = deliver.NewWebhook(name, deliver.WebhookConfig{URL: d.URL.reveal(), Headers: headers, Timeout: d.Timeout}, tr)
	}
	if _, ok := a.targets["default"]; !ok {
		a.keeper = deliver.NewKeeper(50, 16<<20)
		a.targets["default"] = a.keeper
	}
	if cfg.Inline.Enabled {
		var ups []deliver.UpstreamConfig
		for _, u := range cfg.Inline.Upstreams {
			tr, err := transportFor(transport, u.TLS)
			if err != nil {
				a.close()
				return nil, fmt.Errorf("inline upstream %s: %w", u.Name, err)
			}
			ups = append(ups, deliver.UpstreamConfig{Name: u.Name, URL: u.URL, Timeout: u.Timeout,
				Headers: authHeaders(u.BearerToken, u.BasicAuth, nil), Transport: tr})
		}
		am, err := deliver.NewAlertmanagers(ups)
		if err != nil {
			a.close()
			return nil, err
		}
		a.alertmanagers = am
	}
	return a, nil
}

// slackThreads is where Slack thread state lives: Redis when configured
// (replicas share it), else the embedded store.
func (a *app) slackThreads(c *SlackConfig) (slack.Threads, error) {
	if c.Redis != nil {
		return &slack.RedisThreads{Prefix: "whatchanged:slack:", Client: redis.NewClient(&redis.Options{
			Addr: c.Redis.Addr, Password: c.Redis.Password.reveal(), DB: c.Redis.DB})}, nil
	}
	if a.store == nil {
		st, err := store.OpenBolt(a.cfg.DataDir, 2*time.Second)
		if err != nil {
			return nil, err
		}
		a.store = st
	}
	return &slack.BoltThreads{Store: a.store}, nil
}

// start starts every source that needs it, bounded by ctx.
func (a *app) start(ctx context.Context) error {
	for _, e := range a.entries {
		if s, ok := e.Source.(sources.Starter); ok {
			if err := s.Start(ctx); err != nil {
				return fmt.Errorf("start source %s: %w", e.Source.Name(), err)
			}
		}
	}
	return nil
}

// ready is /readyz: every source that syncs has synced.
func (a *app) ready() (bool, string) {
	var waiting []string
	for _, e := range a.entries {
		if s, ok := e.Source.(sources.Starter); ok && !s.Ready() {
			waiting = append(waiting, e.Source.Name())
		}
	}
	if len(waiting) > 0 {
		return false, "waiting for sources: " + strings.Join(waiting, ", ")
	}
	return true, ""
}

func (a *app) close() {
	if a.store != nil {
		if err := a.store.Close(); err != nil {
			a.log.Warn("close store", "err", err)
		}
	}
}

// maxDownstreamTimeout is the longest a delivery may take (two sends).
func (a *app) maxDownstreamTimeout() time.Duration {
	longest := 10 * time.Second
	for _, d := range a.cfg.Downstreams {
		if d.Timeout > longest {
			longest = d.Timeout
		}
	}
	return 2 * longest
}
