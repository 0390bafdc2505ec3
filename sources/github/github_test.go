package github

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	commoncfg "github.com/prometheus/common/config"

	"github.com/whatchanged/whatchanged/sources"
	"github.com/whatchanged/whatchanged/sources/sourcetest"
)

var now = time.Now().UTC().Truncate(time.Second)

func newSource(t *testing.T, f *fakeGitHub, mod func(*Config)) *Source {
	t.Helper()
	cfg := Config{BaseURL: f.baseURL()}
	if mod != nil {
		mod(&cfg)
	}
	// The token travels as in production: http_config's authorization
	// round tripper, which a GitHub App's own header takes precedence over.
	rt := commoncfg.NewAuthorizationCredentialsRoundTripper("Bearer", commoncfg.NewInlineSecret("ghp_test_token"), http.DefaultTransport)
	s, err := New("github", cfg, rt, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func query(repo string) sources.Query {
	return sources.Query{Subject: sources.Subject{Repo: repo}, Since: now.Add(-24 * time.Hour), Until: now.Add(5 * time.Minute)}
}

func host(f *fakeGitHub) string {
	return strings.Split(strings.TrimPrefix(f.srv.URL, "http://"), ":")[0]
}

func TestReleasesDeploymentsAndCompare(t *testing.T) {
	f := newFakeGitHub(t)
	f.serveRepo("acme", "api", now)
	s := newSource(t, f, nil)
	got, err := s.Changes(context.Background(), query(host(f)+"/acme/api"))
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]sources.Change{}
	for _, c := range got {
		byID[c.ID] = c
	}
	if len(got) != 2 { // v1.8.3 and deployment 11 are older than the window; the draft is skipped
		t.Fatalf("got %d changes: %+v", len(got), got)
	}
	rel := byID["acme/api/releases/2"]
	if rel.Kind != "release" || rel.Version != "v1.8.4" || rel.PreviousVersion != "v1.8.3" || rel.Author != "alice" ||
		rel.CompareURL != "https://ghe.example.com/acme/api/compare/v1.8.3...v1.8.4" ||
		rel.Message != "v1.8.4: retry budget — 3 commit(s) by alice, dan: fix retry budget; tune backoff; add retry budget metric" ||
		rel.Subject.Repo != host(f)+"/acme/api" || !rel.StartedAt.Equal(now.Add(-20*time.Minute)) {
		t.Errorf("release = %+v", rel)
	}
	dep := byID["acme/api/deployments/12"]
	if dep.Kind != "deployment" || dep.Revision != "9f1c2e7a4b3d5e6f7a8b9c0d1e2f3a4b5c6d7e8f" || dep.Status != sources.StatusFailed ||
		dep.URL != "https://ci.example.com/runs/120" || dep.DeployedBy != "deploy-bot" || dep.Author != "Alice" || dep.Message[:13] != "to production" ||
		dep.CompareURL != "https://ghe.example.com/acme/api/compare/1111111...9f1c2e7" || !dep.FinishedAt.Equal(now.Add(-10*time.Minute)) {
		t.Errorf("deployment = %+v", dep)
	}
	if a := f.auth[0]; a != "Bearer ghp_test_token" {
		t.Errorf("Authorization = %q", a)
	}
}

func TestStormMakesOneRequestPerEndpointAndRefreshIs304(t *testing.T) {
	f := newFakeGitHub(t)
	f.serveRepo("acme", "api", now)
	f.delay = 50 * time.Millisecond // the storm arrives while the first fetch is in flight
	s := newSource(t, f, nil)
	var wg sync.WaitGroup
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Changes(context.Background(), query(host(f)+"/acme/api")); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	hits, full, _ := f.counts()
	for path, n := range hits {
		if n != 1 {
			t.Errorf("%s requested %d times by 1,000 alerts, want 1", path, n)
		}
	}
	if full != 6 {
		t.Errorf("%d full requests, want 6 (releases, compare, deployments, 2 statuses, compare)", full)
	}
	// A background refresh of an unchanged repository: all conditional.
	f.delay = 0
	s.RefreshAll(context.Background())
	_, full2, notMod := f.counts()
	if full2 != full || notMod != 4 {
		t.Errorf("refresh of an unchanged repo: %d more full requests, %d 304s; want 0 and 4 (compares are cached for good)", full2-full, notMod)
	}
	if st := s.Stats(); st.NotModified != 4 || st.Remaining != 4994 || st.Limit != 5000 {
		t.Errorf("stats = %+v", st)
	}
}

func TestRateLimitedServesCacheAndStopsAsking(t *testing.T) {
	for _, status := range []int{http.StatusForbidden, http.StatusTooManyRequests} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			f := newFakeGitHub(t)
			f.serveRepo("acme", "api", now)
			s := newSource(t, f, nil)
			q := query(host(f) + "/acme/api")
			if _, err := s.Changes(context.Background(), q); err != nil {
				t.Fatal(err)
			}
			f.mu.Lock()
			f.routes["GET /repos/acme/api/releases"] = strings.Replace(f.routes["GET /repos/acme/api/releases"], "v1.8.4", "v1.8.5", -1)
			f.etags["GET /repos/acme/api/releases"] = `W/"changed"`
			f.limitWith = status
			f.mu.Unlock()
			s.RefreshAll(context.Background())
			hitsBefore, _, _ := f.counts()
			got, err := s.Changes(context.Background(), q)
			var rl *RateLimitedError
			if !errors.As(err, &rl) || !strings.HasPrefix(err.Error(), "rate limited until ") {
				t.Fatalf("err = %v, want rate limited", err)
			}
			if len(got) != 2 || got[0].Version != "v1.8.4" {
				t.Errorf("cache not served while limited: %+v", got)
			}
			s.RefreshAll(context.Background())
			hitsAfter, _, _ := f.counts()
			if sum(hitsAfter) != sum(hitsBefore) {
				t.Errorf("requests made while rate limited: %d → %d", sum(hitsBefore), sum(hitsAfter))
			}
		})
	}
}

func TestErrorsAUserCanActOn(t *testing.T) {
	f := newFakeGitHub(t)
	s := newSource(t, f, nil)
	_, err := s.Changes(context.Background(), query(host(f)+"/acme/secret"))
	if err == nil || err.Error() != "repository acme/secret not found or not visible to the token" {
		t.Errorf("404: %v", err)
	}
	bad := newFakeGitHub(t)
	bad.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest"}`))
	})
	s = newSource(t, bad, nil)
	if _, err := s.Changes(context.Background(), query(host(bad)+"/acme/api")); err == nil || !strings.HasPrefix(err.Error(), "bad credentials") {
		t.Errorf("401: %v", err)
	}
	dead := newSource(t, f, func(c *Config) { c.BaseURL = "http://127.0.0.1:1/api/v3/" })
	if _, err := dead.Changes(context.Background(), query("127.0.0.1/acme/api")); err == nil || !strings.Contains(err.Error(), "unreachable") || strings.Contains(err.Error(), "ghp_") {
		t.Errorf("dead GHES: %v", err)
	}
	// A repository on another host cannot be read: said, not silently empty.
	if got, err := s.Changes(context.Background(), query("gitlab.com/acme/api")); err == nil || got != nil ||
		!strings.Contains(err.Error(), "gitlab.com/acme/api is not on "+host(bad)) {
		t.Errorf("other host: %v %v", got, err)
	}
}

func TestGitHubAppAuth(t *testing.T) {
	f := newFakeGitHub(t)
	f.serveRepo("acme", "api", now)
	f.set("POST", "/app/installations/42/access_tokens", `{"token":"ghs_installation_token","expires_at":"`+now.Add(time.Hour).Format(time.RFC3339)+`","permissions":{"contents":"read","deployments":"read"},"repository_selection":"all"}`)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	s := newSource(t, f, func(c *Config) { c.App = &App{AppID: 7, InstallationID: 42, PrivateKey: pemKey} })
	if _, err := s.Changes(context.Background(), query(host(f)+"/acme/api")); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !strings.HasPrefix(f.auth[0], "Bearer ") || len(f.auth[0]) < 100 { // the app JWT for the token exchange
		t.Errorf("token exchange Authorization = %q, want the app JWT", f.auth[0])
	}
	if f.auth[1] != "token ghs_installation_token" {
		t.Errorf("API Authorization = %q, want the installation token", f.auth[1])
	}
}

func TestContract(t *testing.T) {
	f := newFakeGitHub(t)
	f.serveRepo("acme", "api", now)
	s := newSource(t, f, nil)
	sourcetest.Contract(t, s, query(host(f)+"/acme/api"))
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
