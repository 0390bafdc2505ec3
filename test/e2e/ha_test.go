package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/whatchanged/whatchanged/test/redistest"
)

// High availability (issue 15): two whatchanged replicas sharing one real
// redis-server behind a round-robin front, fed by a real Alertmanager HA
// pair, while a stream of alerts goes on and one replica is killed with
// SIGKILL and restarted. Delivery is at-least-once (every alert arrives,
// duplicates are counted), a change pushed to one replica is in the other's
// enrichment, the Slack parent of a group is posted once, GitHub sees no
// more requests per refresh with 2 or 3 replicas than with 1, and every
// key in Redis is under the configured redis.key_prefix.
func TestHAReplicasBehindAlertmanagerPair(t *testing.T) {
	const (
		groups      = 20
		perGroup    = 10
		slackGroups = 4 // groups also sent to Slack, one channel each
		batchEvery  = 500 * time.Millisecond
		// Slack answering slower than the Alertmanagers' peer timeout
		// (500ms) makes the pair send a group's first notification twice,
		// to both replicas, which then race for its parent message.
		slackLatency = 700 * time.Millisecond
		killAfter    = 4                // batches posted before replica B is killed
		refresh      = 30 * time.Second // sources.github.refresh (its minimum)
		repo         = "127.0.0.1/acme/api"
		ghToken      = "ghp-e2e-ha-marker-4af1c2"
		slackToken   = "xoxb-e2e-ha-marker-93d0b7"
	)
	// Slack group g's severity maps to its own channel (each channel has
	// its own rate limit in the Slack target).
	slackSeverities := []string{"info", "warning", "error", "critical"}
	slackChannels := []string{"#ha-low", "#ha-medium", "#ha-high", "#ha-critical"}
	startsAt := time.Now().UTC().Truncate(time.Second)
	redisAddr := redistest.Start(t).Addr
	capture := &haCapture{}
	down := httptest.NewServer(capture)
	t.Cleanup(down.Close)
	slack := newHASlack(t, slackLatency)
	// One GitHub per group of replicas: the pair under test, and the
	// 1-replica baseline and a 3-replica group that get the same alerts
	// at the same time, for requests per refresh.
	ghPair, ghOne, ghThree := newHAGitHub(t, startsAt), newHAGitHub(t, startsAt), newHAGitHub(t, startsAt)

	dir := t.TempDir()
	slackTokenFile := writeFile(t, dir, "slack-token", slackToken+"\n")
	replica := func(name, keyPrefix string, gh *haGitHub, deliver bool) haReplica {
		port := freePort(t)
		cfg := fmt.Sprintf(`listen: 127.0.0.1:%d
data_dir: %s
log: {level: info}
redis:
  addr: %s
  key_prefix: %q
sources:
  github:
    enabled: true
    base_url: %s
    refresh: %s
    http_config:
      authorization: {credentials: %s}
`, port, t.TempDir(), redisAddr, keyPrefix, gh.baseURL(), refresh, ghToken)
		if deliver {
			cfg += fmt.Sprintf(`downstreams:
  default:
    url: %s/notify
    timeout: 2s
  slack:
    slack:
      token_file: %s
      api_url: %s/api/
      channel: "#ha-medium"
      severity:
        levels:
          low: {channel: "#ha-low"}
          medium: {channel: "#ha-medium"}
          high: {channel: "#ha-high"}
          critical: {channel: "#ha-critical"}
`, down.URL, slackTokenFile, slack.srv.URL)
		}
		path := writeFile(t, dir, name+".yaml", cfg)
		return haReplica{startHAProc(t, name, whatchangedBin, "serve", "--config", path), fmt.Sprintf("127.0.0.1:%d", port)}
	}
	a, b := replica("wc-a", "ha:", ghPair, true), replica("wc-b", "ha:", ghPair, true)
	one := replica("wc-one", "one:", ghOne, false)
	var three []haReplica
	for i := range 3 {
		three = append(three, replica(fmt.Sprintf("wc-three-%d", i), "three:", ghThree, false))
	}
	all := append([]haReplica{a, b, one}, three...)
	front := newHAFront(t, a.addr, b.addr)
	am := startHAAlertmanagerPair(t, dir, front.srv.URL)
	for _, r := range all {
		waitReady(t, "http://"+r.addr+"/readyz", r.exited())
	}

	// A change pushed to replica A is in replica B's enrichment. The same
	// probe, sent to every replica of the three groups, makes each ask
	// GitHub about the repository (and refresh it from then on).
	if status, body := post(t, "http://"+a.addr+"/api/v1/changes", fmt.Sprintf(`{"id":"ha-ci-1","kind":"deploy",
	  "subject":{"namespace":"shop","kind":"Deployment","name":"api"},"version":"api:9.9.9","previousVersion":"api:9.9.8",
	  "author":"hana","message":"tune pool size","time":%q}`, startsAt.Add(-5*time.Minute).Format(time.RFC3339))); status != 201 {
		t.Fatalf("push change to replica A: %d %s", status, body)
	}
	const wantSuspect = "deploy of shop/api api:9.9.9 (was api:9.9.8) by hana"
	probe := fmt.Sprintf(`{"labels":{"alertname":"HAProbe","namespace":"shop","deployment":"api","repo":%q},"startsAt":%q}`, repo, startsAt.Format(time.RFC3339))
	var wg sync.WaitGroup
	for _, r := range append([]haReplica{a, one}, three...) {
		wg.Go(func() { haEnrich(t, r.addr, probe) })
	}
	if s := haEnrich(t, b.addr, probe); !strings.HasPrefix(s, wantSuspect) {
		t.Errorf("replica B does not name the change pushed to replica A: whatchanged_suspect = %q, want it to start %q", s, wantSuspect)
	}
	wg.Wait()

	// The stream: perGroup batches, each with one new alert per group,
	// posted to both Alertmanagers as Prometheus does. Replica B is
	// killed mid-stream and restarted once a notification failed on it.
	alert := func(g, k int) map[string]any {
		labels := map[string]string{"alertname": "HAStream", "group": fmt.Sprintf("g%02d", g), "id": fmt.Sprintf("a%03d", g*perGroup+k),
			"namespace": "shop", "deployment": "api", "repo": repo, "severity": "warning"}
		if g < slackGroups {
			labels["slack"] = "true"
			labels["severity"] = slackSeverities[g]
		}
		return map[string]any{"labels": labels, "startsAt": startsAt.Format(time.RFC3339)}
	}
	var killedAt, restartedAt time.Time
	streamStart := time.Now()
	for k := range perGroup {
		var batch []map[string]any
		for g := range groups {
			batch = append(batch, alert(g, k))
		}
		body, _ := json.Marshal(batch)
		for _, u := range am {
			if status, resp := post(t, u+"/api/v2/alerts", string(body)); status != 200 {
				t.Fatalf("post alerts to %s: %d %s", u, status, resp)
			}
		}
		if k+1 == killAfter {
			b.kill()
			killedAt = time.Now()
			deadline := time.Now().Add(15 * time.Second)
			for {
				if _, failed := front.counts(b.addr); failed > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("no notification reached the killed replica B within 15s: the kill tested nothing")
				}
				time.Sleep(20 * time.Millisecond)
			}
			b.start()
			waitReady(t, "http://"+b.addr+"/readyz", b.exited())
			restartedAt = time.Now()
			// Restarted, it still reads what was pushed to A.
			if s := haEnrich(t, b.addr, probe); !strings.HasPrefix(s, wantSuspect) {
				t.Errorf("restarted replica B does not name the change pushed to A: whatchanged_suspect = %q", s)
			}
		}
		time.Sleep(time.Until(streamStart.Add(time.Duration(k+1) * batchEvery)))
	}
	streamEnd := time.Now()

	// At-least-once: every alert reached the capture server.
	sent := groups * perGroup
	var arrived map[string]int
	deadline := time.Now().Add(45 * time.Second)
	for {
		arrived = map[string]int{}
		for _, n := range capture.snapshot() {
			for _, al := range n.Alerts {
				arrived[al.Labels["id"]]++
			}
		}
		if len(arrived) >= sent || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	var missing []string
	for id := range sent {
		if arrived[fmt.Sprintf("a%03d", id)] == 0 {
			missing = append(missing, fmt.Sprintf("a%03d", id))
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d of %d alerts never reached the capture server within 45s of the stream's end: %v", len(missing), sent, missing)
	}

	// Alertmanager stops sending once every group's last change is
	// notified; then the Slack calls stop too.
	haQuiet(t, "notifications", 4*time.Second, 45*time.Second, func() int { return len(capture.snapshot()) + len(slack.snapshot()) })

	notifications := capture.snapshot()
	seen := map[string]string{} // notification → the Alertmanager that sent it first
	duplicates, fromBoth, sameAM, notEnriched := 0, 0, 0, 0
	perAM := map[string]int{}
	for _, n := range notifications {
		perAM[n.ExternalURL]++
		for _, al := range n.Alerts {
			if s := al.Annotations["whatchanged_suspect"]; !strings.HasPrefix(s, wantSuspect) {
				if notEnriched++; notEnriched <= 3 {
					t.Errorf("alert %s delivered without the pushed change as suspect: %v", al.Labels["id"], al.Annotations)
				}
			}
		}
		if first, ok := seen[n.key()]; ok {
			duplicates++
			if first == n.ExternalURL {
				sameAM++
			} else {
				fromBoth++
			}
			continue
		}
		seen[n.key()] = n.ExternalURL
	}
	if notEnriched > 0 {
		t.Errorf("%d delivered alerts lack the pushed change (replicas must share it, also after a restart)", notEnriched)
	}
	if u := capture.rejected(); len(u) > 0 {
		t.Errorf("capture server got %d bodies that are no notification, e.g. %.300s", len(u), u[0])
	}

	// Exactly one Slack parent per group (each group has its channel).
	calls := slack.snapshot()
	parents := map[string][]string{} // channel → parent timestamps
	replies, updates := map[string]int{}, 0
	for _, c := range calls {
		switch {
		case c.method == "chat.update":
			updates++
		case c.method == "chat.postMessage" && c.threadTS == "":
			parents[c.channel] = append(parents[c.channel], c.ts)
		case c.method == "chat.postMessage":
			replies[c.channel]++
			if !slices.Contains(parents[c.channel], c.threadTS) {
				t.Errorf("reply in %s threads under %s, not a parent of that channel (%v)", c.channel, c.threadTS, parents[c.channel])
			}
		default:
			t.Errorf("unexpected Slack call %s", c.method)
		}
		if c.token != slackToken {
			t.Errorf("Slack call %s without the bot token", c.method)
		}
	}
	for _, ch := range slackChannels {
		if len(parents[ch]) != 1 {
			t.Errorf("Slack %s (one alert group): %d parent messages %v, want exactly 1", ch, len(parents[ch]), parents[ch])
		}
	}
	if len(parents) != slackGroups {
		t.Errorf("Slack parents in channels %v, want the %d groups' channels only", slices.Sorted(maps.Keys(parents)), slackGroups)
	}
	// The race the claim settles: a group's notification reaching a
	// replica while another replica's parent for it is not posted yet
	// (from the other Alertmanager, or a retry).
	contested := 0
	for g := range slackGroups {
		ch := slackChannels[g]
		var parentAt time.Time
		for _, c := range calls {
			if c.channel == ch && c.method == "chat.postMessage" && c.threadTS == "" {
				parentAt = c.at
				break
			}
		}
		before := 0
		for _, n := range front.arrived("/webhook/slack") {
			if n.group == fmt.Sprintf("g%02d", g) && n.at.Before(parentAt) {
				before++
			}
		}
		if before > 1 {
			contested++
		}
	}
	if contested == 0 {
		t.Errorf("no group's Slack notification reached whatchanged twice before its parent was posted: the race for a parent was not exercised")
	}
	if updates != 0 {
		t.Errorf("%d chat.update calls: nothing was resolved", updates)
	}

	// GitHub: round 1 is each group's first fetch (the probe at once, and
	// replica B again after its restart), round 2 the first background
	// refresh of every replica. Each replica's refresh ticks `refresh` after
	// it started; wait until the last one has ticked.
	type ghGroup struct {
		name   string
		gh     *haGitHub
		starts []time.Time // of the replicas running now
	}
	var starts3 []time.Time
	for _, p := range three {
		starts3 = append(starts3, p.startedAt())
	}
	ghGroups := []ghGroup{{"1 replica", ghOne, []time.Time{one.startedAt()}}, {"2 replicas", ghPair, []time.Time{a.startedAt(), b.startedAt()}},
		{"3 replicas", ghThree, starts3}}
	var last, first time.Time
	for _, g := range ghGroups {
		for _, s := range g.starts {
			if last.IsZero() || s.After(last) {
				last = s
			}
			if first.IsZero() || s.Before(first) {
				first = s
			}
		}
	}
	if spread := last.Sub(first); spread > refresh-5*time.Second {
		t.Fatalf("replicas (re)started %s apart: first fetches and first refreshes overlap, so they cannot be counted apart; the set-up took too long", spread)
	}
	time.Sleep(time.Until(last.Add(refresh + 3*time.Second)))
	rounds := map[string][2]int{}
	notModified := map[string]int{} // of the first refresh's requests
	for _, g := range ghGroups {
		earliest, latest := slices.MinFunc(g.starts, time.Time.Compare), slices.MaxFunc(g.starts, time.Time.Compare)
		boundary := earliest.Add(refresh)
		fetch, _ := g.gh.between(time.Time{}, boundary)
		refreshed, cached := g.gh.between(boundary, latest.Add(refresh+3*time.Second))
		rounds[g.name], notModified[g.name] = [2]int{fetch, refreshed}, cached
		reqs, unexpected := g.gh.snapshot()
		if len(unexpected) > 0 {
			t.Errorf("GitHub (%s) got requests it does not serve: %v", g.name, unexpected)
		}
		for _, req := range reqs {
			if req.authorization != "Bearer "+ghToken {
				t.Errorf("GitHub (%s) request %s without the configured token", g.name, req.path)
				break
			}
		}
	}
	base := rounds["1 replica"]
	if base[0] == 0 || base[1] == 0 {
		t.Errorf("the 1-replica baseline made %d requests on the first fetch and %d on its refresh; the measurement measured nothing", base[0], base[1])
	}
	for _, name := range []string{"2 replicas", "3 replicas"} {
		if r := rounds[name]; r[0] > base[0] || r[1] > base[1] {
			t.Errorf("GitHub requests with %s: %d on the first fetch, %d per refresh; with 1 replica %d and %d: polling multiplies with replicas",
				name, r[0], r[1], base[0], base[1])
		}
	}

	// Several installations share one Redis apart by redis.key_prefix
	// ("starts every key"): here the three groups of replicas do.
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rdb.Close()
	keys, err := rdb.Keys(context.Background(), "*").Result()
	if err != nil {
		t.Fatalf("list Redis keys: %v", err)
	}
	var stray []string
	for _, k := range keys {
		if !slices.ContainsFunc([]string{"ha:", "one:", "three:"}, func(p string) bool {
			return strings.HasPrefix(k, p) || strings.HasPrefix(k, "{"+p+"}")
		}) {
			stray = append(stray, k)
		}
	}
	if len(stray) > 0 {
		slices.Sort(stray)
		t.Errorf("%d of %d Redis keys are outside every configured redis.key_prefix (ha:, one:, three:), e.g. %.200q", len(stray), len(keys), stray[0])
	}

	// No secret in any log.
	for _, p := range all {
		if l := p.log(); strings.Contains(l, ghToken) || strings.Contains(l, slackToken) {
			t.Errorf("%s logged a token", p.name)
		}
	}

	servedA, failedA := front.counts(a.addr)
	servedB, failedB := front.counts(b.addr)
	t.Logf("stream: %d alerts in %d groups posted to both Alertmanagers in %s; replica B killed (SIGKILL) after batch %d and ready again %s later",
		sent, groups, streamEnd.Sub(streamStart).Round(time.Millisecond), killAfter, restartedAt.Sub(killedAt).Round(time.Millisecond))
	t.Logf("front: replica A answered %d (%d failed), replica B %d (%d failed while dead or cut)", servedA, failedA, servedB, failedB)
	t.Logf("alerts sent %d, captured %d distinct, in %d notifications (%d sent by Alertmanager 1, %d by 2); duplicate notifications %d (%d sent by both Alertmanagers, %d by one twice)",
		sent, len(arrived), len(notifications), perAM[am[0]], perAM[am[1]], duplicates, fromBoth, sameAM)
	var parentCounts []string
	for _, ch := range slices.Sorted(maps.Keys(parents)) {
		parentCounts = append(parentCounts, fmt.Sprintf("%s %d parent, %d replies", ch, len(parents[ch]), replies[ch]))
	}
	t.Logf("Slack: %s; in %d of %d groups a second notification reached the replicas before the parent was posted",
		strings.Join(parentCounts, "; "), contested, slackGroups)
	for _, name := range []string{"1 replica", "2 replicas", "3 replicas"} {
		t.Logf("GitHub requests with %s: %d on the first fetch, %d on the first refresh (%d of them 304; refresh %s)",
			name, rounds[name][0], rounds[name][1], notModified[name], refresh)
	}
}

// haReplica is a whatchanged process and its listen address.
type haReplica struct {
	*haProc
	addr string
}

// startHAAlertmanagerPair runs two Alertmanagers clustered with each other
// (gossip on loopback, short intervals so the test is quick), both sending
// to the front: every group to /webhook, the groups labelled slack="true"
// also to /webhook/slack. It returns their base URLs.
func startHAAlertmanagerPair(t *testing.T, dir, front string) []string {
	t.Helper()
	cfg := writeFile(t, dir, "am.yml", fmt.Sprintf(`route:
  receiver: wc-default
  group_by: [alertname, group]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
  routes:
    - receiver: wc-slack
      matchers: ['slack="true"']
      continue: true
    - receiver: wc-default
receivers:
  - name: wc-default
    webhook_configs:
      - url: %[1]s/webhook
        send_resolved: true
  - name: wc-slack
    webhook_configs:
      - url: %[1]s/webhook/slack
        send_resolved: true
`, front))
	web := []int{freePort(t), freePort(t)}
	gossip := []int{freePort(t), freePort(t)}
	var urls []string
	var procs []*haProc
	for i := range 2 {
		u := fmt.Sprintf("http://127.0.0.1:%d", web[i])
		procs = append(procs, startHAProc(t, fmt.Sprintf("alertmanager-%d", i+1), alertmanagerBin,
			"--config.file="+cfg, fmt.Sprintf("--storage.path=%s/am%d", dir, i+1),
			fmt.Sprintf("--web.listen-address=127.0.0.1:%d", web[i]), "--web.external-url="+u,
			fmt.Sprintf("--cluster.listen-address=127.0.0.1:%d", gossip[i]),
			fmt.Sprintf("--cluster.advertise-address=127.0.0.1:%d", gossip[i]),
			fmt.Sprintf("--cluster.peer=127.0.0.1:%d", gossip[1-i]),
			"--cluster.gossip-interval=50ms", "--cluster.pushpull-interval=1s", "--cluster.peer-timeout=500ms",
			"--cluster.settle-timeout=3s"))
		urls = append(urls, u)
	}
	for i, u := range urls {
		waitReady(t, u+"/-/ready", procs[i].exited())
	}
	// Both see the other before alerts come: otherwise each notifies alone.
	deadline := time.Now().Add(15 * time.Second)
	for _, u := range urls {
		for {
			var status struct {
				Cluster struct {
					Peers []any `json:"peers"`
				} `json:"cluster"`
			}
			_ = json.Unmarshal([]byte(get(t, u+"/api/v2/status")), &status)
			if len(status.Cluster.Peers) == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: Alertmanager cluster not formed within 15s (%d peers)", u, len(status.Cluster.Peers))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return urls
}

// haEnrich asks a replica to enrich the probe and returns the alert's
// whatchanged_suspect.
func haEnrich(t *testing.T, addr, probe string) string {
	t.Helper()
	status, body := post(t, "http://"+addr+"/debug/enrich", probe)
	var r struct {
		Alerts []struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"alerts"`
	}
	if err := json.Unmarshal([]byte(body), &r); status != 200 || err != nil || len(r.Alerts) != 1 {
		t.Errorf("%s/debug/enrich: %d %v %.500s", addr, status, err, body)
		return ""
	}
	return r.Alerts[0].Annotations["whatchanged_suspect"]
}

// haQuiet waits until count stops changing for still (bounded by limit).
func haQuiet(t *testing.T, what string, still, limit time.Duration, count func() int) {
	t.Helper()
	deadline := time.Now().Add(limit)
	n, since := count(), time.Now()
	for time.Since(since) < still {
		if time.Now().After(deadline) {
			t.Errorf("%s still coming after %s", what, limit)
			return
		}
		time.Sleep(100 * time.Millisecond)
		if m := count(); m != n {
			n, since = m, time.Now()
		}
	}
}
