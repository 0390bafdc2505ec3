package main

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/whatchanged/whatchanged/enrich"
	"github.com/whatchanged/whatchanged/sources/secret"
	"github.com/whatchanged/whatchanged/sources/store"
)

// Config is the whole configuration file. Every key is documented in the
// README's configuration reference; unknown keys are errors.
type Config struct {
	Listen  string         `yaml:"listen"`
	DataDir string         `yaml:"data_dir"`
	Log     LogConfig      `yaml:"log"`
	Server  ServerConfig   `yaml:"server"`
	Auth    AuthConfig     `yaml:"auth"`
	Enrich  enrich.Options `yaml:"enrich"`
	Rules   []enrich.Rule  `yaml:"rules"`
	Sources SourcesConfig  `yaml:"sources"`
	// ClusterLabel is the alert label naming its cluster (default
	// "cluster"), when Clusters lists several.
	// Redis, when set, holds all shared state (pushed changes, Slack
	// threads, the alert history) so replicas answer alike; else the
	// embedded store in data_dir does.
	Redis        *store.RedisConfig `yaml:"redis"`
	ClusterLabel string             `yaml:"cluster_label"`
	Clusters     ClustersConfig     `yaml:"clusters"`
	Downstreams  Downstreams        `yaml:"downstreams"`
	Inline       InlineConfig       `yaml:"inline"`
	Timeline     TimelineConfig     `yaml:"timeline"`
}

type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text, json
}

type ServerConfig struct {
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxInflightBytes bounds the request bodies handled at once (memory
	// follows them); beyond it requests wait up to InflightWait, then get
	// 503 with Retry-After. Default 2 × max_body_bytes: a max-size notification holds about 10 × its size while handled.
	MaxInflightBytes int64         `yaml:"max_inflight_bytes"`
	InflightWait     time.Duration `yaml:"inflight_wait"`
	// ExternalURL is whatchanged as people reach it (https://whatchanged.example.com):
	// alerts and Slack messages link to its timeline page.
	ExternalURL string `yaml:"external_url"`
}

type AuthConfig struct {
	BearerToken     Secret          `yaml:"bearer_token"`
	BearerTokenFile string          `yaml:"bearer_token_file"`
	BasicAuth       BasicAuthConfig `yaml:"basic_auth"`
	// ProtectMetrics requires the same credentials on /metrics.
	ProtectMetrics bool `yaml:"protect_metrics"`
}

type BasicAuthConfig struct {
	Username     string `yaml:"username"`
	Password     Secret `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
}

// Secret is a configured secret (package secret): it prints, logs and
// marshals as <secret>.
type Secret = secret.Secret

func secretFromFile(path string) (Secret, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read secret file: %w", err)
	}
	return Secret(strings.TrimSpace(string(b))), nil
}

// defaultConfig is the embedded default: loopback listener, pushed changes
// in a local data directory, no downstream (notifications are kept for
// /debug/notifications).
func defaultConfig() Config {
	return Config{
		Listen:  "127.0.0.1:8080",
		DataDir: defaultDataDir(),
		Log:     LogConfig{Level: "info", Format: "text"},
		Server:  ServerConfig{MaxBodyBytes: 8 << 20, InflightWait: 5 * time.Second},
		Enrich:  enrich.DefaultOptions(),
	}
}

func defaultDataDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "whatchanged")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "whatchanged")
	}
	return "whatchanged-data"
}

// ConfigError is one problem in the config file, with where it is.
type ConfigError struct {
	File string
	Line int
	Key  string
	Msg  string
}

func (e ConfigError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Key == "" {
		return loc + ": " + e.Msg
	}
	return fmt.Sprintf("%s: %s: %s", loc, e.Key, e.Msg)
}

// ConfigErrors is every problem found; it is returned whole so a user fixes
// them in one go.
type ConfigErrors []ConfigError

func (es ConfigErrors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// LoadConfig reads, expands, strictly decodes, defaults, resolves secrets and
// validates a config file. An empty path gives the embedded default.
// overrides (command-line flags) apply before validation, so a flag's value
// is checked like the file's.
func LoadConfig(path string, overrides ...func(*Config)) (Config, error) {
	if path == "" {
		cfg := defaultConfig()
		for _, o := range overrides {
			o(&cfg)
		}
		return cfg, cfg.finish("(default)", nil)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return defaultConfig(), fmt.Errorf("config: %w", err)
	}
	return parseConfig(path, data, overrides...)
}

func parseConfig(name string, data []byte, overrides ...func(*Config)) (Config, error) {
	cfg := defaultConfig()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return cfg, ConfigErrors{yamlError(name, err)}
	}
	if len(doc.Content) == 0 { // empty file: the defaults
		for _, o := range overrides {
			o(&cfg)
		}
		return cfg, cfg.finish(name, nil)
	}
	root := doc.Content[0]
	lines := map[string]int{}
	var errs ConfigErrors
	expandEnv(root, name, "", &errs)
	checkKeys(root, reflect.TypeOf(cfg), "", name, lines, &errs)
	// Decode even when the walk found problems: what decodes is validated
	// too, so one run reports every problem. A value the walk refused stays
	// at its default and raises nothing more.
	if err := root.Decode(&cfg); err != nil && len(errs) == 0 {
		return cfg, ConfigErrors{yamlError(name, err)}
	}
	for _, o := range overrides {
		o(&cfg)
	}
	if err := cfg.finish(name, lines); err != nil {
		errs = append(errs, err.(ConfigErrors)...)
	}
	if len(errs) > 0 {
		slices.SortStableFunc(errs, func(a, b ConfigError) int { return a.Line - b.Line })
		return cfg, errs
	}
	return cfg, nil
}

var yamlLine = regexp.MustCompile(`line (\d+): (.*)`)

func yamlError(name string, err error) ConfigError {
	var te *yaml.TypeError
	msg := err.Error()
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		var line int
		fmt.Sscan(m[1], &line)
		return ConfigError{File: name, Line: line, Msg: m[2]}
	}
	return ConfigError{File: name, Msg: msg}
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandEnv replaces ${NAME} in scalar values. Only the braced form is
// expanded so regexps ("foo$") and templates stay as written; an unset
// variable is an error rather than a silent empty secret.
func expandEnv(n *yaml.Node, file, _ string, errs *ConfigErrors) {
	if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "${") {
		n.Value = envRef.ReplaceAllStringFunc(n.Value, func(ref string) string {
			name := envRef.FindStringSubmatch(ref)[1]
			v, ok := os.LookupEnv(name)
			if !ok {
				*errs = append(*errs, ConfigError{File: file, Line: n.Line, Msg: fmt.Sprintf("environment variable %s is not set", name)})
			}
			return v
		})
		return
	}
	for i, c := range n.Content {
		if n.Kind == yaml.MappingNode && i%2 == 0 {
			continue // keys are never expanded
		}
		expandEnv(c, file, "", errs)
	}
}

var (
	durationType  = reflect.TypeOf(time.Duration(0))
	unmarshalerV3 = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
	// Types of prometheus/common (http_config) unmarshal with yaml.v2's
	// signature, which yaml.v3 still honours.
	unmarshalerV2 = reflect.TypeOf((*interface{ UnmarshalYAML(func(any) error) error })(nil)).Elem()
)

// checkKeys walks the document against the Go type and reports, each with
// its key path and line, in one pass: unknown keys (with the known ones),
// values of the wrong type, durations that do not parse. It records the line
// of every key path for later validation messages.
//
// Durations are Prometheus's (prometheus/common model.Duration: 30s, 1h30m,
// 7d, 1w, 1y) as well as Go's (1.5h, 500ms); each is rewritten in place to
// Go's form so decoding into time.Duration takes it.
func checkKeys(n *yaml.Node, t reflect.Type, path, file string, lines map[string]int, errs *ConfigErrors) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // an empty value keeps the default
	}
	bad := func(msg string) {
		line := n.Line
		if l, ok := lines[path]; ok { // the key's line, where a block value starts below it
			line = l
		}
		*errs = append(*errs, ConfigError{File: file, Line: line, Key: orRoot(path), Msg: msg})
	}
	pt := reflect.PointerTo(t)
	switch {
	case t == durationType:
		if n.Kind != yaml.ScalarNode {
			bad("expected a duration such as 30s, 5m, 1h or 7d")
			return
		}
		d, err := parseDuration(n.Value)
		if err != nil {
			bad(fmt.Sprintf("%q is not a duration (such as 30s, 5m, 1h30m, 7d or 1w)", n.Value))
			return
		}
		n.Value, n.Tag = d.String(), "!!str"
		return
	case pt.Implements(unmarshalerV3) || pt.Implements(unmarshalerV2):
		// The type checks its own value (a URL, a TLS version, a whole
		// http_config with its Validate): decode it here so its error
		// carries the key path, then still look for unknown keys below.
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			bad(strings.TrimPrefix(yamlError(file, err).Msg, "unmarshal errors:\n  "))
			return
		}
		if t.Kind() != reflect.Struct || n.Kind != yaml.MappingNode {
			return
		}
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			bad("expected a mapping of keys")
			return
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			lines[p] = k.Line
			ft, ok := fields[k.Value]
			if !ok {
				ft, ok = fields[anyKey]
			}
			if !ok {
				*errs = append(*errs, ConfigError{File: file, Line: k.Line, Key: p, Msg: "unknown key (known: " + strings.Join(slices.Sorted(maps.Keys(fields)), ", ") + ")"})
				continue
			}
			checkKeys(v, ft, p, file, lines, errs)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			bad("expected a mapping")
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := join(path, n.Content[i].Value)
			lines[p] = n.Content[i].Line
			checkKeys(n.Content[i+1], t.Elem(), p, file, lines, errs)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			bad("expected a list")
			return
		}
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			lines[p] = item.Line
			checkKeys(item, t.Elem(), p, file, lines, errs)
		}
	case reflect.Bool, reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint, reflect.Uint64, reflect.Uint32, reflect.Float64, reflect.String:
		if n.Kind != yaml.ScalarNode {
			bad("expected a single value, not a list or mapping")
			return
		}
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			bad(fmt.Sprintf("%q is not %s", n.Value, kindName(t.Kind())))
		}
	}
}

// parseDuration takes Prometheus's durations (7d, 1w, 1y, 1h30m) and Go's
// (1.5h, 250ms).
func parseDuration(s string) (time.Duration, error) {
	if d, err := model.ParseDuration(s); err == nil {
		return time.Duration(d), nil
	}
	return time.ParseDuration(s)
}

func kindName(k reflect.Kind) string {
	switch k {
	case reflect.Bool:
		return "true or false"
	case reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	}
	return "a whole number"
}

// anyKey is where yamlFields puts the value type of an inline map: a
// struct with one (prometheus/common's http_headers) takes any key.
const anyKey = "\x00any"

func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(opts, "inline") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Map {
				out[anyKey] = ft.Elem()
				continue
			}
			maps.Copy(out, yamlFields(ft))
			continue
		}
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		out[name] = f.Type
	}
	return out
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orRoot(p string) string {
	if p == "" {
		return "(top level)"
	}
	return p
}

// problems collects validation errors with their key path and line. in()
// gives a part its own key prefix, so a part validates with keys relative
// to itself and the message still names the full path.
type problems struct {
	file   string
	lines  map[string]int
	errs   *ConfigErrors
	prefix string
}

func (p problems) in(key string) problems {
	if strings.HasPrefix(key, "[") {
		p.prefix += key // an index: clusters[1]
	} else {
		p.prefix = join(p.prefix, key)
	}
	return p
}

// root reports at top-level keys again (a source needing data_dir).
func (p problems) root() problems { p.prefix = ""; return p }

// bad reports msg at key (relative to the prefix; "" is the prefix itself).
func (p problems) bad(key, msg string) {
	full := p.prefix
	if key != "" {
		if strings.HasPrefix(key, "[") {
			full += key
		} else {
			full = join(p.prefix, key)
		}
	}
	*p.errs = append(*p.errs, ConfigError{File: p.file, Line: lineOf(p.lines, full), Key: orRoot(full), Msg: msg})
}

// secret reads a secret's *_file into dst, reporting at key ("token" for
// token/token_file): it must be readable at start. Who re-reads it on a
// rotation says so (the server for auth's files); outbound credentials go
// through http_config, which re-reads its files per request.
func (p problems) secret(dst *Secret, file, key string) {
	if file == "" {
		return
	}
	if !dst.Empty() {
		p.bad(key, "set either "+key[strings.LastIndex(key, ".")+1:]+" or "+key+"_file, not both")
		return
	}
	v, err := secretFromFile(file)
	if err != nil {
		p.bad(key+"_file", err.Error())
		return
	}
	if v.Empty() {
		p.bad(key+"_file", "file is empty")
	}
	*dst = v
}

// finish applies defaults, reads secret files and validates everything,
// collecting all problems with their keys and lines.
func (c *Config) finish(file string, lines map[string]int) error {
	var errs ConfigErrors
	p := problems{file: file, lines: lines, errs: &errs}
	if c.Listen == "" {
		p.bad("listen", "required (host:port)")
	} else if _, _, err := splitHostPort(c.Listen); err != nil {
		p.bad("listen", err.Error())
	}
	switch c.Log.Level {
	case "", "debug", "info", "warn", "error":
	default:
		p.bad("log.level", fmt.Sprintf("%q is not one of debug, info, warn, error", c.Log.Level))
	}
	switch c.Log.Format {
	case "", "text", "json":
	default:
		p.bad("log.format", fmt.Sprintf("%q is not one of text, json", c.Log.Format))
	}
	if c.Server.MaxBodyBytes < 0 {
		p.bad("server.max_body_bytes", "must not be negative")
	}
	if c.Server.MaxInflightBytes == 0 {
		c.Server.MaxInflightBytes = 2 * c.Server.MaxBodyBytes
	}
	if c.Server.MaxInflightBytes < c.Server.MaxBodyBytes {
		p.bad("server.max_inflight_bytes", "must be at least max_body_bytes (one request of the largest size must fit)")
	}
	if c.Server.InflightWait < 0 || c.Server.InflightWait > 30*time.Second {
		p.bad("server.inflight_wait", "must be between 0s and 30s (the sender waits meanwhile)")
	}
	if u := c.Server.ExternalURL; u != "" {
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" || pu.RawQuery != "" {
			p.bad("server.external_url", "want an http(s) URL such as https://whatchanged.example.com")
		}
	}
	if c.Redis != nil {
		c.Redis.Defaults()
		for k, msg := range c.Redis.Validate() {
			p.bad("redis."+k, msg)
		}
	}
	c.Enrich = c.Enrich.WithDefaults()
	if u := strings.TrimSuffix(c.Server.ExternalURL, "/"); u != "" {
		c.Enrich.TimelineURL = u + "/ui/"
	}
	if c.Enrich.Annotations.ChangesJSON == nil {
		// Inline, Alertmanager's default PagerDuty, Opsgenie, MS Teams and
		// email templates print every annotation: 4 KB of JSON would open
		// the page. Whoever wants it in inline mode sets it.
		on := !c.Inline.Enabled
		c.Enrich.Annotations.ChangesJSON = &on
	}
	for k, msg := range c.Enrich.Validate() {
		p.bad("enrich."+k, msg)
	}
	if _, err := enrich.NewResolver(c.Rules); err != nil {
		var re *enrich.RuleError
		if errors.As(err, &re) {
			p.bad(fmt.Sprintf("rules[%d].%s", re.Index, re.Key), re.Err.Error())
		} else {
			p.bad("rules", err.Error())
		}
	}
	a := p.in("auth")
	a.secret(&c.Auth.BearerToken, c.Auth.BearerTokenFile, "bearer_token")
	a.secret(&c.Auth.BasicAuth.Password, c.Auth.BasicAuth.PasswordFile, "basic_auth.password")
	if c.Auth.BasicAuth.Username != "" && c.Auth.BasicAuth.Password.Empty() {
		a.bad("basic_auth", "username set without password or password_file")
	}
	for _, pt := range c.parts() {
		pt.finish(c, p.in(pt.key()))
	}
	slices.SortStableFunc(errs, func(a, b ConfigError) int { return a.Line - b.Line })
	if len(errs) > 0 {
		return errs
	}
	return nil
}

func lineOf(lines map[string]int, key string) int {
	for k := key; k != ""; {
		if l, ok := lines[k]; ok {
			return l
		}
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return 0
}

// marshalRedacted renders the effective config for `config check` with
// secrets hidden and durations as written in a config (7d, not 168h0m0s).
func (c Config) marshalRedacted() string {
	var doc yaml.Node
	if err := doc.Encode(c); err != nil {
		return "# " + err.Error() + "\n"
	}
	promDurations(&doc, reflect.TypeOf(c))
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	_ = enc.Encode(&doc)
	return buf.String()
}

// promDurations rewrites the durations of an encoded config in
// Prometheus's form, walking the node beside its Go type.
func promDurations(n *yaml.Node, t reflect.Type) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == durationType && n.Kind == yaml.ScalarNode:
		if d, err := time.ParseDuration(n.Value); err == nil {
			n.Value = model.Duration(d).String()
		}
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			if ft, ok := fields[n.Content[i].Value]; ok {
				promDurations(n.Content[i+1], ft)
			}
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			promDurations(n.Content[i], t.Elem())
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for _, item := range n.Content {
			promDurations(item, t.Elem())
		}
	}
}
