// Package server is whatchanged's HTTP surface: the webhook endpoints, the
// pushed-changes API, the debug API, health and metrics. It is the only
// package that imports gin.
package server

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/sync/semaphore"

	"github.com/whatchanged/whatchanged/enrich"
	"github.com/whatchanged/whatchanged/enrich/deliver"
	"github.com/whatchanged/whatchanged/enrich/history"
	"github.com/whatchanged/whatchanged/enrich/timeline"
	"github.com/whatchanged/whatchanged/sources/changes"
)

func init() { gin.SetMode(gin.ReleaseMode) }

// Auth is inbound authentication. Either or both may be set; a request
// passes with any configured credential.
type Auth struct {
	BearerToken   string
	BasicUser     string
	BasicPassword string
	// BearerTokenFile and BasicPasswordFile, when set, replace the values:
	// the files are read again when they change (a rotated Secret).
	BearerTokenFile   string
	BasicPasswordFile string
	ProtectMetrics    bool

	bearerFile, passwordFile *fileCredential
}

// Enabled reports whether any credential is configured.
func (a Auth) Enabled() bool {
	return a.BearerToken != "" || a.BearerTokenFile != "" || a.BasicUser != ""
}

func (a Auth) bearer() string {
	if a.bearerFile != nil {
		return a.bearerFile.get()
	}
	return a.BearerToken
}

func (a Auth) password() string {
	if a.passwordFile != nil {
		return a.passwordFile.get()
	}
	return a.BasicPassword
}

// Config of the server.
type Config struct {
	// Listen is the listen address; debug endpoints are refused on a
	// non-loopback address unless Auth is enabled.
	Listen       string
	Auth         Auth
	MaxBodyBytes int64
	// InlinePrefix is the path prefix of the inline Alertmanager API ("" for
	// none); used only when Deps.Alertmanagers is set.
	InlinePrefix string
	// MaxInflightBytes bounds the request bodies handled at once, each
	// counted at its declared size (the limit when unknown): memory grows
	// with them. Beyond it a request waits up to InflightWait for room,
	// then gets 503 with Retry-After, which Alertmanager and Prometheus
	// retry. Default 2 × MaxBodyBytes.
	MaxInflightBytes int64
	InflightWait     time.Duration // 0: answer 503 at once when full
	// EnrichWithin is how long after a request's arrival its enrichment
	// must end (the budget plus enrich.RenderGrace): decoding counts.
	EnrichWithin time.Duration
}

// Deps are the parts the handlers use.
type Deps struct {
	Enricher *enrich.Enricher
	// Targets by route name; "default" serves POST /webhook.
	Targets map[string]deliver.Target
	// Keeper, when set, backs GET /debug/notifications.
	Keeper *deliver.Keeper
	// Changes, when set, serves POST /api/v1/changes (and /changes/:format)
	// and GET /debug/changes.
	Changes *changes.Source
	// Alertmanagers, when set, turns on the inline mode: POST
	// {prefix}/api/v2/alerts is enriched and forwarded, every other unknown
	// path is proxied to the upstreams.
	Alertmanagers *deliver.Alertmanagers
	// History, when set, records every alert that passes (webhook, inline)
	// for the incident timeline, after the answer is decided.
	History *history.History
	// Timeline, when set, serves GET /api/v1/timeline.
	Timeline *timeline.Builder
	// UI, when set, is the timeline page, served at /ui/ under the debug
	// endpoints' rules (it shows alerts and change history).
	UI http.Handler
	// Ready reports readiness and, when not ready, why.
	Ready    func() (bool, string)
	Gatherer prometheus.Gatherer
	Metrics  *Metrics
	Log      *slog.Logger
	// Reload, when set, serves POST /-/reload: re-read the config and
	// replace what it builds (SetDeps), or keep the old one and say why.
	Reload func() error
}

// Server holds the router.
type Server struct {
	cfg Config
	// deps are replaced as a whole on a config reload; a request reads
	// them once it is admitted and keeps what it read.
	deps   atomic.Pointer[Deps]
	proxy  atomic.Pointer[http.Handler] // inline mode: to the current upstreams
	router *gin.Engine
	// inline mode: the Alertmanager-only router (InlineHandler), and ours
	// of firing alerts for their resolved posts.
	inline   *gin.Engine
	firing   *firingAnnotations
	inflight *semaphore.Weighted
}

// d is the current dependencies.
func (s *Server) d() *Deps { return s.deps.Load() }

// SetDeps replaces the dependencies (a reloaded config); requests under
// way finish with the ones they started with. Whether inline mode is on
// is fixed at New.
func (s *Server) SetDeps(d Deps) {
	if d.Alertmanagers != nil {
		prefix := strings.TrimSuffix("/"+strings.Trim(s.cfg.InlinePrefix, "/"), "/")
		h := d.Alertmanagers.Proxy(prefix, s.cfg.MaxBodyBytes)
		s.proxy.Store(&h)
	}
	s.deps.Store(&d)
}

// New builds the router.
func New(cfg Config, deps Deps) *Server {
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 8 << 20
	}
	if cfg.MaxInflightBytes == 0 {
		cfg.MaxInflightBytes = 2 * cfg.MaxBodyBytes
	}
	if cfg.EnrichWithin == 0 {
		cfg.EnrichWithin = time.Second + enrich.RenderGrace
	}
	if cfg.Auth.BearerTokenFile != "" {
		cfg.Auth.bearerFile = newFileCredential(cfg.Auth.BearerTokenFile)
	}
	if cfg.Auth.BasicPasswordFile != "" {
		cfg.Auth.passwordFile = newFileCredential(cfg.Auth.BasicPasswordFile)
	}
	s := &Server{cfg: cfg, router: gin.New(), inflight: semaphore.NewWeighted(cfg.MaxInflightBytes)}
	s.SetDeps(deps)
	r := s.router
	r.Use(s.recover, s.logRequests)
	r.NoRoute(func(c *gin.Context) {
		fail(c, http.StatusNotFound, "no such endpoint: "+c.Request.Method+" "+c.Request.URL.Path)
	})
	r.HandleMethodNotAllowed = true
	r.NoMethod(func(c *gin.Context) {
		fail(c, http.StatusMethodNotAllowed, c.Request.Method+" is not allowed on "+c.Request.URL.Path)
	})

	r.GET("/healthz", func(c *gin.Context) { c.String(http.StatusOK, "ok\n") })
	r.GET("/readyz", s.readyz)
	metrics := promhttp.HandlerFor(prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) { return s.d().Gatherer.Gather() }), promhttp.HandlerOpts{})
	if cfg.Auth.ProtectMetrics {
		r.GET("/metrics", s.authenticate, gin.WrapH(metrics))
	} else {
		r.GET("/metrics", gin.WrapH(metrics))
	}

	r.POST("/-/reload", s.authenticateUnlessLoopback, s.reload)
	r.POST("/webhook", s.authenticate, s.admit, s.webhook)
	r.POST("/webhook/:route", s.authenticate, s.admit, s.webhook)
	r.POST("/slack/actions", s.slackAction) // Slack's signature is its authentication

	api := r.Group("/api/v1", s.authenticate)
	api.POST("/changes", s.admit, s.recordChange)
	api.GET("/timeline", s.timeline)
	// Senders posting their own format; outside the group, as a signing
	// sender (LaunchDarkly) has no bearer token to send.
	r.POST("/api/v1/changes/:format", s.authenticateSender, s.admit, s.recordFrom)

	debug := r.Group("/debug", s.authenticate, s.debugAllowed)
	debug.POST("/enrich", s.admit, s.debugEnrich)
	debug.GET("/changes", s.listChanges)
	debug.GET("/notifications", s.listNotifications)

	r.GET("/ui", func(c *gin.Context) { c.Redirect(http.StatusMovedPermanently, "/ui/") })
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		r.Handle(m, "/ui/*path", s.authenticate, s.debugAllowed, s.ui)
	}

	if deps.Alertmanagers != nil {
		s.firing = newFiringAnnotations(firingMemory)
		// On the main listener whatchanged's own paths take precedence;
		// InlineHandler serves Alertmanager's alone.
		s.routeInline(r, true)
		s.inline = gin.New()
		s.inline.Use(s.recover, s.logRequests)
		s.routeInline(s.inline, false)
	}
	return s
}

// ownPath: whatchanged's own endpoints, which inline mode never proxies.
func ownPath(p string) bool {
	switch p {
	case "/healthz", "/readyz", "/metrics", "/webhook", "/ui":
		return true
	}
	return strings.HasPrefix(p, "/-/") || strings.HasPrefix(p, "/webhook/") || strings.HasPrefix(p, "/debug/") || strings.HasPrefix(p, "/api/v1/") || strings.HasPrefix(p, "/ui/")
}

// Handler is the http.Handler to serve.
func (s *Server) Handler() http.Handler { return s.router }

// InlineHandler, in inline mode (nil otherwise), serves Alertmanager's
// paths only: POST {prefix}/api/v2/alerts is enriched and forwarded, every
// other path, /metrics and /-/reload included, is Alertmanager's. Served on
// a listener of its own, it shares a host with Alertmanager without
// shadowing any of its paths.
func (s *Server) InlineHandler() http.Handler {
	if s.inline == nil {
		return nil
	}
	return s.inline
}

// HTTPServer wraps the handler with timeouts: a slow client cannot hold a
// connection, and writeTimeout covers the budget plus delivery.
func (s *Server) HTTPServer(writeTimeout time.Duration) *http.Server {
	return &http.Server{
		Addr:              s.cfg.Listen,
		Handler:           s.router,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

type errorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

func fail(c *gin.Context, status int, msg string) {
	c.AbortWithStatusJSON(status, errorBody{Error: msg})
}

func (s *Server) recover(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			s.d().Log.Error("handler panicked", "path", c.FullPath(), "panic", v)
			// 500: Alertmanager retries, nothing is lost.
			fail(c, http.StatusInternalServerError, "internal error")
		}
	}()
	c.Next()
}

func (s *Server) logRequests(c *gin.Context) {
	start := time.Now()
	w := &writeErrWriter{ResponseWriter: c.Writer}
	c.Writer = w
	c.Next()
	level := slog.LevelDebug
	if c.Writer.Status() >= 500 {
		level = slog.LevelWarn
	}
	if w.err != nil {
		// The sender will not see this answer: for a webhook it retries, and
		// a delivered notification is delivered again.
		s.d().Metrics.writeFailure(c.FullPath())
		s.d().Log.Warn("response not written", "method", c.Request.Method, "path", c.Request.URL.Path,
			"status", c.Writer.Status(), "duration", time.Since(start), "err", w.err)
		return
	}
	s.d().Log.Log(c.Request.Context(), level, "request", "method", c.Request.Method,
		"path", c.Request.URL.Path, "status", c.Writer.Status(), "duration", time.Since(start))
}

// writeErrWriter remembers the first error writing the response.
type writeErrWriter struct {
	gin.ResponseWriter
	err error
}

func (w *writeErrWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	if err != nil && w.err == nil {
		w.err = err
	}
	return n, err
}

func (w *writeErrWriter) WriteString(str string) (int, error) {
	n, err := w.ResponseWriter.WriteString(str)
	if err != nil && w.err == nil {
		w.err = err
	}
	return n, err
}

const arrivalKey = "whatchanged.arrival"

// enrichContext is the request's context with the enrichment deadline:
// EnrichWithin after admit let the request in, so reading and decoding the
// body count against it. Delivery uses the request's own context.
func (s *Server) enrichContext(c *gin.Context) (context.Context, context.CancelFunc) {
	arrival := time.Now()
	if v, ok := c.Get(arrivalKey); ok {
		arrival = v.(time.Time)
	}
	return context.WithDeadline(c.Request.Context(), arrival.Add(s.cfg.EnrichWithin))
}

// admit holds a share of MaxInflightBytes for the request's body while it
// is handled: its declared length, or the body limit when unknown. With no
// room after InflightWait, the answer is 503 with Retry-After: a sender
// that retries loses nothing, and memory stays bounded.
func (s *Server) admit(c *gin.Context) {
	weight := c.Request.ContentLength
	if weight <= 0 || weight > s.cfg.MaxBodyBytes {
		weight = s.cfg.MaxBodyBytes
	}
	weight = min(weight, s.cfg.MaxInflightBytes)
	var err error
	if s.cfg.InflightWait > 0 {
		ctx, cancel := context.WithTimeout(c.Request.Context(), s.cfg.InflightWait)
		err = s.inflight.Acquire(ctx, weight)
		cancel()
	} else if !s.inflight.TryAcquire(weight) {
		err = errors.New("full")
	}
	if err != nil {
		s.d().Metrics.shedRequest(c.FullPath())
		s.d().Log.Warn("busy: request shed", "path", c.Request.URL.Path, "bytes", weight,
			"max_inflight_bytes", s.cfg.MaxInflightBytes, "waited", s.cfg.InflightWait)
		c.Header("Retry-After", "5")
		fail(c, http.StatusServiceUnavailable, fmt.Sprintf("busy: %s of requests already in flight (server.max_inflight_bytes); retry later",
			byteSize(s.cfg.MaxInflightBytes)))
		return
	}
	// The enrichment clock starts now: waiting for room is not the
	// notification's budget (the write timeout counts the wait apart).
	c.Set(arrivalKey, time.Now())
	s.d().Metrics.inflightBytes(weight)
	defer func() {
		s.inflight.Release(weight)
		s.d().Metrics.inflightBytes(-weight)
	}()
	c.Next()
}

func (s *Server) authenticate(c *gin.Context) {
	a := s.cfg.Auth
	if !a.Enabled() {
		return
	}
	if want := a.bearer(); want != "" {
		if tok, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer "); ok && equal(tok, want) {
			return
		}
	}
	if a.BasicUser != "" {
		if u, p, ok := c.Request.BasicAuth(); ok && equal(u, a.BasicUser) && equal(p, a.password()) {
			return
		}
	}
	if a.BasicUser != "" {
		c.Header("WWW-Authenticate", `Basic realm="whatchanged"`)
	} else {
		c.Header("WWW-Authenticate", `Bearer realm="whatchanged"`)
	}
	fail(c, http.StatusUnauthorized, "missing or wrong credentials")
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// debugAllowed refuses the debug API on a listener others can reach unless
// requests are authenticated: it shows alerts and change history.
func (s *Server) debugAllowed(c *gin.Context) {
	if s.cfg.Auth.Enabled() || isLoopback(s.cfg.Listen) {
		return
	}
	fail(c, http.StatusForbidden, "debug endpoints are disabled on a non-loopback listener unless inbound auth is configured (auth: in the config)")
}

func isLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (s *Server) readyz(c *gin.Context) {
	if ok, why := s.d().Ready(); !ok {
		c.String(http.StatusServiceUnavailable, "not ready: %s\n", why)
		return
	}
	c.String(http.StatusOK, "ready\n")
}

// readBody reads the whole body within the size limit, answering 413 or 400
// itself when it cannot.
func (s *Server) readBody(c *gin.Context) ([]byte, bool) {
	// Read into one buffer of the declared size: io.ReadAll's doubling
	// would leave up to twice a large body behind as garbage.
	var buf bytes.Buffer
	if n := c.Request.ContentLength; n > 0 && n <= s.cfg.MaxBodyBytes {
		buf.Grow(int(n) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBodyBytes))
	body := buf.Bytes()
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		fail(c, http.StatusRequestEntityTooLarge, "body larger than the limit of "+byteSize(s.cfg.MaxBodyBytes)+" (server.max_body_bytes)")
		return nil, false
	case err != nil:
		fail(c, http.StatusBadRequest, "reading body: "+err.Error())
		return nil, false
	}
	return body, true
}

// reload re-reads the config, as Alertmanager's POST /-/reload does: 200
// when the new one is in use, 500 with the reason when it was refused (the
// old one stays).
func (s *Server) reload(c *gin.Context) {
	d := s.d()
	if d.Reload == nil {
		fail(c, http.StatusNotFound, "reload is not available (no config file)")
		return
	}
	if err := d.Reload(); err != nil {
		fail(c, http.StatusInternalServerError, "config not reloaded, the previous one stays in use: "+err.Error())
		return
	}
	s.answer(c, http.StatusOK, gin.H{"status": "reloaded"})
}

// authenticateUnlessLoopback lets a config reloader in the same pod (which
// has no credentials) reload, as Alertmanager's /-/reload does; anything
// from another address authenticates as for /api.
func (s *Server) authenticateUnlessLoopback(c *gin.Context) {
	if host, _, err := net.SplitHostPort(c.Request.RemoteAddr); err == nil {
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			return
		}
	}
	s.authenticate(c)
}
