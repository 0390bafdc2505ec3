package main

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/whatchanged/whatchanged/enrich/deliver"
	"github.com/whatchanged/whatchanged/enrich/deliver/slack"
)

// Downstreams are the receivers of enriched notifications, by name; a
// notification posted to /webhook/<name> goes to <name>, to /webhook to
// "default".
type Downstreams map[string]DownstreamConfig

// DownstreamConfig is one receiver: Alertmanager's webhook_config shape (url
// or url_file, timeout, http_config), or Slack itself.
type DownstreamConfig struct {
	// URL is a secret (Slack-style webhooks carry their token in it).
	URL Secret `yaml:"url"`
	// URLFile is re-read on every send, as Alertmanager's url_file is.
	URLFile    string        `yaml:"url_file"`
	Timeout    time.Duration `yaml:"timeout"`
	HTTPConfig HTTPConfig    `yaml:"http_config"`
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
	// Actions puts buttons on the parent message (silence, acknowledge,
	// rollback and runbook links); off when absent.
	Actions *SlackActionsConfig `yaml:"actions"`
}

type RedisConfig struct {
	Addr         string `yaml:"addr"`
	Password     Secret `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	DB           int    `yaml:"db"`
}

func (Downstreams) key() string { return "downstreams" }

func (ds *Downstreams) finish(cfg *Config, p problems) {
	for _, name := range slices.Sorted(maps.Keys(*ds)) {
		d := (*ds)[name]
		d.finish(cfg, p.in(name))
		(*ds)[name] = d
	}
}

func (d *DownstreamConfig) finish(cfg *Config, p problems) {
	if d.Timeout < 0 {
		p.bad("timeout", "must not be negative")
	}
	if sl := d.Slack; sl != nil {
		p.secret(&sl.Token, sl.TokenFile, "slack.token")
		if sl.Token.Empty() {
			p.bad("slack", "token or token_file is required (a bot token with chat:write)")
		}
		if sl.Channel == "" {
			p.bad("slack.channel", "required (the default channel)")
		}
		checkSeverity(sl.Severity, p.in("slack.severity"))
		if sl.Redis != nil {
			p.secret(&sl.Redis.Password, sl.Redis.PasswordFile, "slack.redis.password")
			if sl.Redis.Addr == "" {
				p.bad("slack.redis.addr", "required (host:port)")
			}
		} else if cfg.DataDir == "" && cfg.Redis == nil {
			p.bad("slack", "thread state needs data_dir or redis")
		}
		if sl.Actions != nil {
			sl.Actions.finish(p.in("slack.actions"))
		}
		if !d.URL.Empty() || d.URLFile != "" || d.HTTPConfig != nil {
			p.bad("", "set url (with http_config) or slack, not both")
		}
		return
	}
	checkHTTPConfig(d.HTTPConfig, "http_config", p)
	switch {
	case d.URLFile != "" && !d.URL.Empty():
		p.bad("url", "set either url or url_file, not both")
	case d.URLFile != "":
		// Read now to fail at start on a missing or wrong file; the sender
		// reads it again on every send.
		v, err := secretFromFile(d.URLFile)
		if err == nil && v.Empty() {
			err = fmt.Errorf("file is empty")
		}
		if err == nil {
			err = checkURL(v.Reveal())
		}
		if err != nil {
			p.bad("url_file", err.Error()) // never quotes the URL itself
		}
	case d.URL.Empty():
		p.bad("", "url or url_file is required")
	default:
		if err := checkURL(d.URL.Reveal()); err != nil {
			p.bad("url", err.Error())
		}
	}
}

func (ds *Downstreams) build(b *builder) error {
	b.a.targets = map[string]deliver.Target{}
	for name, d := range *ds {
		t, err := d.target(b, name)
		if err != nil {
			return fmt.Errorf("downstreams.%s: %w", name, err)
		}
		b.a.targets[name] = t
	}
	if _, ok := b.a.targets["default"]; !ok {
		b.a.keeper = deliver.NewKeeper(50, 16<<20)
		b.a.targets["default"] = b.a.keeper
	}
	return nil
}

func (d DownstreamConfig) target(b *builder, name string) (deliver.Target, error) {
	if d.Slack == nil {
		rt, err := roundTripper(d.HTTPConfig, "downstream-"+name)
		if err != nil {
			return nil, err
		}
		return deliver.NewWebhook(name, deliver.WebhookConfig{URL: d.URL.Reveal(), URLFile: d.URLFile, Timeout: d.Timeout}, rt), nil
	}
	sl := d.Slack
	var threads slack.Threads
	if sl.Redis != nil {
		c := redis.NewClient(&redis.Options{Addr: sl.Redis.Addr, Password: sl.Redis.Password.Reveal(), DB: sl.Redis.DB})
		b.onClose(c.Close)
		threads = &slack.RedisThreads{Prefix: "whatchanged:slack:", Client: c}
	} else {
		st, err := b.store()
		if err != nil {
			return nil, err
		}
		threads = &slack.BoltThreads{Store: st}
	}
	actions, err := sl.Actions.build(b, name)
	if err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: 10 * time.Second}
	t := slack.New(name, slack.Config{Token: sl.Token.Reveal(), APIURL: sl.APIURL, Channel: sl.Channel,
		Severity: sl.Severity, ReplyBroadcast: sl.ReplyBroadcast, ResolvedRetention: sl.ResolvedRetention,
		AnnotationPrefix: b.cfg.Enrich.AnnotationPrefix, Actions: actions}, threads, client, b.log)
	sl.Actions.start(b, name, t)
	return t, nil
}

// maxTimeout is the longest a delivery may take (two sends).
func (ds Downstreams) maxTimeout() time.Duration {
	longest := 10 * time.Second
	for _, d := range ds {
		longest = max(longest, d.Timeout)
	}
	return 2 * longest
}

// checkSeverity names levels wherever they are configured: a typo in a
// level name would otherwise rank its alerts as low and mention no one.
func checkSeverity(s slack.Severity, p problems) {
	known := slack.LevelNames()
	unknown := fmt.Sprintf("not a level (known: %s)", strings.Join(known, ", "))
	for _, name := range slices.Sorted(maps.Keys(s.Levels)) {
		if !slices.Contains(known, name) {
			p.bad("levels."+name, unknown)
			continue
		}
		m := s.Levels[name].MentionWhen
		if m == nil {
			continue
		}
		pm := p.in("levels." + name + ".mention_when")
		if m.Fired < 0 || m.Fired > slack.MaxFired {
			pm.bad("fired", fmt.Sprintf("must be between 1 and %d (unset: 3)", slack.MaxFired))
		}
		if m.Within < 0 {
			pm.bad("within", "must not be negative (unset: 1h)")
		}
		if m.RefiredWithin < 0 {
			pm.bad("refired_within", "must not be negative (unset: 15m)")
		}
	}
	for _, value := range slices.Sorted(maps.Keys(s.Aliases)) {
		if !slices.Contains(known, strings.ToLower(s.Aliases[value])) {
			p.bad("aliases."+value, fmt.Sprintf("%q is %s", s.Aliases[value], unknown))
		}
	}
}
