package github

import (
	"context"
	"fmt"
	"testing"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// Alerts naming ever new repositories within keep_for do not grow the
// source without end: the least recently asked about are forgotten.
func TestRepositoriesAreBounded(t *testing.T) {
	f := newFakeGitHub(t) // unknown repositories: 404, one request each
	s := newSource(t, f, nil)
	for i := range maxRepos + 500 {
		_, _ = s.Changes(context.Background(), query(fmt.Sprintf("%s/acme/svc-%d", host(f), i)))
	}
	if n, _, _ := s.CacheSizes(); n != maxRepos {
		t.Errorf("%d repositories remembered, want the bound %d", n, maxRepos)
	}
	if _, ok := s.repos.Peek(fmt.Sprintf("acme/svc-%d", maxRepos+499)); !ok {
		t.Error("the repository asked about last was forgotten")
	}
	if _, ok := s.repos.Peek("acme/svc-0"); ok {
		t.Error("the repository asked about first is still remembered")
	}
}

// The answers kept for conditional requests are bounded too (they grow
// with every new deployment's statuses).
func TestStoredAnswersAreBounded(t *testing.T) {
	f := newFakeGitHub(t)
	s := newSource(t, f, nil)
	s.budget.stored, _ = lru.New[string, []byte](10) // the mechanism, at a size a test can fill
	for i := range 5 {
		f.serveRepo("acme", fmt.Sprintf("svc-%d", i), now)
		if _, err := s.Changes(context.Background(), query(fmt.Sprintf("%s/acme/svc-%d", host(f), i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, n := s.CacheSizes(); n != 10 {
		t.Errorf("%d answers stored, want the bound 10", n)
	}
}

// A request cut off by its context is not "unreachable": GitHub may well
// be reachable.
func TestCutOffRequestsSayWhatHappened(t *testing.T) {
	f := newFakeGitHub(t)
	f.serveRepo("acme", "api", now)
	f.delay = time.Second
	s := newSource(t, f, nil)
	deadline, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	cancelled, hangUp := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, hangUp)
	for _, tt := range []struct {
		name string
		ctx  context.Context
		want string
	}{
		{name: "deadline", ctx: deadline, want: "list releases of acme/api: timeout after 30s"},
		{name: "cancelled", ctx: cancelled, want: "list releases of acme/api: cancelled"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.read(tt.ctx, "acme/api"); err == nil || err.Error() != tt.want {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// BenchmarkBoundedState prints what the source remembers after alerts
// named 1,500 repositories (each with releases, deployments and compares).
func BenchmarkBoundedState(b *testing.B) {
	const repos = 1_500
	for b.Loop() {
		f := newFakeGitHub(b)
		for i := range repos {
			f.serveRepo("acme", fmt.Sprintf("svc-%d", i), now)
		}
		s, err := New("github", Config{BaseURL: f.baseURL()}, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		for i := range repos {
			if _, err := s.Changes(context.Background(), query(fmt.Sprintf("%s/acme/svc-%d", host(f), i))); err != nil {
				b.Fatal(err)
			}
		}
		r, c, st := s.CacheSizes()
		b.ReportMetric(repos, "repos-seen")
		b.ReportMetric(float64(r), "repos-kept")
		b.ReportMetric(float64(c), "compares-kept")
		b.ReportMetric(float64(st), "answers-stored")
	}
}
