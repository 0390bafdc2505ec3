package main

import (
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/whatchanged/whatchanged/enrich"
	"github.com/whatchanged/whatchanged/sources"
	"github.com/whatchanged/whatchanged/sources/sharedcache"
	"github.com/whatchanged/whatchanged/sources/store"
)

// A part is one piece of the composition root with its own config section:
// a source, the downstreams, the inline proxy. Each keeps its config type,
// its defaults and validation (finish) and its wiring (build) in its own
// file, so adding a source is that file plus one line in
// SourcesConfig.parts (and its field in SourcesConfig).
type part interface {
	// key is the config section, e.g. "sources.github".
	key() string
	// finish applies defaults, reads secret files and reports problems with
	// keys relative to the section. It runs even when the part is off.
	finish(c *Config, p problems)
	// build wires the part into the app; it does no network I/O.
	build(b *builder) error
}

// SourcesConfig is the sources section; each source is off unless enabled
// (pushed changes: on unless disabled).
type SourcesConfig struct {
	Changes    ChangesSourceConfig    `yaml:"changes"`
	Kubernetes KubernetesSourceConfig `yaml:"kubernetes"`
	GitHub     GitHubSourceConfig     `yaml:"github"`
	ArgoCD     ArgoCDSourceConfig     `yaml:"argocd"`
	Grafana    GrafanaSourceConfig    `yaml:"grafana"`
}

// parts lists the sources in the order subject resolvers are asked in.
func (s *SourcesConfig) parts() []part {
	return []part{&s.Changes, &s.Kubernetes, &s.GitHub, &s.ArgoCD, &s.Grafana}
}

// outputs are where enriched notifications and alerts go.
func (c *Config) outputs() []part { return []part{&c.Downstreams, &c.Inline, &c.Timeline} }

// inputs are the sources and the clusters' sources.
func (c *Config) inputs() []part { return append(c.Sources.parts(), &c.Clusters) }

// parts is every part: the inputs, then the outputs.
func (c *Config) parts() []part { return append(c.inputs(), c.outputs()...) }

// builder is what parts build into: the app, plus what is shared while
// building (the metrics registry, the subject resolvers, the store).
type builder struct {
	a   *app
	cfg *Config
	log *slog.Logger
	// reg is nil for one-shot commands (explain), which export no metrics.
	reg       prometheus.Registerer
	resolvers []sources.SubjectResolver
	// inherit is the store of the app being replaced (a reload).
	inherit store.Store
}

// addSource asks src within its timeout on every alert.
func (b *builder) addSource(src sources.Source, timeout time.Duration) {
	b.a.entries = append(b.a.entries, enrich.SourceEntry{Source: src, Timeout: timeout})
	if r, ok := src.(sources.SubjectResolver); ok {
		b.resolvers = append(b.resolvers, r)
	}
}

// onClose registers cleanup, run in reverse order by app.close.
func (b *builder) onClose(f func() error) { b.a.closers = append(b.a.closers, f) }

// store is where state lives, opened once for whoever needs it (pushed
// changes, Slack threads, the alert history): Redis when configured,
// shared by the replicas; else the embedded store in data_dir, which holds
// a file lock.
func (b *builder) store() (store.Store, error) {
	if b.a.store == nil {
		st := b.inherit
		if st == nil {
			var err error
			switch {
			case b.cfg.Redis != nil:
				redis.SetLogger(redisLog{b.log}) // process-wide: the client has no per-client logger
				st, err = store.NewRedis(*b.cfg.Redis)
			case b.cfg.DataDir == "":
				return nil, errors.New("data_dir (or redis) is required for the state store")
			default:
				st, err = store.OpenBolt(b.cfg.DataDir, 2*time.Second)
			}
			if err != nil {
				return nil, err
			}
			b.a.ownsStore = true
		}
		b.a.store = st
		a := b.a
		b.onClose(func() error { // an inherited store once taken over (a reload)
			if a.ownsStore {
				return st.Close()
			}
			return nil
		})
	}
	return b.a.store, nil
}

// shared reports whether the store is shared with other replicas.
func (b *builder) shared() bool { return b.cfg.Redis != nil }

// pollOnce wraps a polling source's transport so replicas sharing Redis
// share its answers: an answer one replica fetched serves the others for
// fresh, and a stale one is revalidated by one replica only. identity names
// the credentials (hashed into the cache key, never stored): two tokens
// never share an answer. Without Redis, rt as is.
func (b *builder) pollOnce(rt http.RoundTripper, source string, fresh time.Duration, maxBody int64, identity string) (http.RoundTripper, error) {
	if !b.shared() {
		return rt, nil
	}
	st, err := b.store()
	if err != nil {
		return nil, err
	}
	r, ok := st.(*store.Redis)
	if !ok {
		return rt, nil
	}
	tr, err := sharedcache.New(r.Client(), rt, sharedcache.Options{Fresh: fresh, MaxBody: maxBody, Log: b.log,
		Prefix:      b.cfg.Redis.KeyPrefix + "http:", // within the installation's keys (ACLs, clean-up)
		Credentials: func(*http.Request) string { return identity }})
	if err != nil {
		return nil, err
	}
	b.register(sharedCacheMetrics(source, tr)...)
	return tr, nil
}

// register adds collectors when metrics are exported.
func (b *builder) register(cs ...prometheus.Collector) {
	if b.reg != nil {
		b.reg.MustRegister(cs...)
	}
}

// close runs the cleanups in reverse order of registration.
func (a *app) close() {
	for _, f := range slices.Backward(a.closers) {
		if err := f(); err != nil {
			a.log.Warn("close", "err", err)
		}
	}
	a.closers = nil
}
