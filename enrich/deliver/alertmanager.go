package deliver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/whatchanged/whatchanged/sources/httperr"
)

// UpstreamConfig is one Alertmanager of the inline mode.
type UpstreamConfig struct {
	Name    string
	URL     string
	Timeout time.Duration
	// DNSDiscovery posts alerts to every address the URL's host resolves
	// to, as Prometheus does to every replica it discovers: behind a
	// headless Service (prometheus-operator's alertmanager-operated), a
	// post to the name would reach one random replica.
	DNSDiscovery bool
	// Resolver looks the host up; nil: the system's.
	Resolver *net.Resolver
	// Transport carries the upstream's http_config (credentials, TLS);
	// nil: a default one.
	Transport http.RoundTripper
}

// Alertmanagers forwards postable alerts to every upstream (Prometheus
// would have sent to each HA replica itself) and proxies everything else to
// the first healthy one.
type Alertmanagers struct {
	ups []*upstream
}

type upstream struct {
	UpstreamConfig
	base    *url.URL
	client  *http.Client
	healthy atomic.Bool
	// addrs caches DNS discovery's answer for addrsTTL.
	mu       sync.Mutex
	addrs    []string
	resolved time.Time
}

// addrsTTL is how long a discovery answer is used: a replica that comes or
// goes is seen within it, and a burst of alerts costs one lookup.
const addrsTTL = 15 * time.Second

// NewAlertmanagers builds the upstreams; it does no I/O.
func NewAlertmanagers(cfgs []UpstreamConfig) (*Alertmanagers, error) {
	if len(cfgs) == 0 {
		return nil, errors.New("inline mode needs at least one upstream Alertmanager")
	}
	a := &Alertmanagers{}
	for _, c := range cfgs {
		u, err := url.Parse(c.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("upstream %s: not an http(s) URL", c.Name)
		}
		if c.Timeout == 0 {
			c.Timeout = 10 * time.Second // Prometheus's own send timeout
		}
		if c.Transport == nil {
			c.Transport = http.DefaultTransport
		}
		up := &upstream{UpstreamConfig: c, base: u, client: &http.Client{
			Transport: c.Transport, Timeout: c.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}}
		up.healthy.Store(true)
		a.ups = append(a.ups, up)
	}
	return a, nil
}

// Names lists the upstreams in order.
func (a *Alertmanagers) Names() []string {
	names := make([]string, len(a.ups))
	for i, u := range a.ups {
		names[i] = u.Name
	}
	return names
}

// PostResult is what to answer Prometheus.
type PostResult struct {
	Status      int
	Body        []byte
	ContentType string
	// PerUpstream says what each upstream did, for logs and the answer.
	PerUpstream []string
}

const alertsPath = "/api/v2/alerts"

// PostAlerts sends the enriched alerts to every upstream at once. An
// upstream that rejects the enriched body with a 4xx gets the original
// once: enrichment must never be why alerts are refused. The answer:
//   - 200 when at least one upstream accepted;
//   - else the first upstream refusal of the alerts themselves (a 4xx that
//     refusesAlerts, such as Alertmanager's 400 or 422), status and body
//     as the upstream sent them: the batch can never pass, and a 503 would
//     tell the sender to try it again;
//   - else 503: no upstream could be reached, failed, asked for later, or
//     refused whatchanged's own access (401, 403, 404), so the alerts are
//     stored nowhere and may pass later.
func (a *Alertmanagers) PostAlerts(ctx context.Context, enriched, original []byte) PostResult {
	type answer struct {
		status int
		body   []byte
		ctype  string
		note   string
	}
	var sends []send
	for _, up := range a.ups {
		sends = append(sends, up.sends(ctx)...)
	}
	answers := make([]answer, len(sends))
	var wg sync.WaitGroup
	for i, sd := range sends {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, body, ctype, err := sd.up.post(ctx, sd.base, enriched)
			note := ""
			if err == nil && refusedBody(status) && !bytes.Equal(enriched, original) {
				status, body, ctype, err = sd.up.post(ctx, sd.base, original)
				note = " (original body, after the enriched one was refused)"
			}
			if err != nil {
				answers[i] = answer{note: fmt.Sprintf("%s: %v%s", sd.name, err, sd.note)}
				return
			}
			answers[i] = answer{status: status, body: body, ctype: ctype, note: fmt.Sprintf("%s: %d%s%s", sd.name, status, note, sd.note)}
		}()
	}
	wg.Wait()
	// An upstream is healthy when any of its addresses took the alerts
	// without a server error.
	healthy := map[*upstream]bool{}
	for i, sd := range sends {
		healthy[sd.up] = healthy[sd.up] || (answers[i].status > 0 && answers[i].status < 500)
	}
	for up, ok := range healthy {
		up.healthy.Store(ok)
	}

	res := PostResult{Status: http.StatusServiceUnavailable}
	var invalid *answer
	for i := range answers {
		an := &answers[i]
		res.PerUpstream = append(res.PerUpstream, an.note)
		switch {
		case an.status >= 200 && an.status < 300:
			if res.Status != http.StatusOK {
				res.Status, res.Body, res.ContentType = http.StatusOK, an.body, an.ctype
			}
		case refusesAlerts(an.status) && invalid == nil:
			invalid = an
		}
	}
	if res.Status != http.StatusOK && invalid != nil {
		res.Status, res.Body, res.ContentType = invalid.status, invalid.body, invalid.ctype
	}
	if res.Status == http.StatusServiceUnavailable {
		res.ContentType = "application/json"
		res.Body = fmt.Appendf(nil, `{"error":%q}`, "no upstream Alertmanager accepted the alerts: "+strings.Join(res.PerUpstream, "; "))
	}
	return res
}

// refusesAlerts: a 4xx that judges the alerts (400, 413, 422, …), passed
// back to the sender. Not those that judge whatchanged's own access to
// the upstream — wrong credentials (401, 403, 407) or URL (404, 405) are
// for whatchanged's operator, and Prometheus would read them as its own —
// nor those that ask for later (408, 429).
func refusesAlerts(status int) bool {
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusProxyAuthRequired, http.StatusNotFound,
		http.StatusMethodNotAllowed, http.StatusRequestTimeout, http.StatusTooManyRequests:
		return false
	}
	return status >= 400 && status < 500
}

// send is one post of the alerts: to an upstream's URL, or to one of the
// addresses its host resolves to.
type send struct {
	up   *upstream
	name string
	base *url.URL
	note string
}

// sends lists where the alerts go for this upstream. With DNS discovery:
// one per address; if the lookup fails and no earlier answer is cached,
// the URL itself (one replica gets them, which beats none).
func (up *upstream) sends(ctx context.Context) []send {
	if !up.DNSDiscovery {
		return []send{{up: up, name: up.Name, base: up.base}}
	}
	addrs, err := up.lookup(ctx)
	if len(addrs) == 0 {
		return []send{{up: up, name: up.Name, base: up.base, note: fmt.Sprintf(" (DNS discovery failed: %v; sent to the name)", err)}}
	}
	out := make([]send, 0, len(addrs))
	for _, addr := range addrs {
		b := *up.base
		b.Host = addr
		if p := up.base.Port(); p != "" {
			b.Host = net.JoinHostPort(addr, p)
		}
		out = append(out, send{up: up, name: up.Name + "/" + addr, base: &b})
	}
	return out
}

// lookup resolves the upstream's host, cached for addrsTTL; on a failed
// lookup the last answer is kept.
func (up *upstream) lookup(ctx context.Context) ([]string, error) {
	up.mu.Lock()
	defer up.mu.Unlock()
	if up.addrs != nil && time.Since(up.resolved) < addrsTTL {
		return up.addrs, nil
	}
	r := up.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	addrs, err := r.LookupHost(lctx, up.base.Hostname())
	if err != nil {
		return up.addrs, err
	}
	slices.Sort(addrs)
	up.addrs, up.resolved = addrs, time.Now()
	return addrs, nil
}

func (up *upstream) post(ctx context.Context, base *url.URL, body []byte) (int, []byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base.JoinPath(alertsPath).String(), bytes.NewReader(body))
	if err != nil {
		return 0, nil, "", errors.New("invalid upstream URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "whatchanged")
	resp, err := up.client.Do(req)
	if err != nil {
		return 0, nil, "", httperr.Describe(err, up.Timeout)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, b, resp.Header.Get("Content-Type"), nil
}

// Proxy returns the handler for every other Alertmanager path (status,
// silences, alert queries, the UI): the request goes to the first healthy
// upstream, failing over as described at failover.RoundTrip. stripPrefix
// is removed from the path first.
func (a *Alertmanagers) Proxy(stripPrefix string, maxBody int64) http.Handler {
	return &proxy{a: a, prefix: strings.TrimSuffix(stripPrefix, "/"), maxBody: maxBody}
}

type proxy struct {
	a       *Alertmanagers
	prefix  string
	maxBody int64
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body []byte
	if r.Body != nil {
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, p.maxBody))
		if err != nil {
			http.Error(w, "request body too large or unreadable", http.StatusRequestEntityTooLarge)
			return
		}
		body = b
	}
	path := strings.TrimPrefix(r.URL.Path, p.prefix)
	if path == "" {
		path = "/"
	}
	idempotent := r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodOptions
	var lastErr error
	for _, up := range p.a.ordered() {
		out, err := http.NewRequestWithContext(r.Context(), r.Method, up.base.JoinPath(path).String(), bytes.NewReader(body))
		if err != nil {
			lastErr = err
			continue
		}
		out.URL.RawQuery = r.URL.RawQuery
		for k, vs := range r.Header {
			if !hopHeader(k) {
				out.Header[k] = vs
			}
		}
		out.Header.Del("Authorization") // ours; the upstream's comes from its http_config
		resp, err := up.client.Do(out)
		if err != nil {
			up.healthy.Store(false)
			lastErr = fmt.Errorf("%s: %w", up.Name, httperr.Describe(err, up.Timeout))
			// A refused connection never reached the upstream: safe to try
			// the next one for any method. Other failures only for reads.
			if idempotent || errors.Is(err, syscall.ECONNREFUSED) {
				continue
			}
			break
		}
		up.healthy.Store(resp.StatusCode < 500)
		for k, vs := range resp.Header {
			if !hopHeader(k) && !crossOrigin(k) {
				w.Header()[k] = vs
			}
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
		resp.Body.Close()
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadGateway)
	fmt.Fprintf(w, `{"error":%q}`, fmt.Sprintf("no upstream Alertmanager answered: %v", lastErr))
}

// ordered lists healthy upstreams first, each group in configured order.
func (a *Alertmanagers) ordered() []*upstream {
	out := make([]*upstream, 0, len(a.ups))
	for _, u := range a.ups {
		if u.healthy.Load() {
			out = append(out, u)
		}
	}
	for _, u := range a.ups {
		if !u.healthy.Load() {
			out = append(out, u)
		}
	}
	return out
}

var hopHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true, "Proxy-Authorization": true,
	"Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true, "Content-Length": true,
}

func hopHeader(k string) bool { return hopHeaders[http.CanonicalHeaderKey(k)] }

// crossOrigin: a CORS header. Alertmanager's API allows every origin
// (rs/cors Default in api/v2/api.go); passed on, its answer to a browser's
// preflight would let any web page POST JSON to whatchanged, which never
// allows that. Alertmanager's UI comes through the proxy on whatchanged's
// own origin and needs none.
func crossOrigin(k string) bool {
	return strings.HasPrefix(http.CanonicalHeaderKey(k), "Access-Control-")
}
