package server

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// POST /-/reload: a config reloader in the pod (loopback, no credentials)
// may reload; from elsewhere it takes the credentials of /api; a refused
// config is a 500 that says why.
func TestReloadEndpoint(t *testing.T) {
	reg := prometheus.NewRegistry()
	var calls int
	var refuse error
	s := New(Config{Listen: "0.0.0.0:8080", Auth: Auth{BearerToken: "tok"}}, Deps{
		Ready: func() (bool, string) { return true, "" }, Gatherer: reg, Metrics: NewMetrics(reg),
		Log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Reload: func() error { calls++; return refuse },
	})
	do := func(remote, token string) (int, string) {
		req := httptest.NewRequest(http.MethodPost, "/-/reload", nil)
		req.RemoteAddr = remote
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, req)
		return w.Code, w.Body.String()
	}
	if code, body := do("127.0.0.1:40000", ""); code != 200 || calls != 1 {
		t.Errorf("from loopback without credentials: %d %s (calls %d)", code, body, calls)
	}
	if code, body := do("[::1]:40000", ""); code != 200 || calls != 2 {
		t.Errorf("from ::1 without credentials: %d %s (calls %d)", code, body, calls)
	}
	if code, _ := do("10.1.2.3:40000", ""); code != 401 || calls != 2 {
		t.Errorf("from another address without credentials: %d (calls %d), want 401 and no reload", code, calls)
	}
	if code, _ := do("10.1.2.3:40000", "tok"); code != 200 || calls != 3 {
		t.Errorf("from another address with the token: %d (calls %d)", code, calls)
	}
	refuse = errors.New(`c.yaml:3: enrich.budgit: unknown key`)
	if code, body := do("127.0.0.1:40000", ""); code != 500 || !strings.Contains(body, "enrich.budgit: unknown key") || !strings.Contains(body, "previous one stays") {
		t.Errorf("refused reload: %d %s", code, body)
	}
	req := httptest.NewRequest(http.MethodGet, "/-/reload", nil)
	req.RemoteAddr = "127.0.0.1:1"
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, req)
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET /-/reload: %d, want 405", w.Code)
	}
}
