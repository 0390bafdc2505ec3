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
	}
	reg.MustRegister(m.notifications, m.delivery)
	return m
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
