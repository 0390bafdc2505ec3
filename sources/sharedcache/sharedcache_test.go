package sharedcache

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	commoncfg "github.com/prometheus/common/config"
)

// fakeAPI is a REST API as GitHub serves one: JSON lists with ETags (a
// matching If-None-Match is answered 304 without a body), Link pagination,
// rate-limit headers, and answers that depend on the token (/user).
// status, when set, answers every request with it (and rate-limit headers
// saying none is left).
type fakeAPI struct {
	t   testing.TB
	srv *httptest.Server

	mu     sync.Mutex
	routes map[string]string // path?query → body
	users  map[string]string // Authorization → login
	status int
	hits   map[string]int // path?query → requests
	sent   []http.Header  // request headers, in order
	notMod int
}

func newFakeAPI(t testing.TB) *fakeAPI {
	f := &fakeAPI{t: t, routes: map[string]string{}, users: map[string]string{}, hits: map[string]int{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPI) set(path, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes[path] = body
}

func etagOf(body string) string { return fmt.Sprintf(`W/"%x"`, sha256.Sum256([]byte(body))) }

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	path := r.URL.RequestURI()
	f.hits[path]++
	f.sent = append(f.sent, r.Header.Clone())
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-RateLimit-Limit", "5000")
	w.Header().Set("X-RateLimit-Remaining", fmt.Sprint(5000-len(f.sent)))
	w.Header().Set("Set-Cookie", "session=per-replica; Path=/")
	if f.status != 0 {
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.Header().Set("X-RateLimit-Reset", fmt.Sprint(time.Now().Add(time.Hour).Unix()))
		if f.status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "60")
		}
		w.WriteHeader(f.status)
		fmt.Fprint(w, `{"message":"API rate limit exceeded"}`)
		return
	}
	body, ok := f.routes[path]
	if path == "/user" {
		login, known := f.users[r.Header.Get("Authorization")]
		body, ok = fmt.Sprintf(`{"login":%q}`, login), known
	}
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"message":"Not Found"}`)
		return
	}
	etag := etagOf(body)
	w.Header().Set("ETag", etag)
	if r.URL.Query().Get("page") == "1" {
		next := f.srv.URL + strings.Replace(path, "page=1", "page=2", 1)
		w.Header().Set("Link", fmt.Sprintf(`<%s>; rel="next", <%s>; rel="last"`, next, next))
	}
	if r.Header.Get("If-None-Match") == etag {
		f.notMod++
		w.WriteHeader(http.StatusNotModified)
		return
	}
	fmt.Fprint(w, body)
}

func (f *fakeAPI) hitsOf(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[path]
}

func (f *fakeAPI) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sent)
}

func (f *fakeAPI) lastSent() http.Header {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sent[len(f.sent)-1]
}

// clock is a test's time for freshness, shared by its replicas.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

var prefixes atomic.Int64

// newTransport is one replica's transport on r, with its own key prefix
// per test unless opts names one.
func newTransport(t testing.TB, r *redisServer, c *clock, next http.RoundTripper, opts Options) *Transport {
	t.Helper()
	if opts.Fresh == 0 {
		opts.Fresh = time.Minute
	}
	if opts.Prefix == "" {
		opts.Prefix = fmt.Sprintf("test%d:", prefixes.Add(1))
	}
	tr, err := New(r.client(), next, opts)
	if err != nil {
		t.Fatal(err)
	}
	if c != nil {
		tr.now = c.now
	}
	return tr
}

// withToken is how credentials travel when the cache sits below them (as
// inside github.New: GitHub App tokens, or http_config's round tripper put
// above the cache).
func withToken(token string, rt http.RoundTripper) http.RoundTripper {
	return commoncfg.NewAuthorizationCredentialsRoundTripper("Bearer", commoncfg.NewInlineSecret(token), rt)
}

type answer struct {
	status int
	header http.Header
	body   string
}

func get(t testing.TB, rt http.RoundTripper, url string, header ...string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/vnd.github+json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, string(b)}
}

func TestReplicasShareAnAnswerWithItsHeaders(t *testing.T) {
	r := startRedis(t)
	f := newFakeAPI(t)
	f.set("/repos/acme/api/releases?per_page=20&page=1", `[{"tag_name":"v1.8.4"}]`)
	f.set("/repos/acme/api/releases?per_page=20&page=2", `[{"tag_name":"v1.8.3"}]`)
	c := newClock()
	opts := Options{Prefix: "shared:"}
	replicas := []*Transport{
		newTransport(t, r, c, http.DefaultTransport, opts),
		newTransport(t, r, c, http.DefaultTransport, opts),
		newTransport(t, r, c, http.DefaultTransport, opts),
	}
	page1 := f.srv.URL + "/repos/acme/api/releases?per_page=20&page=1"
	first := get(t, withToken("tok", replicas[0]), page1)
	if first.status != http.StatusOK || first.header.Get("Link") == "" {
		t.Fatalf("first answer: %d %v", first.status, first.header)
	}
	for i, rt := range replicas[1:] {
		got := get(t, withToken("tok", rt), page1)
		if got.status != http.StatusOK || got.body != first.body {
			t.Errorf("replica %d: %d %q, want the first replica's 200 %q", i+2, got.status, got.body, first.body)
		}
		// What clients read: pagination, validators, media type, rate limit.
		for _, h := range []string{"Link", "Etag", "Content-Type", "X-Ratelimit-Limit", "X-Ratelimit-Remaining"} {
			if got.header.Get(h) != first.header.Get(h) {
				t.Errorf("replica %d: %s = %q, want %q", i+2, h, got.header.Get(h), first.header.Get(h))
			}
		}
		if got.header.Get("Set-Cookie") != "" {
			t.Errorf("replica %d got another replica's Set-Cookie", i+2)
		}
		// Pagination goes on through the cache: the Link the replica read
		// leads to the next page, fetched once for all replicas.
		next := strings.TrimPrefix(strings.Split(got.header.Get("Link"), ">")[0], "<")
		if p2 := get(t, withToken("tok", rt), next); p2.status != http.StatusOK || p2.body != `[{"tag_name":"v1.8.3"}]` {
			t.Errorf("replica %d, page 2: %d %q", i+2, p2.status, p2.body)
		}
	}
	if n := f.hitsOf("/repos/acme/api/releases?per_page=20&page=1"); n != 1 {
		t.Errorf("page 1 fetched %d times by 3 replicas, want 1", n)
	}
	if n := f.hitsOf("/repos/acme/api/releases?per_page=20&page=2"); n != 1 {
		t.Errorf("page 2 fetched %d times, want 1", n)
	}
	if s := replicas[2].Stats(); s.Hits != 2 || s.Upstream != 0 || s.RedisErrors != 0 {
		t.Errorf("third replica's stats: %+v", s)
	}
}

func TestStaleAnswerIsRevalidatedOnceWithItsETag(t *testing.T) {
	r := startRedis(t)
	f := newFakeAPI(t)
	const path = "/repos/acme/api/deployments"
	f.set(path, `[{"id":12}]`)
	c := newClock()
	opts := Options{Prefix: "reval:", Fresh: time.Minute}
	a := withToken("tok", newTransport(t, r, c, http.DefaultTransport, opts))
	b := withToken("tok", newTransport(t, r, c, http.DefaultTransport, opts))
	first := get(t, a, f.srv.URL+path)
	c.advance(2 * time.Minute)

	t.Run("caller without validators gets the stored 200", func(t *testing.T) {
		got := get(t, b, f.srv.URL+path)
		if got.status != http.StatusOK || got.body != first.body {
			t.Fatalf("got %d %q, want 200 %q", got.status, got.body, first.body)
		}
		if sent := f.lastSent().Get("If-None-Match"); sent != etagOf(first.body) {
			t.Errorf("upstream was asked with If-None-Match %q, want the stored ETag", sent)
		}
		if f.notMod != 1 || f.hitsOf(path) != 2 {
			t.Errorf("upstream: %d requests, %d answered 304", f.hitsOf(path), f.notMod)
		}
		// The 304 made the stored answer fresh again: no request now.
		if got := get(t, a, f.srv.URL+path); got.status != http.StatusOK || got.body != first.body || f.hitsOf(path) != 2 {
			t.Errorf("after the revalidation: %d %q, upstream %d requests", got.status, got.body, f.hitsOf(path))
		}
	})

	t.Run("caller with its own validators gets upstream's 304", func(t *testing.T) {
		c.advance(2 * time.Minute)
		got := get(t, a, f.srv.URL+path, "If-None-Match", first.header.Get("Etag"))
		// The caller (GitHub's ETag cache) has the body and expects the 304.
		if got.status != http.StatusNotModified || got.body != "" {
			t.Fatalf("got %d %q, want upstream's 304", got.status, got.body)
		}
		if got.header.Get("Age") != "" {
			t.Errorf("upstream's 304 was not passed as it is: Age %q", got.header.Get("Age"))
		}
		if f.hitsOf(path) != 3 || f.notMod != 2 {
			t.Errorf("upstream: %d requests, %d answered 304", f.hitsOf(path), f.notMod)
		}
		// It revalidated the stored answer for the other replica too, which
		// with the same ETag gets a 304 from Redis, and without one the 200.
		if got := get(t, b, f.srv.URL+path, "If-None-Match", first.header.Get("Etag")); got.status != http.StatusNotModified || got.body != "" {
			t.Errorf("other replica with the ETag: %d %q, want a 304", got.status, got.body)
		}
		if got := get(t, b, f.srv.URL+path); got.status != http.StatusOK || got.body != first.body {
			t.Errorf("other replica without validators: %d %q, want the 200", got.status, got.body)
		}
		if got := get(t, b, f.srv.URL+path, "If-None-Match", `W/"older"`); got.status != http.StatusOK || got.body != first.body {
			t.Errorf("other replica with an older ETag: %d %q, want the 200", got.status, got.body)
		}
		if n := f.hitsOf(path); n != 3 {
			t.Errorf("upstream: %d requests, want 3", n)
		}
	})

	t.Run("a changed answer replaces the stored one", func(t *testing.T) {
		c.advance(2 * time.Minute)
		f.set(path, `[{"id":13},{"id":12}]`)
		got := get(t, a, f.srv.URL+path, "If-None-Match", first.header.Get("Etag"))
		if got.status != http.StatusOK || got.body != `[{"id":13},{"id":12}]` {
			t.Fatalf("got %d %q", got.status, got.body)
		}
		if got := get(t, b, f.srv.URL+path, "If-None-Match", first.header.Get("Etag")); got.status != http.StatusOK || got.body != `[{"id":13},{"id":12}]` {
			t.Errorf("other replica with the old ETag: %d %q, want the new 200", got.status, got.body)
		}
		if n := f.hitsOf(path); n != 4 {
			t.Errorf("upstream: %d requests, want 4", n)
		}
	})
}

func TestTokensNeverShareAnAnswer(t *testing.T) {
	r := startRedis(t)
	f := newFakeAPI(t)
	f.users["Bearer tok-alice"] = "alice"
	f.users["Bearer tok-bob"] = "bob"
	opts := Options{Prefix: "creds:"}
	a := newTransport(t, r, nil, http.DefaultTransport, opts)
	b := newTransport(t, r, nil, http.DefaultTransport, opts)
	if got := get(t, withToken("tok-alice", a), f.srv.URL+"/user"); got.body != `{"login":"alice"}` {
		t.Fatalf("alice: %q", got.body)
	}
	if got := get(t, withToken("tok-bob", b), f.srv.URL+"/user"); got.body != `{"login":"bob"}` {
		t.Errorf("bob got %q", got.body)
	}
	if got := get(t, withToken("tok-bob", a), f.srv.URL+"/user"); got.body != `{"login":"bob"}` {
		t.Errorf("bob through alice's replica got %q", got.body)
	}
	if got := get(t, withToken("tok-alice", b), f.srv.URL+"/user"); got.body != `{"login":"alice"}` {
		t.Errorf("alice through bob's replica got %q", got.body)
	}
	if n := f.hitsOf("/user"); n != 2 {
		t.Errorf("upstream saw %d requests, want one per token", n)
	}
	if n := len(r.dump()); n != 2 {
		t.Errorf("%d keys in Redis, want one answer per token", n)
	}

	// Above a transport that adds the credentials itself (http_config),
	// the cache sees none: Credentials names them instead.
	t.Run("credentials added below the cache", func(t *testing.T) {
		for _, tok := range []string{"tok-alice", "tok-bob", "tok-alice"} {
			rt := newTransport(t, r, nil, withToken(tok, http.DefaultTransport),
				Options{Prefix: "below:", Credentials: func(*http.Request) string { return tok }})
			login := strings.TrimPrefix(tok, "tok-")
			if got := get(t, rt, f.srv.URL+"/user"); got.body != fmt.Sprintf(`{"login":%q}`, login) {
				t.Errorf("%s got %q", login, got.body)
			}
		}
		if n := f.hitsOf("/user"); n != 4 {
			t.Errorf("upstream saw %d requests in all, want 4 (two more, one per token)", n)
		}
	})
}

func TestNoCredentialIsStored(t *testing.T) {
	r := startRedis(t)
	f := newFakeAPI(t)
	const marker = "ghp_MARKER0123456789abcdefghijklmnopqrstu"
	f.users["Bearer "+marker] = "alice"
	f.set("/repos/acme/api/releases?per_page=20&page=1", `[]`)
	f.set("/repos/acme/api/releases?per_page=20&page=2", `[]`)
	byHeader := newTransport(t, r, nil, http.DefaultTransport, Options{Prefix: "marker:"})
	// As the lead may wire it above http_config: the token as Credentials.
	byOption := newTransport(t, r, nil, withToken(marker, http.DefaultTransport),
		Options{Prefix: "marker2:", Credentials: func(*http.Request) string { return marker }})
	for _, rt := range []http.RoundTripper{withToken(marker, byHeader), byOption} {
		for _, p := range []string{"/user", "/repos/acme/api/releases?per_page=20&page=1", "/repos/acme/api/releases?per_page=20&page=2"} {
			if got := get(t, rt, f.srv.URL+p); got.status != http.StatusOK {
				t.Fatalf("%s: %d", p, got.status)
			}
		}
	}
	// A lock, as a replica holds one while fetching.
	if _, got, err := byHeader.lock(context.Background(), "some-key"); err != nil || !got {
		t.Fatalf("lock: %v %v", got, err)
	}
	keys := r.dump()
	if len(keys) != 7 {
		t.Errorf("%d keys, want 6 answers and a lock", len(keys))
	}
	for k, v := range keys {
		for _, secret := range []string{marker, "MARKER", "Bearer"} {
			if strings.Contains(k, secret) || strings.Contains(v, secret) {
				t.Errorf("%q stored in Redis under %s", secret, k)
			}
		}
	}
}

func TestFailuresAndRateLimitsAreNotStored(t *testing.T) {
	r := startRedis(t)
	for _, status := range []int{http.StatusForbidden, http.StatusTooManyRequests, http.StatusNotFound, http.StatusInternalServerError} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			f := newFakeAPI(t)
			if status != http.StatusNotFound {
				f.status = status
			}
			opts := Options{Prefix: fmt.Sprintf("fail%d:", status)}
			a := withToken("tok", newTransport(t, r, nil, http.DefaultTransport, opts))
			b := withToken("tok", newTransport(t, r, nil, http.DefaultTransport, opts))
			for _, rt := range []http.RoundTripper{a, b, a} {
				got := get(t, rt, f.srv.URL+"/repos/acme/api/releases")
				if got.status != status {
					t.Fatalf("got %d, want upstream's %d", got.status, status)
				}
				if status == http.StatusForbidden && got.header.Get("X-Ratelimit-Remaining") != "0" {
					t.Errorf("rate-limit headers lost: %v", got.header)
				}
			}
			if n := f.total(); n != 3 {
				t.Errorf("upstream saw %d requests, want all 3", n)
			}
			for k := range r.dump() {
				if strings.HasPrefix(k, opts.Prefix) {
					t.Errorf("stored %s", k)
				}
			}
		})
	}
}

func TestLargeAnswersPassThroughUnstored(t *testing.T) {
	r := startRedis(t)
	f := newFakeAPI(t)
	big := `"` + strings.Repeat("x", 5000) + `"`
	f.set("/api/v1/applications", big)
	opts := Options{Prefix: "big:", MaxBody: 4096}
	for i := range 2 {
		rt := withToken("tok", newTransport(t, r, nil, http.DefaultTransport, opts))
		if got := get(t, rt, f.srv.URL+"/api/v1/applications"); got.status != http.StatusOK || got.body != big {
			t.Fatalf("replica %d: %d, %d bytes, want all %d", i+1, got.status, len(got.body), len(big))
		}
	}
	if n := f.total(); n != 2 {
		t.Errorf("upstream saw %d requests, want 2 (too big to share)", n)
	}
	if keys := r.dump(); len(keys) != 0 {
		t.Errorf("stored: %v", keys)
	}
}

func TestWaitingForADeadFetcherIsBounded(t *testing.T) {
	r := startRedis(t)
	f := newFakeAPI(t)
	f.set("/repos/acme/api/releases", `[]`)
	opts := Options{Prefix: "dead:", Wait: 300 * time.Millisecond}
	tr := newTransport(t, r, nil, http.DefaultTransport, opts)
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/repos/acme/api/releases", nil)
	req.Header.Set("Accept", "application/vnd.github+json")
	// A replica took the lock and died: the lock stays until it expires.
	if _, got, err := tr.lock(context.Background(), tr.key(req)); err != nil || !got {
		t.Fatalf("lock: %v %v", got, err)
	}
	start := time.Now()
	got := get(t, tr, f.srv.URL+"/repos/acme/api/releases")
	if took := time.Since(start); got.status != http.StatusOK || took < opts.Wait {
		t.Errorf("got %d after %s, want a 200 after waiting %s", got.status, took, opts.Wait)
	}
	if s := tr.Stats(); s.Waits != 1 || s.Upstream != 1 {
		t.Errorf("stats: %+v", s)
	}
	// What it fetched without the lock is shared all the same.
	other := newTransport(t, r, nil, http.DefaultTransport, opts)
	if got := get(t, other, f.srv.URL+"/repos/acme/api/releases"); got.status != http.StatusOK || f.total() != 1 {
		t.Errorf("other replica: %d, upstream %d requests", got.status, f.total())
	}
}

func TestRedisFailingFailsOpen(t *testing.T) {
	r := startRedis(t)
	f := newFakeAPI(t)
	f.set("/repos/acme/api/releases", `[{"tag_name":"v1"}]`)
	f.set("/repos/acme/api/deployments", `[{"id":1}]`)
	opts := Options{Prefix: "down:", Retry: 200 * time.Millisecond}
	a := newTransport(t, r, nil, http.DefaultTransport, opts)
	b := newTransport(t, r, nil, http.DefaultTransport, opts)
	url := f.srv.URL + "/repos/acme/api/releases"
	get(t, withToken("tok", a), url)
	get(t, withToken("tok", b), url)
	if n := f.hitsOf("/repos/acme/api/releases"); n != 1 {
		t.Fatalf("upstream saw %d requests before Redis died, want 1", n)
	}

	t.Run("killed", func(t *testing.T) {
		r.Stop()
		for _, rt := range []http.RoundTripper{a, b, a} {
			if got := get(t, withToken("tok", rt), url); got.status != http.StatusOK || got.body != `[{"tag_name":"v1"}]` {
				t.Fatalf("with Redis dead: %d %q", got.status, got.body)
			}
		}
		if s := a.Stats(); s.RedisErrors == 0 || s.Upstream != 1+2 {
			t.Errorf("stats: %+v, want Redis errors counted and the requests sent upstream", s)
		}
		if n := f.hitsOf("/repos/acme/api/releases"); n != 4 {
			t.Errorf("upstream saw %d requests, want 1 + 3", n)
		}
	})

	t.Run("back", func(t *testing.T) {
		r.Start()
		time.Sleep(opts.Retry)
		deps := f.srv.URL + "/repos/acme/api/deployments"
		get(t, withToken("tok", a), deps)
		if got := get(t, withToken("tok", b), deps); got.body != `[{"id":1}]` {
			t.Errorf("got %q", got.body)
		}
		if n := f.hitsOf("/repos/acme/api/deployments"); n != 1 {
			t.Errorf("upstream saw %d requests once Redis was back, want 1", n)
		}
	})

	t.Run("hung", func(t *testing.T) {
		r.Pause()
		time.Sleep(opts.Retry)
		hung := newTransport(t, r, nil, http.DefaultTransport, Options{Prefix: "down:", OpTimeout: 100 * time.Millisecond})
		start := time.Now()
		if got := get(t, withToken("tok", hung), url); got.status != http.StatusOK || got.body != `[{"tag_name":"v1"}]` {
			t.Fatalf("with Redis hung: %d %q", got.status, got.body)
		}
		// One timed-out operation, then the network; the client's own read
		// timeout (1s) is not waited for. Generous: a loaded machine.
		if took := time.Since(start); took > 900*time.Millisecond {
			t.Errorf("took %s with Redis hung and a 100ms operation timeout", took)
		}
		// Within Retry, the next request does not try Redis at all.
		get(t, withToken("tok", hung), url)
		if s := hung.Stats(); s.RedisErrors != 1 || s.Upstream != 2 {
			t.Errorf("stats: %+v, want one Redis error and both requests upstream", s)
		}
	})
}

func TestOptions(t *testing.T) {
	r := startRedis(t)
	for name, opts := range map[string]Options{
		"fresh unset":             {},
		"keep shorter than fresh": {Fresh: time.Minute, Keep: time.Second},
	} {
		if _, err := New(r.client(), nil, opts); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := New(nil, nil, Options{Fresh: time.Minute}); err == nil {
		t.Error("no Redis client: no error")
	}
}
