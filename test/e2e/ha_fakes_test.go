package e2e

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// haProc is a process of the high-availability test that can be killed
// with SIGKILL and started again with the same arguments (the same port),
// as a crashed pod is restarted. Its output of every run goes to one log,
// whose tail is printed if the test fails.
type haProc struct {
	t       *testing.T
	name    string
	bin     string
	args    []string
	logPath string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	started time.Time
	runs    int
}

func startHAProc(t *testing.T, name, bin string, args ...string) *haProc {
	t.Helper()
	p := &haProc{t: t, name: name, bin: bin, args: args, logPath: filepath.Join(t.TempDir(), name+".log")}
	p.start()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("--- %s log (last 60 lines):\n%s", name, haTail(p.logPath, 60))
		}
	})
	return p
}

func (p *haProc) start() {
	p.t.Helper()
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.runs++
	fmt.Fprintf(logFile, "=== run %d\n", p.runs)
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logFile.Close(); close(done) }()
	p.cmd, p.done, p.started = cmd, done, time.Now()
}

// kill ends the process with SIGKILL (no graceful shutdown) and waits.
func (p *haProc) kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// stop ends the process as the test's cleanup does: SIGINT, then SIGKILL.
func (p *haProc) stop() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	_ = cmd.Process.Signal(os.Interrupt)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func (p *haProc) exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

func (p *haProc) startedAt() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.started
}

func (p *haProc) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

func haTail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// haFront is the load balancer in front of the replicas: each request goes
// to the next replica in turn, as a Service or an ingress spreads them. It
// does not retry: a request to a dead replica fails with 502 and the sender
// (Alertmanager) retries it. It notes which Alertmanager sent which
// notification, to tell the pair's double sends from retries.
type haFront struct {
	srv      *httptest.Server
	backends []string // host:port

	next     atomic.Uint64
	mu       sync.Mutex
	served   map[string]int
	failed   map[string]int
	arrivals []haArrival
}

// haArrival is one notification that reached the front.
type haArrival struct {
	at                   time.Time
	path, group, key, am string
}

func newHAFront(t *testing.T, backends ...string) *haFront {
	f := &haFront{backends: backends, served: map[string]int{}, failed: map[string]int{}}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			b := f.backends[(f.next.Add(1)-1)%uint64(len(f.backends))]
			pr.SetURL(&url.URL{Scheme: "http", Host: b})
		},
		ModifyResponse: func(r *http.Response) error {
			f.mu.Lock()
			f.served[r.Request.URL.Host]++
			f.mu.Unlock()
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, _ error) {
			f.mu.Lock()
			f.failed[r.URL.Host]++
			f.mu.Unlock()
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		var n haNotification
		if json.Unmarshal(body, &n) == nil && len(n.Alerts) > 0 {
			f.mu.Lock()
			f.arrivals = append(f.arrivals, haArrival{at: time.Now(), path: r.URL.Path, group: n.Alerts[0].Labels["group"], key: n.key(), am: n.ExternalURL})
			f.mu.Unlock()
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *haFront) counts(backend string) (served, failed int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.served[backend], f.failed[backend]
}

// arrived lists the notifications to path, in order of arrival.
func (f *haFront) arrived(path string) []haArrival {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []haArrival
	for _, a := range f.arrivals {
		if a.path == path {
			out = append(out, a)
		}
	}
	return out
}

// haCapture is the webhook receiver behind whatchanged: it accepts every
// notification and keeps what the test checks.
type haCapture struct {
	mu            sync.Mutex
	notifications []haNotification
	undecodable   []string
}

type haNotification struct {
	ExternalURL string `json:"externalURL"`
	GroupKey    string `json:"groupKey"`
	Status      string `json:"status"`
	Alerts      []struct {
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"alerts"`
}

// key is what makes two notifications the same: the group, its status
// and its alerts.
func (n haNotification) key() string {
	var ids []string
	for _, a := range n.Alerts {
		ids = append(ids, a.Labels["id"])
	}
	sort.Strings(ids)
	return n.GroupKey + " " + n.Status + " " + strings.Join(ids, ",")
}

func (c *haCapture) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var n haNotification
	err := json.Unmarshal(body, &n)
	c.mu.Lock()
	if err != nil || len(n.Alerts) == 0 {
		c.undecodable = append(c.undecodable, string(body))
	} else {
		c.notifications = append(c.notifications, n)
	}
	c.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// rejected lists the bodies that were no notification.
func (c *haCapture) rejected() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.undecodable...)
}

func (c *haCapture) snapshot() []haNotification {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]haNotification(nil), c.notifications...)
}

// haSlack is Slack's Web API as the Slack target calls it
// (chat.postMessage, chat.update; form-encoded, JSON answers), with a
// message timestamp sequence per channel. It answers after latency, as
// Slack does (a few hundred milliseconds).
type haSlack struct {
	srv *httptest.Server

	mu    sync.Mutex
	calls []haSlackCall
	seq   map[string]int
}

type haSlackCall struct {
	at                        time.Time
	method, channel, threadTS string
	ts, token                 string
}

func newHASlack(t *testing.T, latency time.Duration) *haSlack {
	s := &haSlack{seq: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		time.Sleep(latency)
		method := strings.TrimPrefix(r.URL.Path, "/api/")
		channel := r.FormValue("channel")
		w.Header().Set("Content-Type", "application/json")
		s.mu.Lock()
		defer s.mu.Unlock()
		call := haSlackCall{at: time.Now(), method: method, channel: channel, threadTS: r.FormValue("thread_ts"),
			ts:    r.FormValue("ts"),
			token: cmp.Or(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), r.FormValue("token"))}
		switch method {
		case "chat.postMessage":
			s.seq[channel]++
			call.ts = fmt.Sprintf("1763700%03d.%06d", len(channel), s.seq[channel])
			fmt.Fprintf(w, `{"ok":true,"channel":%q,"ts":%q}`, channel, call.ts)
		case "chat.update":
			fmt.Fprintf(w, `{"ok":true,"channel":%q,"ts":%q}`, channel, call.ts)
		default:
			fmt.Fprint(w, `{"ok":false,"error":"unknown_method"}`)
		}
		s.calls = append(s.calls, call)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *haSlack) snapshot() []haSlackCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]haSlackCall(nil), s.calls...)
}

// haGitHub serves one repository (acme/api) the way GitHub's REST API does
// for the requests the GitHub source makes: releases, deployments, their
// statuses and compares, with ETags and 304s, under a GHES-style /api/v3
// base. It records every request.
type haGitHub struct {
	srv    *httptest.Server
	routes map[string]string // path → JSON body (fixed: ETags stay valid)

	mu         sync.Mutex
	requests   []haGitHubRequest
	unexpected []string
}

type haGitHubRequest struct {
	at            time.Time
	path          string
	status        int
	authorization string
}

func newHAGitHub(t *testing.T, t0 time.Time) *haGitHub {
	g := &haGitHub{routes: map[string]string{}}
	ts := func(d time.Duration) string { return t0.Add(d).UTC().Format(time.RFC3339) }
	const repo = "/repos/acme/api"
	g.routes[repo+"/releases"] = fmt.Sprintf(`[
 {"url":"https://ghe.example.com/api/v3/repos/acme/api/releases/2","html_url":"https://ghe.example.com/acme/api/releases/tag/v2.0.1","id":2,"tag_name":"v2.0.1","target_commitish":"main","name":"v2.0.1","draft":false,"prerelease":false,"created_at":%[1]q,"published_at":%[1]q,"author":{"login":"gina","id":7,"type":"User"},"assets":[]},
 {"url":"https://ghe.example.com/api/v3/repos/acme/api/releases/1","html_url":"https://ghe.example.com/acme/api/releases/tag/v2.0.0","id":1,"tag_name":"v2.0.0","target_commitish":"main","name":"v2.0.0","draft":false,"prerelease":false,"created_at":%[2]q,"published_at":%[2]q,"author":{"login":"gina","id":7,"type":"User"},"assets":[]}
]`, ts(-72*time.Hour), ts(-96*time.Hour))
	g.routes[repo+"/compare/v2.0.0...v2.0.1"] = fmt.Sprintf(`{"html_url":"https://ghe.example.com/acme/api/compare/v2.0.0...v2.0.1","status":"ahead","ahead_by":1,"behind_by":0,"total_commits":1,
 "commits":[{"sha":"bbbb2222","commit":{"message":"bump client","author":{"name":"Gina","date":%q}},"author":{"login":"gina"}}],"files":[]}`, ts(-73*time.Hour))
	g.routes[repo+"/deployments"] = fmt.Sprintf(`[
 {"url":"https://ghe.example.com/api/v3/repos/acme/api/deployments/22","id":22,"sha":"bbbb2222bbbb2222bbbb2222bbbb2222bbbb2222","ref":"v2.0.1","task":"deploy","environment":"production","creator":{"login":"deploy-bot","type":"Bot"},"created_at":%[1]q,"updated_at":%[1]q},
 {"url":"https://ghe.example.com/api/v3/repos/acme/api/deployments/21","id":21,"sha":"aaaa1111aaaa1111aaaa1111aaaa1111aaaa1111","ref":"v2.0.0","task":"deploy","environment":"production","creator":{"login":"deploy-bot","type":"Bot"},"created_at":%[2]q,"updated_at":%[2]q}
]`, ts(-71*time.Hour), ts(-95*time.Hour))
	g.routes[repo+"/deployments/22/statuses"] = fmt.Sprintf(`[{"id":220,"state":"success","environment":"production","log_url":"https://ci.example.com/runs/220","created_at":%q}]`, ts(-71*time.Hour))
	g.routes[repo+"/deployments/21/statuses"] = fmt.Sprintf(`[{"id":210,"state":"inactive","environment":"production","log_url":"https://ci.example.com/runs/210","created_at":%q}]`, ts(-71*time.Hour))
	g.routes[repo+"/compare/aaaa1111aaaa1111aaaa1111aaaa1111aaaa1111...bbbb2222bbbb2222bbbb2222bbbb2222bbbb2222"] = `{"html_url":"https://ghe.example.com/acme/api/compare/aaaa111...bbbb222","status":"ahead","ahead_by":1,"total_commits":1,
 "commits":[{"sha":"bbbb2222","commit":{"message":"bump client","author":{"name":"Gina"}},"author":{"login":"gina"}}]}`
	g.srv = httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *haGitHub) baseURL() string { return g.srv.URL + "/api/v3/" }

func (g *haGitHub) serve(w http.ResponseWriter, r *http.Request) {
	path, _ := strings.CutPrefix(r.URL.Path, "/api/v3")
	body, known := g.routes[path]
	etag := fmt.Sprintf(`W/"%08x"`, len(body)*7919+strings.Count(body, "a"))
	status := http.StatusOK
	switch {
	case r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, "/api/v3/"):
		status = http.StatusNotFound
	case !known:
		status = http.StatusNotFound
	case r.Header.Get("If-None-Match") == etag:
		status = http.StatusNotModified
	}
	g.mu.Lock()
	g.requests = append(g.requests, haGitHubRequest{at: time.Now(), path: path, status: status, authorization: r.Header.Get("Authorization")})
	if status == http.StatusNotFound {
		g.unexpected = append(g.unexpected, r.Method+" "+r.URL.Path)
	}
	g.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-GitHub-Api-Version-Selected", "2022-11-28")
	w.Header().Set("X-RateLimit-Limit", "5000")
	w.Header().Set("X-RateLimit-Remaining", "4000")
	w.Header().Set("X-RateLimit-Reset", fmt.Sprint(time.Now().Add(time.Hour).Unix()))
	switch status {
	case http.StatusNotFound:
		w.WriteHeader(status)
		fmt.Fprint(w, `{"message":"Not Found","documentation_url":"https://docs.github.com/rest"}`)
	case http.StatusNotModified:
		w.Header().Set("ETag", etag)
		w.WriteHeader(status)
	default:
		w.Header().Set("ETag", etag)
		fmt.Fprint(w, body)
	}
}

func (g *haGitHub) snapshot() (reqs []haGitHubRequest, unexpected []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]haGitHubRequest(nil), g.requests...), append([]string(nil), g.unexpected...)
}

// between counts the requests made in [from, to), and those of them
// answered 304 (free of rate limit).
func (g *haGitHub) between(from, to time.Time) (n, notModified int) {
	reqs, _ := g.snapshot()
	for _, r := range reqs {
		if !r.at.Before(from) && r.at.Before(to) {
			n++
			if r.status == http.StatusNotModified {
				notModified++
			}
		}
	}
	return n, notModified
}
