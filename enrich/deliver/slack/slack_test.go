package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/whatchanged/whatchanged/enrich/deliver"
	"github.com/whatchanged/whatchanged/sources/store"
	"github.com/whatchanged/whatchanged/test/golden"
	"github.com/whatchanged/whatchanged/test/redistest"
)

var t0 = time.Date(2026, 11, 21, 10, 14, 0, 0, time.UTC)

const timelineURL = "https://whatchanged.example.com/ui/?from=2026-11-21T09%3A14%3A00Z&namespace=shop&to=2026-11-21T11%3A14%3A00Z&workload=api"

func payload(status, severity string, n int, withSuspect bool) []byte {
	var alerts []map[string]any
	for i := 0; i < n; i++ {
		ann := map[string]string{"summary": fmt.Sprintf("5xx ratio above 5%% on pod %d", i)}
		if withSuspect {
			ann["whatchanged_suspect"] = "rollout of shop/api acme/api:1.8.4 (was acme/api:1.8.3), 12m before the alert started [kubernetes]"
			ann["whatchanged_links"] = "compare: https://github.com/acme/api/compare/v1.8.3...v1.8.4\nargocd: https://argocd.example.com/applications/argocd/shop-api\ntimeline: " + timelineURL
			ann["whatchanged_timeline_url"] = timelineURL
			ann["whatchanged_summary"] = "rollout of shop/api acme/api:1.8.4 (was acme/api:1.8.3), 12m before the alert started [kubernetes]\nconfig of app shop-api by carol, 3h before the alert started [changes]\ndeploy of shop/web web:3.0.0, 5m before the alert started [changes]\nflag of github.com/acme/api, 40m before the alert started [changes]\nsync of app shop-api, 2h before the alert started [argocd]\n+2 more"
			ann["whatchanged_error"] = "github: rate limited until 2026-11-21T11:00:00Z"
		}
		alerts = append(alerts, map[string]any{"status": status, "labels": map[string]string{"alertname": "HighErrorRate", "namespace": "shop", "pod": fmt.Sprintf("api-7d9f8b6c4-%05d", i), "severity": severity},
			"annotations": ann, "startsAt": t0.Format(time.RFC3339), "endsAt": "0001-01-01T00:00:00Z"})
	}
	b, _ := json.Marshal(map[string]any{"version": "4", "status": status, "groupKey": `{}:{alertname="HighErrorRate"}`, "receiver": "slack",
		"groupLabels": map[string]string{"alertname": "HighErrorRate"}, "commonLabels": map[string]string{"alertname": "HighErrorRate", "namespace": "shop", "severity": severity},
		"alerts": alerts})
	return b
}

func newBolt(t *testing.T, dir string) *store.Bolt {
	t.Helper()
	st, err := store.OpenBolt(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func newTarget(t *testing.T, f *fakeSlack, threads Threads, mod func(*Config)) *Target {
	cfg := Config{Token: "xoxb-test-token", APIURL: f.url(), Channel: "#alerts",
		Severity: Severity{OnCall: "<!subteam^S0NCALL>", Owner: "<@U0WNER>"}, ReplyBroadcast: true}
	if mod != nil {
		mod(&cfg)
	}
	tg := New("slack", cfg, threads, http.DefaultClient, slog.New(slog.NewTextHandler(io.Discard, nil)))
	tg.now = func() time.Time { return t0.Add(30 * time.Minute) }
	return tg
}

func deliverOK(t *testing.T, tg *Target, body []byte) {
	t.Helper()
	if r := tg.Deliver(context.Background(), body, nil); r.Outcome != deliver.Delivered {
		t.Fatalf("outcome %s: %v", r.Outcome, r.Err)
	}
}

func TestBlocksGolden(t *testing.T) {
	resolvedG, _ := decodeGroup(payload("resolved", "critical", 2, true))
	tests := map[string]func() any{
		"firing-suspect": func() any {
			g, _ := decodeGroup(payload("firing", "high", 3, true))
			return parentBlocks(g.group, "whatchanged_", []string{"<!subteam^S0NCALL>"}, t0, "")
		},
		"firing-120-alerts": func() any {
			g, _ := decodeGroup(payload("firing", "medium", 120, true))
			return parentBlocks(g.group, "whatchanged_", nil, t0, "")
		},
		"resolve": func() any { return resolvedParent(resolvedG.group, "whatchanged_", t0, t0.Add(42*time.Minute)) },
		"refire-reply": func() any {
			g, _ := decodeGroup(payload("firing", "high", 2, true))
			return replyBlocks(g.group, nil, "")
		},
		"critical-mentions": func() any {
			g, _ := decodeGroup(payload("firing", "critical", 1, true))
			_, lvl := (Severity{OnCall: "<!subteam^S0NCALL>"}).level("page", "#alerts")
			return parentBlocks(g.group, "whatchanged_", lvl.Mention, t0, "")
		},
		"no-suspect-timeline": func() any {
			// Changes but no suspect: the timeline link under the summary.
			g, _ := decodeGroup(payload("firing", "warning", 1, false))
			g.group.Alerts[0].Annotations["whatchanged_summary"] = "deploy of shop/web web:3.0.0, 5h before the alert started [changes]"
			g.group.Alerts[0].Annotations["whatchanged_timeline_url"] = timelineURL
			return parentBlocks(g.group, "whatchanged_", nil, t0, "")
		},
		"low-no-mention": func() any {
			g, _ := decodeGroup(payload("firing", "info", 1, false))
			_, lvl := (Severity{OnCall: "<!subteam^S0NCALL>"}).level("info", "#alerts")
			return parentBlocks(g.group, "whatchanged_", lvl.Mention, t0, "")
		},
	}
	for name, render := range tests {
		t.Run(name, func(t *testing.T) {
			got, _ := json.MarshalIndent(render(), "", "  ")
			if n := strings.Count(string(got), `"type": "section"`) + strings.Count(string(got), `"type": "context"`); n > 50 {
				t.Errorf("%d blocks, over Slack's 50", n)
			}
			golden.Check(t, filepath.Join("testdata", name+".golden"), got)
		})
	}
}

// Fire → repeat → escalate → resolve → re-fire: one parent, replies in its
// thread, mentions on the parent and the escalation only, the parent
// edited on resolve, a new parent after.
func TestThreadLifecycle(t *testing.T) {
	f := newFakeSlack(t)
	st := newBolt(t, t.TempDir())
	defer st.Close()
	tg := newTarget(t, f, &BoltThreads{Store: st}, nil)
	deliverOK(t, tg, payload("firing", "high", 2, true))
	deliverOK(t, tg, payload("firing", "high", 3, true))
	deliverOK(t, tg, payload("firing", "critical", 3, true))
	deliverOK(t, tg, payload("resolved", "critical", 3, true))
	deliverOK(t, tg, payload("firing", "high", 1, true))
	c := f.recorded()
	if len(c) != 6 {
		t.Fatalf("%d calls: %+v", len(c), c)
	}
	parent := "1763700000.000001"
	check := func(i int, method, threadTS string, mention bool, broadcast string) {
		t.Helper()
		if c[i].Method != method || c[i].ThreadTS != threadTS || strings.Contains(string(c[i].Blocks), "S0NCALL") != mention || c[i].Broadcast != broadcast {
			t.Errorf("call %d = %s thread=%q mention=%v broadcast=%q; want %s %q %v %q", i, c[i].Method, c[i].ThreadTS,
				strings.Contains(string(c[i].Blocks), "S0NCALL"), c[i].Broadcast, method, threadTS, mention, broadcast)
		}
	}
	check(0, "chat.postMessage", "", true, "")         // parent, high: on-call
	check(1, "chat.postMessage", parent, false, "")    // repeat: no mention
	check(2, "chat.postMessage", parent, true, "true") // escalation to critical: mention, broadcast
	check(3, "chat.update", "", false, "")             // resolve edits the parent
	check(4, "chat.postMessage", parent, false, "")    // and says so in the thread
	check(5, "chat.postMessage", "", true, "")         // a re-fire starts a new parent
	if c[3].TS != parent || !strings.Contains(string(c[3].Blocks), "RESOLVED") || !strings.Contains(string(c[3].Blocks), "after 30m") {
		t.Errorf("resolve update = %+v", c[3])
	}
	if !strings.Contains(string(c[0].Blocks), "Changed just before:* rollout of shop/api") || !strings.Contains(string(c[0].Blocks), "https://github.com/acme/api/compare/v1.8.3...v1.8.4|compare") {
		t.Errorf("parent lacks the suspect or its link: %s", c[0].Blocks)
	}
}

func TestThreadSurvivesRestart(t *testing.T) {
	f := newFakeSlack(t)
	dir := t.TempDir()
	st := newBolt(t, dir)
	deliverOK(t, newTarget(t, f, &BoltThreads{Store: st}, nil), payload("firing", "low", 1, false))
	st.Close()
	st = newBolt(t, dir) // a new process
	defer st.Close()
	deliverOK(t, newTarget(t, f, &BoltThreads{Store: st}, nil), payload("firing", "low", 2, false))
	if c := f.recorded(); len(c) != 2 || c[1].ThreadTS != "1763700000.000001" {
		t.Fatalf("after a restart the repeat was not threaded: %+v", c)
	}
}

// Alertmanager HA may call a different replica's whatchanged for the same
// group: replicas sharing Redis keep one thread.
func TestTwoReplicasShareThreadsInRedis(t *testing.T) {
	addr := redistest.Start(t).Addr
	f := newFakeSlack(t)
	replica := func() *Target {
		c := redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { c.Close() })
		return newTarget(t, f, &RedisThreads{Client: c, Prefix: "whatchanged:slack:"}, nil)
	}
	a, b := replica(), replica()
	deliverOK(t, a, payload("firing", "high", 1, true))
	deliverOK(t, b, payload("firing", "high", 2, true))
	deliverOK(t, b, payload("resolved", "high", 2, true))
	c := f.recorded()
	if len(c) != 4 || c[1].ThreadTS != "1763700000.000001" || c[2].Method != "chat.update" || c[2].TS != "1763700000.000001" {
		t.Fatalf("replicas did not share the thread: %+v", c)
	}
}

// An Alertmanager HA pair delivers the same new group to two replicas at
// the same moment: one parent, the other notification threads under it.
// Both with the Redis threads and with the store-backed ones on a store
// shared by both replicas (Redis through store.Redis in production).
func TestConcurrentReplicasPostOneParent(t *testing.T) {
	addr := redistest.Start(t).Addr
	shared, err := store.NewRedis(store.RedisConfig{Addr: addr, KeyPrefix: "claims-test:"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shared.Close() })
	flush := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { flush.Close() })
	kinds := map[string]func() Threads{
		"redis threads": func() Threads {
			c := redis.NewClient(&redis.Options{Addr: addr})
			t.Cleanup(func() { c.Close() })
			return &RedisThreads{Client: c, Prefix: "whatchanged:slack:claims:"}
		},
		"shared store": func() Threads { return &BoltThreads{Store: shared} },
	}
	for name, threads := range kinds {
		t.Run(name, func(t *testing.T) {
			for round := 0; round < 5; round++ {
				f := newFakeSlack(t)
				a, b := newTarget(t, f, threads(), nil), newTarget(t, f, threads(), nil)
				body := payload("firing", "high", 1, true)
				var g sync.WaitGroup
				for _, tg := range []*Target{a, b} {
					g.Go(func() { deliverOK(t, tg, body) })
				}
				g.Wait()
				parents := 0
				var calls []string
				for _, c := range f.recorded() {
					if c.Method == "chat.postMessage" && c.ThreadTS == "" {
						parents++
					}
					calls = append(calls, c.Method+" thread="+c.ThreadTS)
				}
				if parents != 1 || len(calls) != 2 {
					t.Fatalf("round %d: %d parents, calls %q", round, parents, calls)
				}
				// Start the next round from an empty store.
				if err := flush.FlushAll(context.Background()).Err(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestRateLimits(t *testing.T) {
	t.Run("429 within the budget is retried", func(t *testing.T) {
		f := newFakeSlack(t)
		f.fail = []string{"429:1"}
		tg := newTarget(t, f, &BoltThreads{Store: newBolt(t, t.TempDir())}, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if r := tg.Deliver(ctx, payload("firing", "low", 1, false), nil); r.Outcome != deliver.Delivered || len(f.recorded()) != 2 {
			t.Fatalf("outcome %s (%v), %d calls", r.Outcome, r.Err, len(f.recorded()))
		}
	})
	t.Run("429 past the budget asks Alertmanager to retry", func(t *testing.T) {
		f := newFakeSlack(t)
		f.fail = []string{"429:30"}
		tg := newTarget(t, f, &BoltThreads{Store: newBolt(t, t.TempDir())}, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		r := tg.Deliver(ctx, payload("firing", "low", 1, false), nil)
		if r.Outcome != deliver.Retry || r.HTTPStatus() != 503 || !strings.Contains(r.Err.Error(), "rate limited") {
			t.Fatalf("outcome %s %v", r.Outcome, r.Err)
		}
	})
	t.Run("limiter: a burst of 3, then one a second per channel", func(t *testing.T) {
		tg := newTarget(t, newFakeSlack(t), nil, nil)
		l, now := tg.limiter("#alerts"), time.Now()
		for i := 0; i < 3; i++ {
			if !l.AllowN(now, 1) {
				t.Fatalf("message %d of the burst refused", i)
			}
		}
		if l.AllowN(now, 1) || !l.AllowN(now.Add(time.Second), 1) || !tg.limiter("#other").AllowN(now, 1) {
			t.Error("limiter does not allow one a second per channel")
		}
	})
}

func TestPermanentErrorsAndStoreLoss(t *testing.T) {
	for code, hint := range map[string]string{"channel_not_found": "does not exist", "not_in_channel": "invite the bot", "invalid_auth": "invalid"} {
		f := newFakeSlack(t)
		f.fail = []string{code}
		tg := newTarget(t, f, &BoltThreads{Store: newBolt(t, t.TempDir())}, nil)
		r := tg.Deliver(context.Background(), payload("firing", "low", 1, false), nil)
		if r.Outcome != deliver.Rejected || !strings.Contains(r.Err.Error(), code) || !strings.Contains(r.Err.Error(), hint) || strings.Contains(r.Err.Error(), "xoxb") {
			t.Errorf("%s: outcome %s %v", code, r.Outcome, r.Err)
		}
	}
	// The store is gone: the notification still goes out, as a new parent.
	f := newFakeSlack(t)
	tg := newTarget(t, f, brokenThreads{}, nil)
	deliverOK(t, tg, payload("firing", "low", 1, false))
	deliverOK(t, tg, payload("firing", "low", 1, false))
	if c := f.recorded(); len(c) != 2 || c[1].ThreadTS != "" {
		t.Errorf("with a broken store: %+v", c)
	}
}

type brokenThreads struct{}

func (brokenThreads) Get(context.Context, string) (Thread, bool, error) {
	return Thread{}, false, errors.New("disk gone")
}
func (brokenThreads) Claim(context.Context, string, time.Duration) (bool, error) {
	return false, errors.New("disk gone")
}
func (brokenThreads) Put(context.Context, string, Thread, time.Duration) error {
	return errors.New("disk gone")
}
