package grafana

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/whatchanged/whatchanged/sources"
)

// Config of the Grafana annotations source. Credentials are never part of
// it: a service-account token travels in the transport given to New.
type Config struct {
	// URL is Grafana's root URL (a sub-path such as /grafana included).
	URL string `yaml:"url"`
	// UIURL is where links point, when people reach Grafana under another
	// name than whatchanged does (an in-cluster Service); default: URL.
	UIURL string `yaml:"ui_url"`
	// OrgID is sent as X-Grafana-Org-Id (0: the token's own organization).
	OrgID int64 `yaml:"org_id"`
	// Tags filters on Grafana's side: only annotations carrying every one
	// of them are read (tags=…&matchAny=false).
	Tags []string `yaml:"tags"`
	// Rules map an annotation's tags to the subject it is about; the first
	// that matches wins and an annotation no rule matches is ignored.
	Rules []Rule `yaml:"rules"`
	// Refresh is how often the annotations are read in the background;
	// alerts are answered from what the last read returned.
	Refresh time.Duration `yaml:"refresh"`
	// Lookback is how far back each read reaches.
	Lookback time.Duration `yaml:"lookback"`
	// Limit bounds the annotations one read returns (Grafana's newest first).
	Limit int `yaml:"limit"`
	// Timeout is this source's deadline per query (within the total budget).
	Timeout time.Duration `yaml:"timeout"`
}

// Rule maps annotations to a subject.
type Rule struct {
	// Tags must all be on the annotation ("deploy", "service:payments").
	Tags []string `yaml:"tags"`
	// TagPattern must match one of the annotation's tags; its capture
	// groups are $1, $2, … (or ${1}) in Subject.
	TagPattern string `yaml:"tag_pattern"`
	// Subject is what a matching annotation is about; values may use the
	// captures of TagPattern.
	Subject SubjectTemplate `yaml:"subject"`
	// Kind of the change; empty: from the annotation's tags (deploy,
	// deployment or release: deploy; flag or feature-flag: flag; config:
	// config; migration: migration; else other).
	Kind string `yaml:"kind"`
}

// SubjectTemplate holds the subject fields a rule sets.
type SubjectTemplate struct {
	Namespace string `yaml:"namespace"`
	App       string `yaml:"app"`
	Name      string `yaml:"name"`
	Kind      string `yaml:"kind"`
	Repo      string `yaml:"repo"`
}

func (t SubjectTemplate) fields() map[string]string {
	return map[string]string{"namespace": t.Namespace, "app": t.App, "name": t.Name, "kind": t.Kind, "repo": t.Repo}
}

// Kinds a rule may set: those of changes pushed by CI, which annotations
// written by CI stand for.
var Kinds = []string{sources.KindDeploy, sources.KindConfig, sources.KindFlag, sources.KindMigration, sources.KindOther}

// Bounds of the configuration.
const (
	minRefresh = 10 * time.Second
	maxLimit   = 10_000 // a read is one JSON array held in memory
)

// Defaults fills unset fields.
func (c *Config) Defaults() {
	c.URL = strings.TrimSuffix(c.URL, "/")
	if c.UIURL == "" {
		c.UIURL = c.URL
	}
	c.UIURL = strings.TrimSuffix(c.UIURL, "/")
	if c.Refresh == 0 {
		c.Refresh = time.Minute
	}
	if c.Lookback == 0 {
		c.Lookback = 7 * 24 * time.Hour
	}
	if c.Limit == 0 {
		c.Limit = 500
	}
}

// Validate returns problems by key, relative to the source's section
// ("rules[1].tag_pattern").
func (c Config) Validate() map[string]string {
	errs := map[string]string{}
	if c.URL == "" {
		errs["url"] = "required (Grafana's root URL, e.g. https://grafana.example.com)"
	}
	for key, v := range map[string]string{"url": c.URL, "ui_url": c.UIURL} {
		if v == "" {
			continue
		}
		if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs[key] = "not an http(s) URL"
		} else if u.User != nil {
			// Said without the value: it holds a password.
			errs[key] = "must not carry credentials; put the token in http_config.authorization"
		}
	}
	if c.OrgID < 0 {
		errs["org_id"] = "must not be negative"
	}
	if c.Refresh < minRefresh {
		errs["refresh"] = "must be at least " + minRefresh.String()
	}
	if c.Lookback < c.Refresh {
		errs["lookback"] = "must be at least refresh"
	}
	if c.Limit < 1 || c.Limit > maxLimit {
		errs["limit"] = fmt.Sprintf("must be between 1 and %d", maxLimit)
	}
	if c.Timeout < 0 {
		errs["timeout"] = "must not be negative"
	}
	for i, t := range c.Tags {
		if strings.TrimSpace(t) == "" {
			errs[fmt.Sprintf("tags[%d]", i)] = "must not be empty"
		}
	}
	if len(c.Rules) == 0 {
		errs["rules"] = "at least one rule is required: without one no annotation is about any alert's subject"
	}
	for i, r := range c.Rules {
		for k, msg := range r.validate() {
			errs[fmt.Sprintf("rules[%d].%s", i, k)] = msg
		}
	}
	return errs
}

// templateRef finds $1, ${1}, $name and ${name}: what regexp.Expand replaces.
var templateRef = regexp.MustCompile(`\$(\{[^}]*\}|[A-Za-z0-9_]+)`)

func (r Rule) validate() map[string]string {
	errs := map[string]string{}
	if len(r.Tags) == 0 && r.TagPattern == "" {
		errs["tags"] = "set tags or tag_pattern (a rule without either would take every annotation)"
	}
	for i, t := range r.Tags {
		if strings.TrimSpace(t) == "" {
			errs[fmt.Sprintf("tags[%d]", i)] = "must not be empty"
		}
	}
	var groups int
	if r.TagPattern != "" {
		re, err := regexp.Compile(r.TagPattern)
		switch {
		case err != nil:
			errs["tag_pattern"] = err.Error()
		case re.NumSubexp() == 0:
			errs["tag_pattern"] = "needs a capture group, e.g. ^service:(.+)$, for $1 in subject"
		default:
			groups = re.NumSubexp()
		}
	}
	empty := true
	for field, v := range r.Subject.fields() {
		if strings.TrimSpace(v) != "" {
			empty = false
		}
		for _, ref := range templateRef.FindAllString(v, -1) {
			switch {
			case r.TagPattern == "":
				errs["subject."+field] = fmt.Sprintf("uses %s but the rule has no tag_pattern", ref)
			case groups > 0:
				if n, err := strconv.Atoi(strings.Trim(ref, "${}")); err == nil && n > groups {
					errs["subject."+field] = fmt.Sprintf("uses %s but tag_pattern has %d capture group(s)", ref, groups)
				}
			}
		}
	}
	if empty {
		errs["subject"] = "set at least one of namespace, app, name, kind, repo"
	}
	if r.Subject.Kind != "" && r.Subject.Name == "" {
		errs["subject.kind"] = "needs subject.name (the kind of the named workload)"
	}
	if r.Kind != "" && !slices.Contains(Kinds, r.Kind) {
		errs["kind"] = fmt.Sprintf("%q is not one of %s", r.Kind, strings.Join(Kinds, ", "))
	}
	return errs
}
