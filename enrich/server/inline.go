package server

import (
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/common/model"

	"github.com/whatchanged/whatchanged/enrich"
)

// routeInline adds inline mode's routes to r: POST {prefix}/api/v2/alerts
// is enriched and forwarded, every other path under the prefix is proxied
// to Alertmanager. ownFirst is for the main listener, where whatchanged's
// own paths (ownPath) are never Alertmanager's, even with another method.
func (s *Server) routeInline(r *gin.Engine, ownFirst bool) {
	prefix := "/" + strings.Trim(s.cfg.InlinePrefix, "/")
	proxy := gin.WrapH(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*s.proxy.Load()).ServeHTTP(w, r) }))
	alertsPath := strings.TrimSuffix(prefix, "/") + "/api/v2/alerts"
	r.POST(alertsPath, s.authenticate, s.admit, s.inlineAlerts)
	r.GET(alertsPath, s.authenticate, proxy) // alert queries (amtool alert query)
	// Everything else Alertmanager serves (status, silences, UI) is proxied.
	r.HandleMethodNotAllowed = false
	r.NoRoute(func(c *gin.Context) {
		if ownFirst && ownPath(c.Request.URL.Path) { // another method on one of ours: never Alertmanager's
			fail(c, http.StatusMethodNotAllowed, c.Request.Method+" is not allowed on "+c.Request.URL.Path)
			return
		}
		if p := c.Request.URL.Path; prefix != "/" && p != prefix && !strings.HasPrefix(p, prefix+"/") {
			fail(c, http.StatusNotFound, "no such endpoint: "+c.Request.Method+" "+c.Request.URL.Path)
			return
		}
		s.authenticate(c)
		if c.IsAborted() {
			return
		}
		proxy(c)
	})
}

// InlineHTTPServer is HTTPServer for InlineHandler on its own address
// (inline.listen).
func (s *Server) InlineHTTPServer(listen string, writeTimeout time.Duration) *http.Server {
	srv := s.HTTPServer(writeTimeout)
	srv.Addr, srv.Handler = listen, s.InlineHandler()
	return srv
}

// inlineAlerts is POST /api/v2/alerts in inline mode: Prometheus posts here
// instead of to Alertmanager. Firing alerts are enriched; resolved ones are
// forwarded without lookups, with the annotations of ours they had while
// firing (see firingAnnotations). A body we cannot decode is forwarded
// untouched: Alertmanager is the authority on what is valid, and we lose
// nothing. Alertmanager's refusal of the alerts themselves goes back as it
// gave it: when no upstream took them and one answered a 4xx about them
// (400, 422, …; see deliver.PostAlerts), that status and body are the
// answer. A 503 would tell the sender to try again a batch that can never
// pass, and Prometheus's log would show an outage instead of the reason.
func (s *Server) inlineAlerts(c *gin.Context) {
	original, ok := s.readJSON(c)
	if !ok {
		s.d().Metrics.notification("inline", "bad_request")
		return
	}
	enriched := original
	alerts, err := enrich.DecodeAlerts(original)
	// An inline post is a batch of Prometheus's alerts, of no group and no
	// receiver yet (Alertmanager decides them): its lines carry them empty,
	// so every notification line has the same keys, and the count.
	log := s.d().Log.With(append(notificationAttrs("", "", len(alerts)), "route", "inline")...)
	if err != nil {
		log.Warn("inline: cannot decode alerts; forwarding them unchanged", "err", err)
	} else {
		now := time.Now()
		ectx, cancel := s.enrichContext(c)
		defer cancel()
		prefix := s.d().Enricher.AnnotationPrefix()
		fps := make([]string, len(alerts))
		for i, a := range alerts {
			fps[i] = fingerprint(a)
		}
		s.d().Enricher.Annotate(ectx, alerts, func(a *enrich.Alert) string {
			if !a.Firing(now) {
				return "resolved"
			}
			return ""
		})
		for i, a := range alerts {
			if a.Firing(now) {
				s.firing.remember(fps[i], prefix, a)
			} else if s.firing.restore(fps[i], prefix, a) {
				log.Debug("inline: resolved alert keeps the annotations it had while firing", "fingerprint", fps[i])
			}
		}
		if b, err := enrich.EncodeAlerts(alerts); err == nil {
			enriched = b
		} else {
			log.Error("inline: encode enriched alerts; forwarding the originals", "err", err)
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
		log.Warn("inline: alerts not accepted by every upstream", "status", res.Status,
			"upstreams", strings.Join(res.PerUpstream, "; "))
	} else {
		log.Debug("inline: alerts forwarded", "upstreams", strings.Join(res.PerUpstream, "; "))
	}
	ctype := res.ContentType
	if ctype == "" {
		ctype = "application/json"
	}
	c.Data(res.Status, ctype, res.Body)
	s.d().History.Observe("inline", s.d().Enricher.AnnotationPrefix(), alerts)
}

// notificationAttrs are the attributes every log line about one
// notification carries, so its lines can be found together: groupKey,
// receiver and the number of alerts. Lines about one alert add its
// fingerprint.
func notificationAttrs(groupKey, receiver string, alerts int) []any {
	return []any{slog.String("groupKey", groupKey), slog.String("receiver", receiver), slog.Int("alerts", alerts)}
}

// fingerprint is Alertmanager's fingerprint of the alert: the one it was
// sent with, or for a postable alert (Prometheus sends none) the hash of
// its labels, as Alertmanager computes it.
func fingerprint(a *enrich.Alert) string {
	if a.Fingerprint != "" {
		return a.Fingerprint
	}
	ls := make(model.LabelSet, len(a.Labels))
	for k, v := range a.Labels {
		ls[model.LabelName(k)] = model.LabelValue(v)
	}
	return ls.Fingerprint().String()
}

// firingMemory is how many alerts' annotations firingAnnotations keeps:
// a few KiB each, so a few tens of MiB at most; an alert beyond it resolves
// without ours, as before.
const firingMemory = 10_000

// firingAnnotations remembers, by fingerprint, the annotations of ours each
// firing alert was last forwarded with. Prometheus's resolved post of an
// alert replaces its annotations in Alertmanager; without ours, receivers'
// resolved messages would no longer say what was suspected. It lives in
// memory: a replica that never saw the alert fire (a restart, another
// replica behind a load balancer) forwards the resolved alert without ours.
type firingAnnotations struct {
	cache *lru.Cache[string, map[string]string]
}

func newFiringAnnotations(size int) *firingAnnotations {
	c, _ := lru.New[string, map[string]string](size) // errors only on size <= 0
	return &firingAnnotations{cache: c}
}

// remember keeps ours of a firing alert. An answer that is only the budget
// error does not replace an earlier, full one: Prometheus re-sends firing
// alerts every minute and one slow pass should not lose the suspect.
func (f *firingAnnotations) remember(fp, prefix string, a *enrich.Alert) {
	ours := map[string]string{}
	for k, v := range a.Annotations {
		if strings.HasPrefix(k, prefix) {
			ours[k] = v
		}
	}
	if len(ours) == 0 {
		return
	}
	if ours[prefix+enrich.AnnSummary] == "" {
		if _, ok := f.cache.Peek(fp); ok {
			return
		}
	}
	f.cache.Add(fp, ours)
}

// restore gives a resolved alert ours from its firing, unless it carries
// annotations of ours itself (the sender's word wins).
func (f *firingAnnotations) restore(fp, prefix string, a *enrich.Alert) bool {
	for k := range a.Annotations {
		if strings.HasPrefix(k, prefix) {
			return false
		}
	}
	ours, ok := f.cache.Get(fp)
	if !ok {
		return false
	}
	if a.Annotations == nil {
		a.Annotations = make(map[string]string, len(ours))
	}
	maps.Copy(a.Annotations, ours)
	return true
}
