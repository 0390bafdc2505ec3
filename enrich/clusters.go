package enrich

import (
	"fmt"
	"strings"

	"github.com/whatchanged/whatchanged/sources"
)

// DefaultClusterLabel is the label that names an alert's cluster, as
// kube-prometheus-stack's externalLabels and most multi-cluster setups
// write it.
const DefaultClusterLabel = "cluster"

// ClusterSpec is one Kubernetes cluster alerts may come from.
type ClusterSpec struct {
	Name string
	// Default takes the alerts that carry no cluster label.
	Default bool
	// Match and MatchRE pick the cluster's alerts (as rules do); when both
	// are empty, the cluster label equals the name.
	Match, MatchRE map[string]string
}

// Clusters picks the cluster of an alert when more than one is configured.
type Clusters struct {
	label string
	list  []compiledRule // in order, named after the cluster
	names []string
	known map[string]bool
	deflt string
}

// ClusterError names the cluster and matcher that do not compile.
type ClusterError struct {
	Index int
	Key   string
	Err   error
}

func (e *ClusterError) Error() string {
	return fmt.Sprintf("clusters[%d].%s: %v", e.Index, e.Key, e.Err)
}

// NewClusters compiles the specs; a bad matcher is reported with its key
// (clusters[i].match_re.<label>).
func NewClusters(label string, specs []ClusterSpec) (*Clusters, error) {
	if label == "" {
		label = DefaultClusterLabel
	}
	c := &Clusters{label: label, known: map[string]bool{}}
	for i, sp := range specs {
		c.names = append(c.names, sp.Name)
		c.known[sp.Name] = true
		if sp.Default {
			c.deflt = sp.Name
		}
		cr := compiledRule{name: sp.Name, exact: sp.Match}
		if len(sp.Match) == 0 && len(sp.MatchRE) == 0 {
			cr.exact = map[string]string{label: sp.Name}
		}
		re, key, err := compileMatchRE(sp.MatchRE)
		if err != nil {
			return nil, &ClusterError{Index: i, Key: key, Err: err}
		}
		cr.re = re
		c.list = append(c.list, cr)
	}
	return c, nil
}

// pick is the cluster of an alert's labels, and why; "" with a reason when
// none is configured for it.
func (c *Clusters) pick(labels map[string]string) (name, from string) {
	for _, cr := range c.list {
		if cr.Matches(labels) {
			return cr.name, "cluster " + cr.name + "'s matchers"
		}
	}
	v, has := labels[c.label]
	switch {
	case has && v != "":
		return v, "label " + c.label + " (not a configured cluster)"
	case c.deflt != "":
		return c.deflt, "default cluster (no label " + c.label + ")"
	}
	return "", ""
}

// Err says why an alert of this subject gets no Kubernetes answer: its
// cluster is not configured, or it names none and none is the default.
func (c *Clusters) Err(subj sources.Subject) string {
	if c == nil || c.known[subj.Cluster] {
		return ""
	}
	known := strings.Join(c.names, ", ")
	if subj.Cluster == "" {
		return fmt.Sprintf("the alert has no %s label and no cluster is the default (known: %s)", c.label, known)
	}
	return fmt.Sprintf("cluster %q is not configured (known: %s)", subj.Cluster, known)
}
