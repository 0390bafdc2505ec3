package kube

import (
	"time"

	"k8s.io/apimachinery/pkg/labels"
)

// Config of the Kubernetes source.
type Config struct {
	// Cluster names the cluster when several are configured (set from
	// clusters[].name): the source answers only alerts of that cluster and
	// its changes carry the name.
	Cluster string `yaml:"-"`
	// Kubeconfig is a kubeconfig file; empty: in-cluster, then $KUBECONFIG
	// or ~/.kube/config.
	Kubeconfig string `yaml:"kubeconfig"`
	Context    string `yaml:"context"`
	// Namespaces limits what is watched (and what RBAC is needed); empty:
	// all namespaces.
	Namespaces []string `yaml:"namespaces"`
	// LabelSelector limits the watched workloads, ReplicaSets and pods.
	LabelSelector string `yaml:"label_selector"`
	// InstanceLabel is Argo CD's label-tracking key (when the app is not in
	// the argocd.argoproj.io/tracking-id annotation).
	InstanceLabel string `yaml:"instance_label"`
	// RepoAnnotation names the workload annotation holding its source repository.
	RepoAnnotation string `yaml:"repo_annotation"`
	// Rollouts: "auto" watches Argo Rollouts when the CRD exists, "off" never.
	Rollouts string `yaml:"rollouts"`
	// ConfigMaps watches the ConfigMaps workloads use (mounted or as env)
	// and reports their data edits as config changes; on unless false.
	ConfigMaps *bool `yaml:"configmaps"`
	// Secrets reports data changes of the Secrets workloads use (key
	// names only); off by default, as it needs list/watch on Secrets.
	Secrets bool `yaml:"secrets"`
	// Helm reads Helm 3 release records (owner=helm Secrets and
	// ConfigMaps) for `helm install/upgrade/rollback` run from CI.
	Helm bool `yaml:"helm"`
	// Flux: "auto" watches Flux Kustomizations and HelmReleases when their
	// CRDs exist, "off" never.
	Flux string `yaml:"flux"`
	// Resync is the informers' resync period (0: none; watches keep caches fresh).
	Resync time.Duration `yaml:"resync"`
	// Timeout is this source's deadline per query (within the total budget).
	Timeout time.Duration `yaml:"timeout"`
	// SyncTimeout bounds how long /readyz waits for the first cache sync
	// before logging that the API server is unreachable (it keeps trying).
	SyncTimeout time.Duration `yaml:"sync_timeout"`
}

// Defaults fills unset fields.
func (c *Config) Defaults() {
	if c.InstanceLabel == "" {
		c.InstanceLabel = "app.kubernetes.io/instance"
	}
	if c.RepoAnnotation == "" {
		c.RepoAnnotation = "whatchanged.dev/repo"
	}
	if c.Rollouts == "" {
		c.Rollouts = "auto"
	}
	if c.ConfigMaps == nil {
		on := true
		c.ConfigMaps = &on
	}
	if c.Flux == "" {
		c.Flux = "auto"
	}
	if c.SyncTimeout == 0 {
		c.SyncTimeout = 2 * time.Minute
	}
}

// Validate returns problems by key.
func (c Config) Validate() map[string]string {
	errs := map[string]string{}
	if _, err := labels.Parse(c.LabelSelector); err != nil {
		errs["label_selector"] = err.Error()
	}
	if c.Rollouts != "auto" && c.Rollouts != "off" {
		errs["rollouts"] = `must be "auto" or "off"`
	}
	if c.Flux != "auto" && c.Flux != "off" {
		errs["flux"] = `must be "auto" or "off"`
	}

	for k, d := range map[string]time.Duration{"resync": c.Resync, "timeout": c.Timeout, "sync_timeout": c.SyncTimeout} {
		if d < 0 {
			errs[k] = "must not be negative"
		}
	}
	return errs
}
