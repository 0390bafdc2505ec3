package timeline_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/whatchanged/whatchanged/enrich"
	"github.com/whatchanged/whatchanged/enrich/history"
	"github.com/whatchanged/whatchanged/enrich/timeline"
	"github.com/whatchanged/whatchanged/sources"
	"github.com/whatchanged/whatchanged/sources/changes"
	"github.com/whatchanged/whatchanged/sources/store/storetest"
	"github.com/whatchanged/whatchanged/test/golden"
)

// pipeline is the real thing on one bbolt store: the pushed-changes
// source, the enricher asking it, the history recording what it annotated.
type pipeline struct {
	changes  *changes.Source
	enricher *enrich.Enricher
	history  *history.History
	builder  *timeline.Builder
}

func newPipeline(t *testing.T) pipeline {
	t.Helper()
	st := storetest.Bolt(t)
	log := slog.New(slog.DiscardHandler)
	src := changes.New("changes", changes.Config{}, st, log)
	if err := src.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	resolver, err := enrich.NewResolver(nil)
	if err != nil {
		t.Fatal(err)
	}
	e := enrich.New(enrich.Options{}, resolver, []enrich.SourceEntry{{Source: src}}, nil)
	h := history.New(st, history.Config{}, e.Resolve, log)
	h.Start(t.Context())
	t.Cleanup(func() { h.Close(5 * time.Second) })
	return pipeline{src, e, h, &timeline.Builder{History: h, Sources: e}}
}

func (p pipeline) push(t *testing.T, id, ns, name string, at time.Time) {
	t.Helper()
	_, _, err := p.changes.Record(t.Context(), changes.Event{ID: id, Kind: sources.KindDeploy, Time: at, Author: "Alice Kim",
		Subject: sources.Subject{Namespace: ns, Kind: "Deployment", Name: name}, Revision: "5f2c1e9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e",
		Message: "raise DB pool", CompareURL: "https://github.com/acme/" + name + "/compare/1a2b3c4...5f2c1e9"})
	if err != nil {
		t.Fatal(err)
	}
}

// notify passes alerts through the enricher and into the history, as the
// webhook handler does.
func (p pipeline) notify(t *testing.T, alerts ...*enrich.Alert) {
	t.Helper()
	p.enricher.Annotate(t.Context(), alerts, nil)
	p.history.Observe("webhook default", enrich.DefaultAnnotationPrefix, alerts)
	if err := p.history.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func orderAlert(status string, startsAt, endsAt time.Time) *enrich.Alert {
	return &enrich.Alert{Status: status, StartsAt: startsAt, EndsAt: endsAt, Fingerprint: "3fa2b1c4d5e6f708",
		Labels: map[string]string{"alertname": "PostgresTooManyConnections", "namespace": "shop", "deployment": "orders", "severity": "critical"}}
}

func describe(tl *timeline.Timeline) string {
	var lines []string
	for _, e := range tl.Entries {
		switch e.Type {
		case timeline.EntryChange:
			ch := tl.Changes[e.Index]
			lines = append(lines, "change "+ch.Subject.Namespace+"/"+ch.Subject.Name)
		default:
			lines = append(lines, e.Type+" "+tl.Alerts[e.Index].Alertname)
		}
	}
	return strings.Join(lines, "\n")
}

func TestBuildInterleavesAlertsAndChanges(t *testing.T) {
	p := newPipeline(t)
	now := time.Now().UTC().Truncate(time.Second)
	startsAt := now.Add(-34 * time.Minute)
	p.push(t, "orders-1", "shop", "orders", now.Add(-40*time.Minute))
	p.push(t, "cart-1", "shop", "cart", now.Add(-20*time.Minute))
	p.push(t, "pay-1", "payments", "api", now.Add(-30*time.Minute))
	p.notify(t, orderAlert("firing", startsAt, time.Time{}))
	p.notify(t, orderAlert("resolved", startsAt, now.Add(-10*time.Minute)))

	tl, err := p.builder.Build(t.Context(), timeline.Filter{Namespace: "shop"}, now.Add(-time.Hour), now)
	if err != nil {
		t.Fatal(err)
	}
	want := "change shop/orders\nfiring PostgresTooManyConnections\nchange shop/cart\nresolved PostgresTooManyConnections"
	if got := describe(tl); got != want {
		t.Errorf("entries:\n%s\nwant:\n%s", got, want)
	}
	a := tl.Alerts[0]
	if !strings.Contains(a.Suspect, "deploy of shop/orders 5f2c1e9 by Alice Kim") || len(a.Links) != 1 || a.Links[0].Name != "compare" {
		t.Errorf("suspect %q links %+v", a.Suspect, a.Links)
	}
	if a.Notifications != 2 || a.Status != "resolved" || a.Subject.Name != "orders" {
		t.Errorf("alert %+v", a)
	}
	md := tl.Markdown(time.UTC)
	clock := func(at time.Time) string { // with the date when the window spans midnight
		if tl.From.Day() != tl.To.Day() {
			return at.Format("2006-01-02 15:04")
		}
		return at.Format("15:04")
	}
	for _, line := range []string{
		"- " + clock(now.Add(-40*time.Minute)) + ` deploy orders 5f2c1e9 by Alice Kim — "raise DB pool" (changes, [compare](https://github.com/acme/orders/compare/1a2b3c4...5f2c1e9))`,
		"- " + clock(startsAt) + " FIRING PostgresTooManyConnections orders (critical, 2 notifications)\n  - suspect: deploy of shop/orders 5f2c1e9 by Alice Kim",
		"- " + clock(now.Add(-10*time.Minute)) + " RESOLVED PostgresTooManyConnections orders (critical, 2 notifications) after 24m",
	} {
		if !strings.Contains(md, line) {
			t.Errorf("Markdown lacks %q:\n%s", line, md)
		}
	}

	// A workload: its namespace's other deploys are not it.
	tl, err = p.builder.Build(t.Context(), timeline.Filter{Workload: "orders"}, now.Add(-time.Hour), now)
	if err != nil {
		t.Fatal(err)
	}
	if want := "change shop/orders\nfiring PostgresTooManyConnections\nresolved PostgresTooManyConnections"; describe(tl) != want {
		t.Errorf("workload orders:\n%s\nwant:\n%s", describe(tl), want)
	}

	// Matchers: none of the alerts; no alert, no workload, no changes.
	tl, err = p.builder.Build(t.Context(), timeline.Filter{Matchers: `{severity="info"}`}, now.Add(-time.Hour), now)
	if err != nil || len(tl.Alerts) != 0 || len(tl.Changes) != 0 || len(tl.Entries) != 0 {
		t.Errorf("severity=info: %+v %v", tl, err)
	}
	// Only alerts' workloads are asked when the filter names none.
	tl, err = p.builder.Build(t.Context(), timeline.Filter{Matchers: `{severity=~"crit.*"}`, Alertname: "PostgresTooManyConnections"}, now.Add(-time.Hour), now)
	if err != nil || len(tl.Alerts) != 1 || strings.Contains(describe(tl), "payments") || !strings.Contains(describe(tl), "change shop/orders") {
		t.Errorf("severity=~crit.*:\n%s (%v)", describe(tl), err)
	}
	// A window after it: the alert ended before it opened.
	tl, err = p.builder.Build(t.Context(), timeline.Filter{}, now.Add(-5*time.Minute), now)
	if err != nil || len(tl.Alerts) != 0 {
		t.Errorf("last 5m: %d alerts (%v)", len(tl.Alerts), err)
	}
}

func TestBuildRefusesBadInput(t *testing.T) {
	p := newPipeline(t)
	now := time.Now()
	for _, tc := range []struct {
		name     string
		f        timeline.Filter
		from, to time.Time
		field    string
	}{
		{name: "matchers", f: timeline.Filter{Matchers: `{severity=~"("}`}, from: now.Add(-time.Hour), to: now, field: "matchers"},
		{name: "from after to", from: now, to: now.Add(-time.Hour), field: "from"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.builder.Build(context.Background(), tc.f, tc.from, tc.to)
			var fe *timeline.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Errorf("err = %v, want a FieldError on %s", err, tc.field)
			}
		})
	}
}

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 3, 14, 17, 0, 0, 0, time.UTC)
	for _, tc := range []struct{ in, want string }{
		{"3h", "2026-03-14T14:00:00Z"},
		{"90m", "2026-03-14T15:30:00Z"},
		{"2d", "2026-03-12T17:00:00Z"},
		{"2026-03-14T13:05:00+01:00", "2026-03-14T12:05:00Z"},
		{"yesterday", ""},
		{"-3h", ""},
	} {
		got, err := timeline.ParseTime("from", tc.in, now)
		switch {
		case tc.want == "" && (err == nil || !strings.HasPrefix(err.Error(), "from: ")):
			t.Errorf("%q: err = %v, want one naming from", tc.in, err)
		case tc.want != "" && (err != nil || got.UTC().Format(time.RFC3339) != tc.want):
			t.Errorf("%q: %v %v, want %s", tc.in, got, err, tc.want)
		}
	}
}

// golden is a timeline of every kind of line, built by hand so the file
// does not move with the clock.
func sample() *timeline.Timeline {
	at := func(hm string) time.Time {
		t, _ := time.Parse(time.RFC3339, "2026-03-14T"+hm+":00Z")
		return t
	}
	links := []sources.Link{{Name: "compare", URL: "https://github.com/acme/orders/compare/1a2b3c4...5f2c1e9"},
		{Name: "argocd", URL: "https://argocd.example.com/applications/argocd/orders"}}
	tl := &timeline.Timeline{From: at("12:00"), To: at("16:00"),
		Filter: timeline.Filter{Namespace: "shop", Matchers: `{severity=~"critical|warning"}`},
		Alerts: []timeline.Alert{
			{Alertname: "DiskFilling", Severity: "warning", Subject: sources.Subject{Namespace: "shop", Name: "orders-db"}, Status: "firing",
				StartsAt: at("09:30"), Notifications: 5},
			{Alertname: "PostgresTooManyConnections", Severity: "critical", Subject: sources.Subject{Namespace: "shop", Name: "orders"},
				Status: "resolved", StartsAt: at("13:08"), EndsAt: at("13:31"), Notifications: 3,
				Suspect: `argocd sync of orders 5f2c1e9 by Alice Kim: "raise DB pool to 200", 6m before the alert started [argocd, kubernetes]`,
				Links:   links},
			{Alertname: "OrdersLatencyHigh", Severity: "warning", Subject: sources.Subject{Namespace: "shop", Name: "orders"},
				Status: "firing", StartsAt: at("13:10"), Notifications: 1},
		},
		Changes: []sources.Change{
			{Source: "argocd", Kind: sources.KindSync, Subject: sources.Subject{Namespace: "shop", Name: "orders"}, Revision: "5f2c1e9a0b1c2d3e4f5a",
				Author: "Alice Kim", Message: "raise DB pool to 200\n\nlong body", StartedAt: at("13:02"), Sources: []string{"argocd", "kubernetes"},
				CompareURL: links[0].URL, URL: links[1].URL},
			{Source: "changes", Kind: sources.KindFlag, Subject: sources.Subject{Namespace: "shop", App: "checkout"}, Version: "new_checkout_flow=on",
				DeployedBy: "launchdarkly", StartedAt: at("13:20"), Status: sources.StatusInProgress},
			{Source: "kubernetes", Kind: sources.KindRollback, Subject: sources.Subject{Namespace: "shop", Name: "orders"}, Revision: "43",
				StartedAt: at("13:25"), Status: sources.StatusFailed},
		},
		Errors: []string{"github: timeout after 800ms"},
	}
	tl.Entries = []timeline.Entry{
		{At: at("13:02"), Type: timeline.EntryChange, Index: 0},
		{At: at("13:08"), Type: timeline.EntryFiring, Index: 1},
		{At: at("13:10"), Type: timeline.EntryFiring, Index: 2},
		{At: at("13:20"), Type: timeline.EntryChange, Index: 1},
		{At: at("13:25"), Type: timeline.EntryChange, Index: 2},
		{At: at("13:31"), Type: timeline.EntryResolved, Index: 1},
	}
	return tl
}

func TestMarkdownGolden(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "testdata/timeline.md.golden", []byte(sample().Markdown(berlin)))

	// A window over two days dates every line.
	tl := sample()
	tl.From = tl.From.Add(-24 * time.Hour)
	md := tl.Markdown(time.UTC)
	for _, want := range []string{"## Timeline 2026-03-13 12:00 – 2026-03-14 16:00 (UTC)", "- 2026-03-14 13:08 FIRING PostgresTooManyConnections"} {
		if !strings.Contains(md, want) {
			t.Errorf("two-day Markdown lacks %q:\n%s", want, md)
		}
	}
	if empty := (&timeline.Timeline{From: tl.From, To: tl.To}).Markdown(nil); !strings.Contains(empty, "Filters: none") ||
		!strings.Contains(empty, "Nothing fired, resolved or changed in this window.") {
		t.Errorf("empty timeline:\n%s", empty)
	}
}
