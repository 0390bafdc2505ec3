package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigErrorsNameKeyAndLine(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{name: "unknown top-level key", yaml: "listen: 127.0.0.1:1\nlisten_addr: x\n",
			want: []string{"c.yaml:2: listen_addr: unknown key (known: auth, cluster_label, clusters, data_dir, downstreams,"}},
		{name: "unknown nested key", yaml: "sources:\n  changes:\n    retension: 1h\n",
			want: []string{"c.yaml:3: sources.changes.retension: unknown key (known: enabled, max_events, retention, signing_secret_files, timeout)"}},
		{name: "unknown key in a downstream", yaml: "downstreams:\n  pager:\n    url: http://x\n    tiemout: 1s\n",
			want: []string{"c.yaml:4: downstreams.pager.tiemout: unknown key"}},
		{name: "unknown key in a rule", yaml: "rules:\n  - match: {a: b}\n    subject: {app: x}\n    matchers: []\n",
			want: []string{"c.yaml:4: rules[0].matchers: unknown key"}},
		{name: "not a duration", yaml: "enrich:\n  budget: fast\n", want: []string{`c.yaml:2: enrich.budget: "fast" is not a duration`}},
		{name: "wrong type", yaml: "enrich:\n  max_changes: many\n", want: []string{`c.yaml:2: enrich.max_changes: "many" is not a whole number`}},
		{name: "wrong type in a list item", yaml: "inline:\n  enabled: yes please\n  upstreams:\n    - url: http://am:9093\n      timeout: [1s]\n",
			want: []string{`c.yaml:2: inline.enabled: "yes please" is not true or false`, "c.yaml:5: inline.upstreams[0].timeout: expected a duration"}},
		{name: "type, duration and unknown key in one pass", yaml: "enrich:\n  max_changes: x\n  lookback: 3 days\nsources:\n  kubernetes:\n    enabeld: true\n",
			want: []string{"c.yaml:2: enrich.max_changes:", "c.yaml:3: enrich.lookback:", "c.yaml:6: sources.kubernetes.enabeld: unknown key"}},
		{name: "bad http_config", yaml: "downstreams:\n  pager:\n    url: http://x\n    http_config:\n      authorization: {credentials: a, credentials_file: /b}\n",
			want: []string{"c.yaml:4: downstreams.pager.http_config: at most one of authorization credentials & credentials_file"}},
		{name: "unknown key in http_config", yaml: "downstreams:\n  pager:\n    url: http://x\n    http_config:\n      tls:\n        ca_file: /x\n",
			want: []string{"c.yaml:5: downstreams.pager.http_config.tls: unknown key (known: authorization, basic_auth,"}},
		{name: "missing credentials file", yaml: "sources:\n  argocd:\n    enabled: true\n    server: https://argocd.example.com\n    http_config:\n      authorization:\n        credentials_file: /nonexistent/argocd-token\n      tls_config:\n        ca_file: /nonexistent/ca.crt\n",
			want: []string{"c.yaml:7: sources.argocd.http_config.authorization.credentials_file: open /nonexistent/argocd-token", "c.yaml:9: sources.argocd.http_config.tls_config.ca_file: open /nonexistent/ca.crt"}},
		{name: "range checked beside an unknown key", yaml: "enrich:\n  budget: 1h\n  budgit: 1s\n",
			want: []string{"c.yaml:2: enrich.budget: must be between", "c.yaml:3: enrich.budgit: unknown key"}},
		{name: "bad discovery", yaml: "inline:\n  enabled: true\n  upstreams:\n    - {url: 'http://am:9093', discovery: srv}\n",
			want: []string{`c.yaml:4: inline.upstreams[0].discovery: "srv" is not one of dns`}},
		{name: "invalid value", yaml: "enrich:\n  budget: 1h\n", want: []string{"c.yaml:2: enrich.budget: must be between 10ms and 30s"}},
		{name: "several problems at once", yaml: "log:\n  level: loud\nenrich:\n  max_changes: 0\n  lookback: 1s\n",
			want: []string{"c.yaml:2: log.level:", "c.yaml:5: enrich.lookback:"}},
		{name: "bad rule regexp", yaml: "rules:\n  - name: x\n    match_re:\n      alertname: '('\n    subject: {app: a}\n",
			want: []string{"c.yaml:4: rules[0].match_re.alertname: error parsing regexp"}},
		{name: "downstream without url", yaml: "downstreams:\n  default:\n    timeout: 1s\n",
			want: []string{"c.yaml:2: downstreams.default: url or url_file is required"}},
		{name: "downstream bad scheme", yaml: "downstreams:\n  default:\n    url: ftp://hooks.example.com/s3cr3t\n",
			want: []string{"c.yaml:3: downstreams.default.url: scheme must be http or https"}},
		{name: "missing env", yaml: "auth:\n  bearer_token: ${WHATCHANGED_TEST_UNSET}\n",
			want: []string{"c.yaml:2: environment variable WHATCHANGED_TEST_UNSET is not set"}},
		{name: "missing secret file", yaml: "auth:\n  bearer_token_file: /nonexistent/token\n",
			want: []string{"c.yaml:2: auth.bearer_token_file: read secret file"}},
		{name: "yaml syntax", yaml: "listen: [\n", want: []string{"c.yaml:"}},
		{name: "not a mapping", yaml: "sources: 3\n", want: []string{"c.yaml:1: sources: expected a mapping"}},
		{name: "redis", yaml: "redis:\n  addr: redis\n  password: s3cr3t\n  password_file: /x\n  timeot: 1s\n",
			want: []string{`c.yaml:2: redis.addr: "redis" is not host:port`, "c.yaml:4: redis.password_file: set either password or password_file", "c.yaml:5: redis.timeot: unknown key"}},
		{name: "clusters", yaml: "sources:\n  kubernetes: {enabled: true}\nclusters:\n  - name: eu\n    default: true\n  - name: eu\n    default: true\n" +
			"  - name: 'us east'\n    kubernetes: {rollouts: sometimes}\n  - name: ap\n    match_re: {k8s_cluster: '('}\n    kubernetes: {kubeconfg: x}\n",
			want: []string{"c.yaml:3: clusters: set clusters or sources.kubernetes, not both", `c.yaml:6: clusters[1].name: "eu" is configured twice`,
				`c.yaml:8: clusters[2].name: "us east": want a name`, `c.yaml:9: clusters[2].kubernetes.rollouts: must be "auto" or "off"`,
				"c.yaml:3: clusters: at most one cluster may be the default", "clusters[3].match_re.k8s_cluster: error parsing regexp",
				"c.yaml:12: clusters[3].kubernetes.kubeconfg: unknown key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig("c.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%s\nlacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error quotes a secret URL: %v", err)
			}
		})
	}
}

func TestConfigSecretsAndEnv(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	urlFile := filepath.Join(dir, "url")
	os.WriteFile(tokenFile, []byte("inbound-secret\n"), 0o600)
	os.WriteFile(urlFile, []byte("https://hooks.example.com/T/B/s3cr3t\n"), 0o600)
	t.Setenv("WC_TEST_PAGER_TOKEN", "pager-secret")
	yaml := `listen: 127.0.0.1:9999
data_dir: ` + dir + `
auth:
  bearer_token_file: ` + tokenFile + `
downstreams:
  default:
    url_file: ` + urlFile + `
  pager:
    url: https://pager.example.com/in
    http_config:
      authorization:
        credentials: ${WC_TEST_PAGER_TOKEN}
    timeout: 3s
rules:
  - name: legacy
    match_re: {alertname: "Legacy.*$"}
    subject: {app: "{{ .service }}"}
`
	cfg, err := parseConfig("c.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Auth.BearerToken.Reveal() != "inbound-secret" || cfg.Downstreams["default"].URLFile != urlFile {
		t.Errorf("secret files not read")
	}
	if string(cfg.Downstreams["pager"].HTTPConfig.Authorization.Credentials) != "pager-secret" || cfg.Downstreams["pager"].Timeout != 3*time.Second {
		t.Errorf("env not expanded: %+v", cfg.Downstreams["pager"])
	}
	if cfg.Rules[0].MatchRE["alertname"] != "Legacy.*$" || cfg.Rules[0].Subject.App != "{{ .service }}" {
		t.Errorf("regexp or template altered by expansion: %+v", cfg.Rules[0])
	}
	shown := cfg.marshalRedacted()
	for _, s := range []string{"inbound-secret", "s3cr3t", "pager-secret"} {
		if strings.Contains(shown, s) || strings.Contains(strings.ReplaceAll(fmtAll(cfg), " ", ""), s) {
			t.Errorf("secret %q visible in printed config", s)
		}
	}
}

func fmtAll(cfg Config) string {
	var b bytes.Buffer
	b.WriteString(cfg.marshalRedacted())
	for _, d := range cfg.Downstreams {
		b.WriteString(d.URL.String())
		b.WriteString(string(must(d.URL.MarshalJSON())))
	}
	return b.String()
}

func must(b []byte, _ error) []byte { return b }

func TestEmbeddedDefault(t *testing.T) {
	cfg, err := LoadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:8080" || !cfg.Sources.Changes.On() || len(cfg.Downstreams) != 0 || cfg.Enrich.Budget != time.Second {
		t.Errorf("default = %+v", cfg)
	}
	// An empty file means the defaults too.
	if _, err := parseConfig("empty.yaml", nil); err != nil {
		t.Errorf("empty file: %v", err)
	}
}

func TestConfigCheckCommand(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("listen: 127.0.0.1:1\nenrich:\n  budgit: 1s\n"), 0o600)
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"config", "check", "--config", bad}, &out, &errb); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(errb.String(), "bad.yaml:3: enrich.budgit: unknown key") {
		t.Errorf("stderr: %s", errb.String())
	}
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("listen: 127.0.0.1:1\ndata_dir: "+dir+"\ndownstreams:\n  default:\n    url: https://x.example.com/s3cr3t\n"), 0o600)
	out.Reset()
	if code := run(context.Background(), []string{"config", "check", "--show", "--config", good}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "good.yaml: ok") || strings.Contains(out.String(), "s3cr3t") || !strings.Contains(out.String(), "<secret>") {
		t.Errorf("output: %s", out.String())
	}
	// Which secrets are set, durations as a config writes them, defaults
	// spelled out.
	for _, want := range []string{"#   downstreams.default.url: set in the config", "retention: 1w", "budget: 1s", "changes_json: true", "bearer_token: \"\""} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("config check --show lacks %q:\n%s", want, out.String())
		}
	}
}

func TestExplainInProcess(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfgFile, []byte("data_dir: "+dir+"\n"), 0o600)
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"explain", "--config", cfgFile, "--labels", "namespace=shop,pod=api-7d9f8b6c4-x2x9z"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"Subject  shop/Deployment/api", "from guess from pod name", "changes    0 change(s)", "No changes of shop/Deployment/api found in the 24h"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("explain output lacks %q:\n%s", want, out.String())
		}
	}
	if code := run(context.Background(), []string{"explain"}, &out, &errb); code != 2 {
		t.Errorf("explain without labels: exit %d, want 2", code)
	}
}

// Flags apply before validation: a secret file in the config and a --listen
// flag together must load (the secret is read once).
func TestFlagsOverrideConfigWithSecretFile(t *testing.T) {
	dir := t.TempDir()
	tok := writeTestFile(t, dir, "tok", "s\n")
	cfgFile := writeTestFile(t, dir, "c.yaml", "data_dir: "+dir+"\nauth:\n  bearer_token_file: "+tok+"\n")
	f := commonFlags{config: cfgFile, listen: "127.0.0.1:0", forwardURL: "http://127.0.0.1:1/hook"}
	cfg, err := f.load()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:0" || cfg.Auth.BearerToken.Reveal() != "s" || cfg.Downstreams["default"].URL.Reveal() != "http://127.0.0.1:1/hook" {
		t.Errorf("overrides not applied: %+v", cfg)
	}
	f.listen = "nonsense"
	if _, err := f.load(); err == nil || !strings.Contains(err.Error(), `listen: "nonsense" is not host:port`) {
		t.Errorf("bad flag value: %v", err)
	}
}

func writeTestFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGitHubConfig(t *testing.T) {
	dir := t.TempDir()
	tok := writeTestFile(t, dir, "tok", "ghp_secret\n")
	cfg, err := parseConfig("c.yaml", []byte("data_dir: "+dir+"\nsources:\n  github:\n    enabled: true\n    http_config:\n      authorization:\n        credentials_file: "+tok+"\n    base_url: https://ghe.example.com/api/v3\n    environments: [production]\n    keep_for: 2d\n"))
	if err != nil {
		t.Fatal(err)
	}
	g := cfg.Sources.GitHub
	if g.HTTPConfig.Authorization.CredentialsFile != tok || g.BaseURL != "https://ghe.example.com/api/v3/" || g.Refresh != 5*time.Minute || g.KeepFor != 48*time.Hour {
		t.Errorf("github config = %+v", g.Config)
	}
	_, err = parseConfig("c.yaml", []byte("sources:\n  github:\n    enabled: true\n    app:\n      app_id: 7\n"))
	if err == nil || !strings.Contains(err.Error(), "c.yaml:4: sources.github.app: app_id, installation_id and private_key_file are all required") {
		t.Errorf("incomplete app: %v", err)
	}
	_, err = parseConfig("c.yaml", []byte("sources:\n  github:\n    enabled: true\n"))
	if err == nil || !strings.Contains(err.Error(), "http_config.authorization (a token) or app is required") {
		t.Errorf("no credentials: %v", err)
	}
}

func TestSlackDownstreamConfig(t *testing.T) {
	dir := t.TempDir()
	tok := writeTestFile(t, dir, "tok", "xoxb-secret\n")
	cfg, err := parseConfig("c.yaml", []byte("data_dir: "+dir+"\ndownstreams:\n  slack:\n    slack:\n      token_file: "+tok+"\n      channel: \"#oncall\"\n      severity:\n        oncall: \"<!subteam^S1>\"\n        levels:\n          low: {channel: \"#noise\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	sl := cfg.Downstreams["slack"].Slack
	if sl.Token.Reveal() != "xoxb-secret" || sl.Severity.Levels["low"].Channel != "#noise" || strings.Contains(cfg.marshalRedacted(), "xoxb-secret") {
		t.Errorf("slack config = %+v", sl)
	}
	_, err = parseConfig("c.yaml", []byte("downstreams:\n  slack:\n    slack:\n      channel: x\n      severty: {}\n"))
	if err == nil || !strings.Contains(err.Error(), "c.yaml:5: downstreams.slack.slack.severty: unknown key") {
		t.Errorf("typo: %v", err)
	}
}

func TestChangesJSONDefaultsOffInInlineMode(t *testing.T) {
	for _, tt := range []struct {
		yaml string
		want bool
	}{
		{"data_dir: /tmp\n", true},
		{"data_dir: /tmp\ninline:\n  enabled: true\n  upstreams: [{url: 'http://am:9093'}]\n", false},
		{"data_dir: /tmp\nenrich:\n  annotations: {changes_json: true}\ninline:\n  enabled: true\n  upstreams: [{url: 'http://am:9093'}]\n", true},
		{"data_dir: /tmp\nenrich:\n  annotations: {changes_json: false}\n", false},
	} {
		cfg, err := parseConfig("c.yaml", []byte(tt.yaml))
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.Enrich.Annotations.ChangesJSONOn(); got != tt.want {
			t.Errorf("%q: changes_json %v, want %v", tt.yaml, got, tt.want)
		}
	}
}

// http_config's http_headers is a struct with an inline map of header names.
func TestHTTPHeadersInHTTPConfig(t *testing.T) {
	dir := t.TempDir()
	key := writeTestFile(t, dir, "key", "k3y\n")
	cfg, err := parseConfig("c.yaml", []byte("data_dir: "+dir+"\ndownstreams:\n  pager:\n    url: https://pager.example.com/in\n    http_config:\n      http_headers:\n        X-Key:\n          files: ["+key+"]\n        X-Team:\n          values: [sre]\n"))
	if err != nil {
		t.Fatal(err)
	}
	h := cfg.Downstreams["pager"].HTTPConfig.HTTPHeaders.Headers
	if h["X-Key"].Files[0] != key || h["X-Team"].Values[0] != "sre" {
		t.Errorf("headers = %+v", h)
	}
	_, err = parseConfig("c.yaml", []byte("downstreams:\n  pager:\n    url: https://pager.example.com/in\n    http_config:\n      http_headers:\n        X-Key:\n          file: [/x]\n"))
	if err == nil || !strings.Contains(err.Error(), "c.yaml:7: downstreams.pager.http_config.http_headers.X-Key.file: unknown key") {
		t.Errorf("typo in a header: %v", err)
	}
}
