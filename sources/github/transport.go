package github

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httputil"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// RateLimitedError says GitHub refused for rate reasons; no request is made
// until Until.
type RateLimitedError struct{ Until time.Time }

func (e *RateLimitedError) Error() string {
	return "rate limited until " + e.Until.UTC().Format(time.RFC3339)
}

// budgetTransport makes every GET conditional (If-None-Match with the ETag
// of the last answer; a 304 costs no rate limit and is served from the
// stored answer), tracks the rate-limit headers, and once GitHub says
// "rate limited" (403 with no remaining, or 429) makes no request at all
// until the reset time.
type budgetTransport struct {
	next http.RoundTripper
	now  func() time.Time

	mu      sync.Mutex
	stored  *lru.Cache[string, []byte] // cache key → raw HTTP response with an ETag
	blocked time.Time

	remaining, limit atomic.Int64
	requests         atomic.Int64 // sent to GitHub
	notModified      atomic.Int64 // of which answered 304
}

func newBudgetTransport(next http.RoundTripper) *budgetTransport {
	stored, _ := lru.New[string, []byte](maxStored) // fails only for a size ≤ 0
	t := &budgetTransport{next: next, now: time.Now, stored: stored}
	t.remaining.Store(-1)
	t.limit.Store(-1)
	return t
}

func (t *budgetTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	blocked := t.blocked
	t.mu.Unlock()
	if t.now().Before(blocked) {
		return nil, &RateLimitedError{Until: blocked}
	}
	// ETags depend on the credentials: a rotated App token must not reuse them.
	sum := sha256.Sum256([]byte(req.Header.Get("Authorization")))
	key := req.Method + " " + req.URL.String() + " " + hex.EncodeToString(sum[:8])
	var cached []byte
	if req.Method == http.MethodGet {
		cached, _ = t.stored.Get(key)
		if cached != nil {
			if prev, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(cached)), req); err == nil {
				req = req.Clone(req.Context())
				req.Header.Set("If-None-Match", prev.Header.Get("Etag"))
				prev.Body.Close()
			}
		}
	}
	t.requests.Add(1)
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	t.track(resp)
	switch {
	case resp.StatusCode == http.StatusNotModified && cached != nil:
		t.notModified.Add(1)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return http.ReadResponse(bufio.NewReader(bytes.NewReader(cached)), req)
	case resp.StatusCode == http.StatusTooManyRequests ||
		(resp.StatusCode == http.StatusForbidden && (resp.Header.Get("X-Ratelimit-Remaining") == "0" || resp.Header.Get("Retry-After") != "")):
		until := t.resetTime(resp)
		t.mu.Lock()
		t.blocked = until
		t.mu.Unlock()
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil, &RateLimitedError{Until: until}
	case resp.StatusCode == http.StatusOK && req.Method == http.MethodGet && resp.Header.Get("Etag") != "":
		raw, err := httputil.DumpResponse(resp, true)
		if err == nil {
			t.stored.Add(key, raw)
			return http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), req)
		}
	}
	return resp, nil
}

func (t *budgetTransport) track(resp *http.Response) {
	if v, err := strconv.ParseInt(resp.Header.Get("X-Ratelimit-Remaining"), 10, 64); err == nil {
		t.remaining.Store(v)
	}
	if v, err := strconv.ParseInt(resp.Header.Get("X-Ratelimit-Limit"), 10, 64); err == nil {
		t.limit.Store(v)
	}
}

// resetTime reads Retry-After (seconds) or X-RateLimit-Reset (epoch
// seconds); without either, GitHub's advice is to wait a minute.
func (t *budgetTransport) resetTime(resp *http.Response) time.Time {
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
		return t.now().Add(time.Duration(s) * time.Second)
	}
	if s, err := strconv.ParseInt(resp.Header.Get("X-Ratelimit-Reset"), 10, 64); err == nil {
		return time.Unix(s, 0)
	}
	return t.now().Add(time.Minute)
}

// Stats is what the transport has spent, for metrics and the benchmark.
type Stats struct {
	Requests, NotModified int64
	Remaining, Limit      int64 // -1 until GitHub said
}

func (t *budgetTransport) stats() Stats {
	return Stats{Requests: t.requests.Load(), NotModified: t.notModified.Load(), Remaining: t.remaining.Load(), Limit: t.limit.Load()}
}
