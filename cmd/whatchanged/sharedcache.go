package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/whatchanged/whatchanged/sources/sharedcache"
)

// sharedCacheMetrics say how much polling the replicas shared.
func sharedCacheMetrics(source string, tr *sharedcache.Transport) []prometheus.Collector {
	counter := func(name, help string, v func(sharedcache.Stats) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "whatchanged_http_shared_cache_" + name + "_total", Help: help, ConstLabels: prometheus.Labels{"source": source},
		}, func() float64 { return float64(v(tr.Stats())) })
	}
	return []prometheus.Collector{
		counter("hits", "Answers served from Redis without a request (another replica fetched them).", func(s sharedcache.Stats) int64 { return s.Hits }),
		counter("waits", "Requests that waited for another replica fetching the same answer.", func(s sharedcache.Stats) int64 { return s.Waits }),
		counter("upstream_requests", "Requests sent to the source's server.", func(s sharedcache.Stats) int64 { return s.Upstream }),
		counter("redis_errors", "Redis operations that failed (the request went to the network).", func(s sharedcache.Stats) int64 { return s.RedisErrors }),
	}
}

// credentialIdentity names the credentials a polling source sends, for the
// shared cache's key (which hashes it and never stores it): replicas of one
// installation share answers, two configured tokens never do.
func credentialIdentity(c HTTPConfig, app GitHubAppConfig) string {
	if app.AppID != 0 {
		return fmt.Sprintf("github-app %d installation %d", app.AppID, app.InstallationID)
	}
	if c == nil {
		return "anonymous"
	}
	var parts []string
	if a := c.Authorization; a != nil {
		parts = append(parts, "authorization", a.Type, string(a.Credentials), a.CredentialsFile)
	}
	if ba := c.BasicAuth; ba != nil {
		parts = append(parts, "basic", ba.Username, ba.UsernameFile, string(ba.Password), ba.PasswordFile)
	}
	if o := c.OAuth2; o != nil {
		parts = append(parts, "oauth2", o.ClientID, o.TokenURL)
	}
	parts = append(parts, string(c.BearerToken), c.BearerTokenFile)
	return strings.Join(parts, "\x00")
}

// redisLog sends the Redis client's own messages (dial failures while Redis
// is down) to the service's log instead of stderr. They name addresses,
// never credentials.
type redisLog struct{ log *slog.Logger }

func (r redisLog) Printf(_ context.Context, format string, v ...any) {
	r.log.Warn("redis client", "msg", fmt.Sprintf(format, v...))
}
