package argocd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	commoncfg "github.com/prometheus/common/config"

	"github.com/whatchanged/whatchanged/enrich"
	"github.com/whatchanged/whatchanged/sources"
	"github.com/whatchanged/whatchanged/sources/sourcetest"
)

var t0 = time.Date(2026, 11, 21, 10, 14, 0, 0, time.UTC) // the alert starts

const token = "argocd-readonly-token"

// fakeServer speaks argocd-server's REST API (grpc-gateway paths and JSON)
// for the fixture apps; unexpected requests fail the test.
type fakeServer struct {
	t      *testing.T
	srv    *httptest.Server
	apps   map[string]json.RawMessage // name → Application JSON
	status int                        // when set, every answer has this status
	delay  time.Duration
	mu     sync.Mutex
	hits   map[string]int
}

func newFakeServer(t *testing.T) *fakeServer {
	f := &fakeServer{t: t, apps: map[string]json.RawMessage{}, hits: map[string]int{}}
	for _, file := range []string{"testdata/shop-api.json", "testdata/platform.json"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var meta struct {
			Metadata struct{ Name string } `json:"metadata"`
		}
		_ = json.Unmarshal(b, &meta)
		f.apps[meta.Metadata.Name] = b
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

var metadata = map[string]string{
	"9f1c2e7a4b3d5e6f7a8b9c0d1e2f3a4b5c6d7e8f": `{"author":"Alice Example <alice@example.com>","date":"2026-11-21T09:58:00Z","tags":["v1.8.4"],"message":"fix retry budget\n\nThe budget was per request."}`,
	"1111111aaaaaaabbbbbbbcccccccdddddddeeeee": `{"author":"Bob <bob@example.com>","date":"2026-11-21T07:20:00Z","message":"bump deps"}`,
	"6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f": `{"author":"Bob <bob@example.com>","date":"2026-11-21T09:45:00Z","message":"raise ingress replicas"}`,
	"5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e": `{"author":"Bob <bob@example.com>","date":"2026-11-21T08:45:00Z","message":"initial"}`,
	"7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a": `{"author":"Carol <carol@example.com>","date":"2026-11-21T10:05:00Z","message":"add admission labels"}`,
}

func (f *fakeServer) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.hits[r.URL.Path]++
	f.mu.Unlock()
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	w.Header().Set("Content-Type", "application/json")
	if r.Header.Get("Authorization") != "Bearer "+token {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":"invalid session: token is expired","code":16,"message":"invalid session: token is expired"}`)
		return
	}
	if f.status != 0 {
		w.WriteHeader(f.status)
		fmt.Fprint(w, `{"error":"permission denied","code":7,"message":"permission denied"}`)
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/api/v1/applications")
	switch {
	case r.Method != http.MethodGet:
	case path == "":
		var items []json.RawMessage
		for _, name := range []string{"platform", "shop-api"} {
			items = append(items, f.apps[name])
		}
		b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"resourceVersion": "12345"}, "items": items})
		w.Write(b)
		return
	case strings.Count(path, "/") == 1:
		if app, ok := f.apps[strings.TrimPrefix(path, "/")]; ok {
			w.Write(app)
			return
		}
		w.WriteHeader(http.StatusNotFound) // argocd-server answers an unknown app like a forbidden one in newer versions; 404 here
		fmt.Fprint(w, `{"error":"applications.argoproj.io \"x\" not found","code":5}`)
		return
	case strings.HasSuffix(path, "/metadata"):
		parts := strings.Split(path, "/") // "", app, "revisions", rev, "metadata"
		if md, ok := metadata[parts[3]]; ok && len(parts) == 5 {
			w.Write([]byte(md))
			return
		}
	}
	f.t.Errorf("unexpected request %s %s", r.Method, r.URL)
	w.WriteHeader(http.StatusNotImplemented)
}

func newREST(t *testing.T, f *fakeServer, tok string) *Source {
	t.Helper()
	client := f.srv.Client()
	client.Transport = commoncfg.NewAuthorizationCredentialsRoundTripper("Bearer", commoncfg.NewInlineSecret(tok), client.Transport)
	s := New("argocd", Config{Server: f.srv.URL, UIURL: "https://argocd.example.com"}, client, nil,
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

func waitReady(t *testing.T, s *Source) {
	t.Helper()
	for i := 0; i < 500 && !s.Ready(); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if !s.Ready() {
		t.Fatal("not ready")
	}
}

func window() (time.Time, time.Time) { return t0.Add(-24 * time.Hour), t0.Add(5 * time.Minute) }

// CheckShopAPI is shared with the Kubernetes-mode test (test/kube): both
// modes must give the same changes from the same fixture.
func CheckShopAPI(t *testing.T, got []sources.Change, withMetadata bool) {
	t.Helper()
	if len(got) != 2 {
		t.Fatalf("got %d changes, want syncs 41 and 42: %+v", len(got), got)
	}
	c := got[1]
	if c.Kind != "sync" || c.Revision != "9f1c2e7a4b3d5e6f7a8b9c0d1e2f3a4b5c6d7e8f" || c.PreviousRevision != "1111111aaaaaaabbbbbbbcccccccdddddddeeeee" ||
		!c.StartedAt.Equal(time.Date(2026, 11, 21, 10, 2, 11, 0, time.UTC)) || !c.FinishedAt.Equal(time.Date(2026, 11, 21, 10, 2, 49, 0, time.UTC)) ||
		c.Status != sources.StatusSucceeded || c.Version != "deploy/prod@9f1c2e7" ||
		c.URL != "https://argocd.example.com/applications/argocd/shop-api" ||
		c.CompareURL != "https://github.com/acme/api/compare/1111111aaaaaaabbbbbbbcccccccdddddddeeeee...9f1c2e7a4b3d5e6f7a8b9c0d1e2f3a4b5c6d7e8f" ||
		c.Subject.Repo != "github.com/acme/api" || c.Subject.Namespace != "shop" {
		t.Errorf("sync 42 = %+v", c)
	}
	// The commit's author wrote it; initiatedBy deployed it.
	if withMetadata && (c.Author != "Alice Example" || c.Message != "fix retry budget") {
		t.Errorf("metadata: author %q message %q", c.Author, c.Message)
	}
	if !withMetadata && c.Author != "" {
		t.Errorf("author without metadata: %q", c.Author)
	}
	if c.DeployedBy != "alice" {
		t.Errorf("initiatedBy: %q", c.DeployedBy)
	}
	if got[0].DeployedBy != "automated sync" {
		t.Errorf("automated sync 41: %q", got[0].DeployedBy)
	}
}

func TestRESTSyncHistory(t *testing.T) {
	f := newFakeServer(t)
	s := newREST(t, f, token)
	waitReady(t, s)
	since, until := window()
	got, err := s.Changes(context.Background(), sources.Query{Subject: sources.Subject{App: "shop-api"}, Since: since, Until: until})
	if err != nil {
		t.Fatal(err)
	}
	CheckShopAPI(t, got, true)
	// Metadata was prefetched by the poll and is cached forever: the query
	// made no request.
	f.mu.Lock()
	md := f.hits["/api/v1/applications/shop-api/revisions/9f1c2e7a4b3d5e6f7a8b9c0d1e2f3a4b5c6d7e8f/metadata"]
	f.mu.Unlock()
	if md != 1 {
		t.Errorf("metadata requested %d times, want once", md)
	}
}

func TestRESTMultiSourceAndFailedOperation(t *testing.T) {
	f := newFakeServer(t)
	s := newREST(t, f, token)
	waitReady(t, s)
	since, until := window()
	got, err := s.Changes(context.Background(), sources.Query{Subject: sources.Subject{App: "team-a_platform"}, Since: since, Until: until})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("got %+v", got)
	}
	sync8, failed := got[1], got[2]
	if sync8.Revision != "6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f,4.11.2" || sync8.Author != "Bob" || sync8.DeployedBy != "bob" ||
		sync8.CompareURL != "https://gitlab.com/acme/platform-config/-/compare/5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e...6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f" ||
		sync8.Subject.App != "platform" || !sync8.Subject.HasApp("team-a_platform") {
		t.Errorf("multi-source sync = %+v", sync8)
	}
	// The failed operation names the commit it tried and why it failed.
	if failed.Status != sources.StatusFailed || failed.DeployedBy != "automated sync" || failed.Author != "Carol" ||
		!strings.HasPrefix(failed.Message, "add admission labels (sync failed: ") || !strings.Contains(failed.Message, "admission webhook denied") ||
		failed.Revision != "7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a,4.11.2" {
		t.Errorf("failed operation = %+v", failed)
	}
}

func TestRESTErrors(t *testing.T) {
	since, until := window()
	q := sources.Query{Subject: sources.Subject{App: "shop-api"}, Since: since, Until: until}
	f := newFakeServer(t)
	s := newREST(t, f, "wrong")
	if _, err := s.Changes(context.Background(), q); err == nil || !strings.HasPrefix(err.Error(), "token rejected by argocd-server") {
		t.Errorf("401: %v", err)
	}
	f2 := newFakeServer(t)
	f2.status = http.StatusForbidden
	s = newREST(t, f2, token)
	if _, err := s.Changes(context.Background(), q); err == nil || !strings.Contains(err.Error(), "application shop-api is forbidden to the configured token (403") {
		t.Errorf("403: %v", err)
	}
	f3 := newFakeServer(t)
	s = newREST(t, f3, token)
	waitReady(t, s)
	if got, err := s.Changes(context.Background(), sources.Query{Subject: sources.Subject{App: "nope"}, Since: since, Until: until}); err != nil || got != nil {
		t.Errorf("unknown app: %v %v", got, err)
	}
	tlsSrv := httptest.NewUnstartedServer(http.NotFoundHandler())
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are the point
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	s = New("argocd", Config{Server: tlsSrv.URL}, &http.Client{Transport: commoncfg.NewAuthorizationCredentialsRoundTripper("Bearer", commoncfg.NewInlineSecret(token), http.DefaultTransport)}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	_ = s.Start(context.Background())
	if _, err := s.Changes(context.Background(), q); err == nil || !strings.Contains(err.Error(), "TLS with argocd-server failed") || strings.Contains(err.Error(), token) {
		t.Errorf("TLS: %v", err)
	}
}

// Fail-open: argocd-server hangs; the alert is enriched within the budget
// and whatchanged_error names argocd.
func TestHangingServerCostsAtMostTheBudget(t *testing.T) {
	f := newFakeServer(t)
	f.delay = 2 * time.Second
	s := newREST(t, f, token)
	r, _ := enrich.NewResolver(nil, s)
	e := enrich.New(enrich.Options{Budget: 300 * time.Millisecond}, r, []enrich.SourceEntry{{Source: s}}, nil)
	a := &enrich.Alert{Labels: map[string]string{"argocd_app": "shop-api", "namespace": "shop"}, StartsAt: t0}
	start := time.Now()
	e.Enrich(context.Background(), []*enrich.Alert{a}, nil)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %s with a 300ms budget", took)
	}
	if got := a.Annotations["whatchanged_error"]; !strings.HasPrefix(got, "argocd: ") {
		t.Errorf("whatchanged_error = %q", got)
	}
}

// Through the pipeline: an alert on the app shows the sync with author,
// message, time before the alert, app and compare links.
func TestAlertShowsTheSync(t *testing.T) {
	f := newFakeServer(t)
	s := newREST(t, f, token)
	waitReady(t, s)
	r, _ := enrich.NewResolver(nil, s)
	e := enrich.New(enrich.Options{}, r, []enrich.SourceEntry{{Source: s}}, nil)
	a := &enrich.Alert{Labels: map[string]string{"argocd_app": "shop-api", "namespace": "shop"}, StartsAt: t0}
	rep := e.Enrich(context.Background(), []*enrich.Alert{a}, nil).Alerts[0]
	if got, want := a.Annotations["whatchanged_suspect"], `argocd sync of shop-api 9f1c2e7 by Alice Example (deployed by alice): "fix retry budget", 11m before the alert started [argocd]`; got != want {
		t.Errorf("suspect\n got %q\nwant %q", got, want)
	}
	links := a.Annotations["whatchanged_links"]
	if !strings.Contains(links, "compare: https://github.com/acme/api/compare/1111111") || !strings.Contains(links, "argocd: https://argocd.example.com/applications/argocd/shop-api") {
		t.Errorf("links = %q", links)
	}
	if rep.Subject.Repo != "github.com/acme/api" {
		t.Errorf("repo not handed to the subject: %+v", rep.Subject)
	}
}

func TestContract(t *testing.T) {
	f := newFakeServer(t)
	s := newREST(t, f, token)
	waitReady(t, s)
	since, until := window()
	sourcetest.Contract(t, s, sources.Query{Subject: sources.Subject{App: "shop-api"}, Since: since, Until: until})
}
