package main

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/whatchanged/whatchanged/sources/grafana"
)

// GrafanaSourceConfig: annotations that CI, Argo CD notifications or Flux
// write to Grafana, mapped to alert subjects by their tags. Credentials: a
// service-account token (Viewer) in http_config.authorization. Off unless
// enabled.
type GrafanaSourceConfig struct {
	Enabled        bool       `yaml:"enabled"`
	HTTPConfig     HTTPConfig `yaml:"http_config"`
	grafana.Config `yaml:",inline"`
}

func (*GrafanaSourceConfig) key() string { return "sources.grafana" }

func (g *GrafanaSourceConfig) finish(_ *Config, p problems) {
	if !g.Enabled {
		return
	}
	finishSource(g, g.HTTPConfig, p)
	if !hasAuthorization(g.HTTPConfig) {
		p.bad("http_config.authorization", "required (a service-account token with the Viewer role, e.g. credentials_file)")
	}
}

func (g *GrafanaSourceConfig) build(b *builder) error {
	if !g.Enabled {
		return nil
	}
	rt, err := roundTripper(g.HTTPConfig, "grafana")
	if err != nil {
		return err
	}
	src, err := grafana.New("grafana", g.Config, &http.Client{Transport: rt}, b.log)
	if err != nil {
		return err
	}
	b.addSource(src, g.Timeout)
	b.register(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "whatchanged_grafana_requests_total", Help: "Requests sent to Grafana's annotations API.",
		}, func() float64 { return float64(src.Stats().Requests) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "whatchanged_grafana_request_failures_total", Help: "Reads of Grafana's annotations that failed (the last good read is answered meanwhile).",
		}, func() float64 { return float64(src.Stats().Failures) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "whatchanged_grafana_annotations", Help: "Grafana annotations held that a rule maps to a subject.",
		}, func() float64 { return float64(src.Stats().Changes) }),
	)
	return nil
}
