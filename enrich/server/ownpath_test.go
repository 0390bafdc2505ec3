package server

import (
	"net/http"
	"sync/atomic"
	"testing"
)

// In inline mode every unknown path goes to Alertmanager, but never one of
// whatchanged's own paths with another method (POST /healthz is not
// Alertmanager's to answer).
func TestInlineNeverProxiesOwnPaths(t *testing.T) {
	var proxied atomic.Int32
	e := &env{url: inlineEnv(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxied.Add(1)
	}))}
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/webhook", "/debug/changes", "/api/v1/changes"} {
		if status, _ := e.do(t, http.MethodPut, p, `{}`); status != http.StatusMethodNotAllowed {
			t.Errorf("PUT %s: %d, want 405", p, status)
		}
	}
	if n := proxied.Load(); n != 0 {
		t.Errorf("%d of whatchanged's own paths were proxied to Alertmanager", n)
	}
	if status, _ := e.do(t, http.MethodGet, "/api/v2/status", ""); status != http.StatusOK || proxied.Load() != 1 {
		t.Errorf("GET /api/v2/status: %d, proxied %d", status, proxied.Load())
	}
}
