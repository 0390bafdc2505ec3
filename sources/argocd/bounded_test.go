package argocd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	commoncfg "github.com/prometheus/common/config"

	"github.com/whatchanged/whatchanged/sources"
)

// metadataServer answers the commit metadata of any revision, as
// argocd-server does for a repository that keeps getting commits.
func metadataServer(t testing.TB) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		parts := strings.Split(r.URL.Path, "/") // "", api, v1, applications, app, revisions, rev, metadata
		if len(parts) != 8 || parts[5] != "revisions" || parts[7] != "metadata" {
			t.Errorf("unexpected request %s", r.URL)
			w.WriteHeader(http.StatusNotImplemented)
			return
		}
		fmt.Fprintf(w, `{"author":"Alice <alice@example.com>","date":"2026-11-21T09:58:00Z","message":"commit %s"}`, parts[6])
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func metadataSource(srv *httptest.Server) (*Source, *application) {
	s := New("argocd", Config{Server: srv.URL}, srv.Client(), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	a := &application{}
	a.Metadata.Name, a.Metadata.Namespace = "shop-api", "argocd"
	return s, a
}

// The revision metadata cache keeps the most recently used revisions and
// drops the oldest: a long-lived Argo CD's every commit does not stay in
// memory.
func TestMetadataCacheIsBounded(t *testing.T) {
	srv, hits := metadataServer(t)
	s, a := metadataSource(srv)
	s.metadata, _ = lru.New[string, revisionMetadata](50) // the mechanism, at a size a test can fill
	ctx := context.Background()
	rev := func(i int) string { return fmt.Sprintf("%040x", i) }
	for i := range 120 {
		if md, ok := s.revisionMetadata(ctx, a, rev(i), "", 0, false, true); !ok || md.Message != "commit "+rev(i) {
			t.Fatalf("revision %d: %+v %v", i, md, ok)
		}
	}
	if n, _ := s.CacheSizes(); n != 50 {
		t.Errorf("%d revisions cached, want the bound (50)", n)
	}
	before := hits.Load()
	s.revisionMetadata(ctx, a, rev(119), "", 0, false, true) // recent: cached
	if hits.Load() != before {
		t.Error("a recent revision was asked for again")
	}
	s.revisionMetadata(ctx, a, rev(0), "", 0, false, true) // the oldest: dropped, asked again
	if hits.Load() != before+1 {
		t.Error("the oldest revision was still cached")
	}
}

// One caller hanging up (Alertmanager closing the connection) must not
// fail the others sharing its request to argocd-server, nor be called
// "unreachable".
func TestACallerHangingUpDoesNotFailTheOthers(t *testing.T) {
	f := newFakeServer(t)
	f.delay = 300 * time.Millisecond
	s := New("argocd", Config{Server: f.srv.URL}, bearer(f), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	since, until := window()
	q := sources.Query{Subject: sources.Subject{App: "shop-api", Namespace: "shop"}, Since: since, Until: until}

	first, hangUp := context.WithCancel(context.Background())
	firstErr := make(chan error, 1)
	go func() {
		_, err := s.Changes(first, q)
		firstErr <- err
	}()
	time.Sleep(50 * time.Millisecond) // the first caller's request is on its way
	secondDone := make(chan struct{})
	var got []sources.Change
	var err error
	go func() {
		defer close(secondDone)
		got, err = s.Changes(context.Background(), q)
	}()
	time.Sleep(50 * time.Millisecond)
	hangUp()
	if err := <-firstErr; !errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "unreachable") {
		t.Errorf("the caller that hung up: %v", err)
	}
	<-secondDone
	if err != nil || len(got) == 0 {
		t.Errorf("the other caller: %d changes, err %v", len(got), err)
	}
}

// A request that ran out of time or was cancelled says so, and still
// matches the context's error; only a failed connection is "unreachable".
func TestTransportErrorsSayWhatHappened(t *testing.T) {
	f := newFakeServer(t)
	f.delay = 2 * time.Second
	s := New("argocd", Config{Server: f.srv.URL}, bearer(f), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	refused := httptest.NewServer(http.NotFoundHandler())
	refused.Close()
	gone := New("argocd", Config{Server: refused.URL}, refused.Client(), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))

	deadline, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	cancelled, hangUp := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, hangUp)
	for _, tt := range []struct {
		name string
		src  *Source
		ctx  context.Context
		want string
		is   error
	}{
		{name: "deadline", src: s, ctx: deadline, want: "list applications: timeout", is: context.DeadlineExceeded},
		{name: "cancelled", src: s, ctx: cancelled, want: "list applications: cancelled", is: context.Canceled},
		{name: "refused", src: gone, ctx: context.Background(), want: "list applications: argocd-server unreachable: dial tcp "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var list applicationList
			err := tt.src.get(tt.ctx, "/api/v1/applications", nil, &list, "list applications")
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) || (tt.is != nil && !errors.Is(err, tt.is)) {
				t.Errorf("err = %v, want %q matching %v", err, tt.want, tt.is)
			}
		})
	}
}

func bearer(f *fakeServer) *http.Client {
	client := f.srv.Client()
	client.Transport = commoncfg.NewAuthorizationCredentialsRoundTripper("Bearer", commoncfg.NewInlineSecret(token), client.Transport)
	return client
}

// BenchmarkBoundedState prints the size of the revision metadata cache
// after 100,000 distinct revisions went through it (argocd-server asked
// for each, as over months of commits).
func BenchmarkBoundedState(b *testing.B) {
	const revisions = 100_000
	for b.Loop() {
		srv, _ := metadataServer(b)
		s, a := metadataSource(srv)
		for i := range revisions {
			if _, ok := s.revisionMetadata(context.Background(), a, fmt.Sprintf("%040x", i), "", 0, false, true); !ok {
				b.Fatalf("revision %d: no metadata", i)
			}
		}
		md, _ := s.CacheSizes()
		b.ReportMetric(revisions, "revisions-seen")
		b.ReportMetric(float64(md), "revisions-cached")
	}
}
