package github

import (
	"context"
	"sync"
	"testing"
)

// A commit's author and message, asked once however many ask; other
// hosts and unknown commits are empty answers, the latter remembered.
func TestCommitInfo(t *testing.T) {
	f := newFakeGitHub(t)
	sha := "9f1c2e7a4b3d5e6f7a8b9c0d1e2f3a4b5c6d7e8f"
	f.set("GET", "/repos/acme/api/commits", "["+commitJSON(sha, "alice", "Alice Example", "fix retry budget\n\nThe budget was per request.", now)+"]")
	s := newSource(t, f, nil)
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			author, msg, err := s.CommitInfo(context.Background(), "git@"+host(f)+":acme/api.git", sha)
			if err != nil || author != "Alice Example" || msg != "fix retry budget\n\nThe budget was per request." {
				t.Errorf("CommitInfo = %q %q %v", author, msg, err)
			}
		}()
	}
	wg.Wait()
	f.mu.Lock()
	asked := f.uris["/repos/acme/api/commits?per_page=1&sha="+sha]
	f.mu.Unlock()
	if asked != 1 {
		t.Errorf("commit requested %d times, want once (uris %v)", asked, f.uris)
	}
	if st := s.Stats(); st.Requests != 1 {
		t.Errorf("%d requests through the budget, want 1", st.Requests)
	}
	for _, tt := range []struct{ repo, sha string }{
		{"github.com/acme/api", sha},    // another host: not this source's
		{host(f) + "/acme/api", "main"}, // a branch moves: not a commit
		{host(f) + "/acme/gone", sha},   // 404: no such repository
		{host(f) + "/acme/gone", sha},   // remembered: no second request
	} {
		if author, msg, err := s.CommitInfo(context.Background(), tt.repo, tt.sha); author != "" || msg != "" || err != nil {
			t.Errorf("CommitInfo(%s, %s) = %q %q %v, want an empty answer", tt.repo, tt.sha, author, msg, err)
		}
	}
	hits, _, _ := f.counts()
	if hits["/repos/acme/gone/commits"] != 1 || len(hits) != 2 {
		t.Errorf("requests %v, want one for the missing repository", hits)
	}
	// Rate limited: an error, not remembered.
	f.mu.Lock()
	f.limitWith = 429
	f.mu.Unlock()
	if _, _, err := s.CommitInfo(context.Background(), host(f)+"/acme/other", sha); err == nil {
		t.Error("rate limited: no error")
	}
	if _, ok := s.commits.Peek("acme/other@" + sha); ok {
		t.Error("a rate-limited answer was remembered")
	}
}
