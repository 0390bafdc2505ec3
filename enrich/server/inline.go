package server

import (
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/whatchanged/whatchanged/enrich"
)

// inlineAlerts is POST /api/v2/alerts in inline mode: Prometheus posts here
// instead of to Alertmanager. Firing alerts are enriched; resolved ones are
// forwarded without lookups. A body we cannot decode is forwarded untouched:
// Alertmanager is the authority on what is valid, and we lose nothing.
func (s *Server) inlineAlerts(c *gin.Context) {
	original, ok := s.readBody(c)
	if !ok {
		s.deps.Metrics.notification("inline", "bad_request")
		return
	}
	enriched := original
	alerts, err := enrich.DecodeAlerts(original)
	if err != nil {
		s.deps.Log.Warn("inline: cannot decode alerts; forwarding them unchanged", "err", err)
	} else {
		now := time.Now()
		s.deps.Enricher.Enrich(c.Request.Context(), alerts, func(a *enrich.Alert) string {
			if !a.Firing(now) {
				return "resolved"
			}
			return ""
		})
		if b, err := enrich.EncodeAlerts(alerts); err == nil {
			enriched = b
		} else {
			s.deps.Log.Error("inline: encode enriched alerts; forwarding the originals", "err", err)
		}
	}

	res := s.deps.Alertmanagers.PostAlerts(c.Request.Context(), enriched, original)
	outcome := "delivered"
	switch res.Status {
	case http.StatusBadRequest:
		outcome = "rejected"
	case http.StatusServiceUnavailable:
		outcome = "retry"
	}
	s.deps.Metrics.notification("inline", outcome)
	if outcome != "delivered" {
		s.deps.Log.Warn("inline: alerts not accepted by every upstream", "alerts", len(alerts), "status", res.Status,
			"upstreams", strings.Join(res.PerUpstream, "; "))
	} else {
		s.deps.Log.Debug("inline: alerts forwarded", "alerts", len(alerts), "upstreams", strings.Join(res.PerUpstream, "; "))
	}
	ctype := res.ContentType
	if ctype == "" {
		ctype = "application/json"
	}
	c.Data(res.Status, ctype, res.Body)
}
