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
			Help: "Queries to each source by outcome (ok, error, timeout).",
		}, []string{"source", "outcome"}),
		sourceDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "whatchanged_source_duration_seconds",
			Help:    "Time a source took to answer one query.",
			Buckets: []float64{.0001, .0005, .001, .005, .01, .05, .1, .25, .5, 1, 2.5},
		}, []string{"source"}),
	}
	reg.MustRegister(m.enrichDuration, m.sourceCalls, m.sourceDuration)
	return m
}

func (m *Metrics) sourceCall(source, outcome string, took time.Duration) {
	if m == nil {
		return
	}
	m.sourceCalls.WithLabelValues(source, outcome).Inc()
	m.sourceDuration.WithLabelValues(source).Observe(took.Seconds())
}

func (m *Metrics) enriched(took time.Duration) {
	if m == nil {
		return
	}
	m.enrichDuration.Observe(took.Seconds())
}
