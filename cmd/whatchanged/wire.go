package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/whatchanged/whatchanged/enrich"
	"github.com/whatchanged/whatchanged/enrich/deliver"
	"github.com/whatchanged/whatchanged/enrich/history"
	"github.com/whatchanged/whatchanged/enrich/timeline"
	"github.com/whatchanged/whatchanged/sources"
	"github.com/whatchanged/whatchanged/sources/changes"
	"github.com/whatchanged/whatchanged/sources/kube"
	"github.com/whatchanged/whatchanged/sources/store"
)

// app is everything built from a Config. Building does no network I/O;
// only the store is opened (it holds a file lock).
type app struct {
	cfg      Config
	log      *slog.Logger
	registry *prometheus.Registry
	store    store.Store
	// ownsStore: this app closes the store; a reloaded app takes it over
	// from the one it replaces (a bbolt file holds a lock).
	ownsStore bool
	changes   *changes.Source
	kubes     []*kube.Source // one per cluster
	started   time.Time
	entries   []enrich.SourceEntry
	enricher  *enrich.Enricher
	targets   map[string]deliver.Target
	keeper    *deliver.Keeper
	// history records the alerts that pass, timeline and ui serve them
	// (timeline.go); nil when the timeline is off.
	history  *history.History
	timeline *timeline.Builder
	ui       http.Handler
	// alertmanagers is set in inline mode.
	alertmanagers *deliver.Alertmanagers
	// closers release what building acquired; see close.
	closers []func() error
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

// build wires every part (sources, the pipeline, where notifications go).
// withMetrics is false for one-shot commands. On error, whatever was built
// is closed.
func build(cfg Config, log *slog.Logger, withMetrics bool) (*app, error) {
	return buildFrom(cfg, log, withMetrics, nil)
}

// buildFrom builds an app to replace prev (a reloaded config): the store
// prev opened is shared, not opened again.
func buildFrom(cfg Config, log *slog.Logger, withMetrics bool, prev *app) (_ *app, err error) {
	a := &app{cfg: cfg, log: log, registry: prometheus.NewRegistry()}
	b := &builder{a: a, cfg: &a.cfg, log: log}
	if prev != nil {
		b.inherit = prev.store
	}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	var em *enrich.Metrics
	if withMetrics {
		// Process and build metrics are serve's (newBaseRegistry): they
		// outlive a reload.
		b.reg = a.registry
		em = enrich.NewMetrics(a.registry)
	}
	for _, p := range a.cfg.inputs() {
		if err := p.build(b); err != nil {
			return nil, err
		}
	}
	resolver, err := enrich.NewResolver(cfg.Rules, b.resolvers...)
	if err != nil {
		return nil, err
	}
	if len(cfg.Clusters) > 0 {
		clusters, err := enrich.NewClusters(cfg.ClusterLabel, cfg.Clusters.specs())
		if err != nil {
			return nil, err
		}
		resolver.WithClusters(clusters)
	}
	a.enricher = enrich.New(cfg.Enrich, resolver, a.entries, em).WithLog(log)
	b.onClose(func() error { a.enricher.StopProbes(); return nil })
	for _, p := range a.cfg.outputs() {
		if err := p.build(b); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// syncGrace is how long readiness waits for a cluster's first sync.
func (a *app) syncGrace() time.Duration {
	grace := time.Duration(0)
	for _, cl := range a.cfg.Clusters {
		grace = max(grace, cl.Kubernetes.SyncTimeout)
	}
	return grace
}

// start starts every source that needs it, bounded by ctx.
func (a *app) start(ctx context.Context) error {
	a.started = time.Now()
	for _, e := range a.entries {
		if s, ok := e.Source.(sources.Starter); ok {
			if err := s.Start(ctx); err != nil {
				return fmt.Errorf("start source %s: %w", e.Source.Name(), err)
			}
		}
	}
	return nil
}

// startOneShot starts the sources for one answer (explain, timeline) and
// waits, bounded, for the Kubernetes caches.
func (a *app) startOneShot(ctx context.Context) error {
	if err := a.start(ctx); err != nil {
		return err
	}
	for _, k := range a.kubes {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		synced := k.WaitForSync(wctx)
		cancel()
		if !synced {
			return fmt.Errorf("%s: caches did not sync within 30s (is the API server reachable?)", k.Name())
		}
	}
	return nil
}

// ready is /readyz: every source that syncs has synced. A cluster of
// several is waited for only its first sync_timeout: one unreachable
// cluster must not take whatchanged out of service for the others (its
// alerts say so in whatchanged_error).
func (a *app) ready() (bool, string) {
	var waiting []string
	for _, e := range a.entries {
		s, ok := e.Source.(sources.Starter)
		if !ok || s.Ready() {
			continue
		}
		if _, bound := sources.ClusterOf(e.Source); bound && time.Since(a.started) > a.syncGrace() {
			continue
		}
		waiting = append(waiting, e.Source.Name())
	}
	if len(waiting) > 0 {
		return false, "waiting for sources: " + strings.Join(waiting, ", ")
	}
	return true, ""
}
