package main

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/whatchanged/whatchanged/enrich"
	"github.com/whatchanged/whatchanged/enrich/deliver/slack"
	"github.com/whatchanged/whatchanged/sources/argocd"
	"github.com/whatchanged/whatchanged/sources/changes"
	"github.com/whatchanged/whatchanged/sources/github"
	"github.com/whatchanged/whatchanged/sources/kube"
)

// Config is the whole configuration file. Every key is documented in the
// README's configuration reference; unknown keys are errors.
type Config struct {
	Listen      string                      `yaml:"listen"`
	DataDir     string                      `yaml:"data_dir"`
	Log         LogConfig                   `yaml:"log"`
	Server      ServerConfig                `yaml:"server"`
	Auth        AuthConfig                  `yaml:"auth"`
	Enrich      enrich.Options              `yaml:"enrich"`
	Rules       []enrich.Rule               `yaml:"rules"`
	Sources     SourcesConfig               `yaml:"sources"`
	Downstreams map[string]DownstreamConfig `yaml:"downstreams"`
	Inline      InlineConfig                `yaml:"inline"`
}

// InlineConfig is the inline Alertmanager proxy: Prometheus posts alerts to
// whatchanged, which enriches them and forwards to every upstream.
type InlineConfig struct {
	Enabled    bool             `yaml:"enabled"`
	PathPrefix string           `yaml:"path_prefix"`
	Upstreams  []UpstreamConfig `yaml:"upstreams"`
}

// UpstreamConfig is one Alertmanager behind the inline proxy.
type UpstreamConfig struct {
	Name            string          `yaml:"name"`
	URL             string          `yaml:"url"`
	Timeout         time.Duration   `yaml:"timeout"`
	BearerToken     Secret          `yaml:"bearer_token"`
	BearerTokenFile string          `yaml:"bearer_token_file"`
	BasicAuth       BasicAuthConfig `yaml:"basic_auth"`
	TLS             TLSConfig       `yaml:"tls"`
}

// TLSConfig is client TLS towards a downstream or upstream.
type TLSConfig struct {
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text, json
}

type ServerConfig struct {
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
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

type SourcesConfig struct {
	Changes    ChangesSourceConfig    `yaml:"changes"`
	Kubernetes KubernetesSourceConfig `yaml:"kubernetes"`
	GitHub     GitHubSourceConfig     `yaml:"github"`
	ArgoCD     ArgoCDSourceConfig     `yaml:"argocd"`
}

// ArgoCDSourceConfig: sync history over argocd-server's REST API and/or
// Application resources; off unless enabled.
type ArgoCDSourceConfig struct {
	Enabled       bool      `yaml:"enabled"`
	Token         Secret    `yaml:"token"`
	TokenFile     string    `yaml:"token_file"`
	TLS           TLSConfig `yaml:"tls"`
	argocd.Config `yaml:",inline"`
}

// GitHubSourceConfig: releases, deployments and compares of the
// repositories alerts map to. Token or GitHub App; off unless enabled.
type GitHubSourceConfig struct {
	Enabled       bool            `yaml:"enabled"`
	Token         Secret          `yaml:"token"`
	TokenFile     string          `yaml:"token_file"`
	App           GitHubAppConfig `yaml:"app"`
	github.Config `yaml:",inline"`
}

type GitHubAppConfig struct {
	AppID          int64  `yaml:"app_id"`
	InstallationID int64  `yaml:"installation_id"`
	PrivateKeyFile string `yaml:"private_key_file"`
}

// KubernetesSourceConfig: rollout history and owner walks, off unless enabled.
type KubernetesSourceConfig struct {
	Enabled     bool `yaml:"enabled"`
	kube.Config `yaml:",inline"`
}

// ChangesSourceConfig: the pushed-changes source is on unless disabled.
type ChangesSourceConfig struct {
	Enabled        *bool `yaml:"enabled"`
	changes.Config `yaml:",inline"`
}

func (c ChangesSourceConfig) On() bool { return c.Enabled == nil || *c.Enabled }

// DownstreamConfig is a receiver of enriched webhook notifications.
type DownstreamConfig struct {
	URL             Secret            `yaml:"url"`
	URLFile         string            `yaml:"url_file"`
	Timeout         time.Duration     `yaml:"timeout"`
	BearerToken     Secret            `yaml:"bearer_token"`
	BearerTokenFile string            `yaml:"bearer_token_file"`
	BasicAuth       BasicAuthConfig   `yaml:"basic_auth"`
	Headers         map[string]Secret `yaml:"headers"`
	TLS             TLSConfig         `yaml:"tls"`
	// Slack makes this downstream Slack itself (threads per alert group)
	// instead of a webhook URL.
	Slack *SlackConfig `yaml:"slack"`
}

// SlackConfig is a Slack downstream: a bot token with chat:write.
type SlackConfig struct {
	Token             Secret         `yaml:"token"`
	TokenFile         string         `yaml:"token_file"`
	APIURL            string         `yaml:"api_url"`
	Channel           string         `yaml:"channel"`
	Severity          slack.Severity `yaml:"severity"`
	ReplyBroadcast    bool           `yaml:"reply_broadcast"`
	ResolvedRetention time.Duration  `yaml:"resolved_retention"`
	// Redis shares thread state between replicas; without it the embedded
	// store in data_dir keeps it.
	Redis *RedisConfig `yaml:"redis"`
}

type RedisConfig struct {
	Addr         string `yaml:"addr"`
	Password     Secret `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	DB           int    `yaml:"db"`
}

// Secret is a configured secret: it prints, logs and marshals as <secret>.
type Secret string

func (Secret) String() string               { return "<secret>" }
func (Secret) LogValue() slog.Value         { return slog.StringValue("<secret>") }
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"<secret>"`), nil }
func (Secret) MarshalYAML() (any, error)    { return "<secret>", nil }
func (s Secret) GoString() string           { return s.String() }
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte("<secret>")) }
func (s Secret) reveal() string             { return string(s) }
func (s Secret) empty() bool                { return s == "" }
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
		Server:  ServerConfig{MaxBodyBytes: 8 << 20},
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
	if len(errs) > 0 {
		return cfg, errs
	}
	if err := root.Decode(&cfg); err != nil {
		return cfg, ConfigErrors{yamlError(name, err)}
	}
	for _, o := range overrides {
		o(&cfg)
	}
	return cfg, cfg.finish(name, lines)
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

var durationType = reflect.TypeOf(time.Duration(0))

// checkKeys walks the document against the Go type, reporting unknown keys
// (with the known ones) and recording the line of every key path.
func checkKeys(n *yaml.Node, t reflect.Type, path, file string, lines map[string]int, errs *ConfigErrors) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	switch {
	case t == durationType:
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			if !(n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
				*errs = append(*errs, ConfigError{File: file, Line: n.Line, Key: orRoot(path), Msg: "expected a mapping of keys"})
			}
			return
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			lines[p] = k.Line
			ft, ok := fields[k.Value]
			if !ok {
				*errs = append(*errs, ConfigError{File: file, Line: k.Line, Key: p, Msg: "unknown key (known: " + strings.Join(sortedNames(fields), ", ") + ")"})
				continue
			}
			checkKeys(v, ft, p, file, lines, errs)
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := join(path, n.Content[i].Value)
			lines[p] = n.Content[i].Line
			checkKeys(n.Content[i+1], t.Elem(), p, file, lines, errs)
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			lines[p] = item.Line
			checkKeys(item, t.Elem(), p, file, lines, errs)
		}
	}
}

func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(opts, "inline") {
			for k, v := range yamlFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" || name == "-" {
			continue
		}
		out[name] = f.Type
	}
	return out
}

func sortedNames(m map[string]reflect.Type) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
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

// finish applies defaults, reads secret files and validates everything,
// collecting all problems with their keys and lines.
func (c *Config) finish(file string, lines map[string]int) error {
	var errs ConfigErrors
	bad := func(key, msg string) {
		errs = append(errs, ConfigError{File: file, Line: lineOf(lines, key), Key: key, Msg: msg})
	}
	if c.Listen == "" {
		bad("listen", "required (host:port)")
	} else if _, _, err := splitHostPort(c.Listen); err != nil {
		bad("listen", err.Error())
	}
	if c.Sources.Changes.On() && c.DataDir == "" {
		bad("data_dir", "required when sources.changes is enabled")
	}
	switch c.Log.Level {
	case "", "debug", "info", "warn", "error":
	default:
		bad("log.level", fmt.Sprintf("%q is not one of debug, info, warn, error", c.Log.Level))
	}
	switch c.Log.Format {
	case "", "text", "json":
	default:
		bad("log.format", fmt.Sprintf("%q is not one of text, json", c.Log.Format))
	}
	if c.Server.MaxBodyBytes < 0 {
		bad("server.max_body_bytes", "must not be negative")
	}
	c.Enrich = c.Enrich.WithDefaults()
	for k, msg := range c.Enrich.Validate() {
		bad("enrich."+k, msg)
	}
	if _, err := enrich.NewResolver(c.Rules); err != nil {
		var re *enrich.RuleError
		if errors.As(err, &re) {
			bad(fmt.Sprintf("rules[%d].%s", re.Index, re.Key), re.Err.Error())
		} else {
			bad("rules", err.Error())
		}
	}
	if c.Sources.Changes.On() {
		c.Sources.Changes.Defaults()
		for k, msg := range c.Sources.Changes.Validate() {
			bad("sources.changes."+k, msg)
		}
	}
	if c.Sources.Kubernetes.Enabled {
		c.Sources.Kubernetes.Defaults()
		for k, msg := range c.Sources.Kubernetes.Validate() {
			bad("sources.kubernetes."+k, msg)
		}
	}
	if g := &c.Sources.GitHub; g.Enabled {
		g.Defaults()
		for k, msg := range g.Validate() {
			bad("sources.github."+k, msg)
		}
		readSecret(&g.Token, g.TokenFile, "sources.github.token", bad)
		switch {
		case g.App.AppID != 0:
			if !g.Token.empty() {
				bad("sources.github", "set token or app, not both")
			}
			if g.App.InstallationID == 0 || g.App.PrivateKeyFile == "" {
				bad("sources.github.app", "app_id, installation_id and private_key_file are all required")
			} else if key, err := os.ReadFile(g.App.PrivateKeyFile); err != nil {
				bad("sources.github.app.private_key_file", err.Error())
			} else {
				g.Config.App = &github.App{AppID: g.App.AppID, InstallationID: g.App.InstallationID, PrivateKey: key}
			}
		case g.Token.empty():
			bad("sources.github", "token, token_file or app is required (anonymous access allows 60 requests an hour)")
		}
		g.Config.Token = g.Token.reveal()
	}
	if a := &c.Sources.ArgoCD; a.Enabled {
		a.Defaults()
		for k, msg := range a.Validate() {
			bad("sources.argocd."+k, msg)
		}
		readSecret(&a.Token, a.TokenFile, "sources.argocd.token", bad)
		if a.Server != "" && a.Token.empty() {
			bad("sources.argocd", "token or token_file is required with server (a read-only account's token)")
		}
		if _, err := a.TLS.build(); err != nil {
			bad("sources.argocd.tls", err.Error())
		}
		a.Config.Token = a.Token.reveal()
	}
	readSecret(&c.Auth.BearerToken, c.Auth.BearerTokenFile, "auth.bearer_token", bad)
	readSecret(&c.Auth.BasicAuth.Password, c.Auth.BasicAuth.PasswordFile, "auth.basic_auth.password", bad)
	if c.Auth.BasicAuth.Username != "" && c.Auth.BasicAuth.Password.empty() {
		bad("auth.basic_auth", "username set without password or password_file")
	}
	for _, name := range sortedDownstreams(c.Downstreams) {
		d := c.Downstreams[name]
		key := "downstreams." + name
		readSecret(&d.URL, d.URLFile, key+".url", bad)
		readSecret(&d.BearerToken, d.BearerTokenFile, key+".bearer_token", bad)
		readSecret(&d.BasicAuth.Password, d.BasicAuth.PasswordFile, key+".basic_auth.password", bad)
		if d.Slack != nil {
			sl := d.Slack
			readSecret(&sl.Token, sl.TokenFile, key+".slack.token", bad)
			if sl.Token.empty() {
				bad(key+".slack", "token or token_file is required (a bot token with chat:write)")
			}
			if sl.Channel == "" {
				bad(key+".slack.channel", "required (the default channel)")
			}
			if sl.Redis != nil {
				readSecret(&sl.Redis.Password, sl.Redis.PasswordFile, key+".slack.redis.password", bad)
				if sl.Redis.Addr == "" {
					bad(key+".slack.redis.addr", "required (host:port)")
				}
			} else if c.DataDir == "" {
				bad(key+".slack", "thread state needs data_dir or redis")
			}
			if !d.URL.empty() {
				bad(key, "set url or slack, not both")
			}
		} else if d.URL.empty() {
			bad(key, "url or url_file is required")
		} else if err := checkURL(d.URL.reveal()); err != nil {
			bad(key+".url", err.Error()) // never quotes the URL itself
		}
		if d.Timeout < 0 {
			bad(key+".timeout", "must not be negative")
		}
		if !d.BearerToken.empty() && d.BasicAuth.Username != "" {
			bad(key, "set bearer_token or basic_auth, not both")
		}
		c.Downstreams[name] = d
	}
	c.finishInline(bad)
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
	if len(errs) > 0 {
		return errs
	}
	return nil
}

func readSecret(dst *Secret, file, key string, bad func(string, string)) {
	if file == "" {
		return
	}
	if !dst.empty() {
		bad(key, "set either "+key[strings.LastIndex(key, ".")+1:]+" or its _file, not both")
		return
	}
	v, err := secretFromFile(file)
	if err != nil {
		bad(key+"_file", err.Error())
		return
	}
	if v.empty() {
		bad(key+"_file", "file is empty")
	}
	*dst = v
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

func sortedDownstreams(m map[string]DownstreamConfig) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// marshalRedacted renders the effective config for `config check` with
// secrets hidden.
func (c Config) marshalRedacted() string {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	_ = enc.Encode(c)
	return buf.String()
}

func (c *Config) finishInline(bad func(string, string)) {
	in := &c.Inline
	if !in.Enabled {
		return
	}
	if len(in.Upstreams) == 0 {
		bad("inline.upstreams", "at least one Alertmanager is required when inline.enabled is true")
	}
	if in.PathPrefix != "" && !strings.HasPrefix(in.PathPrefix, "/") {
		bad("inline.path_prefix", "must start with /")
	}
	names := map[string]bool{}
	for i := range in.Upstreams {
		u := &in.Upstreams[i]
		key := fmt.Sprintf("inline.upstreams[%d]", i)
		if u.Name == "" {
			u.Name = fmt.Sprintf("alertmanager-%d", i)
		}
		if names[u.Name] {
			bad(key+".name", fmt.Sprintf("%q is used twice", u.Name))
		}
		names[u.Name] = true
		if u.URL == "" {
			bad(key+".url", "required")
		} else if err := checkURL(u.URL); err != nil {
			bad(key+".url", err.Error())
		}
		readSecret(&u.BearerToken, u.BearerTokenFile, key+".bearer_token", bad)
		readSecret(&u.BasicAuth.Password, u.BasicAuth.PasswordFile, key+".basic_auth.password", bad)
		if u.Timeout < 0 {
			bad(key+".timeout", "must not be negative")
		}
		if _, err := u.TLS.build(); err != nil {
			bad(key+".tls", err.Error())
		}
	}
}
