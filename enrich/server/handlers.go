package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/whatchanged/whatchanged/enrich"
	"github.com/whatchanged/whatchanged/enrich/deliver"
	"github.com/whatchanged/whatchanged/sources/changes"
)

const defaultRoute = "default"

// webhook enriches one Alertmanager notification and delivers it. The
// answer follows Alertmanager's retry rules: 200 when delivered, 5xx when
// Alertmanager should try again, 4xx only for a body that can never work.
func (s *Server) webhook(c *gin.Context) {
	route := c.Param("route")
	if route == "" {
		route = defaultRoute
	}
	target, ok := s.deps.Targets[route]
	if !ok {
		s.deps.Metrics.notification(route, "unknown_route")
		fail(c, http.StatusNotFound, fmt.Sprintf("no downstream named %q is configured (downstreams: in the config)", route))
		return
	}
	original, ok := s.readBody(c)
	if !ok {
		s.deps.Metrics.notification(route, "bad_request")
		return
	}
	payload, err := enrich.DecodeWebhook(original)
	if err != nil {
		s.deps.Metrics.notification(route, "bad_request")
		fail(c, http.StatusBadRequest, err.Error())
		return
	}
	report := s.deps.Enricher.Enrich(c.Request.Context(), payload.Alerts, nil)
	enriched, err := payload.Encode()
	if err != nil { // cannot happen for decoded input; never lose the alert over it
		s.deps.Log.Error("encode enriched payload; sending the original", "err", err)
		enriched = original
	}

	start := time.Now()
	res := target.Deliver(c.Request.Context(), enriched, original)
	s.deps.Metrics.delivered(route, res.Outcome, time.Since(start))

	attrs := []any{"route", route, "groupKey", payload.GroupKey, "alerts", len(payload.Alerts),
		"outcome", res.Outcome, "downstream_status", res.Status, "enrich_duration", report.Duration}
	switch res.Outcome {
	case deliver.Retry, deliver.Rejected:
		s.deps.Log.Warn("delivery failed; asking Alertmanager to retry", append(attrs, "err", res.Err)...)
	case deliver.Fallback:
		s.deps.Log.Warn("downstream rejected the enriched notification; delivered the original", append(attrs, "err", res.Err)...)
	default:
		s.deps.Log.Debug("notification delivered", attrs...)
	}
	body := gin.H{"status": res.Outcome, "alerts": len(payload.Alerts)}
	if res.Status != 0 {
		body["downstreamStatus"] = res.Status
	}
	if res.Err != nil {
		body["error"] = res.Err.Error()
	}
	c.JSON(res.HTTPStatus(), body)
}

// debugEnrich shows what would be attached and why, and never delivers. It
// takes a webhook payload, a postable-alerts array, or one {"labels": …}.
func (s *Server) debugEnrich(c *gin.Context) {
	body, ok := s.readBody(c)
	if !ok {
		return
	}
	var (
		alerts  []*enrich.Alert
		payload *enrich.Payload
		err     error
	)
	trimmed := bytes.TrimSpace(body)
	switch {
	case bytes.HasPrefix(trimmed, []byte("[")):
		alerts, err = enrich.DecodeAlerts(body)
	default:
		var probe map[string]json.RawMessage
		if json.Unmarshal(body, &probe) == nil && probe["alerts"] != nil {
			payload, err = enrich.DecodeWebhook(body)
			if err == nil {
				alerts = payload.Alerts
			}
		} else {
			alerts, err = enrich.DecodeAlerts(append(append([]byte("["), body...), ']'))
		}
	}
	if err != nil {
		fail(c, http.StatusBadRequest, err.Error()+` (send a webhook payload, an array of alerts, or {"labels":{…}})`)
		return
	}
	report := s.deps.Enricher.Enrich(c.Request.Context(), alerts, nil)
	out := gin.H{"explanation": report}
	if payload != nil {
		out["payload"] = payload
	} else {
		out["alerts"] = alerts
	}
	c.JSON(http.StatusOK, out)
}

// recordChange stores one change pushed by CI: 201 when new, 200 when the
// same id was recorded before.
func (s *Server) recordChange(c *gin.Context) {
	if s.deps.Changes == nil {
		fail(c, http.StatusNotFound, "the pushed-changes source is not enabled (sources.changes in the config)")
		return
	}
	body, ok := s.readBody(c)
	if !ok {
		return
	}
	ev, err := changes.DecodeEvent(bytes.NewReader(body))
	if err == nil {
		var ch any
		var created bool
		ch, created, err = s.deps.Changes.Record(c.Request.Context(), ev)
		if err == nil {
			status := http.StatusOK
			if created {
				status = http.StatusCreated
			}
			c.JSON(status, gin.H{"created": created, "change": ch})
			return
		}
	}
	var fe *changes.FieldError
	if errors.As(err, &fe) {
		c.AbortWithStatusJSON(http.StatusBadRequest, errorBody{Error: fe.Error(), Field: fe.Field})
		return
	}
	s.deps.Log.Error("record pushed change", "err", err)
	fail(c, http.StatusInternalServerError, "could not store the change; try again")
}

func (s *Server) listChanges(c *gin.Context) {
	if s.deps.Changes == nil {
		fail(c, http.StatusNotFound, "the pushed-changes source is not enabled")
		return
	}
	since := 24 * time.Hour
	if v := c.Query("since"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			fail(c, http.StatusBadRequest, "since: want a positive duration such as 6h")
			return
		}
		since = d
	}
	limit := 100
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			fail(c, http.StatusBadRequest, "limit: want a number from 1 to 10000")
			return
		}
		limit = n
	}
	list, err := s.deps.Changes.List(c.Request.Context(), time.Now().Add(-since), limit)
	if err != nil {
		fail(c, http.StatusInternalServerError, "list changes: "+err.Error())
		return
	}
	c.JSON(http.StatusOK, gin.H{"changes": list})
}

func (s *Server) listNotifications(c *gin.Context) {
	if s.deps.Keeper == nil {
		fail(c, http.StatusNotFound, "notifications are kept only when no downstream is configured")
		return
	}
	c.JSON(http.StatusOK, gin.H{"notifications": s.deps.Keeper.List()})
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
