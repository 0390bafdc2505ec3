package main

import "github.com/whatchanged/whatchanged/sources/changes"

// ChangesSourceConfig: events pushed by CI and people (POST /api/v1/changes),
// kept in the embedded store. On unless disabled.
type ChangesSourceConfig struct {
	Enabled        *bool `yaml:"enabled"`
	changes.Config `yaml:",inline"`
}

func (c ChangesSourceConfig) On() bool { return c.Enabled == nil || *c.Enabled }

func (*ChangesSourceConfig) key() string { return "sources.changes" }

func (c *ChangesSourceConfig) finish(cfg *Config, p problems) {
	on := c.On()
	c.Enabled = &on // explicit, so config check --show says it
	if !on {
		return
	}
	if cfg.DataDir == "" && cfg.Redis == nil {
		p.root().bad("data_dir", "required when sources.changes is enabled (or redis)")
	}
	c.Defaults()
	for k, msg := range c.Validate() {
		p.bad(k, msg)
	}
}

func (c *ChangesSourceConfig) build(b *builder) error {
	if !c.On() {
		return nil
	}
	st, err := b.store()
	if err != nil {
		return err
	}
	b.a.changes = changes.New("changes", c.Config, st, b.log)
	if b.shared() {
		b.a.changes.Shared()
	}
	b.addSource(b.a.changes, c.Timeout)
	return nil
}
