// Package server is whatchanged's HTTP surface: the webhook endpoints, the
// pushed-changes API, the debug API, health and metrics. It is the only
// package that imports gin.
package server

import (
	"crypto/subtle"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/whatchanged/whatchanged/enrich"
	"github.com/whatchanged/whatchanged/enrich/deliver"
	"github.com/whatchanged/whatchanged/sources/changes"
)

func init() { gin.SetMode(gin.ReleaseMode) }

// Auth is inbound authentication. Either or both may be set; a request
// passes with any configured credential.
type Auth struct {
	BearerToken    string
	BasicUser      string
	BasicPassword  string
	ProtectMetrics bool
}

// Enabled reports whether any credential is configured.
func (a Auth) Enabled() bool { return a.BearerToken != "" || a.BasicUser != "" }

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
}

// Deps are the parts the handlers use.
type Deps struct {
	Enricher *enrich.Enricher
	// Targets by route name; "default" serves POST /webhook.
	Targets map[string]deliver.Target
	// Keeper, when set, backs GET /debug/notifications.
	Keeper *deliver.Keeper
	// Changes, when set, serves POST /api/v1/changes and GET /debug/changes.
	Changes *changes.Source
	// Alertmanagers, when set, turns on the inline mode: POST
	// {prefix}/api/v2/alerts is enriched and forwarded, every other unknown
	// path is proxied to the upstreams.
	Alertmanagers *deliver.Alertmanagers
	// Ready reports readiness and, when not ready, why.
	Ready    func() (bool, string)
	Gatherer prometheus.Gatherer
	Metrics  *Metrics
	Log      *slog.Logger
}

// Server holds the router.
type Server struct {
	cfg    Config
	deps   Deps
	router *gin.Engine
}

// New builds the router.
func New(cfg Config, deps Deps) *Server {
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 8 << 20
	}
	s := &Server{cfg: cfg, deps: deps, router: gin.New()}
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
	metrics := promhttp.HandlerFor(deps.Gatherer, promhttp.HandlerOpts{})
	if cfg.Auth.ProtectMetrics {
		r.GET("/metrics", s.authenticate, gin.WrapH(metrics))
	} else {
		r.GET("/metrics", gin.WrapH(metrics))
	}

	r.POST("/webhook", s.authenticate, s.webhook)
	r.POST("/webhook/:route", s.authenticate, s.webhook)

	api := r.Group("/api/v1", s.authenticate)
	api.POST("/changes", s.recordChange)

	debug := r.Group("/debug", s.authenticate, s.debugAllowed)
	debug.POST("/enrich", s.debugEnrich)
	debug.GET("/changes", s.listChanges)
	debug.GET("/notifications", s.listNotifications)

	if deps.Alertmanagers != nil {
		prefix := "/" + strings.Trim(cfg.InlinePrefix, "/")
		proxy := gin.WrapH(deps.Alertmanagers.Proxy(strings.TrimSuffix(prefix, "/"), cfg.MaxBodyBytes))
		alertsPath := strings.TrimSuffix(prefix, "/") + "/api/v2/alerts"
		r.POST(alertsPath, s.authenticate, s.inlineAlerts)
		r.GET(alertsPath, s.authenticate, proxy) // alert queries (amtool alert query)
		// Everything else Alertmanager serves (status, silences, UI) is
		// proxied; whatchanged's own paths above take precedence.
		r.HandleMethodNotAllowed = false
		r.NoRoute(func(c *gin.Context) {
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
	return s
}

// Handler is the http.Handler to serve.
func (s *Server) Handler() http.Handler { return s.router }

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
			s.deps.Log.Error("handler panicked", "path", c.FullPath(), "panic", v)
			// 500: Alertmanager retries, nothing is lost.
			fail(c, http.StatusInternalServerError, "internal error")
		}
	}()
	c.Next()
}

func (s *Server) logRequests(c *gin.Context) {
	start := time.Now()
	c.Next()
	level := slog.LevelDebug
	if c.Writer.Status() >= 500 {
		level = slog.LevelWarn
	}
	s.deps.Log.Log(c.Request.Context(), level, "request", "method", c.Request.Method,
		"path", c.Request.URL.Path, "status", c.Writer.Status(), "duration", time.Since(start))
}

func (s *Server) authenticate(c *gin.Context) {
	a := s.cfg.Auth
	if !a.Enabled() {
		return
	}
	if a.BearerToken != "" {
		if tok, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer "); ok && equal(tok, a.BearerToken) {
			return
		}
	}
	if a.BasicUser != "" {
		if u, p, ok := c.Request.BasicAuth(); ok && equal(u, a.BasicUser) && equal(p, a.BasicPassword) {
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
	if ok, why := s.deps.Ready(); !ok {
		c.String(http.StatusServiceUnavailable, "not ready: %s\n", why)
		return
	}
	c.String(http.StatusOK, "ready\n")
}

// readBody reads the whole body within the size limit, answering 413 or 400
// itself when it cannot.
func (s *Server) readBody(c *gin.Context) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBodyBytes))
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
