package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/whatchanged/whatchanged/test/uitest"
)

// TestTimelineOfAlertsThroughAlertmanager: a real Alertmanager fires and
// resolves alerts through whatchanged's webhook while CI pushes changes;
// the timeline (API, Markdown, CLI against the server and offline against
// the store) has them in order with the suspect named when each fired.
func TestTimelineOfAlertsThroughAlertmanager(t *testing.T) {
	dir := t.TempDir()
	ds := httptest.NewServer(newCapture(200))
	t.Cleanup(ds.Close)
	wcPort, amPort := freePort(t), freePort(t)
	wcURL, amURL := fmt.Sprintf("http://127.0.0.1:%d", wcPort), fmt.Sprintf("http://127.0.0.1:%d", amPort)
	tokenFile := writeFile(t, dir, "token", token+"\n")
	wcCfg := writeFile(t, dir, "whatchanged.yaml", fmt.Sprintf(`listen: 127.0.0.1:%d
data_dir: %s/data
auth:
  bearer_token_file: %s
downstreams:
  default:
    url: %s/notify
timeline:
  time_zone: UTC
`, wcPort, dir, tokenFile, ds.URL))
	stopWC := startProcessStoppable(t, "whatchanged", whatchangedBin, "serve", "--config", wcCfg)
	waitReady(t, wcURL+"/readyz", nil)
	runAlertmanager(t, dir, amPort, fmt.Sprintf(`route:
  receiver: whatchanged
  group_by: [alertname]
  group_wait: 1s
  group_interval: 5s
  repeat_interval: 1h
receivers:
  - name: whatchanged
    webhook_configs:
      - url: %s/webhook
        send_resolved: true
        http_config:
          authorization:
            credentials_file: %s
`, wcURL, tokenFile))
	auth := []string{"Authorization", "Bearer " + token}

	now := time.Now().UTC().Truncate(time.Second)
	push := func(id, ns, name, rev, msg string, at time.Time) {
		t.Helper()
		status, body := post(t, wcURL+"/api/v1/changes", fmt.Sprintf(`{"id":%q,"kind":"deploy","subject":{"namespace":%q,"kind":"Deployment","name":%q},
		  "revision":%q,"author":"Alice Kim","message":%q,"compareUrl":"https://github.com/acme/%s/compare/1a2b3c4...%s","time":%q}`,
			id, ns, name, rev, msg, name, rev[:7], at.Format(time.RFC3339)), auth...)
		if status != 201 {
			t.Fatalf("push %s: %d %s", id, status, body)
		}
	}
	alert := func(name, severity string, startsAt, endsAt time.Time) string {
		ends := ""
		if !endsAt.IsZero() {
			ends = fmt.Sprintf(`,"endsAt":%q`, endsAt.Format(time.RFC3339))
		}
		return fmt.Sprintf(`{"labels":{"alertname":%q,"namespace":"shop","deployment":"orders","severity":%q},"startsAt":%q%s}`,
			name, severity, startsAt.Format(time.RFC3339), ends)
	}
	fire := func(alerts ...string) {
		t.Helper()
		if status, body := post(t, amURL+"/api/v2/alerts", "["+strings.Join(alerts, ",")+"]"); status != 200 {
			t.Fatalf("post to Alertmanager: %d %s", status, body)
		}
	}

	push("orders-5f2c1e9", "shop", "orders", "5f2c1e9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e", "raise DB pool", now.Add(-10*time.Minute))
	push("payments-77aa", "payments", "api", "77aa0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f70", "other team", now.Add(-5*time.Minute))
	push("cart-9b8a7c6", "shop", "cart", "9b8a7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b", "cart tweak", now.Add(-3*time.Minute))
	pgStart, latStart := now.Add(-4*time.Minute), now.Add(-2*time.Minute)
	fire(alert("PostgresTooManyConnections", "critical", pgStart, time.Time{}), alert("OrdersLatencyHigh", "warning", latStart, time.Time{}))

	// timelineJSON polls until ok says the timeline has what is awaited.
	type tl struct {
		Alerts []struct {
			Alertname, Status, Suspect string
			Links                      []struct{ Name, URL string }
		}
		Changes []struct {
			Subject struct{ Namespace, Name string }
		}
		Entries []struct {
			Type  string
			Index int
		}
	}
	describe := func(x tl) string {
		var lines []string
		for _, e := range x.Entries {
			if e.Type == "change" {
				lines = append(lines, "change "+x.Changes[e.Index].Subject.Name)
			} else {
				lines = append(lines, e.Type+" "+x.Alerts[e.Index].Alertname)
			}
		}
		return strings.Join(lines, "\n")
	}
	await := func(what string, ok func(tl) bool) tl {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			var x tl
			body := get(t, wcURL+"/api/v1/timeline?from=1h&namespace=shop", auth...)
			if err := json.Unmarshal([]byte(body), &x); err != nil {
				t.Fatalf("timeline: %v: %s", err, body)
			}
			if ok(x) {
				return x
			}
			if time.Now().After(deadline) {
				t.Fatalf("timeline never had %s:\n%s", what, describe(x))
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	await("both alerts firing", func(x tl) bool { return len(x.Alerts) == 2 })
	fire(alert("PostgresTooManyConnections", "critical", pgStart, time.Now().UTC().Add(-time.Second)))
	x := await("the resolve", func(x tl) bool { return len(x.Alerts) == 2 && x.Alerts[0].Status == "resolved" })

	want := "change orders\nfiring PostgresTooManyConnections\nchange cart\nfiring OrdersLatencyHigh\nresolved PostgresTooManyConnections"
	if got := describe(x); got != want {
		t.Errorf("timeline:\n%s\nwant:\n%s", got, want)
	}
	for _, a := range x.Alerts {
		if !strings.HasPrefix(a.Suspect, `deploy of shop/orders 5f2c1e9 by Alice Kim: "raise DB pool"`) || len(a.Links) != 1 ||
			a.Links[0].URL != "https://github.com/acme/orders/compare/1a2b3c4...5f2c1e9" {
			t.Errorf("%s: suspect %q links %+v", a.Alertname, a.Suspect, a.Links)
		}
	}

	clock := func(at time.Time) string { return at.Format("15:04") + " " }
	wantMD := []string{
		clock(now.Add(-10*time.Minute)) + `deploy orders 5f2c1e9 by Alice Kim — "raise DB pool" (changes, [compare](https://github.com/acme/orders/compare/1a2b3c4...5f2c1e9))`,
		clock(pgStart) + "FIRING PostgresTooManyConnections orders (critical",
		"  - suspect: deploy of shop/orders 5f2c1e9 by Alice Kim",
		clock(latStart) + "FIRING OrdersLatencyHigh orders (warning)",
		"RESOLVED PostgresTooManyConnections orders (critical",
		"Filters: namespace=shop",
	}
	checkMD := func(source, md string) {
		t.Helper()
		for _, w := range wantMD {
			if !strings.Contains(md, w) {
				t.Errorf("%s: Markdown lacks %q:\n%s", source, w, md)
			}
		}
		if strings.Contains(md, "payments") || strings.Contains(md, "other team") {
			t.Errorf("%s: another namespace's change in the shop timeline:\n%s", source, md)
		}
	}
	checkMD("Accept: text/markdown", get(t, wcURL+"/api/v1/timeline?from=1h&namespace=shop", append(auth, "Accept", "text/markdown")...))

	cli := func(args ...string) (string, string, error) {
		cmd := exec.Command(whatchangedBin, append([]string{"timeline"}, args...)...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		return out.String(), errb.String(), err
	}
	out, errOut, err := cli("--server", wcURL, "--token-file", tokenFile, "--since", "1h", "--namespace", "shop")
	if err != nil {
		t.Fatalf("timeline --server: %v: %s", err, errOut)
	}
	checkMD("timeline --server", out)
	out, errOut, err = cli("--server", wcURL, "--token-file", tokenFile, "--since", "1h", "--namespace", "shop",
		"--matchers", `{severity="warning"}`, "--format", "json")
	var onlyWarning tl
	if err != nil || json.Unmarshal([]byte(out), &onlyWarning) != nil || len(onlyWarning.Alerts) != 1 || onlyWarning.Alerts[0].Alertname != "OrdersLatencyHigh" {
		t.Errorf("timeline --server --matchers --format json: %v %s\n%s", err, errOut, out)
	}
	if _, errOut, err := cli("--server", wcURL, "--since", "1h"); err == nil || !strings.Contains(errOut, "401") {
		t.Errorf("timeline --server without the token: %v %s", err, errOut)
	}

	// The page, in a real Chromium, against this run.
	checkPage(t, wcURL, token)

	// Offline, from the store: not while the server holds it.
	if _, errOut, err := cli("--config", wcCfg, "--since", "1h", "--namespace", "shop"); err == nil ||
		!strings.Contains(errOut, "whatchanged serve is running on this data_dir") || !strings.Contains(errOut, "--server") {
		t.Errorf("timeline --config while serve runs: %v %s", err, errOut)
	}
	if v := metricValue(get(t, wcURL+"/metrics"), "whatchanged_history_recorded_total"); v != "3" {
		t.Errorf("whatchanged_history_recorded_total = %q, want 3 (two firing, one resolved)", v)
	}
	stopWC()
	out, errOut, err = cli("--config", wcCfg, "--since", "1h", "--namespace", "shop")
	if err != nil {
		t.Fatalf("timeline --config: %v: %s", err, errOut)
	}
	checkMD("timeline --config", out)
}

// checkPage loads the timeline page of the run in headless Chromium: every
// alert is drawn as a bar and every change as a marker inside the chart,
// each alert's link opens the page filtered to it, each change links to its
// compare page, and a screenshot is kept.
func checkPage(t *testing.T, wcURL, token string) {
	t.Helper()
	var want struct {
		Alerts []struct {
			Fingerprint string
			Status      string
		}
		Changes []struct {
			ID, CompareURL string
		}
	}
	body := get(t, wcURL+"/api/v1/timeline?from=1h&namespace=shop", "Authorization", "Bearer "+token)
	if err := json.Unmarshal([]byte(body), &want); err != nil || len(want.Alerts) == 0 || len(want.Changes) == 0 {
		t.Fatalf("timeline for the page: %v %s", err, body)
	}
	browser := uitest.Start(t)
	tab := browser.Tab(t, uitest.WithHeaders(map[string]string{"Authorization": "Bearer " + token}))
	page := wcURL + "/ui/?from=1h&namespace=shop"
	if status := tab.Open(page); status != 200 {
		t.Fatalf("GET %s in Chromium: %d", page, status)
	}
	charts := tab.Elements("svg.timeline")
	if len(charts) == 0 || !charts[0].Drawn {
		t.Fatalf("no chart drawn: %+v", charts)
	}
	inChart := func(b uitest.Box) bool {
		for _, c := range charts {
			if b.Inside(c.Box) {
				return true
			}
		}
		return false
	}
	for _, a := range want.Alerts {
		els := tab.Elements(fmt.Sprintf(`svg [data-alert=%q]`, a.Fingerprint))
		if len(els) != 1 || !els[0].Drawn || els[0].Box.Width <= 0 || !inChart(els[0].Box) {
			t.Errorf("alert %s (%s): bar %+v", a.Fingerprint, a.Status, els)
			continue
		}
		// Its link is this page filtered to it, where it is drawn again.
		href := els[0].Attrs["href"]
		follow := browser.Tab(t, uitest.WithHeaders(map[string]string{"Authorization": "Bearer " + token}))
		if status := follow.Open(tab.Resolve(href)); status != 200 || len(follow.Elements(fmt.Sprintf(`svg [data-alert=%q]`, a.Fingerprint))) != 1 {
			t.Errorf("alert %s links to %s: %d", a.Fingerprint, href, status)
		}
	}
	for _, c := range want.Changes {
		els := tab.Elements(fmt.Sprintf(`svg [data-change=%q]`, c.ID))
		if len(els) != 1 || !els[0].Drawn || !inChart(els[0].Box) {
			t.Errorf("change %s: marker %+v", c.ID, els)
			continue
		}
		// The compare pages are GitHub's (not reachable from the test):
		// the link must be exactly the change's.
		if c.CompareURL != "" && els[0].Attrs["href"] != c.CompareURL {
			t.Errorf("change %s links to %q, want its compare page %q", c.ID, els[0].Attrs["href"], c.CompareURL)
		}
	}
	shot := uitest.OutputPath(t, "timeline-e2e.png")
	tab.Screenshot(shot)
	t.Logf("screenshot of the timeline page of this run: %s", shot)
}
