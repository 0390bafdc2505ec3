package enrich

import (
	"context"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/whatchanged/whatchanged/sources"
)

func TestChangesJSONOption(t *testing.T) {
	on, off := true, false
	tests := []struct {
		name string
		set  *bool
		want bool
	}{
		{"unset is on", nil, true},
		{"on", &on, true},
		{"off", &off, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := Options{Annotations: AnnotationOptions{ChangesJSON: tt.set}}
			if got := opts.Annotations.ChangesJSONOn(); got != tt.want {
				t.Fatalf("ChangesJSONOn() = %v, want %v", got, tt.want)
			}
			e := newTestEnricher(t, opts, nil, fixtureSources()...)
			a := alert(map[string]string{"namespace": "shop", "deployment": "api", "app": "shop-api"})
			a.Annotations["whatchanged_changes"] = "stale from an earlier pass"
			e.Enrich(context.Background(), []*Alert{a}, nil)
			_, has := a.Annotations["whatchanged_changes"]
			if has != tt.want {
				t.Errorf("whatchanged_changes written = %v, want %v: %v", has, tt.want, a.Annotations)
			}
			if a.Annotations["whatchanged_summary"] == "" || a.Annotations["whatchanged_suspect"] == "" {
				t.Errorf("the other annotations went with it: %v", a.Annotations)
			}
		})
	}
}

// Each kind of link lands in its own annotation, whether it is the
// change's own URL or a link a merged source kept.
func TestLinkAnnotations(t *testing.T) {
	tests := []struct {
		name string
		ch   sources.Change
		want map[string]string
	}{
		{"argocd sync", sources.Change{Source: "argocd", Kind: sources.KindSync, URL: "https://argocd.example.com/applications/argocd/shop-api",
			CompareURL: "https://github.com/acme/api/compare/1111111...9f1c2e7"},
			map[string]string{AnnArgoCDURL: "https://argocd.example.com/applications/argocd/shop-api", AnnCompareURL: "https://github.com/acme/api/compare/1111111...9f1c2e7"}},
		{"github release", sources.Change{Source: "github", Kind: sources.KindRelease, URL: "https://github.com/acme/api/releases/tag/v1.4.0"},
			map[string]string{AnnReleaseURL: "https://github.com/acme/api/releases/tag/v1.4.0"}},
		{"github deployment", sources.Change{Source: "github", Kind: sources.KindGitHubDeployment, URL: "https://github.com/acme/api/actions/runs/42"},
			map[string]string{AnnDeploymentURL: "https://github.com/acme/api/actions/runs/42"}},
		{"pushed by CI", sources.Change{Source: "changes", Kind: sources.KindDeploy, URL: "https://ci.example.com/run/42"},
			map[string]string{AnnCIURL: "https://ci.example.com/run/42"}},
		{"merged: links named by their source", sources.Change{Source: "argocd", Kind: sources.KindSync, URL: "https://argocd.example.com/applications/argocd/shop-api",
			Links: []sources.Link{
				{Name: "github", URL: "https://github.com/acme/api/releases/tag/v1.4.0"},
				{Name: "github", URL: "https://github.com/acme/api/actions/runs/42"},
				{Name: "github compare", URL: "https://github.com/acme/api/compare/v1.3.9...v1.4.0"},
				{Name: "changes", URL: "https://ci.example.com/run/42"},
				{Name: "changes", URL: "https://ci.example.com/run/43"}, // a second of a kind is only in whatchanged_links
				{Name: "someone", URL: "https://example.com/unknown"},
			}},
			map[string]string{AnnArgoCDURL: "https://argocd.example.com/applications/argocd/shop-api", AnnReleaseURL: "https://github.com/acme/api/releases/tag/v1.4.0",
				AnnDeploymentURL: "https://github.com/acme/api/actions/runs/42", AnnCompareURL: "https://github.com/acme/api/compare/v1.3.9...v1.4.0",
				AnnCIURL: "https://ci.example.com/run/42"}},
		{"a rollout has none", sources.Change{Source: "kubernetes", Kind: sources.KindRollout}, map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := linkAnnotations(tt.ch); !maps.Equal(got, tt.want) {
				t.Errorf("got  %v\nwant %v", got, tt.want)
			}
		})
	}
}

// Through the pipeline: a sync, the release it shipped and the CI push of
// the same commit are one suspect with a link annotation per page, and
// whatchanged_links keeps them all; a URL over the size limit is left out
// rather than cut into a broken link.
func TestLinkAnnotationsOfAMergedSuspect(t *testing.T) {
	sha := "9f1c2e7a4b3d5e6f7a8b9c0d1e2f3a4b5c6d7e8f"
	long := "https://ci.example.com/run/42?trace=" + strings.Repeat("x", 600)
	chs := []sources.Change{
		{Source: "argocd", Kind: sources.KindSync, ID: "sync-42", Subject: sources.Subject{Namespace: "shop", App: "shop-api"}, Revision: sha,
			StartedAt: t0.Add(-12 * time.Minute), FinishedAt: t0.Add(-10 * time.Minute), Status: sources.StatusSucceeded,
			URL: "https://argocd.example.com/applications/argocd/shop-api", CompareURL: "https://github.com/acme/api/compare/1111111...9f1c2e7"},
		{Source: "github", Kind: sources.KindRelease, ID: "rel", Subject: sources.Subject{Repo: "github.com/acme/api"}, Version: "v1.4.0", Revision: sha,
			StartedAt: t0.Add(-20 * time.Minute), URL: "https://github.com/acme/api/releases/tag/v1.4.0"},
		{Source: "changes", Kind: sources.KindDeploy, ID: "ci-42", Subject: api, Revision: sha[:12], StartedAt: t0.Add(-13 * time.Minute), URL: long},
	}
	var srcs []SourceEntry
	for _, c := range chs {
		srcs = append(srcs, SourceEntry{Source: &staticSource{name: c.Source, changes: []sources.Change{c}}})
	}
	e := newTestEnricher(t, Options{MaxAnnotationBytes: 512}, nil, srcs...)
	a := alert(map[string]string{"namespace": "shop", "deployment": "api", "app": "shop-api", "repo": "github.com/acme/api"})
	rep := e.Enrich(context.Background(), []*Alert{a}, nil).Alerts[0]
	if rep.Suspect == nil || len(rep.Suspect.Sources) != 3 {
		t.Fatalf("suspect %+v, want the three observations as one", rep.Suspect)
	}
	want := map[string]string{
		"whatchanged_argocd_url":  "https://argocd.example.com/applications/argocd/shop-api",
		"whatchanged_compare_url": "https://github.com/acme/api/compare/1111111...9f1c2e7",
		"whatchanged_release_url": "https://github.com/acme/api/releases/tag/v1.4.0",
	}
	for k, v := range want {
		if a.Annotations[k] != v {
			t.Errorf("%s = %q, want %q", k, a.Annotations[k], v)
		}
	}
	for _, k := range []string{"whatchanged_ci_url", "whatchanged_deployment_url"} {
		if v, ok := a.Annotations[k]; ok {
			t.Errorf("%s = %.40q…, want none (too long, or no such link)", k, v)
		}
	}
	if links := a.Annotations["whatchanged_links"]; links == "" {
		t.Error("whatchanged_links is gone")
	}
}
