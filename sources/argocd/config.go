package argocd

import (
	"net/url"
	"time"

	"github.com/whatchanged/whatchanged/sources"
)

// Config of the Argo CD source. Either or both modes.
type Config struct {
	// Server is argocd-server's URL for the REST API (empty: REST off).
	Server string `yaml:"server"`
	// UIURL is where app links point; default: Server.
	UIURL string `yaml:"ui_url"`
	// AppNamespaces are the namespaces apps may live in besides the
	// control plane's ("apps in any namespace").
	AppNamespaces []string `yaml:"app_namespaces"`
	// Refresh is how often the application list is polled over REST.
	Refresh time.Duration `yaml:"refresh"`
	// AppLabel is the alert label naming the app.
	AppLabel string `yaml:"app_label"`
	// Kubernetes reads Application resources through the Kubernetes API
	// instead of (or besides) REST.
	Kubernetes KubernetesMode `yaml:"kubernetes"`
	Timeout    time.Duration  `yaml:"timeout"`
	// Clusters maps an application's destination (spec.destination.name
	// or .server) to the whatchanged cluster it deploys to, when Argo CD
	// deploys to several: a sync then relates only to workloads of that
	// cluster.
	Clusters map[string]string `yaml:"clusters"`
	// Cluster binds the source to one cluster (clusters[].argocd): its
	// apps deploy there unless Clusters says otherwise.
	Cluster string `yaml:"-"`
	// Commits tells a sync's commit author and message when argocd-server
	// does not (Kubernetes mode only, or no metadata for a revision): the
	// GitHub source, for repositories on its GitHub.
	Commits sources.CommitLookup `yaml:"-"`
}

// KubernetesMode reads Application resources (Argo CD in the same
// cluster, or "Argo CD Core" with no argocd-server).
type KubernetesMode struct {
	Enabled    bool     `yaml:"enabled"`
	Kubeconfig string   `yaml:"kubeconfig"` // empty: the Kubernetes source's, else in-cluster
	Namespaces []string `yaml:"namespaces"` // where apps live; empty: all
}

// Defaults fills unset fields.
func (c *Config) Defaults() {
	if c.Refresh == 0 {
		c.Refresh = 30 * time.Second
	}
	if c.AppLabel == "" {
		c.AppLabel = "argocd_app"
	}
	if c.UIURL == "" {
		c.UIURL = c.Server
	}
}

// Validate returns problems by key.
func (c Config) Validate() map[string]string {
	errs := map[string]string{}
	if c.Server == "" && !c.Kubernetes.Enabled {
		errs["server"] = "set server (REST API) or kubernetes.enabled (Application resources), or both"
	}
	for key, v := range map[string]string{"server": c.Server, "ui_url": c.UIURL} {
		if v == "" {
			continue
		}
		if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs[key] = "not an http(s) URL"
		}
	}
	if c.Refresh < 5*time.Second {
		errs["refresh"] = "must be at least 5s"
	}
	return errs
}
