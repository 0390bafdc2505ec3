package main

import (
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/whatchanged/whatchanged/enrich"
	"github.com/whatchanged/whatchanged/sources"
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
func (c *Config) outputs() []part { return []part{&c.Downstreams, &c.Inline} }

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

// store is the embedded store in data_dir, opened once for whoever needs it
// (pushed changes, Slack threads); it holds a file lock.
func (b *builder) store() (*store.Bolt, error) {
	if b.a.store == nil {
		if b.cfg.DataDir == "" {
			return nil, errors.New("data_dir is required for the embedded store")
		}
		st, err := store.OpenBolt(b.cfg.DataDir, 2*time.Second)
		if err != nil {
			return nil, err
		}
		b.a.store = st
		b.onClose(st.Close)
	}
	return b.a.store, nil
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
