package grafana

import (
	"strings"
	"testing"
	"time"

	"github.com/whatchanged/whatchanged/sources"
)

func TestRules(t *testing.T) {
	rules := []Rule{
		{Tags: []string{"deploy", "service:payments"}, Subject: SubjectTemplate{App: "payments", Namespace: "payments"}, Kind: "deploy"},
		{Tags: []string{"team:core"}, TagPattern: `^svc:([a-z-]+)/([a-z-]+)$`, Subject: SubjectTemplate{Namespace: "$1", Name: "${2}", Kind: "Deployment", Repo: "https://github.com/acme/$2.git"}},
		{TagPattern: `^service:(.*)$`, Subject: SubjectTemplate{App: "$1"}},
	}
	compiled, err := compile(rules)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		tags     []string
		want     sources.Subject
		wantKind string
		ok       bool
	}{
		{name: "all tags of the first rule", tags: []string{"service:payments", "deploy"}, want: sources.Subject{Namespace: "payments", App: "payments"}, wantKind: "deploy", ok: true},
		{name: "spaces around key and value, as Grafana trims them", tags: []string{"deploy", "service : payments"}, want: sources.Subject{Namespace: "payments", App: "payments"}, wantKind: "deploy", ok: true},
		{name: "one tag missing: a later rule", tags: []string{"service:payments"}, want: sources.Subject{App: "payments"}, ok: true},
		{name: "two captures and a required tag", tags: []string{"svc:shop/cart-api", "team:core"}, want: sources.Subject{Namespace: "shop", Name: "cart-api", Kind: "Deployment", Repo: "github.com/acme/cart-api"}, ok: true},
		{name: "pattern without its required tag", tags: []string{"svc:shop/cart-api"}},
		{name: "an empty capture names nothing", tags: []string{"service:"}},
		{name: "no rule", tags: []string{"maintenance"}},
		{name: "no tags"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, kind, ok := match(compiled, tt.tags)
			if ok != tt.ok || got.Key() != tt.want.Key() || kind != tt.wantKind {
				t.Errorf("match(%q) = %+v, %q, %v; want %+v, %q, %v", tt.tags, got, kind, ok, tt.want, tt.wantKind, tt.ok)
			}
		})
	}
}

func TestKindOfTags(t *testing.T) {
	for tags, want := range map[string]string{
		"deploy":                   sources.KindDeploy,
		"Deployment,service:x":     sources.KindDeploy,
		"release":                  sources.KindDeploy,
		"feature-flag,config":      sources.KindFlag,
		"flag":                     sources.KindFlag,
		"config":                   sources.KindConfig,
		"migration":                sources.KindMigration,
		"config,deploy":            sources.KindDeploy,
		"service:deploy,something": sources.KindOther,
		"":                         sources.KindOther,
	} {
		if got := kindOf(strings.Split(tags, ",")); got != want {
			t.Errorf("kindOf(%q) = %q, want %q", tags, got, want)
		}
	}
}

func TestRevisionOfTags(t *testing.T) {
	tests := []struct {
		tags              []string
		version, revision string
	}{
		{tags: []string{"version:1.2.3", "commit:9F1C2E7A"}, version: "1.2.3", revision: "9f1c2e7a"},
		{tags: []string{"sha:abcdef1"}, revision: "abcdef1"},
		{tags: []string{"commit:main"}},         // a branch is no revision
		{tags: []string{"version:", "commit:"}}, // empty values
		{tags: []string{"Version : v2.0.0"}, version: "v2.0.0"},
	}
	for _, tt := range tests {
		v, r := revisionOf(tt.tags)
		if v != tt.version || r != tt.revision {
			t.Errorf("revisionOf(%q) = %q, %q; want %q, %q", tt.tags, v, r, tt.version, tt.revision)
		}
	}
}

func TestReadText(t *testing.T) {
	tests := []struct{ text, message, link string }{
		{text: "plain text", message: "plain text"},
		{text: `Deploy <a href="https://ci.example.com/runs/42">#42</a> and <a href="https://other.example.com">more</a>`,
			message: "Deploy #42 and more", link: "https://ci.example.com/runs/42"},
		{text: `<a href="javascript:alert(1)">x</a> <a href="/relative">y</a><a href="http://ci.local/1">z</a>`, message: "x yz", link: "http://ci.local/1"},
		{text: "line one<br/>line two<p>para</p>", message: "line one line two para"},
		{text: "a &lt;b&gt; &amp; c\n\n  d", message: "a <b> & c d"},
		{text: "", message: ""},
		{text: "<b>unclosed", message: "unclosed"},
	}
	for _, tt := range tests {
		m, l := readText(tt.text)
		if m != tt.message || l != tt.link {
			t.Errorf("readText(%q) = %q, %q; want %q, %q", tt.text, m, l, tt.message, tt.link)
		}
	}
	if m, _ := readText(strings.Repeat("x", 2000)); len(m) > maxMessage+len("…") {
		t.Errorf("message of %d bytes, want at most %d", len(m), maxMessage)
	}
}

func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		c := Config{URL: "https://grafana.example.com", Rules: []Rule{{Tags: []string{"deploy"}, Subject: SubjectTemplate{App: "x"}}}}
		c.Defaults()
		return c
	}
	tests := []struct {
		name   string
		change func(*Config)
		key    string
		msg    string
	}{
		{name: "no url", change: func(c *Config) { c.URL, c.UIURL = "", "" }, key: "url", msg: "required"},
		{name: "not http", change: func(c *Config) { c.URL = "grafana.example.com" }, key: "url", msg: "not an http(s) URL"},
		{name: "credentials in the url", change: func(c *Config) { c.UIURL = "https://admin:s3cr3t@grafana.example.com" }, key: "ui_url", msg: "must not carry credentials"},
		{name: "refresh", change: func(c *Config) { c.Refresh = time.Second }, key: "refresh", msg: "at least 10s"},
		{name: "lookback", change: func(c *Config) { c.Lookback = 30 * time.Second }, key: "lookback", msg: "at least refresh"},
		{name: "limit", change: func(c *Config) { c.Limit = 20_000 }, key: "limit", msg: "between 1 and 10000"},
		{name: "org", change: func(c *Config) { c.OrgID = -1 }, key: "org_id", msg: "negative"},
		{name: "empty filter tag", change: func(c *Config) { c.Tags = []string{"deploy", " "} }, key: "tags[1]", msg: "empty"},
		{name: "no rules", change: func(c *Config) { c.Rules = nil }, key: "rules", msg: "at least one rule"},
		{name: "bad pattern", change: func(c *Config) {
			c.Rules = append(c.Rules, Rule{TagPattern: "^service:(.+$", Subject: SubjectTemplate{App: "$1"}})
		}, key: "rules[1].tag_pattern", msg: "missing closing )"},
		{name: "pattern without a group", change: func(c *Config) {
			c.Rules = append(c.Rules, Rule{TagPattern: "^service:.+$", Subject: SubjectTemplate{App: "x"}})
		}, key: "rules[1].tag_pattern", msg: "needs a capture group"},
		{name: "capture beyond the groups", change: func(c *Config) {
			c.Rules[0] = Rule{TagPattern: "^service:(.+)$", Subject: SubjectTemplate{App: "$1", Namespace: "${2}"}}
		}, key: "rules[0].subject.namespace", msg: "has 1 capture group"},
		{name: "capture without a pattern", change: func(c *Config) { c.Rules[0].Subject.App = "$1" }, key: "rules[0].subject.app", msg: "no tag_pattern"},
		{name: "rule matching everything", change: func(c *Config) { c.Rules[0].Tags = nil }, key: "rules[0].tags", msg: "set tags or tag_pattern"},
		{name: "empty subject", change: func(c *Config) { c.Rules[0].Subject = SubjectTemplate{} }, key: "rules[0].subject", msg: "at least one of"},
		{name: "kind without name", change: func(c *Config) { c.Rules[0].Subject.Kind = "Deployment" }, key: "rules[0].subject.kind", msg: "needs subject.name"},
		{name: "unknown kind", change: func(c *Config) { c.Rules[0].Kind = "rollout" }, key: "rules[0].kind", msg: `"rollout" is not one of deploy, config, flag, migration, other`},
	}
	if errs := valid().Validate(); len(errs) != 0 {
		t.Fatalf("valid config: %v", errs)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.change(&c)
			errs := c.Validate()
			if !strings.Contains(errs[tt.key], tt.msg) {
				t.Errorf("errs[%q] = %q, want %q (all: %v)", tt.key, errs[tt.key], tt.msg, errs)
			}
			for _, msg := range errs {
				if strings.Contains(msg, "s3cr3t") {
					t.Errorf("a message quotes the URL's password: %s", msg)
				}
			}
		})
	}
}
