// Package templates_test renders the Alertmanager templates users copy
// (examples/alertmanager) with the real amtool, on notifications enriched
// by the real pipeline: the pushed-changes source and the Argo CD source
// (against a small argocd-server) feeding enrich. `make test` builds amtool
// and passes its path in WHATCHANGED_AMTOOL.
package templates_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/whatchanged/whatchanged/enrich"
	"github.com/whatchanged/whatchanged/sources"
	"github.com/whatchanged/whatchanged/sources/argocd"
	"github.com/whatchanged/whatchanged/sources/changes"
	"github.com/whatchanged/whatchanged/sources/store/storetest"
	"github.com/whatchanged/whatchanged/test/golden"
)

const (
	examples     = "../../examples/alertmanager"
	templateFile = examples + "/whatchanged.tmpl"
	configFile   = examples + "/alertmanager.yml"
)

var amtool string

func TestMain(m *testing.M) {
	flag.Parse()
	amtool = os.Getenv("WHATCHANGED_AMTOOL")
	if amtool == "" {
		fmt.Fprintln(os.Stderr, "templates: WHATCHANGED_AMTOOL is not set; run `make test`, which builds the real amtool into ~/.cache/whatchanged/tools")
		os.Exit(1)
	}
	if _, err := os.Stat(amtool); err != nil {
		fmt.Fprintf(os.Stderr, "templates: WHATCHANGED_AMTOOL: %v; run `make tools`\n", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// t0 is when the alerts start; the Argo CD sync of commit 9f1c2e7 finished
// 11 minutes before.
var t0 = time.Date(2026, 11, 21, 10, 14, 0, 0, time.UTC)

const (
	sha     = "9f1c2e7a4b3d5e6f7a8b9c0d1e2f3a4b5c6d7e8f"
	prevSHA = "1111111aaaaaaabbbbbbbcccccccdddddddeeeee"
)

// shopAPI is argocd-server's answer for the app: two syncs, the second of
// the suspect commit. Its repository URL is the ssh form people write.
var shopAPI = `{
  "metadata": {"name": "shop-api", "namespace": "argocd"},
  "spec": {
    "project": "shop",
    "source": {"repoURL": "git@github.com:acme/api.git", "path": "deploy/prod", "targetRevision": "main"},
    "destination": {"server": "https://kubernetes.default.svc", "namespace": "shop"}
  },
  "status": {
    "sync": {"status": "Synced", "revision": "` + sha + `"},
    "history": [
      {"id": 41, "revision": "` + prevSHA + `", "deployedAt": "2026-11-21T07:30:40Z", "deployStartedAt": "2026-11-21T07:30:02Z",
       "source": {"repoURL": "git@github.com:acme/api.git", "path": "deploy/prod", "targetRevision": "main"}, "initiatedBy": {"automated": true}},
      {"id": 42, "revision": "` + sha + `", "deployedAt": "2026-11-21T10:02:49Z", "deployStartedAt": "2026-11-21T10:02:11Z",
       "source": {"repoURL": "git@github.com:acme/api.git", "path": "deploy/prod", "targetRevision": "main"}, "initiatedBy": {"username": "alice"}}
    ]
  }
}`

// argocdServer answers the calls the source makes (argocd-server's REST
// paths): the application list, a revision's commit metadata, and one app
// the token may not read.
func argocdServer(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api/v1/applications":
			fmt.Fprintf(w, `{"metadata":{"resourceVersion":"1"},"items":[%s]}`, shopAPI)
		case "/api/v1/applications/shop-api/revisions/" + sha + "/metadata":
			fmt.Fprint(w, `{"author":"Alice Kim <alice@example.com>","date":"2026-11-21T09:58:00Z","message":"fix retry budget\n\nThe budget was per request."}`)
		case "/api/v1/applications/billing-ledger": // in a project the token has no role in
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"error":"permission denied","code":7,"message":"permission denied"}`)
		case "/api/v1/applications/shop-api/revisions/" + prevSHA + "/metadata":
			fmt.Fprint(w, `{"author":"Bob <bob@example.com>","date":"2026-11-21T07:20:00Z","message":"bump deps"}`)
		default:
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"error":"not found","code":5}`)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// newEnricher wires the sources as the command does (same names), with
// the given changes pushed by CI.
func newEnricher(t *testing.T, pushed ...changes.Event) *enrich.Enricher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st := storetest.Bolt(t)
	ci := changes.New("changes", changes.Config{}, st, log)
	for _, ev := range pushed {
		if _, _, err := ci.Record(ctx, ev); err != nil {
			t.Fatalf("push %s: %v", ev.ID, err)
		}
	}
	srv := argocdServer(t)
	ac := argocd.New("argocd", argocd.Config{Server: srv.URL, UIURL: "https://argocd.example.com"}, srv.Client(), nil, log)
	if err := ac.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !ac.Ready(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the Argo CD source did not read the applications in 10s")
		}
	}
	r, err := enrich.NewResolver(nil, ac)
	if err != nil {
		t.Fatal(err)
	}
	return enrich.New(enrich.Options{}, r, []enrich.SourceEntry{{Source: ci}, {Source: ac}}, nil)
}

// The CI pipeline that built 9f1c2e7, and a neighbour's deploy.
var (
	ciBuild = changes.Event{ID: "ci-4242", Kind: sources.KindDeploy,
		Subject:  sources.Subject{Namespace: "shop", Kind: "Deployment", Name: "api", Repo: "github.com/acme/api"},
		Revision: sha, Version: "api:1.8.4", PreviousVersion: "api:1.8.3", Author: "alice", Message: "fix retry budget",
		URL: "https://ci.example.com/acme/api/pipelines/4242", Status: sources.StatusSucceeded,
		Time: t0.Add(-13 * time.Minute), FinishedAt: t0.Add(-11 * time.Minute)}
	webDeploy = changes.Event{ID: "ci-web-77", Kind: sources.KindDeploy,
		Subject: sources.Subject{Namespace: "shop", Kind: "Deployment", Name: "web"}, Version: "web:3.0.0", Author: "dan",
		Message: "serve <checkout> from the edge & cache it", // Slack and HTML must escape it
		Status:  sources.StatusSucceeded, Time: t0.Add(-5 * time.Minute)}
	// The rollback that fixed it, 20 minutes after the start.
	rollback = changes.Event{ID: "ci-4250", Kind: sources.KindDeploy,
		Subject: sources.Subject{Namespace: "shop", Kind: "Deployment", Name: "api"}, Revision: prevSHA, Version: "api:1.8.3",
		Author: "bob", Message: "roll back to 1.8.3", Status: sources.StatusSucceeded, Time: t0.Add(20 * time.Minute)}
)

type alert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

func firing(fp string, labels, annotations map[string]string) alert {
	return alert{Status: "firing", Labels: labels, Annotations: annotations, StartsAt: t0, Fingerprint: fp,
		GeneratorURL: "http://prometheus.example.com/graph?g0.expr=" + labels["alertname"]}
}

func highErrorRate(fp, pod string) alert {
	return firing(fp, map[string]string{"alertname": "HighErrorRate", "namespace": "shop", "pod": pod,
		"app_kubernetes_io_instance": "shop-api", "severity": "critical"},
		map[string]string{"summary": "5xx above 5% on shop/api", "runbook_url": "https://runbooks.example.com/high-error-rate"})
}

type tcase struct {
	name   string
	pushed []changes.Event
	status string
	alerts []alert
	shows  shows
}

// shows is what whatchanged's part of the notification holds.
type shows int

const (
	aSuspect     shows = iota // a suspect with its links and the other changes
	nothingFound              // what was searched, and a source's error
	nothing                   // no whatchanged annotations at all
)

var cases = []tcase{
	{name: "firing-suspect", pushed: []changes.Event{ciBuild, webDeploy}, status: "firing", shows: aSuspect,
		alerts: []alert{highErrorRate("a1b2c3d4e5f60718", "api-7d9f8b6c4-x2x9z"), highErrorRate("a1b2c3d4e5f60719", "api-7d9f8b6c4-k8s2p")}},
	{name: "firing-no-suspect", pushed: []changes.Event{ciBuild, webDeploy}, status: "firing", shows: nothingFound,
		alerts: []alert{
			firing("b1b2c3d4e5f60718", map[string]string{"alertname": "KubePodCrashLooping", "namespace": "billing", "pod": "ledger-5c9d7b8f6-q2w4x", "severity": "warning",
				"app_kubernetes_io_instance": "billing-ledger"},
				map[string]string{"description": "Pod billing/ledger-5c9d7b8f6-q2w4x is restarting 3 times / 10 minutes."}),
			firing("b1b2c3d4e5f60719", map[string]string{"alertname": "KubePodCrashLooping", "namespace": "billing", "pod": "invoices-6f8d9c7b5-r4t5z", "severity": "warning"},
				map[string]string{"description": "Pod billing/invoices-6f8d9c7b5-r4t5z is restarting 2 times / 10 minutes."}),
		}},
	{name: "resolved", pushed: []changes.Event{ciBuild, rollback}, status: "resolved", shows: aSuspect, alerts: resolvedAlerts()},
	// Inline mode forwards a resolved alert as Prometheus sent it, and
	// Alertmanager keeps its newest annotations: none of whatchanged's.
	{name: "resolved-not-enriched", status: "resolved", shows: nothing, alerts: resolvedAlerts()},
}

func resolvedAlerts() []alert {
	a := highErrorRate("a1b2c3d4e5f60718", "api-7d9f8b6c4-x2x9z")
	a.Status, a.EndsAt = "resolved", t0.Add(30*time.Minute)
	return []alert{a}
}

// payload is the notification Alertmanager would render for the case,
// enriched: the webhook body, which has template.Data's shape.
func (c tcase) payload(t *testing.T) []byte {
	t.Helper()
	common := map[string]string{}
	for k, v := range c.alerts[0].Labels {
		if !slices.ContainsFunc(c.alerts, func(a alert) bool { return a.Labels[k] != v }) {
			common[k] = v
		}
	}
	body, err := json.Marshal(map[string]any{
		"version": "4", "groupKey": `{}:{alertname="` + common["alertname"] + `"}`, "truncatedAlerts": 0,
		"status": c.status, "receiver": "oncall", "groupLabels": map[string]string{"alertname": common["alertname"]},
		"commonLabels": common, "commonAnnotations": map[string]string{}, "externalURL": "http://alertmanager.example.com:9093",
		"alerts": c.alerts,
	})
	if err != nil {
		t.Fatal(err)
	}
	p, err := enrich.DecodeWebhook(body)
	if err != nil {
		t.Fatal(err)
	}
	if c.shows != nothing {
		newEnricher(t, c.pushed...).Enrich(context.Background(), p.Alerts, nil)
	}
	out, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	var indented bytes.Buffer
	if err := json.Indent(&indented, out, "", "  "); err != nil {
		t.Fatal(err)
	}
	return append(indented.Bytes(), '\n')
}

// namedTemplates are the templates the file defines for users (helpers
// start with "__"), so a new one is rendered without being listed here.
func namedTemplates(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(templateFile)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range regexp.MustCompile(`\{\{-? *define "(whatchanged\.[^"]+)"`).FindAllStringSubmatch(string(b), -1) {
		names = append(names, m[1])
	}
	if len(names) == 0 {
		t.Fatalf("%s defines no whatchanged.* template", templateFile)
	}
	return names
}

// configField is a templated string of alertmanager.yml.
type configField struct{ path, text string }

// configFields are the templated strings of the example's receivers, as
// Alertmanager renders them at notification time (check-config does not).
func configFields(t *testing.T) []configField {
	t.Helper()
	b, err := os.ReadFile(configFile)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Receivers []map[string]any `yaml:"receivers"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	var out []configField
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for _, k := range slices.Sorted(maps.Keys(v)) {
				walk(path+"."+k, v[k])
			}
		case []any:
			for i, e := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), e)
			}
		case string:
			if strings.Contains(v, "{{") {
				out = append(out, configField{path, v})
			}
		}
	}
	for _, r := range cfg.Receivers {
		name, _ := r["name"].(string)
		for _, k := range slices.Sorted(maps.Keys(r)) {
			walk(name+"."+k, r[k])
		}
	}
	return out
}

// render runs amtool once for several template texts (each between
// markers, so every output is exact) and returns the outputs by key.
func render(t *testing.T, data, typ string, texts map[string]string) map[string]string {
	t.Helper()
	if len(texts) == 0 {
		return nil
	}
	var all strings.Builder
	for _, k := range slices.Sorted(maps.Keys(texts)) {
		fmt.Fprintf(&all, "@@@begin %s@@@%s@@@end@@@", k, texts[k])
	}
	cmd := exec.Command(amtool, "template", "render", "--template.glob="+templateFile, "--template.type="+typ,
		"--template.data="+data, "--template.text="+all.String())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("amtool template render (%s): %v\n%s", typ, err, stderr.String())
	}
	got := map[string]string{}
	for _, m := range regexp.MustCompile(`(?s)@@@begin (.*?)@@@(.*?)@@@end@@@`).FindAllStringSubmatch(string(out), -1) {
		got[m[1]] = m[2]
	}
	if len(got) != len(texts) {
		t.Fatalf("amtool rendered %d of %d templates:\n%s", len(got), len(texts), out)
	}
	return got
}

// isHTML: the fields Alertmanager renders with html/template.
func isHTML(key string) bool {
	return key == "whatchanged.email.html" || strings.HasSuffix(key, ".email_configs[0].html")
}

// oneLine are the templates that fill one-line fields (a title, a
// subject); the PagerDuty links are one line too.
var oneLine = []string{"whatchanged.slack.title", "whatchanged.pagerduty.description", "whatchanged.opsgenie.message",
	"whatchanged.msteams.title", "whatchanged.email.subject"}

func isOneLine(key string) bool {
	return slices.Contains(oneLine, key) || strings.Contains(key, ".links[")
}

var plainCall = regexp.MustCompile(`^\{\{ template "([^"]+)" \. \}\}$`)

func TestTemplatesRender(t *testing.T) {
	names := namedTemplates(t)
	fields := configFields(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := c.payload(t)
			golden.Check(t, filepath.Join("testdata", c.name+".data.golden"), data)
			dataFile := filepath.Join(t.TempDir(), "data.json")
			if err := os.WriteFile(dataFile, data, 0o644); err != nil {
				t.Fatal(err)
			}

			text, html := map[string]string{}, map[string]string{}
			for _, n := range names {
				dst := text
				if isHTML(n) {
					dst = html
				}
				dst[n] = `{{ template "` + n + `" . }}`
			}
			for _, f := range fields {
				if isHTML(f.path) {
					html[f.path] = f.text
				} else {
					text[f.path] = f.text
				}
			}
			got := render(t, dataFile, "text", text)
			for k, v := range render(t, dataFile, "html", html) {
				got[k] = v
			}

			var out strings.Builder
			for _, n := range names {
				fmt.Fprintf(&out, "=== %s ===\n%s\n", n, got[n])
			}
			for _, f := range fields {
				// A field that only calls a named template renders as it does:
				// shown once, above.
				if m := plainCall.FindStringSubmatch(f.text); m != nil {
					if !slices.Contains(names, m[1]) {
						t.Errorf("alertmanager.yml %s calls %q, which whatchanged.tmpl does not define", f.path, m[1])
					} else if got[f.path] != got[m[1]] {
						t.Errorf("alertmanager.yml %s renders differently from %s", f.path, m[1])
					}
					continue
				}
				fmt.Fprintf(&out, "=== alertmanager.yml %s ===\n%s\n", f.path, got[f.path])
			}
			golden.Check(t, filepath.Join("testdata", c.name+".golden"), []byte(out.String()))

			for key, s := range got {
				checkShape(t, c, key, s)
			}
		})
	}
}

var blankRun = regexp.MustCompile(`\n[ \t]*\n[ \t]*\n`)

// checkShape is what every rendering must be, whatever the goldens say.
func checkShape(t *testing.T, c tcase, key, s string) {
	t.Helper()
	if s != strings.TrimSpace(s) {
		t.Errorf("%s starts or ends with whitespace: %q", key, s)
	}
	if blankRun.MatchString(s) {
		t.Errorf("%s has two blank lines in a row:\n%s", key, s)
	}
	if regexp.MustCompile(`[ \t]\n`).MatchString(s) {
		t.Errorf("%s has trailing whitespace on a line:\n%s", key, s)
	}
	if isOneLine(key) && strings.Contains(s, "\n") {
		t.Errorf("%s is more than one line:\n%s", key, s)
	}
	for _, bad := range []string{"whatchanged_", `{"`, `[{`, "&lt;no value&gt;", "<no value>"} {
		if strings.Contains(s, bad) {
			t.Errorf("%s contains %q:\n%s", key, bad, s)
		}
	}
	if (isHTML(key) || strings.Contains(key, "slack")) && strings.Contains(s, "<checkout>") {
		t.Errorf("%s does not escape a commit message's markup:\n%s", key, s)
	}
	if c.shows != aSuspect && strings.Contains(strings.ToLower(s), "suspect") {
		t.Errorf("%s mentions a suspect where there is none:\n%s", key, s)
	}
	if head := "[" + strings.ToUpper(c.status); slices.Contains(oneLine, key) && !strings.HasPrefix(s, head) {
		t.Errorf("%s does not start with %q: %s", key, head, s)
	}
	switch {
	case c.shows == aSuspect && slices.Contains(oneLine, key) && !strings.HasSuffix(key, ".title"):
		if !strings.Contains(s, " — suspect: ") {
			t.Errorf("%s does not name the suspect: %s", key, s)
		}
	case c.shows == aSuspect && slices.Contains(bodies, key):
		for _, want := range []string{"Suspect:", "Compare", "Argo CD", "CI", "Other changes:"} {
			if !strings.Contains(s, want) {
				t.Errorf("%s lacks %q:\n%s", key, want, s)
			}
		}
	case c.shows == nothingFound && slices.Contains(bodies, key):
		if !strings.Contains(s, "What changed:") || !strings.Contains(s, "whatchanged: argocd:") {
			t.Errorf("%s lacks what changed or whatchanged's error:\n%s", key, s)
		}
	case c.shows == nothing:
		if strings.Contains(s, "What changed") || strings.Contains(s, "Other change") || strings.Contains(s, "whatchanged") {
			t.Errorf("%s shows whatchanged's part without its annotations:\n%s", key, s)
		}
	}
}

// bodies are the templates that show the changes in full.
var bodies = []string{"whatchanged.slack.text", "whatchanged.pagerduty.details", "whatchanged.opsgenie.description",
	"whatchanged.msteams.text", "whatchanged.email.text", "whatchanged.email.html"}

// The example configuration is valid for the real Alertmanager, and its
// templates load.
func TestExampleConfigChecks(t *testing.T) {
	out, err := exec.Command(amtool, "check-config", configFile).CombinedOutput()
	if err != nil {
		t.Fatalf("amtool check-config %s: %v\n%s", configFile, err, out)
	}
	if !strings.Contains(string(out), " - 1 templates\n  SUCCESS") {
		t.Errorf("whatchanged.tmpl was not loaded:\n%s", out)
	}
	for _, integration := range []string{"slack_configs", "pagerduty_configs", "opsgenie_configs", "msteams_configs", "msteamsv2_configs", "email_configs"} {
		if !slices.ContainsFunc(configFields(t), func(f configField) bool { return strings.Contains(f.path, "."+integration+"[") }) {
			t.Errorf("alertmanager.yml has no templated %s receiver", integration)
		}
	}
}
