package argocd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	commoncfg "github.com/prometheus/common/config"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"

	"github.com/whatchanged/whatchanged/enrich"
	"github.com/whatchanged/whatchanged/sources"
	"github.com/whatchanged/whatchanged/sources/github"
)

// fakeGitHubCommits speaks GitHub's commit list (GET
// /repos/{owner}/{repo}/commits?sha=…, as a GHES under /api/v3) for the
// fixture commits: JSON as GitHub returns it, 404 for a commit it does not
// have, the token required.
type fakeGitHubCommits struct {
	srv  *httptest.Server
	mu   sync.Mutex
	hits map[string]int // sha → requests
}

var commitAuthors = map[string][2]string{ // sha → author name, message
	"9f1c2e7a4b3d5e6f7a8b9c0d1e2f3a4b5c6d7e8f": {"Alice Example", "fix retry budget\n\nThe budget was per request."},
	"1111111aaaaaaabbbbbbbcccccccdddddddeeeee": {"Bob", "bump deps"},
}

func newFakeGitHubCommits(t *testing.T) *fakeGitHubCommits {
	f := &fakeGitHubCommits{hits: map[string]int{}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		if r.Header.Get("Authorization") != "Bearer ghp_test_token" {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest"}`)
			return
		}
		sha := r.URL.Query().Get("sha")
		if r.URL.Path != "/api/v3/repos/acme/api/commits" || r.URL.Query().Get("per_page") != "1" {
			t.Errorf("unexpected request %s %s", r.Method, r.URL)
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"message":"Not Found","documentation_url":"https://docs.github.com/rest"}`)
			return
		}
		f.mu.Lock()
		f.hits[sha]++
		f.mu.Unlock()
		c, ok := commitAuthors[sha]
		w.Header().Set("X-RateLimit-Limit", "5000")
		w.Header().Set("X-RateLimit-Remaining", "4999")
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"message":"No commit found for SHA: %s","documentation_url":"https://docs.github.com/rest/commits/commits#list-commits"}`, sha)
			return
		}
		w.Header().Set("ETag", `W/"`+sha[:8]+`"`)
		login := strings.ToLower(strings.Fields(c[0])[0])
		fmt.Fprintf(w, `[{"sha":%q,"node_id":"C_kwDO","commit":{"author":{"name":%q,"email":"%s@example.com","date":"2026-11-21T09:58:00Z"},"committer":{"name":"GitHub","email":"noreply@github.com","date":"2026-11-21T09:58:00Z"},"message":%q},"author":{"login":%q,"id":1,"type":"User"},"parents":[]}]`,
			sha, c[0], login, c[1], login)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeGitHubCommits) asked(sha string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[sha]
}

// kubeMode is the source reading Application resources (a fake dynamic
// client holding the fixtures, their git repository moved to the GitHub
// fake's host), with the GitHub source as its commit lookup.
func kubeMode(t *testing.T, gh *fakeGitHubCommits, refresh time.Duration) *Source {
	t.Helper()
	host := strings.Split(strings.TrimPrefix(gh.srv.URL, "http://"), ":")[0]
	var objs []runtime.Object
	for _, file := range []string{"testdata/shop-api.json", "testdata/platform.json"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		b = []byte(strings.ReplaceAll(string(b), "git@github.com:acme/api.git", "git@"+host+":acme/api.git"))
		var obj map[string]any
		if err := json.Unmarshal(b, &obj); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, &unstructured.Unstructured{Object: obj})
	}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{applicationsGVR: "ApplicationList"}, objs...)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rt := commoncfg.NewAuthorizationCredentialsRoundTripper("Bearer", commoncfg.NewInlineSecret("ghp_test_token"), http.DefaultTransport)
	commits, err := github.New("github", github.Config{BaseURL: gh.srv.URL + "/api/v3/"}, rt, log)
	if err != nil {
		t.Fatal(err)
	}
	s := New("argocd", Config{UIURL: "https://argocd.example.com", Refresh: refresh, Kubernetes: KubernetesMode{Enabled: true}, Commits: commits}, nil, dyn, log)
	s.now = func() time.Time { return t0 }
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitReady(t, s)
	return s
}

// With no argocd-server, the alert's sync names its commit's author and
// message, read from GitHub within the alert's budget.
func TestKubernetesModeReadsTheCommitFromGitHub(t *testing.T) {
	gh := newFakeGitHubCommits(t)
	s := kubeMode(t, gh, time.Hour) // no background prefetch during the test
	r, _ := enrich.NewResolver(nil, s)
	e := enrich.New(enrich.Options{}, r, []enrich.SourceEntry{{Source: s}}, nil)
	a := &enrich.Alert{Labels: map[string]string{"argocd_app": "shop-api", "namespace": "shop"}, StartsAt: t0}
	e.Enrich(context.Background(), []*enrich.Alert{a}, nil)
	if got, want := a.Annotations["whatchanged_suspect"], `argocd sync of shop-api 9f1c2e7 by Alice Example (deployed by alice): "fix retry budget", 11m before the alert started [argocd]`; got != want {
		t.Errorf("suspect\n got %q\nwant %q", got, want)
	}
	// Asked once: the next alert reads the cache.
	e.Enrich(context.Background(), []*enrich.Alert{{Labels: a.Labels, StartsAt: t0}}, nil)
	if n := gh.asked("9f1c2e7a4b3d5e6f7a8b9c0d1e2f3a4b5c6d7e8f"); n != 1 {
		t.Errorf("commit asked %d times, want once", n)
	}
}

// The background prefetch reads the commits of recent syncs, so a
// neighbour's sync (answered from cache only) has them too.
func TestKubernetesModePrefetchesRecentCommits(t *testing.T) {
	gh := newFakeGitHubCommits(t)
	s := kubeMode(t, gh, 20*time.Millisecond)
	for deadline := time.Now().Add(10 * time.Second); gh.asked("9f1c2e7a4b3d5e6f7a8b9c0d1e2f3a4b5c6d7e8f") == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the newest sync's commit was not prefetched")
		}
	}
	since, until := window()
	a, _ := s.lookupAny(sources.Subject{App: "shop-api"})
	got := s.changesOf(context.Background(), a, sources.Query{Subject: sources.Subject{App: "shop-api"}, Since: since, Until: until}, false)
	if len(got) != 2 || got[1].Author != "Alice Example" || got[1].Message != "fix retry budget" {
		t.Errorf("cache-only read: %+v", got)
	}
	// Sync 41 deployed hours before: not prefetched (an Argo CD's whole
	// history would cost a request per app at start).
	if got[0].Author != "" || gh.asked("1111111aaaaaaabbbbbbbcccccccdddddddeeeee") != 0 {
		t.Errorf("an old sync's commit was prefetched: %+v", got[0])
	}
}
