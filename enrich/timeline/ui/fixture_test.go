package ui

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/whatchanged/whatchanged/enrich/timeline"
	"github.com/whatchanged/whatchanged/sources"
)

// An afternoon in the shop namespace, 12:00–16:00 UTC (13:00–17:00 in
// Berlin): Argo CD syncs orders and the rollout follows; the database
// alert and a latency alert fire and resolve; payments is released on
// GitHub, rolls out, and its error rate fires and still fires at 15:30.
var (
	day        = time.Date(2025, 3, 4, 0, 0, 0, 0, time.UTC)
	fixtureNow = day.Add(15*time.Hour + 30*time.Minute)
	from, to   = day.Add(12 * time.Hour), day.Add(16 * time.Hour)
	berlin     = mustZone("Europe/Berlin")
)

func mustZone(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

// Fingerprints and change ids of the fixture.
const (
	fpDB, fpLatency, fpPayments = "a1f0c0ffee000001", "b2f0c0ffee000002", "c3f0c0ffee000003"
	idSync                      = "argocd/orders/42"
	idOrdersRollout             = "kubernetes/shop/Deployment/orders/7"
	idRelease                   = "github/acme/payments/release/v2.3.0"
	idPaymentsRollout           = "kubernetes/shop/Deployment/payments/12"
)

// fixture is the timeline; ext is the base URL standing in for GitHub and
// Argo CD in its links.
func fixture(ext string) *timeline.Timeline {
	orders := sources.Subject{Namespace: "shop", Kind: "Deployment", Name: "orders", App: "orders", Repo: "github.com/acme/orders"}
	payments := sources.Subject{Namespace: "shop", Kind: "Deployment", Name: "payments", App: "payments", Repo: "github.com/acme/payments"}
	at := func(h, m int) time.Time { return day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute) }
	compare := ext + "/acme/orders/compare/1a2b3c4d5e6f...5f2c1e9a7b8c"
	tl := &timeline.Timeline{
		From: from, To: to, Filter: timeline.Filter{Namespace: "shop"},
		Alerts: []timeline.Alert{
			{Fingerprint: fpDB, Alertname: "PostgresTooManyConnections", Severity: "critical", Subject: orders, Status: "resolved",
				Labels:   map[string]string{"alertname": "PostgresTooManyConnections", "severity": "critical", "namespace": "shop", "deployment": "orders"},
				StartsAt: at(14, 8), EndsAt: at(14, 40), FirstSeen: at(14, 8), LastSeen: at(14, 40), Notifications: 3,
				Suspect: `argocd sync orders 5f2c1e9 by Alice Kim — "raise DB pool" (6m before)`,
				Links:   []sources.Link{{Name: "compare", URL: compare}}, Via: "webhook"},
			{Fingerprint: fpLatency, Alertname: "OrdersLatencyHigh", Severity: "warning", Subject: orders, Status: "resolved",
				Labels: map[string]string{"alertname": "OrdersLatencyHigh", "severity": "warning", "namespace": "shop",
					"summary": `p99 above 2s <script>document.title="pwned"</script>`},
				StartsAt: at(14, 10), EndsAt: at(14, 35), FirstSeen: at(14, 10), LastSeen: at(14, 35), Notifications: 1, Via: "webhook"},
			{Fingerprint: fpPayments, Alertname: "PaymentsErrorRate", Severity: "critical", Subject: payments, Status: "firing",
				Labels:   map[string]string{"alertname": "PaymentsErrorRate", "severity": "critical", "namespace": "shop"},
				StartsAt: at(15, 5), FirstSeen: at(15, 5), LastSeen: at(15, 25), Notifications: 2,
				Suspect: "github release payments v2.3.0 by Bob Li (10m before)", Via: "webhook"},
		},
		Changes: []sources.Change{
			{Source: "argocd", Kind: sources.KindSync, ID: idSync, Subject: orders, Revision: "5f2c1e9a7b8c", PreviousRevision: "1a2b3c4d5e6f",
				StartedAt: at(14, 2), FinishedAt: at(14, 3), Status: sources.StatusSucceeded, Author: "Alice Kim", DeployedBy: "automated sync",
				Message: "raise DB pool\n\nfrom 20 to 80", CompareURL: compare,
				Links: []sources.Link{{Name: "argocd", URL: ext + "/applications/argocd/orders"}}},
			{Source: "kubernetes", Kind: sources.KindRollout, ID: idOrdersRollout, Subject: orders, Revision: "7", PreviousRevision: "6",
				StartedAt: at(14, 3), Status: sources.StatusSucceeded,
				Images: []sources.ImageChange{{Container: "orders", From: "ghcr.io/acme/orders:1a2b3c4", To: "ghcr.io/acme/orders:5f2c1e9"}}},
			{Source: "github", Kind: sources.KindRelease, ID: idRelease, Subject: sources.Subject{App: "payments", Repo: "github.com/acme/payments"},
				Version: "v2.3.0", PreviousVersion: "v2.2.4", StartedAt: at(14, 55), Author: "Bob Li",
				Message: "retry card declines <script>alert(1)</script>", URL: ext + "/acme/payments/releases/tag/v2.3.0"},
			{Source: "kubernetes", Kind: sources.KindRollout, ID: idPaymentsRollout, Subject: payments, Revision: "12", PreviousRevision: "11",
				StartedAt: at(14, 56), Status: sources.StatusSucceeded},
		},
	}
	for i, a := range tl.Alerts {
		tl.Entries = append(tl.Entries, timeline.Entry{At: a.StartsAt, Type: timeline.EntryFiring, Index: i})
		if !a.EndsAt.IsZero() {
			tl.Entries = append(tl.Entries, timeline.Entry{At: a.EndsAt, Type: timeline.EntryResolved, Index: i})
		}
	}
	for i, c := range tl.Changes {
		tl.Entries = append(tl.Entries, timeline.Entry{At: c.StartedAt, Type: timeline.EntryChange, Index: i})
	}
	slices.SortStableFunc(tl.Entries, func(a, b timeline.Entry) int { return a.At.Compare(b.At) })
	return tl
}

// filtered keeps what the filter's workload selects, as the builder does
// for the workload links of the page (the rest of the filter is not
// needed by these tests).
func filtered(tl *timeline.Timeline, f timeline.Filter) *timeline.Timeline {
	if f.Workload == "" {
		return tl
	}
	out := &timeline.Timeline{From: tl.From, To: tl.To, Filter: f}
	alerts, changes := map[int]int{}, map[int]int{}
	for i, a := range tl.Alerts {
		if a.Subject.Name == f.Workload {
			alerts[i] = len(out.Alerts)
			out.Alerts = append(out.Alerts, a)
		}
	}
	for i, c := range tl.Changes {
		if c.Subject.Name == f.Workload {
			changes[i] = len(out.Changes)
			out.Changes = append(out.Changes, c)
		}
	}
	for _, e := range tl.Entries {
		m := alerts
		if e.Type == timeline.EntryChange {
			m = changes
		}
		if j, ok := m[e.Index]; ok {
			out.Entries = append(out.Entries, timeline.Entry{At: e.At, Type: e.Type, Index: j})
		}
	}
	return out
}

// call is one call of the build function.
type call struct {
	Filter   timeline.Filter
	From, To time.Time
}

// fakeBuild answers with tl filtered, and records the calls.
func fakeBuild(t *testing.T, tl *timeline.Timeline, calls chan<- call) BuildFunc {
	return func(ctx context.Context, f timeline.Filter, from, to time.Time) (*timeline.Timeline, error) {
		if calls != nil {
			select {
			case calls <- call{f, from, to}:
			default:
				t.Error("more build calls than the test expected")
			}
		}
		return filtered(tl, f), nil
	}
}
