package enrich

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics of the pipeline. A nil *Metrics records nothing (tests, explain).
type Metrics struct {
	enrichDuration prometheus.Histogram
	sourceCalls    *prometheus.CounterVec
	sourceDuration *prometheus.HistogramVec
	sourceUp       *prometheus.GaugeVec
}

// NewMetrics registers the pipeline's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		enrichDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "whatchanged_enrich_duration_seconds",
			Help:    "Time to enrich one notification (all alerts, all sources).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		sourceCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "whatchanged_source_calls_total",
			Help: "Queries to each source; down: answered at once, without asking a source that is not answering. By outcome (ok, error, timeout, down).",
		}, []string{"source", "outcome"}),
		sourceDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "whatchanged_source_duration_seconds",
			Help:    "Time a source took to answer one query.",
			Buckets: []float64{.0001, .0005, .001, .005, .01, .05, .1, .25, .5, 1, 2.5},
		}, []string{"source"}),
		sourceUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "whatchanged_source_up",
			Help: "1 while a source answers, 0 while it is down (its queries timed out in a row; it is probed in the background and not asked). cluster: the cluster a source reads, when several are configured.",
		}, []string{"source", "cluster"}),
	}
	reg.MustRegister(m.enrichDuration, m.sourceCalls, m.sourceDuration, m.sourceUp)
	return m
}

func (m *Metrics) sourceCall(source, outcome string, took time.Duration) {
	if m == nil {
		return
	}
	m.sourceCalls.WithLabelValues(source, outcome).Inc()
	if outcome != "down" { // not called: no time to observe
		m.sourceDuration.WithLabelValues(source).Observe(took.Seconds())
	}
}

func (m *Metrics) sourceIsUp(source, cluster string, up bool) {
	if m == nil {
		return
	}
	v := 0.0
	if up {
		v = 1
	}
	m.sourceUp.WithLabelValues(source, cluster).Set(v)
}

func (m *Metrics) enriched(took time.Duration) {
	if m == nil {
		return
	}
	m.enrichDuration.Observe(took.Seconds())
}
