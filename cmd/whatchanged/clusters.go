package main

import (
	"errors"
	"fmt"
	"regexp"

	"github.com/whatchanged/whatchanged/enrich"
	"github.com/whatchanged/whatchanged/sources/kube"
)

// ClusterConfig is one Kubernetes cluster behind a central Alertmanager:
// its API server (kubeconfig file and context, or in-cluster), optionally
// the Argo CD that runs in it, and the matchers that pick its alerts
// (default: cluster_label equals the name).
type ClusterConfig struct {
	Name    string            `yaml:"name"`
	Default bool              `yaml:"default"` // takes alerts without the cluster label
	Match   map[string]string `yaml:"match"`
	MatchRE map[string]string `yaml:"match_re"`
	// Kubernetes is the cluster's Kubernetes source (always on).
	Kubernetes kube.Config `yaml:"kubernetes"`
	// ArgoCD is an Argo CD that deploys to this cluster only; one that
	// deploys to several is sources.argocd with clusters: {destination: name}.
	ArgoCD ArgoCDSourceConfig `yaml:"argocd"`
}

// ClustersConfig lists the clusters; empty: sources.kubernetes is the one
// cluster (or none), matching every alert.
type ClustersConfig []ClusterConfig

// clusterName: a Kubernetes-style name, as it appears in labels, source
// names (kubernetes@name) and metrics.
var clusterName = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9_.-]{0,61}[a-zA-Z0-9])?$`)

func (*ClustersConfig) key() string { return "clusters" }

func (cs *ClustersConfig) finish(c *Config, p problems) {
	if len(*cs) == 0 {
		return
	}
	if c.Sources.Kubernetes.Enabled {
		p.bad("", "set clusters or sources.kubernetes, not both (sources.kubernetes is the one-cluster form)")
	}
	seen := map[string]bool{}
	defaults := 0
	var specs []enrich.ClusterSpec
	for i := range *cs {
		cl := &(*cs)[i]
		at := p.in(fmt.Sprintf("[%d]", i))
		switch {
		case !clusterName.MatchString(cl.Name):
			at.bad("name", fmt.Sprintf("%q: want a name of letters, digits, '-', '_' or '.' (as the cluster label says it)", cl.Name))
		case seen[cl.Name]:
			at.bad("name", fmt.Sprintf("%q is configured twice", cl.Name))
		}
		seen[cl.Name] = true
		if cl.Default {
			defaults++
		}
		cl.Kubernetes.Cluster = cl.Name
		cl.Kubernetes.Defaults()
		for k, msg := range cl.Kubernetes.Validate() {
			at.bad("kubernetes."+k, msg)
		}
		if cl.ArgoCD.Enabled {
			cl.ArgoCD.Cluster = cl.Name
			cl.ArgoCD.finish(c, at.in("argocd"))
		}
		specs = append(specs, enrich.ClusterSpec{Name: cl.Name, Default: cl.Default, Match: cl.Match, MatchRE: cl.MatchRE})
	}
	if defaults > 1 {
		p.bad("", "at most one cluster may be the default")
	}
	if _, err := enrich.NewClusters(c.ClusterLabel, specs); err != nil {
		var ce *enrich.ClusterError
		if errors.As(err, &ce) {
			p.bad(fmt.Sprintf("[%d].%s", ce.Index, ce.Key), ce.Err.Error())
		} else {
			p.bad("", err.Error())
		}
	}
}

// specs are the clusters as the resolver picks them.
func (cs ClustersConfig) specs() []enrich.ClusterSpec {
	out := make([]enrich.ClusterSpec, len(cs))
	for i, cl := range cs {
		out[i] = enrich.ClusterSpec{Name: cl.Name, Default: cl.Default, Match: cl.Match, MatchRE: cl.MatchRE}
	}
	return out
}

// build adds each cluster's Kubernetes source, named kubernetes@<name>
// (and argocd@<name>) when there are several, so health, metrics and the
// summary's source list name the cluster.
func (cs *ClustersConfig) build(b *builder) error {
	for i := range *cs {
		cl := &(*cs)[i]
		suffix := ""
		if len(*cs) > 1 {
			suffix = "@" + cl.Name
		}
		clients, _, err := kube.ClientsFromConfig(cl.Kubernetes)
		if err != nil {
			return fmt.Errorf("clusters[%d] (%s): %w", i, cl.Name, err)
		}
		src := kube.New("kubernetes"+suffix, cl.Kubernetes, clients, b.log)
		b.a.kubes = append(b.a.kubes, src)
		b.addSource(src, cl.Kubernetes.Timeout)
		if cl.ArgoCD.Enabled {
			if cl.ArgoCD.Kubernetes.Enabled && cl.ArgoCD.Kubernetes.Kubeconfig == "" {
				cl.ArgoCD.Kubernetes.Kubeconfig, cl.ArgoCD.kubeContext = cl.Kubernetes.Kubeconfig, cl.Kubernetes.Context
			}
			if err := cl.ArgoCD.buildAs(b, "argocd"+suffix); err != nil {
				return fmt.Errorf("clusters[%d] (%s) argocd: %w", i, cl.Name, err)
			}
		}
	}
	return nil
}
