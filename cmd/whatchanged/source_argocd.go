package main

import (
	"net/http"

	"k8s.io/client-go/dynamic"

	"github.com/whatchanged/whatchanged/sources"
	"github.com/whatchanged/whatchanged/sources/argocd"
	"github.com/whatchanged/whatchanged/sources/kube"
)

// ArgoCDSourceConfig: sync history over argocd-server's REST API (a
// read-only account's token in http_config.authorization) and/or
// Application resources; off unless enabled.
type ArgoCDSourceConfig struct {
	Enabled       bool       `yaml:"enabled"`
	HTTPConfig    HTTPConfig `yaml:"http_config"`
	argocd.Config `yaml:",inline"`
	// kubeContext: a cluster's Argo CD reads Application resources through
	// that cluster's kubeconfig context.
	kubeContext string
}

func (*ArgoCDSourceConfig) key() string { return "sources.argocd" }

func (a *ArgoCDSourceConfig) finish(_ *Config, p problems) {
	if !a.Enabled {
		return
	}
	finishSource(a, a.HTTPConfig, p)
	if a.Server != "" && !hasAuthorization(a.HTTPConfig) {
		p.bad("http_config.authorization", "required with server (a read-only account's token, e.g. credentials_file)")
	}
}

func (a *ArgoCDSourceConfig) build(b *builder) error {
	if !a.Enabled {
		return nil
	}
	return a.buildAs(b, "argocd")
}

// buildAs adds the source under a name (argocd@<cluster> for a cluster's).
func (a *ArgoCDSourceConfig) buildAs(b *builder, name string) error {
	rt, err := roundTripper(a.HTTPConfig, "argocd")
	if err != nil {
		return err
	}
	// An application list is often larger than the default bound.
	if rt, err = b.pollOnce(rt, name, a.Refresh/2, 32<<20, credentialIdentity(a.HTTPConfig, GitHubAppConfig{})); err != nil {
		return err
	}
	var dyn dynamic.Interface
	if a.Kubernetes.Enabled {
		kc := a.Kubernetes.Kubeconfig
		if kc == "" {
			kc = b.cfg.Sources.Kubernetes.Kubeconfig
		}
		clients, _, err := kube.ClientsFromConfig(kube.Config{Kubeconfig: kc, Context: a.kubeContext})
		if err != nil {
			return err
		}
		dyn = clients.Dynamic
	}
	cfg := a.Config
	cfg.Commits = commitLookup(b)
	b.addSource(argocd.New(name, cfg, &http.Client{Transport: rt}, dyn, b.log), a.Timeout)
	return nil
}

// commitLookup is a source built before that tells commits' authors and
// messages (GitHub: SourcesConfig.parts builds it before Argo CD, and the
// clusters' Argo CDs come after every source), or nil.
func commitLookup(b *builder) sources.CommitLookup {
	for _, e := range b.a.entries {
		if l, ok := e.Source.(sources.CommitLookup); ok {
			return l
		}
	}
	return nil
}
