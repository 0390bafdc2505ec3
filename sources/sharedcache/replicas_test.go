package sharedcache

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/whatchanged/whatchanged/sources"
	"github.com/whatchanged/whatchanged/sources/argocd"
	"github.com/whatchanged/whatchanged/sources/github"
)

// The property the package exists for: the requests GitHub and
// argocd-server see per refresh do not grow with the replicas. Each
// scenario runs the real sources, one transport chain per replica, on one
// real redis-server; the figures are logged (go test -v) for the record.

// fakeGitHub speaks the REST API the GitHub source reads, under a
// GHES-style /api/v3 base path: releases, deployments, their statuses and
// compares, with ETags and 304s and rate-limit headers as GitHub sends
// them. It counts requests per path and answer.
type fakeGitHub struct {
	t   testing.TB
	srv *httptest.Server

	mu     sync.Mutex
	routes map[string]string // path → JSON body
	hits   map[string]int    // path → requests
	full   int               // answered 200 (cost rate limit)
	notMod int               // answered 304
}

func newFakeGitHub(t testing.TB) *fakeGitHub {
	f := &fakeGitHub{t: t, routes: map[string]string{}, hits: map[string]int{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeGitHub) set(path, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes[path] = body
}

func (f *fakeGitHub) serve(w http.ResponseWriter, r *http.Request) {
	path, ok := strings.CutPrefix(r.URL.Path, "/api/v3")
	if !ok || r.Method != http.MethodGet {
		f.t.Errorf("unexpected request %s %s", r.Method, r.URL)
		http.NotFound(w, r)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hits[path]++
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-GitHub-Api-Version-Selected", "2022-11-28")
	w.Header().Set("X-RateLimit-Limit", "5000")
	w.Header().Set("X-RateLimit-Remaining", fmt.Sprint(5000-f.full))
	w.Header().Set("X-RateLimit-Reset", fmt.Sprint(time.Now().Add(time.Hour).Unix()))
	body, ok := f.routes[path]
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"message":"Not Found","documentation_url":"https://docs.github.com/rest"}`)
		return
	}
	etag := etagOf(body)
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		f.notMod++
		w.WriteHeader(http.StatusNotModified)
		return
	}
	f.full++
	fmt.Fprint(w, body)
}

// take returns the requests per path since the last take, and the 200s
// and 304s among them.
func (f *fakeGitHub) take() (hits map[string]int, full, notMod int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	hits, full, notMod = f.hits, f.full, f.notMod
	f.hits, f.full, f.notMod = map[string]int{}, 0, 0
	return hits, full, notMod
}

func total(hits map[string]int) int {
	n := 0
	for _, v := range hits {
		n += v
	}
	return n
}

// serveRepo installs a repository as GitHub returns it (trimmed to the
// fields that matter): releases with a draft, two deployments with
// statuses, and the compares between them.
func (f *fakeGitHub) serveRepo(repo string, t0 time.Time) {
	ts := func(d time.Duration) string { return t0.Add(d).UTC().Format(time.RFC3339) }
	f.set("/repos/"+repo+"/releases", fmt.Sprintf(`[
 {"id":3,"tag_name":"v1.9.0-rc1","target_commitish":"main","name":"v1.9.0-rc1","draft":true,"prerelease":true,"created_at":%[2]q,"published_at":null,"author":{"login":"carol","type":"User"},"html_url":"https://ghe.example.com/%[1]s/releases/tag/v1.9.0-rc1"},
 {"id":2,"tag_name":"v1.8.4","target_commitish":"main","name":"v1.8.4: retry budget","draft":false,"prerelease":false,"created_at":%[3]q,"published_at":%[3]q,"author":{"login":"alice","type":"User"},"html_url":"https://ghe.example.com/%[1]s/releases/tag/v1.8.4","body":"Fixes the retry budget."},
 {"id":1,"tag_name":"v1.8.3","target_commitish":"main","name":"v1.8.3","draft":false,"prerelease":false,"created_at":%[4]q,"published_at":%[4]q,"author":{"login":"bob","type":"User"},"html_url":"https://ghe.example.com/%[1]s/releases/tag/v1.8.3"}
]`, repo, ts(-time.Minute), ts(-20*time.Minute), ts(-72*time.Hour)))
	f.set("/repos/"+repo+"/compare/v1.8.3...v1.8.4", fmt.Sprintf(`{
 "html_url":"https://ghe.example.com/%[1]s/compare/v1.8.3...v1.8.4","status":"ahead","ahead_by":2,"total_commits":2,
 "commits":[
  {"sha":"aaa1111","commit":{"message":"add retry budget metric","author":{"name":"Alice","date":%[2]q}},"author":{"login":"alice"}},
  {"sha":"ccc3333","commit":{"message":"fix retry budget","author":{"name":"Alice","date":%[2]q}},"author":{"login":"alice"}}]}`, repo, ts(-30*time.Minute)))
	f.set("/repos/"+repo+"/deployments", fmt.Sprintf(`[
 {"id":12,"sha":"9f1c2e7a4b3d5e6f7a8b9c0d1e2f3a4b5c6d7e8f","ref":"v1.8.4","task":"deploy","environment":"production","creator":{"login":"deploy-bot","type":"Bot"},"created_at":%[2]q,"updated_at":%[2]q},
 {"id":11,"sha":"1111111aaaaaaabbbbbbbcccccccdddddddeeeee","ref":"v1.8.3","task":"deploy","environment":"production","creator":{"login":"deploy-bot","type":"Bot"},"created_at":%[3]q,"updated_at":%[3]q}
]`, repo, ts(-15*time.Minute), ts(-70*time.Hour)))
	f.set("/repos/"+repo+"/deployments/12/statuses", fmt.Sprintf(`[{"id":120,"state":"failure","description":"health checks failed","environment":"production","created_at":%q}]`, ts(-10*time.Minute)))
	f.set("/repos/"+repo+"/deployments/11/statuses", fmt.Sprintf(`[{"id":110,"state":"inactive","environment":"production","created_at":%q}]`, ts(-15*time.Minute)))
	f.set("/repos/"+repo+"/compare/1111111aaaaaaabbbbbbbcccccccdddddddeeeee...9f1c2e7a4b3d5e6f7a8b9c0d1e2f3a4b5c6d7e8f", fmt.Sprintf(`{
 "html_url":"https://ghe.example.com/%[1]s/compare/1111111...9f1c2e7","status":"ahead","ahead_by":2,"total_commits":2,
 "commits":[{"sha":"ccc3333","commit":{"message":"fix retry budget","author":{"name":"Alice"}},"author":{"login":"alice"}}]}`, repo))
}

var discard = slog.New(slog.DiscardHandler)

// round is what upstream saw in one round of every replica.
type round struct {
	name         string
	hits         map[string]int
	full, notMod int
}

// githubRounds runs n replicas of the GitHub source, each with its own
// transport chain (the token above the shared cache, both below the
// source's ETag cache), sharing one Redis: the first alert for each
// repository, a refresh, and a refresh after a release.
// Without shared, each replica goes to GitHub directly: the baseline.
func githubRounds(t *testing.T, r *redisServer, n int, shared bool) []round {
	t0 := time.Now().UTC().Truncate(time.Second)
	f := newFakeGitHub(t)
	repos := []string{"acme/api", "acme/web", "acme/worker"}
	for _, repo := range repos {
		f.serveRepo(repo, t0)
	}
	c := newClock()
	const refresh = 5 * time.Minute
	// The wait is longer than the default 2s: the property measured is
	// the count, which must not depend on how loaded the machine is.
	opts := Options{Prefix: fmt.Sprintf("gh%d:", n), Fresh: refresh / 2, Wait: 10 * time.Second}
	replicas := make([]*github.Source, n)
	transports := make([]*Transport, n)
	for i := range replicas {
		transports[i] = newTransport(t, r, c, http.DefaultTransport, opts)
		var base http.RoundTripper = transports[i]
		if !shared {
			base = http.DefaultTransport
		}
		s, err := github.New("github", github.Config{BaseURL: f.srv.URL + "/api/v3/", Refresh: refresh},
			withToken("ghp_MARKERreplicaToken", base), discard)
		if err != nil {
			t.Fatal(err)
		}
		replicas[i] = s
	}
	host := strings.Split(strings.TrimPrefix(f.srv.URL, "http://"), ":")[0]
	each := func(fn func(i int, s *github.Source)) {
		var wg sync.WaitGroup
		for i, s := range replicas {
			wg.Go(func() { fn(i, s) })
		}
		wg.Wait()
	}
	var rounds []round
	record := func(name string) {
		hits, full, notMod := f.take()
		rounds = append(rounds, round{name, hits, full, notMod})
	}
	ctx := context.Background()

	// An alert names each repository on every replica: each reads it.
	seen := make([][]string, n)
	each(func(i int, s *github.Source) {
		for _, repo := range repos {
			changes, err := s.Changes(ctx, sources.Query{Subject: sources.Subject{Repo: host + "/" + repo},
				Since: t0.Add(-24 * time.Hour), Until: t0.Add(5 * time.Minute)})
			if err != nil {
				t.Errorf("replica %d, %s: %v", i+1, repo, err)
			}
			for _, ch := range changes {
				seen[i] = append(seen[i], repo+" "+ch.Kind+" "+ch.Version+" "+ch.Status+" "+ch.Message)
			}
		}
	})
	record("first alert")
	for i := 1; i < n; i++ {
		if !slices.Equal(seen[i], seen[0]) {
			t.Errorf("replica %d read other changes than replica 1:\n%s\nwant\n%s", i+1, strings.Join(seen[i], "\n"), strings.Join(seen[0], "\n"))
		}
	}
	if len(seen[0]) == 0 {
		t.Error("no changes read")
	}

	c.advance(refresh)
	each(func(_ int, s *github.Source) { s.RefreshAll(ctx) })
	record("refresh")

	c.advance(refresh)
	f.serveRepo("acme/web", t0.Add(time.Minute)) // a new release: other answers
	each(func(_ int, s *github.Source) { s.RefreshAll(ctx) })
	record("refresh after a release")

	for i, tr := range transports {
		if s := tr.Stats(); s.RedisErrors != 0 {
			t.Errorf("replica %d: %+v", i+1, s)
		}
		if shared {
			t.Logf("%d replicas, replica %d: %+v, source %+v", n, i+1, tr.Stats(), replicas[i].Stats())
		}
	}
	return rounds
}

func TestGitHubRequestsDoNotGrowWithReplicas(t *testing.T) {
	r := startRedis(t)
	one := githubRounds(t, r, 1, true)
	three := githubRounds(t, r, 3, true)
	unshared := githubRounds(t, r, 3, false)
	for i := range one {
		t.Logf("GitHub, %s: 1 replica %d requests (%d × 200, %d × 304); 3 replicas %d requests (%d × 200, %d × 304); 3 replicas without the shared cache %d requests (%d × 200, %d × 304)",
			one[i].name, total(one[i].hits), one[i].full, one[i].notMod, total(three[i].hits), three[i].full, three[i].notMod,
			total(unshared[i].hits), unshared[i].full, unshared[i].notMod)
		// The fake counts what the replicas send: without sharing, 3 times.
		if total(unshared[i].hits) != 3*total(one[i].hits) {
			t.Errorf("%s: 3 replicas without the shared cache made %d requests, want 3 × %d", one[i].name, total(unshared[i].hits), total(one[i].hits))
		}
		if !maps.Equal(one[i].hits, three[i].hits) || one[i].full != three[i].full {
			t.Errorf("%s: 3 replicas made other requests than 1:\n 1: %v\n 3: %v", one[i].name, one[i].hits, three[i].hits)
		}
		if total(one[i].hits) == 0 {
			t.Errorf("%s: no request at all", one[i].name)
		}
	}
	// The token is in no key or value.
	for k, v := range r.dump() {
		if strings.Contains(k+v, "MARKER") {
			t.Errorf("the token is stored under %s", k)
		}
	}
}

// fakeArgoCD speaks argocd-server's REST API (grpc-gateway paths and JSON)
// for the argocd source's fixture apps, and counts requests per path.
type fakeArgoCD struct {
	t    testing.TB
	srv  *httptest.Server
	apps map[string]json.RawMessage

	mu   sync.Mutex
	hits map[string]int
}

const argoToken = "argocd-MARKER-token"

var revisionMetadata = map[string]string{
	"9f1c2e7a4b3d5e6f7a8b9c0d1e2f3a4b5c6d7e8f": `{"author":"Alice Example <alice@example.com>","date":"2026-11-21T09:58:00Z","tags":["v1.8.4"],"message":"fix retry budget"}`,
	"1111111aaaaaaabbbbbbbcccccccdddddddeeeee": `{"author":"Bob <bob@example.com>","date":"2026-11-21T07:20:00Z","message":"bump deps"}`,
	"6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f": `{"author":"Bob <bob@example.com>","date":"2026-11-21T09:45:00Z","message":"raise ingress replicas"}`,
	"5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e": `{"author":"Bob <bob@example.com>","date":"2026-11-21T08:45:00Z","message":"initial"}`,
	"7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a": `{"author":"Carol <carol@example.com>","date":"2026-11-21T10:05:00Z","message":"add admission labels"}`,
}

func newFakeArgoCD(t testing.TB) *fakeArgoCD {
	f := &fakeArgoCD{t: t, apps: map[string]json.RawMessage{}, hits: map[string]int{}}
	// The argocd source's own fixtures: Applications as argocd-server
	// returns them.
	for _, name := range []string{"shop-api", "platform"} {
		b, err := os.ReadFile("../argocd/testdata/" + name + ".json")
		if err != nil {
			t.Fatal(err)
		}
		f.apps[name] = b
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeArgoCD) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.hits[r.URL.Path]++
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if r.Header.Get("Authorization") != "Bearer "+argoToken {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":"invalid session: token is expired","code":16,"message":"invalid session: token is expired"}`)
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/api/v1/applications")
	switch {
	case r.Method != http.MethodGet:
	case path == "":
		b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"resourceVersion": "12345"},
			"items": []json.RawMessage{f.apps["platform"], f.apps["shop-api"]}})
		w.Write(b)
		return
	case strings.HasSuffix(path, "/metadata"):
		parts := strings.Split(path, "/") // "", app, "revisions", rev, "metadata"
		if md, ok := revisionMetadata[parts[3]]; ok && len(parts) == 5 {
			w.Write([]byte(md))
			return
		}
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"error":"revision not found","code":5,"message":"revision not found"}`)
		return
	}
	f.t.Errorf("unexpected request %s %s", r.Method, r.URL)
	w.WriteHeader(http.StatusNotImplemented)
}

// argoFirstPoll starts n replicas of the Argo CD source over REST at the
// same time (without shared, each going to argocd-server directly) and returns the requests argocd-server saw until every one
// has read the applications and their newest syncs' metadata.
func argoFirstPoll(t *testing.T, r *redisServer, n int, shared bool) map[string]int {
	f := newFakeArgoCD(t)
	opts := Options{Prefix: fmt.Sprintf("argo%d:", n), Fresh: 15 * time.Second, Wait: 10 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var replicas []*argocd.Source
	var transports []*Transport
	for range n {
		tr := newTransport(t, r, nil, http.DefaultTransport, opts)
		var base http.RoundTripper = tr
		if !shared {
			base = http.DefaultTransport
		}
		s := argocd.New("argocd", argocd.Config{Server: f.srv.URL, Refresh: time.Hour},
			&http.Client{Transport: withToken(argoToken, base)}, nil, discard)
		replicas, transports = append(replicas, s), append(transports, tr)
	}
	for _, s := range replicas {
		if err := s.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range replicas {
		for j := 0; j < 1000 && !s.Ready(); j++ {
			time.Sleep(10 * time.Millisecond)
		}
		if !s.Ready() {
			t.Fatalf("replica %d never read the applications", i+1)
		}
		if s := transports[i].Stats(); s.RedisErrors != 0 {
			t.Errorf("replica %d: %+v", i+1, s)
		}
		if shared {
			t.Logf("%d replicas, replica %d: %+v", n, i+1, transports[i].Stats())
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.hits)
}

func TestArgoCDRequestsDoNotGrowWithReplicas(t *testing.T) {
	r := startRedis(t)
	one := argoFirstPoll(t, r, 1, true)
	three := argoFirstPoll(t, r, 3, true)
	unshared := argoFirstPoll(t, r, 3, false)
	t.Logf("argocd-server, first poll: 1 replica %d requests, 3 replicas %d requests, 3 replicas without the shared cache %d requests",
		total(one), total(three), total(unshared))
	if total(unshared) != 3*total(one) {
		t.Errorf("3 replicas without the shared cache made %d requests, want 3 × %d", total(unshared), total(one))
	}
	if !maps.Equal(one, three) || total(one) == 0 {
		t.Errorf("3 replicas made other requests than 1:\n 1: %v\n 3: %v", one, three)
	}
	if one["/api/v1/applications"] != 1 {
		t.Errorf("the application list was read %d times", one["/api/v1/applications"])
	}
	for k, v := range r.dump() {
		if strings.Contains(k+v, "MARKER") {
			t.Errorf("the token is stored under %s", k)
		}
	}
}
