package server

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/whatchanged/whatchanged/enrich/deliver"
)

// Metrics of the HTTP surface. A nil *Metrics records nothing.
type Metrics struct {
	notifications *prometheus.CounterVec
	delivery      *prometheus.HistogramVec
	shed          *prometheus.CounterVec
	inflight      prometheus.Gauge
	writeFailed   *prometheus.CounterVec
}

// NewMetrics registers the server's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "whatchanged_notifications_total",
			Help: "Webhook notifications by route and outcome (delivered, fallback, kept, retry, rejected, bad_request, unknown_route).",
		}, []string{"route", "outcome"}),
		delivery: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "whatchanged_delivery_duration_seconds",
			Help:    "Time to deliver one notification downstream, including a fallback resend.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "whatchanged_requests_shed_total",
			Help: "Requests answered 503 with Retry-After because server.max_inflight_bytes of bodies were already being handled.",
		}, []string{"path"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "whatchanged_inflight_bytes",
			Help: "Bytes of request bodies being handled now (their declared or maximum size).",
		}),
		writeFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "whatchanged_response_write_failures_total",
			Help: "Responses that could not be written (the sender had gone, or the write timeout passed).",
		}, []string{"path"}),
	}
	reg.MustRegister(m.notifications, m.delivery, m.shed, m.inflight, m.writeFailed)
	return m
}

func (m *Metrics) shedRequest(path string) {
	if m != nil {
		m.shed.WithLabelValues(path).Inc()
	}
}

func (m *Metrics) inflightBytes(delta int64) {
	if m != nil {
		m.inflight.Add(float64(delta))
	}
}

func (m *Metrics) writeFailure(path string) {
	if m != nil {
		m.writeFailed.WithLabelValues(path).Inc()
	}
}

func (m *Metrics) notification(route, outcome string) {
	if m != nil {
		m.notifications.WithLabelValues(route, outcome).Inc()
	}
}

func (m *Metrics) delivered(route string, o deliver.Outcome, took time.Duration) {
	if m != nil {
		m.notifications.WithLabelValues(route, string(o)).Inc()
		m.delivery.WithLabelValues(route).Observe(took.Seconds())
	}
}
