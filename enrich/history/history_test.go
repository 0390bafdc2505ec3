package history

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/whatchanged/whatchanged/enrich"
	"github.com/whatchanged/whatchanged/enrich/timeline"
	"github.com/whatchanged/whatchanged/sources/store"
	"github.com/whatchanged/whatchanged/sources/store/storetest"
	"github.com/whatchanged/whatchanged/test/redistest"
)

// stores are the store.Store implementations the history is tested on;
// each test runs on every one.
var stores = map[string]func(t testing.TB) store.Store{
	"bbolt": func(t testing.TB) store.Store {
		return storetest.Bolt(t)
	},
	"redis": func(t testing.TB) store.Store {
		st, err := store.NewRedis(store.RedisConfig{Addr: redistest.Start(t).Addr, KeyPrefix: "history-test:"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	},
}

var t0 = time.Date(2026, 3, 14, 14, 0, 0, 0, time.UTC)

// newHistory is a started history on st whose clock reads *now.
func newHistory(t *testing.T, st store.Store, cfg Config, now *time.Time) *History {
	t.Helper()
	resolver, err := enrich.NewResolver(nil)
	if err != nil {
		t.Fatal(err)
	}
	e := enrich.New(enrich.Options{}, resolver, nil, nil)
	h := New(st, cfg, e.Resolve, slog.New(slog.NewTextHandler(io.Discard, nil)))
	h.now = func() time.Time { return *now }
	h.Start(context.Background())
	t.Cleanup(func() { h.Close(5 * time.Second) })
	return h
}

// alert is a webhook alert as Alertmanager sends it, with our suspect.
func alert(name, status string, startsAt time.Time, suspect string) *enrich.Alert {
	a := &enrich.Alert{Status: status, StartsAt: startsAt,
		Labels:      map[string]string{"alertname": name, "namespace": "shop", "deployment": "orders", "severity": "critical"},
		Annotations: map[string]string{"description": "too many connections"}}
	a.Fingerprint = fingerprint(a.Labels)
	if suspect != "" {
		a.Annotations["whatchanged_suspect"] = suspect
		a.Annotations["whatchanged_compare_url"] = "https://github.com/acme/orders/compare/a...b"
		a.Annotations["whatchanged_argocd_url"] = "https://argocd.example/applications/orders"
	}
	if status == "resolved" {
		a.EndsAt = startsAt.Add(23 * time.Minute)
	}
	return a
}

func observe(t *testing.T, h *History, via string, alerts ...*enrich.Alert) {
	t.Helper()
	h.Observe(via, enrich.DefaultAnnotationPrefix, alerts)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func all(t *testing.T, h *History, from, to time.Time) []timeline.Alert {
	t.Helper()
	got, more, err := h.Alerts(context.Background(), from, to, nil, 0)
	if err != nil || more {
		t.Fatalf("Alerts: more=%v err=%v", more, err)
	}
	return got
}

func TestLifecycle(t *testing.T) {
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			now := t0.Add(time.Minute)
			h := newHistory(t, open(t), Config{}, &now)
			start := t0.Add(8 * time.Minute)

			now = start.Add(time.Minute)
			observe(t, h, "webhook default", alert("PostgresTooManyConnections", "firing", start, "sync of orders 5f2c1e9"))
			now = start.Add(5 * time.Minute)
			// A re-notification naming another suspect (a change pushed late)
			// keeps the one named when it fired.
			observe(t, h, "webhook default", alert("PostgresTooManyConnections", "firing", start, "another"))
			now = start.Add(23 * time.Minute)
			observe(t, h, "webhook default", alert("PostgresTooManyConnections", "resolved", start, "another"))

			got := all(t, h, t0, t0.Add(time.Hour))
			if len(got) != 1 {
				t.Fatalf("got %d alerts, want 1: %+v", len(got), got)
			}
			a := got[0]
			if a.Status != "resolved" || !a.StartsAt.Equal(start) || !a.EndsAt.Equal(start.Add(23*time.Minute)) || a.Notifications != 3 {
				t.Errorf("lifecycle: status %s, %s → %s, %d notifications", a.Status, a.StartsAt, a.EndsAt, a.Notifications)
			}
			if !a.FirstSeen.Equal(start.Add(time.Minute)) || !a.LastSeen.Equal(start.Add(23*time.Minute)) {
				t.Errorf("seen %s … %s", a.FirstSeen, a.LastSeen)
			}
			if a.Suspect != "sync of orders 5f2c1e9" || len(a.Links) != 2 || a.Links[0].Name != "compare" || a.Links[1].Name != "argocd" {
				t.Errorf("suspect %q links %+v", a.Suspect, a.Links)
			}
			if a.Subject.Namespace != "shop" || a.Subject.Name != "orders" || a.Alertname != "PostgresTooManyConnections" ||
				a.Severity != "critical" || a.Via != "webhook default" || a.Fingerprint == "" {
				t.Errorf("alert %+v", a)
			}

			// Firing again after it resolved is a new instance.
			again := start.Add(time.Hour)
			now = again
			observe(t, h, "webhook default", alert("PostgresTooManyConnections", "firing", again, ""))
			got = all(t, h, t0, t0.Add(3*time.Hour))
			if len(got) != 2 || got[1].Status != "firing" || !got[1].StartsAt.Equal(again) || got[1].Notifications != 1 || got[1].Suspect != "" {
				t.Fatalf("after firing again: %+v", got)
			}
		})
	}
}

func TestWindow(t *testing.T) {
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			now := t0
			h := newHistory(t, open(t), Config{}, &now)
			now = t0.Add(5 * time.Hour)
			observe(t, h, "inline",
				alert("EndedBefore", "resolved", t0, ""),                     // t0 … t0+23m
				alert("StillFiring", "firing", t0.Add(10*time.Minute), ""),   // fires into the window
				alert("EndedInside", "resolved", t0.Add(50*time.Minute), ""), // … t0+73m
				alert("StartedInside", "firing", t0.Add(2*time.Hour), ""),    // inside
				alert("StartedAfter", "firing", t0.Add(4*time.Hour), ""),     // after
			)
			var names []string
			for _, a := range all(t, h, t0.Add(time.Hour), t0.Add(3*time.Hour)) {
				names = append(names, a.Alertname)
			}
			if want := "[StillFiring EndedInside StartedInside]"; fmt.Sprint(names) != want {
				t.Errorf("alerts in the window: %v, want %s", names, want)
			}
			// keep and limit.
			got, more, err := h.Alerts(context.Background(), t0, t0.Add(5*time.Hour),
				func(a *timeline.Alert) bool { return a.Status == "firing" }, 2)
			if err != nil || !more || len(got) != 2 || got[0].Alertname != "StillFiring" || got[1].Alertname != "StartedInside" {
				t.Errorf("firing, limit 2: %+v more=%v err=%v", got, more, err)
			}
		})
	}
}

func TestPostableAlertsWithoutStartsAt(t *testing.T) {
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			now := t0
			h := newHistory(t, open(t), Config{}, &now)
			posted := func(endsAt time.Time) *enrich.Alert { // as a script posts to the inline API
				return &enrich.Alert{Labels: map[string]string{"alertname": "Manual", "namespace": "shop"}, EndsAt: endsAt}
			}
			observe(t, h, "inline", posted(time.Time{}))
			now = t0.Add(time.Minute)
			observe(t, h, "inline", posted(time.Time{}))
			now = t0.Add(2 * time.Minute)
			observe(t, h, "inline", posted(t0.Add(90*time.Second)))
			got := all(t, h, t0.Add(-time.Hour), t0.Add(time.Hour))
			if len(got) != 1 || !got[0].StartsAt.Equal(t0) || got[0].Notifications != 3 || got[0].Status != "resolved" ||
				!got[0].EndsAt.Equal(t0.Add(90*time.Second)) {
				t.Fatalf("got %+v", got)
			}
			if want := fingerprint(map[string]string{"alertname": "Manual", "namespace": "shop"}); got[0].Fingerprint != want || len(want) != 16 {
				t.Errorf("fingerprint %q, want Alertmanager's %q", got[0].Fingerprint, want)
			}
		})
	}
}

func TestRetentionAndSizeBound(t *testing.T) {
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			now := t0
			h := newHistory(t, st, Config{Retention: 24 * time.Hour, MaxAlerts: 10}, &now)
			observe(t, h, "inline", alert("Old", "resolved", t0, ""), alert("OldStillFiring", "firing", t0.Add(time.Minute), ""))
			for i := range 4 {
				now = t0.Add(30*time.Hour + time.Duration(i)*time.Minute)
				observe(t, h, "inline", alert(fmt.Sprintf("New%d", i), "firing", now, ""))
			}
			// Re-notified: still seen, so kept past the retention.
			observe(t, h, "inline", alert("OldStillFiring", "firing", t0.Add(time.Minute), ""))
			names := func() string {
				var names []string
				for _, a := range all(t, h, t0.Add(-time.Hour), now) {
					names = append(names, a.Alertname)
				}
				return fmt.Sprint(names)
			}
			keys := func(want int) {
				t.Helper()
				for _, bucket := range []string{bucketAlerts, bucketEnds, bucketFingerprints} {
					n := 0
					if err := st.Scan(context.Background(), bucket, "", "", func(string, []byte) bool { n++; return true }); err != nil {
						t.Fatal(err)
					}
					if n != want {
						t.Errorf("%s holds %d keys after the prune, want %d", bucket, n, want)
					}
				}
			}

			if err := h.Prune(context.Background()); err != nil {
				t.Fatal(err)
			}
			if want := "[OldStillFiring New0 New1 New2 New3]"; names() != want {
				t.Errorf("past the retention: kept %v, want %s", names(), want)
			}
			keys(5)

			h.cfg.MaxAlerts = 2 // the oldest by start go first
			if err := h.Prune(context.Background()); err != nil {
				t.Fatal(err)
			}
			if want := "[New2 New3]"; names() != want {
				t.Errorf("beyond max_alerts: kept %v, want %s", names(), want)
			}
			keys(2)
			if v := testutil.ToFloat64(h.metrics.pruned); v != 4 {
				t.Errorf("whatchanged_history_pruned_total = %v, want 4", v)
			}
		})
	}
}

func TestFloodIsPrunedBetweenPeriodicPrunes(t *testing.T) {
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			now := t0
			h := newHistory(t, open(t), Config{MaxAlerts: 10}, &now)
			for i := range 12 {
				observe(t, h, "inline", alert(fmt.Sprintf("A%d", i), "firing", t0.Add(time.Duration(i)*time.Second), ""))
			}
			if got := len(all(t, h, t0, t0.Add(time.Hour))); got > 11 {
				t.Errorf("%d alerts kept, want at most max_alerts + 10%%", got)
			}
		})
	}
}

func TestFullQueueDropsAndNeverWaits(t *testing.T) {
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			// Never started: nothing drains the queue.
			h := New(open(t), Config{QueueAlerts: 3}, nil, slog.New(slog.DiscardHandler))
			h.Observe("inline", "whatchanged_", []*enrich.Alert{alert("A", "firing", t0, ""), alert("B", "firing", t0, "")})
			h.Observe("inline", "whatchanged_", []*enrich.Alert{alert("C", "firing", t0, ""), alert("D", "firing", t0, "")})
			h.Observe("inline", "whatchanged_", []*enrich.Alert{alert("E", "firing", t0, "")})
			if v := testutil.ToFloat64(h.metrics.dropped); v != 2 {
				t.Errorf("whatchanged_history_dropped_total = %v, want 2", v)
			}
			h.Close(time.Second)
			h.Observe("inline", "whatchanged_", []*enrich.Alert{alert("F", "firing", t0, "")}) // after Close: dropped, no panic
			if v := testutil.ToFloat64(h.metrics.dropped); v != 3 {
				t.Errorf("whatchanged_history_dropped_total = %v after Close, want 3", v)
			}
		})
	}
}

func TestStoreFailureIsCountedNotFatal(t *testing.T) {
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			now := t0
			h := newHistory(t, st, Config{}, &now)
			if err := st.Close(); err != nil { // the store goes away
				t.Fatal(err)
			}
			observe(t, h, "inline", alert("A", "firing", t0, ""), alert("B", "firing", t0, ""))
			observe(t, h, "inline", alert("C", "firing", t0, ""))
			if v := testutil.ToFloat64(h.metrics.failures); v != 3 {
				t.Errorf("whatchanged_history_write_failures_total = %v, want 3", v)
			}
			if _, _, err := h.Alerts(context.Background(), t0, t0.Add(time.Hour), nil, 0); err == nil {
				t.Error("a query of a closed store did not fail")
			}
		})
	}
}
