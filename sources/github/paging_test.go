package github

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// serveLargeCompare replaces the release compare of acme/api with n
// commits: "commit <i>" by eight people in turn, oldest first.
func serveLargeCompare(f *fakeGitHub, n int) {
	people := []string{"alice", "bob", "carol", "dan", "erin", "frank", "grace", "heidi"}
	var commits []string
	for i := 1; i <= n; i++ {
		p := people[(i-1)%len(people)]
		commits = append(commits, commitJSON(fmt.Sprintf("%040x", i), p, strings.ToUpper(p[:1])+p[1:], fmt.Sprintf("commit %d\n\nbody", i), now.Add(-time.Hour)))
	}
	f.serveCompare("acme/api", "v1.8.3", "v1.8.4", commits)
}

func releaseMessage(t *testing.T, s *Source, f *fakeGitHub) string {
	t.Helper()
	got, err := s.Changes(context.Background(), query(host(f)+"/acme/api"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range got {
		if c.ID == "acme/api/releases/2" {
			return c.Message
		}
	}
	t.Fatalf("no release in %+v", got)
	return ""
}

func comparePages(f *fakeGitHub) map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for uri, n := range f.uris {
		if path, query, _ := strings.Cut(uri, "?"); path == "/repos/acme/api/compare/v1.8.3...v1.8.4" {
			out[query] += n
		}
	}
	return out
}

// 260 commits are three pages of 100: all read, the newest first among
// the lines, the authors beyond five counted.
func TestCompareReadsEveryPageWithinTheBound(t *testing.T) {
	f := newFakeGitHub(t)
	f.serveRepo("acme", "api", now)
	serveLargeCompare(f, 260)
	s := newSource(t, f, nil)
	want := "v1.8.4: retry budget — 260 commit(s) by alice, bob, carol, dan, erin and 3 more: commit 260; commit 259; commit 258; commit 257; commit 256 and 255 more"
	if got := releaseMessage(t, s, f); got != want {
		t.Errorf("message\n got %q\nwant %q", got, want)
	}
	pages := comparePages(f)
	if len(pages) != 3 || pages["per_page=100"] != 1 || pages["page=3&per_page=100"] != 1 || pages["page=2&per_page=100"] != 1 {
		t.Errorf("compare requests %v, want the first page, then pages 3 and 2", pages)
	}
	if st := s.Stats(); st.Requests != 8 { // releases, 3 compare pages, deployments, 2 statuses, deployment compare
		t.Errorf("%d requests through the budget, want 8", st.Requests)
	}
	// Cached for good: a refresh asks for no page again.
	s.RefreshAll(context.Background())
	if again := comparePages(f); len(again) != 3 || again["page=2&per_page=100"] != 1 || again["per_page=100"] != 1 {
		t.Errorf("after a refresh: %v", again)
	}
}

// 360 commits are four pages: the first and the two newest are read,
// page 2 is not, and the summary says what it does not know.
func TestCompareBeyondTheBoundSaysHowManyMore(t *testing.T) {
	f := newFakeGitHub(t)
	f.serveRepo("acme", "api", now)
	serveLargeCompare(f, 360)
	s := newSource(t, f, nil)
	want := "v1.8.4: retry budget — 360 commit(s) by alice, bob, carol, dan, erin and at least 3 more: commit 360; commit 359; commit 358; commit 357; commit 356 and 355 more"
	if got := releaseMessage(t, s, f); got != want {
		t.Errorf("message\n got %q\nwant %q", got, want)
	}
	pages := comparePages(f)
	if len(pages) != 3 || pages["page=4&per_page=100"] != 1 || pages["page=3&per_page=100"] != 1 || pages["page=2&per_page=100"] != 0 {
		t.Errorf("compare requests %v, want the first page, then pages 4 and 3", pages)
	}
}

// A later page failing: the summary uses what was read, and the compare
// is not cached, so the next refresh completes it.
func TestCompareWithAFailedPageIsAskedAgain(t *testing.T) {
	f := newFakeGitHub(t)
	f.serveRepo("acme", "api", now)
	serveLargeCompare(f, 260)
	s := newSource(t, f, nil)
	f.mu.Lock()
	f.failPages = true // only the first page answers
	f.mu.Unlock()
	if got := releaseMessage(t, s, f); !strings.Contains(got, "260 commit(s) by alice, bob, carol, dan, erin and at least 3 more: commit 100; commit 99;") {
		t.Errorf("partial compare: %q", got)
	}
	f.mu.Lock()
	f.failPages = false
	f.mu.Unlock()
	s.RefreshAll(context.Background())
	if got := releaseMessage(t, s, f); !strings.Contains(got, "commit 260; commit 259;") {
		t.Errorf("after a refresh: %q", got)
	}
}
