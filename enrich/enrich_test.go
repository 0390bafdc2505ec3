package enrich

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/whatchanged/whatchanged/sources"
	"github.com/whatchanged/whatchanged/test/golden"
)

var t0 = time.Date(2026, 11, 21, 10, 14, 0, 0, time.UTC) // the alert's startsAt

// staticSource answers from a fixed list, filtered like a real source, and
// counts its calls. Delay and Err simulate slow and failing backends.
type staticSource struct {
	name    string
	changes []sources.Change
	delay   time.Duration
	ignore  bool // ignore ctx while delaying (a badly behaved source)
	err     error
	calls   atomic.Int64
}

func (s *staticSource) Name() string { return s.name }

func (s *staticSource) Changes(ctx context.Context, q sources.Query) ([]sources.Change, error) {
	s.calls.Add(1)
	if s.delay > 0 {
		if s.ignore {
			time.Sleep(s.delay)
		} else {
			select {
			case <-time.After(s.delay):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	if s.err != nil {
		return nil, s.err
	}
	var out []sources.Change
	for _, c := range s.changes {
		if rel := sources.Relate(q.Subject, c.Subject); rel != sources.RelationNone && !c.StartedAt.Before(q.From(rel)) && !c.StartedAt.After(q.Until) {
			out = append(out, c)
		}
	}
	return out, nil
}

var (
	api    = sources.Subject{Namespace: "shop", Kind: "Deployment", Name: "api", App: "shop-api", Repo: "github.com/acme/api"}
	worker = sources.Subject{Namespace: "shop", Kind: "Deployment", Name: "worker", App: "shop-api", Repo: "github.com/acme/api"}
	web    = sources.Subject{Namespace: "shop", Kind: "Deployment", Name: "web", App: "shop-web", Repo: "github.com/acme/web"}
)

func fixtureChanges() []sources.Change {
	return []sources.Change{
		{Source: "changes", Kind: "deploy", ID: "ci-41", Subject: api, Version: "api:1.8.3", PreviousVersion: "api:1.8.2",
			StartedAt: t0.Add(-26 * time.Hour), Author: "bob"}, // outside the 24h lookback
		{Source: "changes", Kind: "deploy", ID: "ci-42", Subject: api, Revision: "9f1c2e7a4b3d", Version: "api:1.8.4", PreviousVersion: "api:1.8.3",
			StartedAt: t0.Add(-12 * time.Minute), FinishedAt: t0.Add(-10 * time.Minute), Status: "succeeded",
			Author: "alice", Message: "fix retry budget\n\nlong body", URL: "https://ci.example.com/run/42",
			CompareURL: "https://github.com/acme/api/compare/1111111...9f1c2e7"},
		{Source: "argocd", Kind: "sync", ID: "shop-api/17", Subject: sources.Subject{Namespace: "shop", App: "shop-api"},
			Revision: "9f1c2e7a4b3d5e6f", PreviousRevision: "1111111aaaa", StartedAt: t0.Add(-13 * time.Minute),
			FinishedAt: t0.Add(-9 * time.Minute), Status: "succeeded", Author: "alice",
			Links: []sources.Link{{Name: "argocd", URL: "https://argocd.example.com/applications/shop-api"}}},
		{Source: "changes", Kind: "config", ID: "cfg-7", Subject: sources.Subject{Namespace: "shop", App: "shop-api"},
			StartedAt: t0.Add(-3 * time.Hour), Author: "carol", Message: "raise pool size"},
		{Source: "changes", Kind: "deploy", ID: "web-9", Subject: web, Version: "web:3.0.0", StartedAt: t0.Add(-5 * time.Minute), Author: "dan"},
		{Source: "changes", Kind: "flag", ID: "flag-1", Subject: sources.Subject{Repo: "github.com/acme/api"},
			StartedAt: t0.Add(-40 * time.Minute), Message: "enable new-checkout"},
		{Source: "changes", Kind: "deploy", ID: "rollback-1", Subject: api, Version: "api:1.8.3",
			StartedAt: t0.Add(2 * time.Minute), Status: "in_progress", Author: "alice", Message: "rollback"},
	}
}

// fixtureSources splits the fixture by source, as the real sources would
// each answer their own part.
func fixtureSources() []SourceEntry {
	by := map[string]*staticSource{}
	var out []SourceEntry
	for _, c := range fixtureChanges() {
		s, ok := by[c.Source]
		if !ok {
			s = &staticSource{name: c.Source}
			by[c.Source] = s
			out = append(out, SourceEntry{Source: s})
		}
		s.changes = append(s.changes, c)
	}
	return out
}

func newTestEnricher(t *testing.T, opts Options, rules []Rule, srcs ...SourceEntry) *Enricher {
	t.Helper()
	r, err := NewResolver(rules)
	if err != nil {
		t.Fatal(err)
	}
	e := New(opts, r, srcs, nil)
	e.now = func() time.Time { return t0 }
	t.Cleanup(e.StopProbes)
	return e
}

func alert(labels map[string]string) *Alert {
	return &Alert{Status: "firing", Labels: labels, Annotations: map[string]string{"description": "keep me"}, StartsAt: t0}
}

func TestRankOrderMergeAndSuspect(t *testing.T) {
	srcs := fixtureSources()
	e := newTestEnricher(t, Options{}, nil, srcs...)
	a := alert(map[string]string{"namespace": "shop", "deployment": "api", "app": "shop-api", "repo": "github.com/acme/api"})
	rep := e.Enrich(context.Background(), []*Alert{a}, nil).Alerts[0]

	var got []string
	for _, c := range rep.Ranking {
		got = append(got, c.ID+"/"+string(c.Relation)+"/"+c.BeforeStart)
	}
	// ci-42 and the argocd sync share commit 9f1c2e7: one change, both sources.
	// ci-41 is outside the lookback. Score is relation × closeness: web-9
	// (same namespace, 5m before) outranks cfg-7 (same app, 3h before), and
	// the rollback after the start is discounted.
	want := []string{"shop-api/17/workload/13m", "flag-1/repo/40m", "web-9/namespace/5m", "rollback-1/workload/-2m", "cfg-7/app/3h"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("ranking\n got %v\nwant %v", got, want)
	}
	top := rep.Ranking[0]
	if strings.Join(top.Sources, ",") != "argocd,changes" || top.PreviousRevision != "1111111aaaa" || len(top.Links) == 0 {
		t.Errorf("merged change lost a source's fields: %+v", top)
	}
	if !top.StartedAt.Equal(t0.Add(-13*time.Minute)) || !top.FinishedAt.Equal(t0.Add(-9*time.Minute)) {
		t.Errorf("merged window = %v…%v, want the union", top.StartedAt, top.FinishedAt)
	}
	// Named after the sync (the deploy itself), about the workload the CI
	// event named.
	if rep.Suspect == nil || rep.Suspect.ID != "shop-api/17" || rep.Suspect.Subject.Name != "api" {
		t.Fatalf("suspect = %+v, want the merged sync of shop/api", rep.Suspect)
	}
	for _, s := range srcs {
		if n := s.Source.(*staticSource).calls.Load(); n != 1 {
			t.Errorf("source %s called %d times, want 1", s.Source.Name(), n)
		}
	}
}

func TestNoSuspectWhenOnlyLooselyRelatedOrOld(t *testing.T) {
	tests := []struct {
		name   string
		change sources.Change
	}{
		{"namespace only", sources.Change{Kind: "deploy", ID: "x", Subject: web, StartedAt: t0.Add(-time.Minute)}},
		{"repo only", sources.Change{Kind: "deploy", ID: "x", Subject: sources.Subject{Repo: "github.com/acme/api"}, StartedAt: t0.Add(-time.Minute)}},
		{"outside suspect window", sources.Change{Kind: "deploy", ID: "x", Subject: api, StartedAt: t0.Add(-90 * time.Minute)}},
		{"after the start", sources.Change{Kind: "deploy", ID: "x", Subject: api, StartedAt: t0.Add(time.Minute)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnricher(t, Options{}, nil, SourceEntry{Source: &staticSource{name: "s", changes: []sources.Change{tt.change}}})
			rep := e.Enrich(context.Background(), []*Alert{alert(map[string]string{"namespace": "shop", "deployment": "api", "repo": "github.com/acme/api"})}, nil).Alerts[0]
			if len(rep.Ranking) != 1 {
				t.Fatalf("ranking %+v, want the one change", rep.Ranking)
			}
			if rep.Suspect != nil {
				t.Errorf("suspect %+v, want none", rep.Suspect)
			}
		})
	}
}

func TestMergeKeepsDistinctDeploys(t *testing.T) {
	tests := []struct {
		name string
		a, b sources.Change
		same bool
	}{
		{"same sha prefix across sources", sources.Change{Source: "a", Revision: "ABCDEF1234", StartedAt: t0},
			sources.Change{Source: "b", Revision: "abcdef1", StartedAt: t0.Add(time.Minute)}, true},
		{"revision numbers of two workloads", sources.Change{Source: "k", Subject: api, Revision: "42", StartedAt: t0},
			sources.Change{Source: "k", Subject: worker, Revision: "42", StartedAt: t0}, false},
		{"same version redeployed a day later", sources.Change{Source: "c", Version: "api:1.8.3", StartedAt: t0},
			sources.Change{Source: "c", Version: "api:1.8.3", StartedAt: t0.Add(24 * time.Hour)}, false},
		{"rollout inside a sync window", sources.Change{Source: "argocd", Kind: "sync", Subject: sources.Subject{Namespace: "shop", App: "shop-api"}, StartedAt: t0, FinishedAt: t0.Add(5 * time.Minute)},
			sources.Change{Source: "kubernetes", Kind: "rollout", Subject: api, Revision: "7", StartedAt: t0.Add(2 * time.Minute)}, true},
		{"rollout after the sync window", sources.Change{Source: "argocd", Kind: "sync", Subject: sources.Subject{Namespace: "shop", App: "shop-api"}, StartedAt: t0, FinishedAt: t0.Add(5 * time.Minute)},
			sources.Change{Source: "kubernetes", Kind: "rollout", Subject: api, Revision: "7", StartedAt: t0.Add(20 * time.Minute)}, false},
		{"image tag is the commit", sources.Change{Source: "argocd", Kind: "sync", Subject: sources.Subject{App: "shop-api"}, Revision: "5f2c1e9d0c7a4b3e8f1a2b3c4d5e6f7a8b9c0d1e", StartedAt: t0},
			rollout(api, "2", "ghcr.io/acme/api:5f2c1e9", t0.Add(time.Minute)), true},
		{"image tag is the release without v", sources.Change{Source: "github", Kind: "release", Subject: sources.Subject{Repo: "github.com/acme/api"}, Version: "v1.4.0", StartedAt: t0},
			rollout(api, "2", "ghcr.io/acme/api:1.4.0", t0.Add(3*time.Minute)), true},
		{"release of another repo with the same tag", sources.Change{Source: "github", Kind: "release", Subject: sources.Subject{Repo: "github.com/acme/web"}, Version: "v1.4.0", StartedAt: t0},
			rollout(api, "2", "ghcr.io/acme/api:1.4.0", t0.Add(3*time.Minute)), false},
		{"first rollout hours after the release (a staging soak)", sources.Change{Source: "github", Kind: "release", Subject: sources.Subject{Repo: "github.com/acme/api"}, Version: "v1.4.0", StartedAt: t0},
			rollout(api, "2", "ghcr.io/acme/api:1.4.0", t0.Add(3*time.Hour)), true},
		{"rollout days after the release", sources.Change{Source: "github", Kind: "release", Subject: sources.Subject{Repo: "github.com/acme/api"}, Version: "v1.4.0", StartedAt: t0},
			rollout(api, "2", "ghcr.io/acme/api:1.4.0", t0.Add(30*time.Hour)), false},
		{"a CI deploy's window holds a config-only rollout", sources.Change{Source: "changes", Kind: "deploy", Subject: api, Revision: "77aa00b", StartedAt: t0, FinishedAt: t0.Add(4 * time.Minute)},
			sources.Change{Source: "kubernetes", Kind: "rollout", Subject: api, Revision: "9", StartedAt: t0.Add(2 * time.Minute)}, true},
		{"an unfinished CI deploy has no window", sources.Change{Source: "changes", Kind: "deploy", Subject: api, Revision: "77aa00b", StartedAt: t0},
			sources.Change{Source: "kubernetes", Kind: "rollout", Subject: api, Revision: "9", StartedAt: t0.Add(2 * time.Minute)}, false},
		{"rollout long before the CI event", sources.Change{Source: "changes", Kind: "deploy", Subject: api, Revision: "5f2c1e9", StartedAt: t0.Add(20 * time.Minute)},
			rollout(api, "2", "ghcr.io/acme/api:5f2c1e9", t0), false},
		{"latest is no revision", sources.Change{Source: "changes", Kind: "deploy", Subject: api, Version: "latest", StartedAt: t0},
			rollout(api, "2", "ghcr.io/acme/api:latest", t0.Add(time.Minute)), false},
		{"two workloads sharing an image", rollout(api, "2", "ghcr.io/acme/base:7", t0), rollout(worker, "5", "ghcr.io/acme/base:7", t0), false},
		{"a staging deployment of the commit production runs", sources.Change{Source: "github", Kind: "deployment", Subject: sources.Subject{Repo: "github.com/acme/api"}, Revision: "5f2c1e9d0c", Environment: "staging", StartedAt: t0},
			rollout(api, "2", "ghcr.io/acme/api:5f2c1e9", t0.Add(3*time.Minute)), false},
		{"a production deployment", sources.Change{Source: "github", Kind: "deployment", Subject: sources.Subject{Repo: "github.com/acme/api"}, Revision: "5f2c1e9d0c", Environment: "production", StartedAt: t0},
			rollout(api, "2", "ghcr.io/acme/api:5f2c1e9", t0.Add(3*time.Minute)), true},
		{"same source same workload without a window", sources.Change{Source: "c", Subject: api, StartedAt: t0},
			sources.Change{Source: "c", Subject: api, StartedAt: t0.Add(time.Minute)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := merge([]sources.Change{tt.a, tt.b}, stage{})
			if (len(got) == 1) != tt.same {
				t.Fatalf("merge gave %d changes, want same=%v", len(got), tt.same)
			}
		})
	}
}

func rollout(s sources.Subject, rev, image string, at time.Time) sources.Change {
	return sources.Change{Source: "kubernetes", Kind: "rollout", ID: s.Name + "@" + rev, Subject: s, Revision: rev, StartedAt: at,
		Images: []sources.ImageChange{{Container: "main", To: image}}, Version: image}
}

// One CI deploy of commit 5f2c1e9: the api and worker rollouts of that
// commit are its effects (one per workload); api's next revision is a
// deploy of its own.
func TestMergeFoldsOneRolloutPerWorkload(t *testing.T) {
	ci := sources.Change{Source: "changes", Kind: "deploy", ID: "ci", Subject: sources.Subject{Namespace: "shop", App: "shop-api"},
		Revision: "5f2c1e9", Author: "alice", StartedAt: t0}
	apiRollout := rollout(api, "2", "ghcr.io/acme/api:5f2c1e9", t0.Add(time.Minute))
	apiRollout.Relation = sources.RelationWorkload
	got := merge([]sources.Change{ci, apiRollout,
		rollout(api, "3", "ghcr.io/acme/api:77aa00b", t0.Add(2*time.Minute)), rollout(worker, "4", "ghcr.io/acme/worker:5f2c1e9", t0.Add(time.Minute))}, stage{})
	if len(got) != 2 {
		t.Fatalf("got %d changes, want the deploy and api rev 3: %+v", len(got), got)
	}
	var merged *sources.Change
	for i := range got {
		if got[i].ID == "ci" {
			merged = &got[i]
		}
	}
	if merged == nil || len(merged.Rollouts) != 2 || merged.Rollouts[0].Name != "api" || merged.Rollouts[0].Revision != "2" ||
		merged.Rollouts[1].Name != "worker" || merged.Author != "alice" || merged.Subject.Name != "api" {
		t.Fatalf("merged = %+v", merged)
	}
}

// A redeploy of a released version hours later is its own deploy: the
// release belongs to the first rollout of its tag.
func TestARedeployDoesNotTakeTheRelease(t *testing.T) {
	rel := sources.Change{Source: "github", Kind: "release", ID: "rel", Subject: sources.Subject{Repo: "github.com/acme/api"}, Version: "v1.4.0", StartedAt: t0}
	first := rollout(api, "2", "ghcr.io/acme/api:1.4.0", t0.Add(2*time.Minute))
	again := rollout(api, "3", "ghcr.io/acme/api:1.4.0", t0.Add(3*time.Hour))
	got := merge([]sources.Change{again, rel, first}, stage{})
	if len(got) != 2 {
		t.Fatalf("got %d changes, want the release with rev 2, and rev 3: %+v", len(got), got)
	}
	for _, c := range got {
		if c.ID == "rel" && (len(c.Rollouts) != 1 || c.Rollouts[0].Revision != "2") {
			t.Errorf("the release took %+v, want rev 2", c.Rollouts)
		}
	}
}

func TestEnrichIsDeterministic(t *testing.T) {
	labels := map[string]string{"namespace": "shop", "deployment": "api", "app": "shop-api"}
	var first map[string]string
	for i := 0; i < 20; i++ {
		chs := fixtureChanges()
		rand.New(rand.NewSource(int64(i))).Shuffle(len(chs), func(a, b int) { chs[a], chs[b] = chs[b], chs[a] })
		e := newTestEnricher(t, Options{}, nil, SourceEntry{Source: &staticSource{name: "s", changes: chs}})
		e.now = func() time.Time { return t0.Add(time.Duration(i) * time.Minute) } // re-sends come later
		a := alert(labels)
		e.Enrich(context.Background(), []*Alert{a}, nil)
		if first == nil {
			first = a.Annotations
			continue
		}
		for k, v := range first {
			if a.Annotations[k] != v {
				t.Fatalf("run %d: %s differs:\n%s\nvs\n%s", i, k, a.Annotations[k], v)
			}
		}
	}
}

func TestRenderGolden(t *testing.T) {
	tests := []struct {
		name   string
		labels map[string]string
		opts   Options
		srcs   func() []SourceEntry
	}{
		{name: "suspect", labels: map[string]string{"namespace": "shop", "deployment": "api", "app": "shop-api", "repo": "github.com/acme/api"}},
		{name: "changes-json-off", labels: map[string]string{"namespace": "shop", "deployment": "api", "app": "shop-api", "repo": "github.com/acme/api"},
			opts: Options{Annotations: AnnotationOptions{ChangesJSON: new(false)}}},
		{name: "no-changes", labels: map[string]string{"namespace": "billing", "deployment": "ledger"}},
		{name: "unknown-subject", labels: map[string]string{"alertname": "Watchdog"}},
		{name: "source-failed", labels: map[string]string{"namespace": "shop", "deployment": "api"},
			srcs: func() []SourceEntry {
				return []SourceEntry{
					{Source: &staticSource{name: "changes", changes: fixtureChanges()}},
					{Source: &staticSource{name: "argocd", delay: time.Second}, Timeout: 30 * time.Millisecond},
					{Source: &staticSource{name: "github", err: errString("bad credentials: token rejected")}},
				}
			}},
		{name: "truncated", labels: map[string]string{"namespace": "shop", "deployment": "api"}, opts: Options{MaxChanges: 2},
			srcs: func() []SourceEntry {
				var many []sources.Change
				for i := 0; i < 9; i++ {
					many = append(many, sources.Change{Source: "changes", Kind: "deploy", ID: string(rune('a' + i)), Subject: api,
						Version: "api:1." + string(rune('0'+i)), StartedAt: t0.Add(-time.Duration(i+1) * 7 * time.Minute), Message: strings.Repeat("long ", 100)})
				}
				return []SourceEntry{{Source: &staticSource{name: "changes", changes: many}}}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srcs := fixtureSources()
			if tt.srcs != nil {
				srcs = tt.srcs()
			}
			e := newTestEnricher(t, tt.opts, nil, srcs...)
			a := alert(tt.labels)
			a.Annotations["whatchanged_suspect"] = "stale from an earlier pass"
			e.Enrich(context.Background(), []*Alert{a}, nil)
			if a.Annotations["description"] != "keep me" {
				t.Errorf("foreign annotation changed: %q", a.Annotations["description"])
			}
			got, _ := json.MarshalIndent(a.Annotations, "", "  ")
			golden.Check(t, filepath.Join("testdata", "render-"+tt.name+".golden"), got)
			for k, v := range a.Annotations {
				if len(v) > e.opts.MaxAnnotationBytes {
					t.Errorf("%s is %d bytes, over the %d limit", k, len(v), e.opts.MaxAnnotationBytes)
				}
			}
		})
	}
}

type errString string

func (e errString) Error() string { return string(e) }

func TestBudgetBoundsASourceThatIgnoresItsContext(t *testing.T) {
	hang := &staticSource{name: "argocd", delay: 3 * time.Second, ignore: true}
	good := &staticSource{name: "changes", changes: fixtureChanges()}
	e := newTestEnricher(t, Options{Budget: 150 * time.Millisecond}, nil, SourceEntry{Source: good}, SourceEntry{Source: hang})
	a := alert(map[string]string{"namespace": "shop", "deployment": "api"})
	start := time.Now()
	e.Enrich(context.Background(), []*Alert{a}, nil)
	took := time.Since(start)
	if took > time.Second {
		t.Fatalf("enrichment took %s with a 150ms budget", took)
	}
	if got := a.Annotations["whatchanged_error"]; got != "argocd: timeout after 150ms" {
		t.Errorf("whatchanged_error = %q", got)
	}
	if a.Annotations["whatchanged_suspect"] == "" {
		t.Errorf("the healthy source's answer was lost: %v", a.Annotations)
	}
}

func TestOneQueryPerDistinctSubject(t *testing.T) {
	src := &staticSource{name: "changes", changes: fixtureChanges()}
	e := newTestEnricher(t, Options{}, nil, SourceEntry{Source: src})
	var alerts []*Alert
	for i := 0; i < 200; i++ {
		l := map[string]string{"namespace": "shop", "deployment": "api", "pod": "api-7d9f8b6c4-" + string(rune('a'+i%26)) + "xxxx"}
		if i%2 == 1 {
			l["deployment"] = "web"
		}
		a := alert(l)
		a.StartsAt = t0.Add(time.Duration(i) * time.Second)
		alerts = append(alerts, a)
	}
	rep := e.Enrich(context.Background(), alerts, nil)
	if n := src.calls.Load(); n != 2 {
		t.Errorf("source called %d times for 200 alerts of 2 subjects, want 2", n)
	}
	for i, a := range rep.Alerts {
		if len(a.Ranking) == 0 {
			t.Fatalf("alert %d got no changes", i)
		}
	}
}

func TestSkippedAlertsAreUntouched(t *testing.T) {
	e := newTestEnricher(t, Options{}, nil, SourceEntry{Source: &staticSource{name: "changes", changes: fixtureChanges()}})
	a := alert(map[string]string{"namespace": "shop", "deployment": "api"})
	rep := e.Enrich(context.Background(), []*Alert{a}, func(*Alert) string { return "resolved" })
	if rep.Alerts[0].Skipped != "resolved" || len(a.Annotations) != 1 {
		t.Errorf("skipped alert was enriched: %v", a.Annotations)
	}
}

// A busy namespace: thousands of namespace-related changes must not crowd
// out the workload's own deploy, and the work per alert stays bounded.
func TestBusyNamespaceIsBounded(t *testing.T) {
	var many []sources.Change
	for i := 0; i < 5000; i++ {
		many = append(many, sources.Change{Source: "changes", Kind: "deploy", ID: fmt.Sprintf("n-%d", i),
			Subject: sources.Subject{Namespace: "shop", Name: fmt.Sprintf("svc-%d", i)}, Version: fmt.Sprintf("v%d", i%7),
			StartedAt: t0.Add(-time.Duration(i%1400) * time.Minute)})
	}
	many = append(many, sources.Change{Source: "changes", Kind: "deploy", ID: "mine", Subject: api, StartedAt: t0.Add(-90 * time.Minute)})
	e := newTestEnricher(t, Options{}, nil, SourceEntry{Source: &staticSource{name: "changes", changes: many}})
	rep := e.Enrich(context.Background(), []*Alert{alert(map[string]string{"namespace": "shop", "deployment": "api"})}, nil).Alerts[0]
	if len(rep.Ranking) > maxCandidates {
		t.Errorf("ranking holds %d changes, over the %d cap", len(rep.Ranking), maxCandidates)
	}
	if rep.Ranking[0].ID != "mine" {
		t.Errorf("top change %q, want the workload's own deploy", rep.Ranking[0].ID)
	}
}

// Two revisions of one workload created in the same second: the higher
// revision is the newer and must rank first.
func TestSameSecondRevisionsRankByNumber(t *testing.T) {
	chs := []sources.Change{
		{Source: "kubernetes", Kind: "rollout", ID: "web@10", Subject: api, Revision: "10", StartedAt: t0.Add(-time.Minute)},
		{Source: "kubernetes", Kind: "rollout", ID: "web@9", Subject: api, Revision: "9", StartedAt: t0.Add(-time.Minute)},
	}
	e := newTestEnricher(t, Options{}, nil, SourceEntry{Source: &staticSource{name: "kubernetes", changes: chs}})
	rep := e.Enrich(context.Background(), []*Alert{alert(map[string]string{"namespace": "shop", "deployment": "api"})}, nil).Alerts[0]
	if rep.Suspect == nil || rep.Suspect.Revision != "10" {
		t.Fatalf("suspect %+v, want revision 10 (numeric, not string, order)", rep.Suspect)
	}
}

// A source answering from a stale cache returns changes and an error: both
// reach the annotations.
func TestStaleAnswerKeepsChangesAndError(t *testing.T) {
	src := &staleSource{changes: fixtureChanges()[1:2]}
	e := newTestEnricher(t, Options{}, nil, SourceEntry{Source: src})
	a := alert(map[string]string{"namespace": "shop", "deployment": "api"})
	e.Enrich(context.Background(), []*Alert{a}, nil)
	if a.Annotations["whatchanged_suspect"] == "" || a.Annotations["whatchanged_error"] != "github: rate limited until 2026-11-21T11:00:00Z" {
		t.Errorf("annotations = %v", a.Annotations)
	}
}

type staleSource struct{ changes []sources.Change }

func (s *staleSource) Name() string { return "github" }
func (s *staleSource) Changes(context.Context, sources.Query) ([]sources.Change, error) {
	return s.changes, errString("rate limited until 2026-11-21T11:00:00Z")
}

// The budget bounds the whole enrichment, not only the sources: when the
// caller's deadline (arrival + budget + grace) has passed — decoding a huge
// body took it all — every alert goes out at once with our error only, and
// others' annotations are kept.
func TestOverBudgetAlertsGoOutUnenrichedNotLate(t *testing.T) {
	src := &staticSource{name: "changes", changes: fixtureChanges()}
	e := newTestEnricher(t, Options{Budget: time.Second}, nil, SourceEntry{Source: src})
	var alerts []*Alert
	for range 100 {
		alerts = append(alerts, alert(map[string]string{"namespace": "shop", "deployment": "api"}))
	}
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Millisecond))
	defer cancel()
	start := time.Now()
	e.Enrich(ctx, alerts, nil)
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("took %s past its deadline", took)
	}
	for i, a := range alerts {
		if a.Annotations["whatchanged_error"] != BudgetExceeded || a.Annotations["whatchanged_summary"] != "" || a.Annotations["description"] != "keep me" {
			t.Fatalf("alert %d: %v", i, a.Annotations)
		}
	}
}

// A group of many alerts of one workload is ranked once: every alert gets
// the same annotations, equal to a lone alert's.
func TestIdenticalAlertsShareOneRanking(t *testing.T) {
	src := &staticSource{name: "changes", changes: fixtureChanges()}
	e := newTestEnricher(t, Options{}, nil, SourceEntry{Source: src})
	lone := alert(map[string]string{"namespace": "shop", "deployment": "api"})
	e.Enrich(context.Background(), []*Alert{lone}, nil)
	var alerts []*Alert
	for range 1000 {
		alerts = append(alerts, alert(map[string]string{"namespace": "shop", "deployment": "api"}))
	}
	rep := e.Enrich(context.Background(), alerts, nil)
	for i, a := range alerts {
		if !maps.Equal(a.Annotations, lone.Annotations) {
			t.Fatalf("alert %d: %v\nwant %v", i, a.Annotations, lone.Annotations)
		}
	}
	if rep.Alerts[999].Suspect == nil || lone.Annotations["whatchanged_suspect"] == "" {
		t.Errorf("no suspect: %v", lone.Annotations)
	}
}

// A notification grows by at most MaxAddedBytes: the first alerts are
// annotated, the rest carry one short error.
func TestAddedBytesAreBounded(t *testing.T) {
	src := &staticSource{name: "changes", changes: fixtureChanges()}
	e := newTestEnricher(t, Options{MaxAddedBytes: 64 << 10}, nil, SourceEntry{Source: src})
	var alerts []*Alert
	for range 2000 {
		alerts = append(alerts, alert(map[string]string{"namespace": "shop", "deployment": "api"}))
	}
	e.Enrich(context.Background(), alerts, nil)
	added, crowded := 0, 0
	for _, a := range alerts {
		for k, v := range a.Annotations {
			if strings.HasPrefix(k, "whatchanged_") {
				added += len(k) + len(v)
			}
		}
		if a.Annotations["whatchanged_error"] == Crowded {
			crowded++
		}
	}
	if crowded == 0 || alerts[0].Annotations["whatchanged_suspect"] == "" {
		t.Fatalf("crowded %d; first alert %v", crowded, alerts[0].Annotations)
	}
	if max := 64<<10 + crowded*(len("whatchanged_error")+len(Crowded)); added > max {
		t.Errorf("added %d bytes, more than %d", added, max)
	}
}
