package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/whatchanged/whatchanged/enrich/server"
)

// reloader keeps the app serving requests and replaces it when the config
// is reloaded (SIGHUP or POST /-/reload, as Alertmanager does): a valid
// config builds a new app, started and given its first sync (bounded),
// which then takes the requests; requests under way finish on the old one,
// closed once they can no longer run. An invalid config is refused, logged,
// and the old one stays.
type reloader struct {
	ctx   context.Context // serve's: ends at shutdown
	flags commonFlags
	log   *slog.Logger
	srv   *server.Server
	// base holds what outlives an app: process and build metrics, the
	// server's and the reload's own.
	base       *prometheus.Registry
	srvMetrics *server.Metrics
	// drain is how long a replaced app is kept for requests under way.
	drain time.Duration

	mu     sync.Mutex // one reload at a time
	cur    *app
	cancel context.CancelFunc // the current app's background work

	ok, okAt prometheus.Gauge
}

// newBaseRegistry is the registry of what outlives a reload.
func newBaseRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	registerBuildInfo(reg)
	return reg
}

func newReloader(ctx context.Context, flags commonFlags, log *slog.Logger, base *prometheus.Registry) *reloader {
	r := &reloader{ctx: ctx, flags: flags, log: log, base: base, srvMetrics: server.NewMetrics(base),
		ok: prometheus.NewGauge(prometheus.GaugeOpts{Name: "whatchanged_config_last_reload_successful",
			Help: "1 when the last config reload worked (or none was asked), 0 when it was refused."}),
		okAt: prometheus.NewGauge(prometheus.GaugeOpts{Name: "whatchanged_config_last_reload_success_timestamp_seconds",
			Help: "When the config was last loaded successfully (start or reload)."}),
	}
	base.MustRegister(r.ok, r.okAt)
	r.ok.Set(1)
	r.okAt.SetToCurrentTime()
	return r
}

// first starts the app built at start-up.
func (r *reloader) first(a *app) error {
	ctx, cancel := context.WithCancel(r.ctx)
	if err := a.start(ctx); err != nil {
		cancel()
		return err
	}
	a.startHistory(ctx)
	r.cur, r.cancel = a, cancel
	return nil
}

// deps are what the server needs of an app.
func (r *reloader) deps(a *app) server.Deps {
	return server.Deps{
		Enricher: a.enricher, Targets: a.targets, Keeper: a.keeper, Changes: a.changes, Alertmanagers: a.alertmanagers,
		History: a.history, Timeline: a.timeline, UI: a.ui, Ready: a.ready,
		Gatherer: prometheus.Gatherers{r.base, a.registry}, Metrics: r.srvMetrics, Log: r.log, Reload: r.reload,
	}
}

// reload re-reads the config file and replaces the app; on error the old
// app stays.
func (r *reloader) reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	start := time.Now()
	if err := r.swap(); err != nil {
		r.ok.Set(0)
		r.log.Error("config reload refused; the previous config stays in use", "err", err)
		return err
	}
	r.ok.Set(1)
	r.okAt.SetToCurrentTime()
	r.log.Info("config reloaded", "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// readyWait bounds how long a reloaded app may take to sync before it takes
// the requests anyway (its sources then say they are not synced yet).
const readyWait = 30 * time.Second

func (r *reloader) swap() error {
	if r.flags.config == "" {
		return errors.New("nothing to reload: whatchanged runs on the embedded default config (no --config)")
	}
	cfg, err := r.flags.load()
	if err != nil {
		return err
	}
	if reflect.DeepEqual(r.cur.cfg, cfg) {
		return nil // the same config (a reloader's first call): nothing to rebuild
	}
	if changed := restartOnly(r.cur.cfg, cfg); len(changed) > 0 {
		return fmt.Errorf("%s changed, which needs a restart", strings.Join(changed, ", "))
	}
	next, err := buildFrom(cfg, r.log, true, r.cur)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(r.ctx)
	if err := next.start(ctx); err != nil {
		cancel()
		next.close()
		return err
	}
	next.startHistory(ctx)
	deadline := time.Now().Add(readyWait)
	for ok, why := next.ready(); !ok && time.Now().Before(deadline) && r.ctx.Err() == nil; ok, why = next.ready() {
		r.log.Debug("reloaded config: waiting for its sources", "why", why)
		time.Sleep(100 * time.Millisecond)
	}
	prev, prevCancel := r.cur, r.cancel
	next.ownsStore, prev.ownsStore = prev.ownsStore, false // the same store, now the new app's
	r.cur, r.cancel = next, cancel
	r.srv.SetDeps(r.deps(next))
	go func() {
		// Requests that started on the old app finish on it.
		select {
		case <-time.After(r.drain):
		case <-r.ctx.Done():
		}
		prevCancel()
		prev.close()
	}()
	return nil
}

// close stops the current app (at shutdown).
func (r *reloader) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancel != nil {
		r.cancel()
	}
	if r.cur != nil {
		r.cur.close()
	}
}

// restartOnly lists the settings a reload cannot change: the listener and
// its limits and auth, the store, logging, the inline mode's routes.
func restartOnly(old, cfg Config) []string {
	var changed []string
	for key, same := range map[string]bool{
		"listen":             old.Listen == cfg.Listen,
		"data_dir":           old.DataDir == cfg.DataDir,
		"redis":              reflect.DeepEqual(old.Redis, cfg.Redis),
		"log":                old.Log == cfg.Log,
		"server":             old.Server == cfg.Server,
		"auth":               reflect.DeepEqual(old.Auth, cfg.Auth),
		"inline.enabled":     old.Inline.Enabled == cfg.Inline.Enabled,
		"inline.path_prefix": old.Inline.PathPrefix == cfg.Inline.PathPrefix,
		"inline.listen":      old.Inline.Listen == cfg.Inline.Listen,
	} {
		if !same {
			changed = append(changed, key)
		}
	}
	slices.Sort(changed)
	return changed
}
