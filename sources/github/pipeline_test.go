package github

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/whatchanged/whatchanged/enrich"
	"github.com/whatchanged/whatchanged/sources"
)

func enrichOne(t *testing.T, s *Source, budget time.Duration, labels map[string]string) (*enrich.Alert, time.Duration) {
	t.Helper()
	r, err := enrich.NewResolver(nil)
	if err != nil {
		t.Fatal(err)
	}
	e := enrich.New(enrich.Options{Budget: budget}, r, []enrich.SourceEntry{{Source: s}}, nil)
	a := &enrich.Alert{Labels: labels, StartsAt: now}
	start := time.Now()
	e.Enrich(context.Background(), []*enrich.Alert{a}, nil)
	return a, time.Since(start)
}

func TestAlertShowsReleaseWithCompareAndAuthors(t *testing.T) {
	f := newFakeGitHub(t)
	f.serveRepo("acme", "api", now)
	s := newSource(t, f, nil)
	a, _ := enrichOne(t, s, time.Second, map[string]string{"alertname": "Errors", "repo": "https://" + host(f) + "/acme/api.git"})
	sum := a.Annotations["whatchanged_summary"]
	// The release v1.8.4 and the deployment of ref v1.8.4 are one deploy:
	// merged, named after the deployment (its commit, the head commit's
	// author, its deployer and failed status) and the release's tag, and
	// timed by the deployment (15m), not the release's publishing (20m).
	if !strings.HasPrefix(sum, "github deployment of acme/api 9f1c2e7 (v1.8.4) by Alice (deployed by deploy-bot)") ||
		!strings.Contains(sum, "15m before the alert started (failed)") || strings.Count(sum, "\n") != 0 {
		t.Errorf("summary:\n%s", sum)
	}
	var changes []sources.Change
	if err := json.Unmarshal([]byte(a.Annotations["whatchanged_changes"]), &changes); err != nil {
		t.Fatal(err)
	}
	var compareURLs []string
	for _, c := range changes {
		compareURLs = append(compareURLs, c.CompareURL)
		for _, l := range c.Links {
			compareURLs = append(compareURLs, l.URL)
		}
	}
	if !strings.Contains(strings.Join(compareURLs, " "), "https://ghe.example.com/acme/api/compare/v1.8.3...v1.8.4") {
		t.Errorf("compare links: %v", compareURLs)
	}
}

func TestDeadOrLimitedGitHubCostsAtMostTheBudget(t *testing.T) {
	t.Run("hanging", func(t *testing.T) {
		f := newFakeGitHub(t)
		f.serveRepo("acme", "api", now)
		f.delay = 3 * time.Second
		s := newSource(t, f, nil)
		a, took := enrichOne(t, s, 200*time.Millisecond, map[string]string{"repo": host(f) + "/acme/api"})
		if took > time.Second {
			t.Errorf("took %s with a 200ms budget", took)
		}
		if got := a.Annotations["whatchanged_error"]; got != "github: timeout after 200ms" {
			t.Errorf("whatchanged_error = %q", got)
		}
	})
	t.Run("rate limited", func(t *testing.T) {
		f := newFakeGitHub(t)
		f.limitWith = http.StatusTooManyRequests
		s := newSource(t, f, nil)
		a, _ := enrichOne(t, s, time.Second, map[string]string{"repo": host(f) + "/acme/api"})
		if got := a.Annotations["whatchanged_error"]; !strings.HasPrefix(got, "github: rate limited until ") {
			t.Errorf("whatchanged_error = %q", got)
		}
	})
}
