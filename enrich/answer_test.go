package enrich

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/whatchanged/whatchanged/sources"
)

// The answer an on-call engineer reads: one line per deploy with commit,
// author, deployer and rollout; the alerting workload's own deploy first;
// fixes after the start; the last deploy when nothing changed.

const sha = "9f1c2e7a4b3d5e6f7a8b9c0d1e2f3a4b5c6d7e8f"

func enrichWith(t *testing.T, now time.Time, a *Alert, changes ...sources.Change) AlertReport {
	t.Helper()
	by := map[string]*staticSource{}
	var entries []SourceEntry
	for _, c := range changes { // each source answers its own part
		if by[c.Source] == nil {
			by[c.Source] = &staticSource{name: c.Source}
			entries = append(entries, SourceEntry{Source: by[c.Source]})
		}
		by[c.Source].changes = append(by[c.Source].changes, c)
	}
	e := newTestEnricher(t, Options{}, nil, entries...)
	e.now = func() time.Time { return now }
	return e.Enrich(context.Background(), []*Alert{a}, nil).Alerts[0]
}

func TestMergedDeployLineNamesCommitAuthorDeployerAndRollout(t *testing.T) {
	sync := sources.Change{Source: "argocd", Kind: "sync", ID: "argocd/shop-api/history/7", Subject: sources.Subject{Namespace: "shop", App: "shop-api"},
		Revision: sha, StartedAt: t0.Add(-8 * time.Minute), FinishedAt: t0.Add(-6 * time.Minute), Status: "succeeded",
		Author: "Alice Kim", DeployedBy: "automated sync", Message: "raise DB pool to 200\n\nbody",
		URL: "https://argocd.example.com/applications/argocd/shop-api", CompareURL: "https://github.com/acme/api/compare/1111111...9f1c2e7"}
	roll := rollout(api, "2", "ghcr.io/acme/api:9f1c2e7", t0.Add(-7*time.Minute))
	roll.Images[0].From, roll.PreviousRevision, roll.Status, roll.FinishedAt = "ghcr.io/acme/api:1111111", "1", "succeeded", t0.Add(-5*time.Minute)
	a := alert(map[string]string{"namespace": "shop", "deployment": "api", "app": "shop-api"})
	rep := enrichWith(t, t0, a, sync, roll)
	if len(rep.Ranking) != 1 {
		t.Fatalf("one deploy, %d lines: %+v", len(rep.Ranking), rep.Ranking)
	}
	got := a.Annotations["whatchanged_suspect"]
	want := `argocd sync of shop-api 9f1c2e7 by Alice Kim (deployed by automated sync): "raise DB pool to 200", rolled out as shop/api rev 2 (ghcr.io/acme/api:9f1c2e7), 8m before the alert started [argocd, kubernetes]`
	if got != want {
		t.Errorf("suspect\n got %s\nwant %s", got, want)
	}
	s := rep.Suspect
	if s == nil || s.Revision != sha || len(s.Rollouts) != 1 || s.Rollouts[0].Revision != "2" || s.Rollouts[0].PreviousRevision != "1" ||
		s.Subject.Name != "api" || s.Relation != sources.RelationWorkload || s.CompareURL == "" || !s.FinishedAt.Equal(t0.Add(-5*time.Minute)) {
		t.Errorf("merged change lost the cause's or the rollout's fields: %+v", s)
	}
}

func TestOwnDeployIsTheSuspectOverANeighbourOfItsApp(t *testing.T) {
	own := sources.Change{Source: "s", Kind: "deploy", ID: "own", Subject: api, Version: "api:2", StartedAt: t0.Add(-40 * time.Minute)}
	neighbour := sources.Change{Source: "s", Kind: "deploy", ID: "worker", Subject: worker, Version: "worker:9", StartedAt: t0.Add(-3 * time.Minute)}
	a := alert(map[string]string{"namespace": "shop", "deployment": "api", "app": "shop-api"})
	rep := enrichWith(t, t0, a, own, neighbour)
	if rep.Suspect == nil || rep.Suspect.ID != "own" || rep.Ranking[0].ID != "own" {
		t.Fatalf("suspect %+v, want the alerting workload's own deploy first", rep.Suspect)
	}
	if rep.Ranking[1].Role != RoleAlsoChanged || !strings.Contains(a.Annotations["whatchanged_summary"], "\nalso changed: deploy of shop/worker") {
		t.Errorf("neighbour: role %q, summary %q", rep.Ranking[1].Role, a.Annotations["whatchanged_summary"])
	}
	// Without a change of its own, the app's neighbour is the suspect.
	rep = enrichWith(t, t0, alert(map[string]string{"namespace": "shop", "deployment": "api", "app": "shop-api"}), neighbour)
	if rep.Suspect == nil || rep.Suspect.ID != "worker" {
		t.Errorf("suspect %+v, want the neighbour", rep.Suspect)
	}
}

func TestChangesAfterTheStartUpToTheNotificationOrEnd(t *testing.T) {
	fix := sources.Change{Source: "s", Kind: "deploy", ID: "fix", Subject: api, Version: "api:3", StartedAt: t0.Add(10 * time.Minute)}
	cause := sources.Change{Source: "s", Kind: "deploy", ID: "cause", Subject: api, Version: "api:2", StartedAt: t0.Add(-5 * time.Minute)}
	// Resolved 15m after the start: the fix 10m in is shown, never the suspect.
	a := alert(map[string]string{"namespace": "shop", "deployment": "api"})
	a.Status, a.EndsAt = "resolved", t0.Add(15*time.Minute)
	rep := enrichWith(t, t0.Add(16*time.Minute), a, fix, cause)
	if rep.Suspect == nil || rep.Suspect.ID != "cause" {
		t.Fatalf("suspect %+v, want the deploy before the start", rep.Suspect)
	}
	i := slices.IndexFunc(rep.Ranking, func(c sources.Change) bool { return c.ID == "fix" })
	if i < 0 || rep.Ranking[i].Role != RoleAfterStart || !strings.Contains(a.Annotations["whatchanged_summary"], "10m after the alert started") {
		t.Errorf("fix after the start: %+v\n%s", rep.Ranking, a.Annotations["whatchanged_summary"])
	}
	// Firing, notified 4m after the start: the fix has not happened yet.
	rep = enrichWith(t, t0.Add(4*time.Minute), alert(map[string]string{"namespace": "shop", "deployment": "api"}), fix, cause)
	if slices.ContainsFunc(rep.Ranking, func(c sources.Change) bool { return c.ID == "fix" }) {
		t.Errorf("a change after the notification is listed: %+v", rep.Ranking)
	}
	// Only a fix after the start: no suspect.
	rep = enrichWith(t, t0.Add(20*time.Minute), alert(map[string]string{"namespace": "shop", "deployment": "api"}), fix)
	if rep.Suspect != nil || len(rep.Ranking) != 1 {
		t.Errorf("suspect %+v ranking %+v, want the fix listed and no suspect", rep.Suspect, rep.Ranking)
	}
}

func TestLastDeployWhenNothingChangedInTheLookback(t *testing.T) {
	old := sources.Change{Source: "s", Kind: "deploy", ID: "old", Subject: api, Version: "acme/pay:12", Author: "bob", StartedAt: t0.Add(-23 * 24 * time.Hour)}
	older := sources.Change{Source: "s", Kind: "deploy", ID: "older", Subject: api, Version: "acme/pay:11", StartedAt: t0.Add(-40 * 24 * time.Hour)}
	other := sources.Change{Source: "s", Kind: "deploy", ID: "web", Subject: web, Version: "web:1", StartedAt: t0.Add(-2 * time.Hour)}
	a := alert(map[string]string{"namespace": "shop", "deployment": "api"})
	rep := enrichWith(t, t0, a, old, older, other)
	if rep.Suspect != nil {
		t.Errorf("suspect %+v for a 23-day-old deploy", rep.Suspect)
	}
	if rep.LastDeploy == nil || rep.LastDeploy.ID != "old" {
		t.Fatalf("last deploy %+v, want the newest before the look-back", rep.LastDeploy)
	}
	sum := a.Annotations["whatchanged_summary"]
	if !strings.Contains(sum, "last deploy: deploy of shop/api acme/pay:12 by bob, 23d before the alert started") {
		t.Errorf("summary does not tell the last deploy:\n%s", sum)
	}
	// A change of its own inside the look-back: no "last deploy".
	rep = enrichWith(t, t0, alert(map[string]string{"namespace": "shop", "deployment": "api"}), old,
		sources.Change{Source: "s", Kind: "deploy", ID: "new", Subject: api, StartedAt: t0.Add(-3 * time.Hour)})
	if rep.LastDeploy != nil {
		t.Errorf("last deploy %+v beside a change in the look-back", rep.LastDeploy)
	}
}

func TestAPersonNotABotWroteIt(t *testing.T) {
	release := sources.Change{Source: "github", Kind: "release", ID: "r", Subject: sources.Subject{Repo: "github.com/acme/api"},
		Version: "v2.14.0", Author: "kwame-mensah", StartedAt: t0.Add(-34 * time.Minute)}
	sync := sources.Change{Source: "argocd", Kind: "sync", ID: "s", Subject: sources.Subject{Namespace: "shop", App: "shop-api", Repo: "github.com/acme/gitops"},
		Revision: "77aa00bb11cc22dd33ee44ff55aa66bb77cc88dd", Author: "acme-release-bot", DeployedBy: "automated sync",
		StartedAt: t0.Add(-12 * time.Minute), FinishedAt: t0.Add(-10 * time.Minute)}
	roll := rollout(api, "5", "ghcr.io/acme/api:2.14.0", t0.Add(-11*time.Minute))
	rep := enrichWith(t, t0, alert(map[string]string{"namespace": "shop", "deployment": "api", "app": "shop-api", "repo": "github.com/acme/api"}), release, sync, roll)
	if len(rep.Ranking) != 1 {
		t.Fatalf("one deploy, %d lines: %+v", len(rep.Ranking), rep.Ranking)
	}
	s := rep.Ranking[0]
	// Timed by the sync that deployed it, not the release's publishing.
	if s.Author != "kwame-mensah" || s.BeforeStart != "12m" || s.Version != "v2.14.0" || len(s.Sources) != 3 {
		t.Errorf("merged = author %q, %s before, version %q, sources %v", s.Author, s.BeforeStart, s.Version, s.Sources)
	}
}

func TestRevisionTokens(t *testing.T) {
	tests := []struct {
		in   string
		want []string // value (sha marked *), component after /
	}{
		{"v1.4.0", []string{"1.4.0"}},
		{"ghcr.io/acme/api:v1.4.0", []string{"1.4.0"}},
		{"registry:5000/acme/api:main-5f2c1e9", []string{"main-5f2c1e9", "5f2c1e9*"}},
		{"5F2C1E9D0C", []string{"5f2c1e9d0c*"}},
		{"api/v1.2.0", []string{"1.2.0/api"}},
		{"orders@1.4.0", []string{"1.4.0"}},
		{"deploy/prod@9f1c2e7", []string{"9f1c2e7*"}},
		{"1.0.0-20241128", []string{"1.0.0-20241128"}}, // a date is no commit
		{"26.0.5-debian-12-r0", []string{"26.0.5-debian-12-r0", "26.0.5"}},
		{"release-2026.11.28", []string{"release-2026.11.28", "2026.11.28"}},
		{"1.4.0-rc.1", []string{"1.4.0-rc.1"}}, // a release candidate is not the release
		{"latest", nil},
		{"ghcr.io/acme/api", nil},
		{"ghcr.io/acme/api@sha256:abc", nil},
	}
	for _, tt := range tests {
		var got []string
		for _, tk := range versionTokens(tt.in) {
			s := tk.value
			if tk.sha {
				s += "*"
			}
			if tk.component != "" {
				s += "/" + tk.component
			}
			got = append(got, s)
		}
		if strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("versionTokens(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
	api := token{value: "1.2.0", component: "api"}
	if !api.matches(imageTokens("ghcr.io/acme/commerce-api:1.2.0")[0]) || api.matches(imageTokens("ghcr.io/acme/web:1.2.0")[0]) {
		t.Error("a component's version must match its own image only")
	}
}

// An alert with an app and a stage but no namespace is not about the
// app's copy in another stage.
func TestAppOnlyAlertKeepsToItsStage(t *testing.T) {
	prod := sources.Change{Source: "s", Kind: "deploy", ID: "prod", Subject: sources.Subject{Namespace: "prod", Name: "checkout", App: "checkout"}, StartedAt: t0.Add(-50 * time.Minute)}
	staging := sources.Change{Source: "s", Kind: "deploy", ID: "staging", Subject: sources.Subject{Namespace: "staging", Name: "checkout", App: "checkout"}, StartedAt: t0.Add(-7 * time.Minute)}
	rep := enrichWith(t, t0, alert(map[string]string{"app": "checkout", "env": "prod"}), prod, staging)
	if rep.Suspect == nil || rep.Suspect.ID != "prod" || len(rep.Ranking) != 1 {
		t.Errorf("suspect %+v, ranking %+v: want prod's deploy only", rep.Suspect, rep.Ranking)
	}
	// Without a stated stage, both copies are this app's.
	rep = enrichWith(t, t0, alert(map[string]string{"app": "checkout"}), prod, staging)
	if len(rep.Ranking) != 2 {
		t.Errorf("ranking %+v: want both copies", rep.Ranking)
	}
}

// Changes that ship no image: a ConfigMap edit, a Helm upgrade, a Flux sync.

func newConfigEdit(s sources.Subject, name string, at time.Time, detail string, keys ...string) sources.Change {
	return sources.Change{Source: "kubernetes", Kind: sources.KindConfig, ID: "ConfigMap/" + s.Namespace + "/" + name + "@" + at.Format(time.RFC3339),
		Subject: s, StartedAt: at, Status: sources.StatusSucceeded, Detail: detail,
		Objects: []sources.Object{{Kind: "ConfigMap", Namespace: s.Namespace, Name: name, Keys: keys}}}
}

func TestConfigEditWithoutRolloutIsTheSuspect(t *testing.T) {
	edit := newConfigEdit(api, "pricing-config", t0.Add(-4*time.Minute), "mounted by shop/api; updated in the pods in place (no restart)", "rates.yaml")
	old := rollout(api, "7", "ghcr.io/acme/api:1.8.2", t0.Add(-3*24*time.Hour))
	a := alert(map[string]string{"namespace": "shop", "deployment": "api"})
	rep := enrichWith(t, t0, a, edit, old)
	want := `ConfigMap pricing-config edited (keys: rates.yaml) 4m before the alert started; mounted by shop/api; updated in the pods in place (no restart) [kubernetes]`
	if got := a.Annotations["whatchanged_suspect"]; got != want {
		t.Errorf("suspect\n got %s\nwant %s", got, want)
	}
	if rep.Suspect == nil || len(rep.Suspect.Objects) != 1 || rep.Suspect.Objects[0].Keys[0] != "rates.yaml" {
		t.Errorf("suspect %+v", rep.Suspect)
	}
}

func TestConfigEditAndTheRestartThatCarriedItAreOneLine(t *testing.T) {
	edit := newConfigEdit(api, "api-env", t0.Add(-9*time.Minute), "read as env by shop/api; rolled out since as rev 8", "DB_POOL")
	restart := rollout(api, "8", "ghcr.io/acme/api:1.8.2", t0.Add(-7*time.Minute))
	restart.Images[0].From, restart.PreviousRevision = "ghcr.io/acme/api:1.8.2", "7"
	a := alert(map[string]string{"namespace": "shop", "deployment": "api"})
	rep := enrichWith(t, t0, a, edit, restart)
	if len(rep.Ranking) != 1 {
		t.Fatalf("one change, %d lines: %v", len(rep.Ranking), a.Annotations["whatchanged_summary"])
	}
	want := `ConfigMap api-env edited (keys: DB_POOL), rolled out as shop/api rev 8 (ghcr.io/acme/api:1.8.2), 9m before the alert started [kubernetes]`
	if got := a.Annotations["whatchanged_suspect"]; got != want {
		t.Errorf("suspect\n got %s\nwant %s", got, want)
	}
	// An edit long before a rollout is not what the rollout carried.
	a = alert(map[string]string{"namespace": "shop", "deployment": "api"})
	edit.StartedAt = t0.Add(-3 * time.Hour)
	if rep = enrichWith(t, t0, a, edit, restart); len(rep.Ranking) != 2 {
		t.Errorf("an edit 3h before a restart folded into it: %v", a.Annotations["whatchanged_summary"])
	}
}

func TestHelmUpgradeMergesWithItsRolloutAndConfigEdit(t *testing.T) {
	orders := sources.Subject{Namespace: "orders", Kind: "Deployment", Name: "orders-api", App: "orders"}
	upgrade := sources.Change{Source: "kubernetes", Kind: sources.KindHelm, ID: "helm/orders/orders@5", Subject: sources.Subject{Namespace: "orders", App: "orders"},
		Revision: "5", PreviousRevision: "4", Version: "3.2.0", PreviousVersion: "3.1.4", Chart: "orders-3.2.1", Message: "Upgrade complete",
		StartedAt: t0.Add(-35 * time.Minute), FinishedAt: t0.Add(-34 * time.Minute), Status: sources.StatusSucceeded}
	roll := rollout(orders, "18", "ghcr.io/acme/orders-api:3.2.0", t0.Add(-35*time.Minute+10*time.Second))
	roll.Images[0].From, roll.PreviousRevision = "ghcr.io/acme/orders-api:3.1.4", "17"
	edit := newConfigEdit(orders, "orders-config", t0.Add(-35*time.Minute+2*time.Second), "mounted by orders/orders-api; rolled out since as rev 18", "application.yaml")
	a := alert(map[string]string{"namespace": "orders", "deployment": "orders-api"})
	rep := enrichWith(t, t0, a, upgrade, roll, edit)
	if len(rep.Ranking) != 1 {
		t.Fatalf("one helm upgrade, %d lines: %v", len(rep.Ranking), a.Annotations["whatchanged_summary"])
	}
	want := `helm upgrade of orders rev 5 (orders-3.2.1, app 3.2.0 (was 3.1.4)): "Upgrade complete", changed ConfigMap orders-config edited (keys: application.yaml), rolled out as orders/orders-api rev 18 (ghcr.io/acme/orders-api:3.2.0), 35m before the alert started [kubernetes]`
	if got := a.Annotations["whatchanged_suspect"]; got != want {
		t.Errorf("suspect\n got %s\nwant %s", got, want)
	}
	// A values-only upgrade: no new image, the template's checksum rolled
	// the pods; the upgrade's window holds the rollout and the edit.
	upgrade.Version, upgrade.PreviousVersion, upgrade.Chart = "3.1.4", "", "orders-3.1.5"
	roll.Images[0].To = roll.Images[0].From
	a = alert(map[string]string{"namespace": "orders", "deployment": "orders-api"})
	if rep = enrichWith(t, t0, a, upgrade, roll, edit); len(rep.Ranking) != 1 || rep.Suspect.Kind != sources.KindHelm || len(rep.Suspect.Objects) != 1 {
		t.Errorf("values-only upgrade: %v", a.Annotations["whatchanged_summary"])
	}
	// Without a rollout (the ConfigMap is mounted, the template did not
	// change): the upgrade and its edit are still one line.
	a = alert(map[string]string{"namespace": "orders", "deployment": "orders-api"})
	if rep = enrichWith(t, t0, a, upgrade, edit); len(rep.Ranking) != 1 || !strings.Contains(a.Annotations["whatchanged_suspect"], "changed ConfigMap orders-config") {
		t.Errorf("upgrade without rollout: %v", a.Annotations["whatchanged_summary"])
	}
}

func TestFluxSyncMergesWithItsRollout(t *testing.T) {
	sync := sources.Change{Source: "flux", Kind: sources.KindSync, ID: "flux/Kustomization/flux-system/apps@main@sha1:" + sha, Subject: api,
		Revision: sha, PreviousRevision: "1111111111111111111111111111111111111111", Version: "main",
		StartedAt: t0.Add(-12 * time.Minute), FinishedAt: t0.Add(-11 * time.Minute), Status: sources.StatusSucceeded,
		DeployedBy: "flux Kustomization flux-system/apps", CompareURL: "https://github.com/acme/api/compare/1111111111111111111111111111111111111111..." + sha}
	roll := rollout(api, "9", "ghcr.io/acme/api:"+sha[:7], t0.Add(-11*time.Minute))
	a := alert(map[string]string{"namespace": "shop", "deployment": "api"})
	rep := enrichWith(t, t0, a, sync, roll)
	if len(rep.Ranking) != 1 {
		t.Fatalf("one sync, %d lines: %v", len(rep.Ranking), a.Annotations["whatchanged_summary"])
	}
	want := `flux sync of shop-api 9f1c2e7 deployed by flux Kustomization flux-system/apps, rolled out as shop/api rev 9 (ghcr.io/acme/api:9f1c2e7), 12m before the alert started [flux, kubernetes]`
	if got := a.Annotations["whatchanged_suspect"]; got != want {
		t.Errorf("suspect\n got %s\nwant %s", got, want)
	}
	if a.Annotations["whatchanged_compare_url"] != sync.CompareURL {
		t.Errorf("compare link %q", a.Annotations["whatchanged_compare_url"])
	}
}

func TestTimelineLinkToTheAlertsWorkloadAndHour(t *testing.T) {
	r, _ := NewResolver(nil)
	src := &staticSource{name: "kubernetes", changes: []sources.Change{rollout(api, "2", "ghcr.io/acme/api:2", t0.Add(-5*time.Minute))}}
	e := New(Options{TimelineURL: "https://whatchanged.example.com/ui/"}, r, []SourceEntry{{Source: src}}, nil)
	e.now = func() time.Time { return t0 }
	t.Cleanup(e.StopProbes)
	a := alert(map[string]string{"namespace": "shop", "deployment": "api", "cluster": "eu"})
	e.Enrich(context.Background(), []*Alert{a}, nil)
	want := "https://whatchanged.example.com/ui/?from=2026-11-21T09%3A14%3A00Z&namespace=shop&to=2026-11-21T11%3A14%3A00Z&workload=api"
	if got := a.Annotations["whatchanged_timeline_url"]; got != want {
		t.Errorf("timeline_url\n got %s\nwant %s", got, want)
	}
	if !strings.HasSuffix(a.Annotations["whatchanged_links"], "\ntimeline: "+want) && a.Annotations["whatchanged_links"] != "timeline: "+want {
		t.Errorf("links %q", a.Annotations["whatchanged_links"])
	}
	// Without an external URL: no link.
	e2 := newTestEnricher(t, Options{}, nil, SourceEntry{Source: src})
	b := alert(map[string]string{"namespace": "shop", "deployment": "api"})
	e2.Enrich(context.Background(), []*Alert{b}, nil)
	if _, ok := b.Annotations["whatchanged_timeline_url"]; ok {
		t.Errorf("timeline link without an external URL: %v", b.Annotations)
	}
}
