package main

import "github.com/whatchanged/whatchanged/sources/kube"

// KubernetesSourceConfig: rollout history and owner walks, off unless enabled.
type KubernetesSourceConfig struct {
	Enabled     bool `yaml:"enabled"`
	kube.Config `yaml:",inline"`
}

func (*KubernetesSourceConfig) key() string { return "sources.kubernetes" }

func (c *KubernetesSourceConfig) finish(_ *Config, p problems) {
	if !c.Enabled {
		return
	}
	c.Defaults()
	for k, msg := range c.Validate() {
		p.bad(k, msg)
	}
}

func (c *KubernetesSourceConfig) build(b *builder) error {
	if !c.Enabled {
		return nil
	}
	clients, _, err := kube.ClientsFromConfig(c.Config)
	if err != nil {
		return err
	}
	src := kube.New("kubernetes", c.Config, clients, b.log)
	b.a.kubes = append(b.a.kubes, src)
	b.addSource(src, c.Timeout)
	return nil
}
