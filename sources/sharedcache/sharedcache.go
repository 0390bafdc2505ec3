// Package sharedcache shares the answers to GET requests between the
// replicas of whatchanged through Redis, so that polling a REST API
// (GitHub, argocd-server) costs about as many requests with several
// replicas as with one, with no leader to elect. An answer one replica
// fetched serves the others while it is fresh; once it is stale, one
// replica revalidates it (conditionally, when it has an ETag) while the
// others wait a bounded time for that answer. Redis failing never fails a
// request: the transport then goes to the network directly.
package sharedcache

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Options of a Transport. Only Fresh is required.
type Options struct {
	// Fresh: an answer stored less than this long ago is served without a
	// request. About half the pollers' refresh interval: every poll then
	// finds answers at most that old, and upstream sees at most about two
	// requests per interval whatever the number of replicas.
	Fresh time.Duration
	// Keep is how long an answer stays in Redis after it was last fetched
	// or revalidated (default 10×Fresh): a stale answer's ETag still makes
	// the next fetch a conditional one.
	Keep time.Duration
	// Wait bounds how long a request waits for another replica that is
	// fetching the same answer before fetching it itself (default 2s).
	Wait time.Duration
	// Lock is how long a fetching replica holds the answer's lock at most,
	// should it die while fetching (default 10s).
	Lock time.Duration
	// OpTimeout bounds each Redis operation (default 200ms).
	OpTimeout time.Duration
	// Retry: after a Redis operation failed, requests go straight to the
	// network for this long before Redis is tried again (default 5s), so a
	// hung Redis costs one OpTimeout per Retry, not one per request.
	Retry time.Duration
	// MaxBody: larger answers are not stored (default 2 MiB).
	MaxBody int64
	// Prefix starts every key (default "whatchanged:http:").
	Prefix string
	// Credentials identifies the credentials a request is made with:
	// answers are shared only between requests for which it returns the
	// same. It is hashed into the key, never stored. Default: the
	// request's Authorization, Proxy-Authorization and Cookie headers. Set
	// it when those do not identify the access: above a transport that
	// adds the credentials itself (prometheus/common's http_config), return
	// the configured credentials; for a GitHub App, whose replicas each
	// hold their own installation token, return the installation.
	Credentials func(*http.Request) string
	// Log reports Redis failing and answering again (once each).
	Log *slog.Logger
}

// Defaults fills unset fields.
func (o *Options) Defaults() {
	if o.Keep == 0 {
		o.Keep = 10 * o.Fresh
	}
	if o.Wait == 0 {
		o.Wait = 2 * time.Second
	}
	if o.Lock == 0 {
		o.Lock = 10 * time.Second
	}
	if o.OpTimeout == 0 {
		o.OpTimeout = 200 * time.Millisecond
	}
	if o.Retry == 0 {
		o.Retry = 5 * time.Second
	}
	if o.MaxBody == 0 {
		o.MaxBody = 2 << 20
	}
	if o.Prefix == "" {
		o.Prefix = "whatchanged:http:"
	}
	if o.Credentials == nil {
		o.Credentials = headerCredentials
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

func headerCredentials(r *http.Request) string {
	var b strings.Builder
	for _, name := range []string{"Authorization", "Proxy-Authorization", "Cookie"} {
		field(&b, strings.Join(r.Header.Values(name), ", "))
	}
	return b.String()
}

// varyHeaders change GitHub's or argocd-server's answer to the same URL
// and credentials (media type, API version, encoding): part of the key.
var varyHeaders = []string{"Accept", "Accept-Encoding", "Accept-Language", "X-GitHub-Api-Version"}

// storedHeaders are the response headers a stored answer keeps: what the
// clients read (pagination, validators, media type, the rate limit).
// Others, Set-Cookie above all, are not shared.
var storedHeaders = []string{"Content-Type", "Content-Encoding", "Content-Language", "Etag", "Last-Modified", "Link",
	"X-Github-Media-Type", "X-Github-Api-Version-Selected"}

func keepHeader(name string) bool {
	for _, h := range storedHeaders {
		if strings.EqualFold(h, name) {
			return true
		}
	}
	return strings.HasPrefix(strings.ToLower(name), "x-ratelimit-")
}

// Transport is an http.RoundTripper that shares GET answers through Redis.
type Transport struct {
	rdb  redis.UniversalClient
	next http.RoundTripper
	opts Options
	now  func() time.Time

	downUntil atomic.Int64 // unix nanoseconds: Redis is skipped until then
	failing   atomic.Bool  // logged as failing

	hits, misses, waits, upstream, redisErrors atomic.Int64
}

var _ http.RoundTripper = (*Transport)(nil)

// New returns a transport that shares the GET answers of next through
// rdb. rdb should bound operations by their context (go-redis's
// ContextTimeoutEnabled, as the store's client does): OpTimeout is then
// the most a slow Redis costs.
func New(rdb redis.UniversalClient, next http.RoundTripper, opts Options) (*Transport, error) {
	if rdb == nil {
		return nil, errors.New("sharedcache: no Redis client")
	}
	if opts.Fresh <= 0 {
		return nil, errors.New("sharedcache: fresh must be positive")
	}
	opts.Defaults()
	if opts.Keep < opts.Fresh {
		return nil, errors.New("sharedcache: keep must be at least fresh")
	}
	if next == nil {
		next = http.DefaultTransport
	}
	return &Transport{rdb: rdb, next: next, opts: opts, now: time.Now}, nil
}

// Stats counts what the transport did since it was made.
type Stats struct {
	// Hits were answered from Redis, without a request.
	Hits int64
	// Misses found no fresh answer in Redis (or Redis failing).
	Misses int64
	// Waits waited for another replica fetching the same answer.
	Waits int64
	// Upstream requests were sent to next.
	Upstream int64
	// RedisErrors are Redis operations that failed or timed out.
	RedisErrors int64
}

func (t *Transport) Stats() Stats {
	return Stats{Hits: t.hits.Load(), Misses: t.misses.Load(), Waits: t.waits.Load(),
		Upstream: t.upstream.Load(), RedisErrors: t.redisErrors.Load()}
}

// RoundTrip answers a GET from Redis when a fresh answer is there, else
// fetches it (or waits for the replica fetching it) and stores it.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet || req.Header.Get("Range") != "" || t.redisDown() {
		if req.Method == http.MethodGet {
			t.misses.Add(1)
		}
		return t.send(req)
	}
	ctx := req.Context()
	key := t.key(req)
	e, err := t.load(ctx, key, true)
	if err != nil {
		t.misses.Add(1)
		return t.afterRedisError(req, err, nil)
	}
	if e.fresh(t.now(), t.opts.Fresh) {
		t.hits.Add(1)
		return e.answer(req, t.now()), nil
	}
	t.misses.Add(1)
	deadline := time.Now().Add(t.opts.Wait)
	pause := 10 * time.Millisecond
	for waited := false; ; waited = true {
		token, got, err := t.lock(ctx, key)
		if err != nil {
			return t.afterRedisError(req, err, e)
		}
		if got {
			// Another replica may have stored the answer between the load
			// and the lock.
			again, err := t.load(ctx, key, true)
			if err != nil { // the lock expires by itself
				return t.afterRedisError(req, err, e)
			}
			if again.fresh(t.now(), t.opts.Fresh) {
				t.unlock(ctx, key, token)
				t.hits.Add(1)
				return again.answer(req, t.now()), nil
			}
			if again != nil {
				e = again
			}
			return t.fetch(req, key, e, token, true)
		}
		if !waited {
			t.waits.Add(1)
		}
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(min(pause, left)):
		}
		pause = min(2*pause, 100*time.Millisecond)
		at, err := t.storedAt(ctx, key)
		if err != nil {
			return t.afterRedisError(req, err, e)
		}
		if !at.IsZero() && t.now().Sub(at) < t.opts.Fresh {
			fresh, err := t.load(ctx, key, true)
			if err != nil {
				return t.afterRedisError(req, err, e)
			}
			if fresh.fresh(t.now(), t.opts.Fresh) {
				t.hits.Add(1)
				return fresh.answer(req, t.now()), nil
			}
		}
	}
	// The replica holding the lock is slow or gone: fetch without it.
	return t.fetch(req, key, e, "", true)
}

// afterRedisError goes to the network, unless the request's own context
// ended (which is no fault of Redis's).
func (t *Transport) afterRedisError(req *http.Request, err error, stale *entry) (*http.Response, error) {
	if cerr := req.Context().Err(); cerr != nil {
		return nil, cerr
	}
	t.redisFailed(err)
	return t.fetch(req, "", stale, "", false)
}

func (t *Transport) send(req *http.Request) (*http.Response, error) {
	t.upstream.Add(1)
	return t.next.RoundTrip(req)
}

// fetch asks upstream, conditionally when a stale answer has validators
// and the caller sent none, and stores a cacheable answer. A caller that
// sent its own validators gets upstream's 304 as it is: it has the body.
func (t *Transport) fetch(req *http.Request, key string, stale *entry, lock string, useRedis bool) (*http.Response, error) {
	if lock != "" {
		defer t.unlock(req.Context(), key, lock)
	}
	out := req
	added := false
	if !conditional(req) && stale != nil && stale.status == http.StatusOK {
		if etag, lm := stale.header.Get("Etag"), stale.header.Get("Last-Modified"); etag != "" || lm != "" {
			out = req.Clone(req.Context())
			if etag != "" {
				out.Header.Set("If-None-Match", etag)
			}
			if lm != "" {
				out.Header.Set("If-Modified-Since", lm)
			}
			added = true
		}
	}
	resp, err := t.send(out)
	if err != nil {
		return nil, err
	}
	switch {
	case resp.StatusCode == http.StatusNotModified:
		if stale == nil || !(added || stale.validatedBy(out, resp)) {
			return resp, nil
		}
		stale.at = t.now()
		if useRedis {
			t.refresh(req.Context(), key, stale.version)
		}
		if !added {
			return resp, nil
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		// The rate-limit headers of the 304 are newer than the stored ones.
		for name, v := range resp.Header {
			if strings.HasPrefix(strings.ToLower(name), "x-ratelimit-") {
				stale.header[name] = v
			}
		}
		return stale.answer(req, t.now()), nil
	case !useRedis || !cacheable(resp) || resp.ContentLength > t.opts.MaxBody:
		return resp, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, t.opts.MaxBody+1))
	if err != nil {
		resp.Body.Close()
		return nil, err
	}
	if int64(len(body)) > t.opts.MaxBody {
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), resp.Body), resp.Body}
		return resp, nil
	}
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	e := &entry{version: newToken(), at: t.now(), status: resp.StatusCode, header: http.Header{}, body: body}
	for name, v := range resp.Header {
		if keepHeader(name) {
			e.header[name] = v
		}
	}
	t.store(req.Context(), key, e)
	return resp, nil
}

// cacheable: successful answers, whole, that do not forbid storing.
// Errors and rate-limit answers (403, 429) pass through unstored.
func cacheable(resp *http.Response) bool {
	return resp.StatusCode >= 200 && resp.StatusCode < 300 && resp.StatusCode != http.StatusPartialContent &&
		!strings.Contains(strings.ToLower(resp.Header.Get("Cache-Control")), "no-store")
}

func conditional(req *http.Request) bool {
	return req.Header.Get("If-None-Match") != "" || req.Header.Get("If-Modified-Since") != ""
}

// key hashes everything that selects the answer: method, URL, credentials
// and the headers that change it. Fields are length-prefixed so that no
// two different requests hash the same bytes.
func (t *Transport) key(req *http.Request) string {
	var b strings.Builder
	field(&b, req.Method)
	field(&b, req.URL.String())
	field(&b, req.Host)
	field(&b, t.opts.Credentials(req))
	for _, name := range varyHeaders {
		field(&b, strings.Join(req.Header.Values(name), ", "))
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:])
}

func field(b *strings.Builder, s string) {
	b.WriteString(strconv.Itoa(len(s)))
	b.WriteByte(':')
	b.WriteString(s)
}

func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// redisDown says whether Redis failed within the last Retry.
func (t *Transport) redisDown() bool { return time.Now().UnixNano() < t.downUntil.Load() }

func (t *Transport) redisFailed(err error) {
	t.redisErrors.Add(1)
	t.downUntil.Store(time.Now().Add(t.opts.Retry).UnixNano())
	if t.failing.CompareAndSwap(false, true) {
		t.opts.Log.Warn("shared HTTP cache: Redis failed, requests go to the network directly", "retry_in", t.opts.Retry, "err", err)
	}
}

func (t *Transport) redisOK() {
	if t.failing.CompareAndSwap(true, false) {
		t.opts.Log.Info("shared HTTP cache: Redis answers again")
	}
}

// op bounds one Redis operation of a request.
func (t *Transport) op(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, t.opts.OpTimeout)
}

// detached bounds an operation that must happen even though the request
// ended (releasing a lock, storing an answer already read).
func (t *Transport) detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), t.opts.OpTimeout)
}

func (t *Transport) entryKey(key string) string { return t.opts.Prefix + "resp:" + key }
func (t *Transport) lockKey(key string) string  { return t.opts.Prefix + "lock:" + key }

// entry is a stored answer. In Redis, a hash: v (a token naming this
// answer, so a revalidation refreshes only the answer it validated), at
// (unix milliseconds when fetched or last revalidated), meta (status and
// headers, JSON) and body.
type entry struct {
	version string
	at      time.Time
	status  int
	header  http.Header
	body    []byte
}

type meta struct {
	Status int         `json:"status"`
	Header http.Header `json:"header"`
}

func (e *entry) fresh(now time.Time, fresh time.Duration) bool {
	return e != nil && now.Sub(e.at) < fresh
}

// load reads the stored answer (nil when there is none).
func (t *Transport) load(ctx context.Context, key string, withBody bool) (*entry, error) {
	octx, cancel := t.op(ctx)
	defer cancel()
	fields := []string{"v", "at", "meta"}
	if withBody {
		fields = append(fields, "body")
	}
	vals, err := t.rdb.HMGet(octx, t.entryKey(key), fields...).Result()
	if err != nil {
		return nil, err
	}
	t.redisOK()
	str := func(i int) string { s, _ := vals[i].(string); return s }
	if str(0) == "" {
		return nil, nil
	}
	ms, err := strconv.ParseInt(str(1), 10, 64)
	var m meta
	if err != nil || json.Unmarshal([]byte(str(2)), &m) != nil || m.Status == 0 {
		return nil, nil // not written by this package: ignored, and overwritten by the next fetch
	}
	e := &entry{version: str(0), at: time.UnixMilli(ms), status: m.Status, header: m.Header}
	if e.header == nil {
		e.header = http.Header{}
	}
	if withBody {
		e.body = []byte(str(3))
	}
	return e, nil
}

// storedAt reads only when the stored answer was fetched (zero: none):
// what a waiting replica polls, without the body.
func (t *Transport) storedAt(ctx context.Context, key string) (time.Time, error) {
	octx, cancel := t.op(ctx)
	defer cancel()
	s, err := t.rdb.HGet(octx, t.entryKey(key), "at").Result()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, nil
	}
	return time.UnixMilli(ms), nil
}

func (t *Transport) store(ctx context.Context, key string, e *entry) {
	if t.redisDown() { // failed during this request: not worth another timeout
		return
	}
	m, err := json.Marshal(meta{Status: e.status, Header: e.header})
	if err != nil {
		return
	}
	octx, cancel := t.detached(ctx)
	defer cancel()
	k := t.entryKey(key)
	_, err = t.rdb.TxPipelined(octx, func(p redis.Pipeliner) error {
		p.HSet(octx, k, "v", e.version, "at", e.at.UnixMilli(), "meta", m, "body", e.body)
		p.PExpire(octx, k, t.opts.Keep)
		return nil
	})
	if err != nil {
		t.redisFailed(err)
	}
}

// refreshScript marks the answer named ARGV[1] as fetched at ARGV[2] and
// keeps it for ARGV[3] ms more, unless another replica replaced it
// meanwhile.
var refreshScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'v') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'at', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
return 0`)

func (t *Transport) refresh(ctx context.Context, key, version string) {
	if t.redisDown() { // failed during this request: not worth another timeout
		return
	}
	octx, cancel := t.detached(ctx)
	defer cancel()
	err := refreshScript.Run(octx, t.rdb, []string{t.entryKey(key)}, version, t.now().UnixMilli(), t.opts.Keep.Milliseconds()).Err()
	if err != nil {
		t.redisFailed(err)
	}
}

func (t *Transport) lock(ctx context.Context, key string) (token string, got bool, err error) {
	octx, cancel := t.op(ctx)
	defer cancel()
	token = newToken()
	got, err = t.rdb.SetNX(octx, t.lockKey(key), token, t.opts.Lock).Result()
	return token, got, err
}

// unlockScript deletes the lock only if it is still this fetch's: one that
// outlived Lock may have been taken by another replica since.
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)

func (t *Transport) unlock(ctx context.Context, key, token string) {
	if t.redisDown() { // failed during this request: not worth another timeout
		return
	}
	octx, cancel := t.detached(ctx)
	defer cancel()
	if err := unlockScript.Run(octx, t.rdb, []string{t.lockKey(key)}, token).Err(); err != nil {
		t.redisFailed(err)
	}
}

// answer is the stored answer as a response to req: 304 when req's
// validators match it, else the stored status, headers and body. Age says
// how old it is (RFC 9111).
func (e *entry) answer(req *http.Request, now time.Time) *http.Response {
	resp := &http.Response{Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Request: req, Header: http.Header{}}
	age := strconv.Itoa(int(max(0, now.Sub(e.at)) / time.Second))
	if e.notModified(req) {
		for name, v := range e.header {
			if l := strings.ToLower(name); l == "etag" || l == "last-modified" || strings.HasPrefix(l, "x-ratelimit-") {
				resp.Header[name] = append([]string(nil), v...)
			}
		}
		resp.Header.Set("Age", age)
		resp.StatusCode, resp.Status = http.StatusNotModified, "304 Not Modified"
		resp.Body = http.NoBody
		return resp
	}
	resp.Header = e.header.Clone()
	resp.Header.Set("Age", age)
	resp.StatusCode, resp.Status = e.status, fmt.Sprintf("%d %s", e.status, http.StatusText(e.status))
	resp.Body = io.NopCloser(bytes.NewReader(e.body))
	resp.ContentLength = int64(len(e.body))
	return resp
}

// notModified evaluates req's validators against the stored answer as
// RFC 9110 13.2.2 orders them: If-None-Match (weak comparison) wins over
// If-Modified-Since.
func (e *entry) notModified(req *http.Request) bool {
	if e.status != http.StatusOK {
		return false
	}
	if inm := req.Header.Get("If-None-Match"); inm != "" {
		return etagListMatches(inm, e.header.Get("Etag"))
	}
	ims, lm := req.Header.Get("If-Modified-Since"), e.header.Get("Last-Modified")
	if ims == "" || lm == "" {
		return false
	}
	since, err1 := http.ParseTime(ims)
	modified, err2 := http.ParseTime(lm)
	return err1 == nil && err2 == nil && !modified.After(since)
}

// validatedBy says whether upstream's 304 to sent is about this answer:
// its ETag (or the one asked about) or Last-Modified is the stored one's.
func (e *entry) validatedBy(sent *http.Request, resp *http.Response) bool {
	if etag := e.header.Get("Etag"); etag != "" {
		if got := resp.Header.Get("Etag"); got != "" {
			return weakEqual(got, etag)
		}
		if inm := sent.Header.Get("If-None-Match"); inm != "" {
			return etagListMatches(inm, etag)
		}
	}
	lm := e.header.Get("Last-Modified")
	return lm != "" && sent.Header.Get("If-None-Match") == "" && sent.Header.Get("If-Modified-Since") == lm
}

func etagListMatches(list, etag string) bool {
	if etag == "" {
		return false
	}
	for _, tag := range strings.Split(list, ",") {
		if tag = strings.TrimSpace(tag); tag == "*" || weakEqual(tag, etag) {
			return true
		}
	}
	return false
}

func weakEqual(a, b string) bool {
	return strings.TrimPrefix(a, "W/") == strings.TrimPrefix(b, "W/")
}
