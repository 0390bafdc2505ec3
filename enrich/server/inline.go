package server

import (
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/whatchanged/whatchanged/enrich"
)

// inlineAlerts is POST /api/v2/alerts in inline mode: Prometheus posts here
// instead of to Alertmanager. Firing alerts are enriched; resolved ones are
// forwarded without lookups. A body we cannot decode is forwarded untouched:
// Alertmanager is the authority on what is valid, and we lose nothing.
// Alertmanager's refusal of the alerts themselves goes back as it gave it:
// when no upstream took them and one answered a 4xx about them (400, 422,
// …; see deliver.PostAlerts), that status and body are the answer. A 503
// would tell the sender to try again a batch that can never pass, and
// Prometheus's log would show an outage instead of the reason.
func (s *Server) inlineAlerts(c *gin.Context) {
	original, ok := s.readJSON(c)
	if !ok {
		s.d().Metrics.notification("inline", "bad_request")
		return
	}
	enriched := original
	alerts, err := enrich.DecodeAlerts(original)
	if err != nil {
		s.d().Log.Warn("inline: cannot decode alerts; forwarding them unchanged", "err", err)
	} else {
		now := time.Now()
		ectx, cancel := s.enrichContext(c)
		defer cancel()
		s.d().Enricher.Annotate(ectx, alerts, func(a *enrich.Alert) string {
			if !a.Firing(now) {
				return "resolved"
			}
			return ""
		})
		if b, err := enrich.EncodeAlerts(alerts); err == nil {
			enriched = b
		} else {
			s.d().Log.Error("inline: encode enriched alerts; forwarding the originals", "err", err)
		}
	}

	res := s.d().Alertmanagers.PostAlerts(c.Request.Context(), enriched, original)
	outcome := "delivered"
	switch {
	case res.Status >= 400 && res.Status < 500:
		outcome = "rejected"
	case res.Status >= 500:
		outcome = "retry"
	}
	s.d().Metrics.notification("inline", outcome)
	if outcome != "delivered" {
		s.d().Log.Warn("inline: alerts not accepted by every upstream", "alerts", len(alerts), "status", res.Status,
			"upstreams", strings.Join(res.PerUpstream, "; "))
	} else {
		s.d().Log.Debug("inline: alerts forwarded", "alerts", len(alerts), "upstreams", strings.Join(res.PerUpstream, "; "))
	}
	ctype := res.ContentType
	if ctype == "" {
		ctype = "application/json"
	}
	c.Data(res.Status, ctype, res.Body)
	s.d().History.Observe("inline", s.d().Enricher.AnnotationPrefix(), alerts)
}
