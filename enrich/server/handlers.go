package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
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
	target, ok := s.d().Targets[route]
	if !ok {
		s.d().Metrics.notification(route, "unknown_route")
		fail(c, http.StatusNotFound, fmt.Sprintf("no downstream named %q is configured (downstreams: in the config)", route))
		return
	}
	original, ok := s.readJSON(c)
	if !ok {
		s.d().Metrics.notification(route, "bad_request")
		return
	}
	payload, err := enrich.DecodeWebhook(original)
	if err != nil {
		s.d().Metrics.notification(route, "bad_request")
		fail(c, http.StatusBadRequest, err.Error())
		return
	}
	log := s.d().Log.With(append(notificationAttrs(payload.GroupKey, payload.Receiver, len(payload.Alerts)), "route", route)...)
	ectx, cancel := s.enrichContext(c)
	took := s.d().Enricher.Annotate(ectx, payload.Alerts, nil)
	cancel()
	enriched, err := payload.Encode()
	if err != nil { // cannot happen for decoded input; never lose the alert over it
		log.Error("encode enriched payload; sending the original", "err", err)
		enriched = original
	}

	start := time.Now()
	res := target.Deliver(c.Request.Context(), enriched, original)
	s.d().Metrics.delivered(route, res.Outcome, time.Since(start))

	attrs := []any{"outcome", res.Outcome, "downstream_status", res.Status, "enrich_duration", took}
	switch res.Outcome {
	case deliver.Retry, deliver.Rejected:
		log.Warn("delivery failed; asking Alertmanager to retry", append(attrs, "err", res.Err)...)
	case deliver.Fallback:
		log.Warn("downstream rejected the enriched notification; delivered the original", append(attrs, "err", res.Err)...)
	default:
		log.Debug("notification delivered", attrs...)
	}
	body := gin.H{"status": res.Outcome, "alerts": len(payload.Alerts)}
	if res.Status != 0 {
		body["downstreamStatus"] = res.Status
	}
	if res.Err != nil {
		body["error"] = res.Err.Error()
	}
	s.answer(c, res.HTTPStatus(), body)
	// Answered: the history takes its copy without holding the answer.
	s.d().History.Observe("webhook "+route, s.d().Enricher.AnnotationPrefix(), payload.Alerts)
}

// debugEnrich shows what would be attached and why, and never delivers. It
// takes a webhook payload, a postable-alerts array, or one {"labels": …}.
func (s *Server) debugEnrich(c *gin.Context) {
	body, ok := s.readJSON(c)
	if !ok {
		return
	}
	var (
		alerts  []*enrich.Alert
		payload *enrich.Payload
		err     error
		// where names alert i's fields as the decoder does for its form.
		where = func(i int) string { return fmt.Sprintf("body[%d].", i) }
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
			where = func(i int) string { return fmt.Sprintf("alerts[%d].", i) }
		} else {
			alerts, err = enrich.DecodeAlerts(append(append([]byte("["), body...), ']'))
			where = func(int) string { return "" }
		}
	}
	if err != nil {
		fail(c, http.StatusBadRequest, err.Error()+` (send a webhook payload, an array of alerts, or {"labels":{…}})`)
		return
	}
	ectx, cancel := s.enrichContext(c)
	report := s.d().Enricher.Enrich(ectx, alerts, nil)
	cancel()
	// A window outside the years 0001-9999 is no real alert's, and past
	// 9999 it cannot be written as JSON (the answer would fail after its
	// status). The window is the enricher's to compute (look-back before
	// startsAt, look-ahead after, the alert's end), so its own answer is
	// checked, and the field that brought the time is named.
	for i, a := range report.Alerts {
		for _, t := range []time.Time{a.Window.Since, a.Window.StartsAt, a.Window.Until} {
			if y := t.Year(); y < 1 || y > 9999 {
				c.AbortWithStatusJSON(http.StatusBadRequest, errorBody{Field: where(i) + "startsAt", Error: fmt.Sprintf(
					"%sstartsAt: %s opens a window (%s to %s) outside the years 0001-9999; send a time of this era",
					where(i), alerts[i].StartsAt.Format(time.RFC3339), a.Window.Since.Format(time.RFC3339), a.Window.Until.Format(time.RFC3339))})
				return
			}
		}
	}
	out := gin.H{"explanation": report}
	if payload != nil {
		out["payload"] = payload
	} else {
		out["alerts"] = alerts
	}
	s.answer(c, http.StatusOK, out)
}

// recordChange stores one change pushed by CI: 201 when new, 200 when the
// same id was recorded before.
func (s *Server) recordChange(c *gin.Context) {
	s.record(c, func(body []byte) (changes.Event, error) { return changes.DecodeEvent(bytes.NewReader(body)) })
}

// recordFrom stores one change posted in a sender's own format (Flux,
// LaunchDarkly, …): the same answers as recordChange, and 202 for an
// event that is no change, so the sender does not retry it.
func (s *Server) recordFrom(c *gin.Context) {
	format := c.Param("format")
	if !slices.Contains(changes.Formats, format) {
		fail(c, http.StatusNotFound, fmt.Sprintf("no sender format %q; known: %s (or POST /api/v1/changes for the native format)",
			format, strings.Join(changes.Formats, ", ")))
		return
	}
	s.record(c, func(body []byte) (changes.Event, error) {
		if s.d().Changes.Signed(format) {
			sig := c.GetHeader(changes.SignatureHeader(format))
			if err := s.d().Changes.VerifySignature(format, body, sig); err != nil {
				return changes.Event{}, err
			}
		}
		return changes.DecodeFrom(format, body, c.Request.URL.Query())
	})
}

// authenticateSender: a sender whose signing secret is configured proves
// itself by its signature, checked once the body is read; any other
// needs the inbound credentials like the rest of /api/v1.
func (s *Server) authenticateSender(c *gin.Context) {
	if s.d().Changes != nil && s.d().Changes.Signed(c.Param("format")) {
		return
	}
	s.authenticate(c)
}

// record is the one path of a pushed change: read, decode, store, answer.
func (s *Server) record(c *gin.Context, decode func([]byte) (changes.Event, error)) {
	if s.d().Changes == nil {
		fail(c, http.StatusNotFound, "the pushed-changes source is not enabled (sources.changes in the config)")
		return
	}
	body, ok := s.readJSON(c)
	if !ok {
		return
	}
	ev, err := decode(body)
	if err == nil {
		var ch any
		var created bool
		ch, created, err = s.d().Changes.Record(c.Request.Context(), ev)
		if err == nil {
			status := http.StatusOK
			if created {
				status = http.StatusCreated
			}
			s.answer(c, status, gin.H{"created": created, "change": ch})
			return
		}
	}
	var fe *changes.FieldError
	switch {
	case errors.As(err, &fe):
		c.AbortWithStatusJSON(http.StatusBadRequest, errorBody{Error: fe.Error(), Field: fe.Field})
	case errors.Is(err, changes.ErrNotAChange):
		s.answer(c, http.StatusAccepted, gin.H{"created": false, "ignored": err.Error()})
	case errors.Is(err, changes.ErrBadSignature):
		fail(c, http.StatusUnauthorized, err.Error())
	default:
		// The store (Redis, the disk) failed: the sender retries a 503.
		s.d().Log.Error("record pushed change", "path", c.Request.URL.Path, "err", err)
		c.Header("Retry-After", "5")
		fail(c, http.StatusServiceUnavailable, "could not store the change; try again")
	}
}

func (s *Server) listChanges(c *gin.Context) {
	if s.d().Changes == nil {
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
	list, err := s.d().Changes.List(c.Request.Context(), time.Now().Add(-since), limit)
	if err != nil {
		fail(c, http.StatusInternalServerError, "list changes: "+err.Error())
		return
	}
	s.answer(c, http.StatusOK, gin.H{"changes": list})
}

func (s *Server) listNotifications(c *gin.Context) {
	if s.d().Keeper == nil {
		fail(c, http.StatusNotFound, "notifications are kept only when no downstream is configured")
		return
	}
	s.answer(c, http.StatusOK, gin.H{"notifications": s.d().Keeper.List()})
}

// answer writes v as JSON with status. It is encoded before anything is
// written: gin's c.JSON sends the status first, so a value that fails to
// encode would go out as that status with an empty body.
func (s *Server) answer(c *gin.Context, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.d().Log.Error("encode answer", "path", c.FullPath(), "err", err)
		fail(c, http.StatusInternalServerError, "cannot encode the answer: "+err.Error())
		return
	}
	c.Data(status, "application/json; charset=utf-8", b)
}

// readJSON reads the body of a POST, which must be JSON: any other
// Content-Type gets 415.
//
// Alertmanager's webhook notifier sends "application/json" (notify.PostJSON
// in notify/util.go, v0.31.1), and so does Prometheus's notifier
// (contentTypeJSON in notifier/notifier.go, set by sendOne); Alertmanager's
// own API answers 415 to anything else. A web page can POST
// text/plain, a form or multipart to any origin without asking (a CORS
// "simple request"); application/json only after a preflight, which
// whatchanged never allows: it answers OPTIONS without Access-Control-*
// headers, and the inline proxy drops Alertmanager's. So with no auth on
// 127.0.0.1, a page the user opens cannot push a fake "suspect" change.
func (s *Server) readJSON(c *gin.Context) ([]byte, bool) {
	ct := c.GetHeader("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	charset := strings.ToLower(params["charset"])
	if err != nil || mt != "application/json" || (charset != "" && charset != "utf-8" && charset != "utf8") {
		got := "none"
		if ct != "" {
			got = strconv.Quote(ct)
		}
		fail(c, http.StatusUnsupportedMediaType, "Content-Type must be application/json (UTF-8), got "+got+
			"; with curl: -H 'Content-Type: application/json'")
		return nil, false
	}
	return s.readBody(c)
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
