package enrich

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/whatchanged/whatchanged/sources"
)

// clusterSource is one cluster's Kubernetes source.
type clusterSource struct {
	staticSource
	cluster string
}

func (c *clusterSource) Cluster() string { return c.cluster }

func clusterRollout(cluster, source, image string, at time.Time) sources.Change {
	ch := rollout(sources.Subject{Namespace: "shop", Kind: "Deployment", Name: "api", Cluster: cluster}, "2", image, at)
	ch.Source = source
	return ch
}

func TestAlertsGoToTheirOwnCluster(t *testing.T) {
	a := &clusterSource{staticSource{name: "kubernetes@a", changes: []sources.Change{clusterRollout("a", "kubernetes@a", "acme/api:a-2", t0.Add(-5*time.Minute))}}, "a"}
	b := &clusterSource{staticSource{name: "kubernetes@b", changes: []sources.Change{clusterRollout("b", "kubernetes@b", "acme/api:b-9", t0.Add(-7*time.Minute))}}, "b"}
	// A source for every cluster (pushed changes), with a change naming b.
	pushed := &staticSource{name: "changes", changes: []sources.Change{{Source: "changes", Kind: sources.KindConfig, ID: "c1",
		Subject: sources.Subject{Namespace: "shop", Name: "api", Cluster: "b"}, StartedAt: t0.Add(-2 * time.Minute)}}}
	r, err := NewResolver(nil)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := NewClusters("", []ClusterSpec{{Name: "a", Default: true}, {Name: "b", MatchRE: map[string]string{"k8s_cluster": "b|prod-b"}}})
	if err != nil {
		t.Fatal(err)
	}
	e := New(Options{}, r.WithClusters(cl), []SourceEntry{{Source: a}, {Source: b}, {Source: pushed}}, nil)
	e.now = func() time.Time { return t0 }
	t.Cleanup(e.StopProbes)

	enrichOne := func(labels map[string]string) (*Alert, AlertReport) {
		al := alert(labels)
		return al, e.Enrich(context.Background(), []*Alert{al}, nil).Alerts[0]
	}
	base := func(more ...string) map[string]string {
		l := map[string]string{"namespace": "shop", "deployment": "api"}
		for i := 0; i+1 < len(more); i += 2 {
			l[more[i]] = more[i+1]
		}
		return l
	}

	_, rep := enrichOne(base("cluster", "a"))
	if rep.Subject.Cluster != "a" || rep.Suspect == nil || rep.Suspect.Images[0].To != "acme/api:a-2" || len(rep.Ranking) != 1 {
		t.Errorf("cluster a: subject %+v, ranking %+v", rep.Subject, rep.Ranking)
	}
	if b.calls.Load() != 0 {
		t.Errorf("cluster b's source was asked about an alert of cluster a")
	}
	// b by its own matchers; the pushed change naming b is related.
	_, rep = enrichOne(base("k8s_cluster", "prod-b", "cluster", "ignored"))
	if rep.Subject.Cluster != "b" || len(rep.Ranking) != 2 || rep.Suspect == nil || rep.Suspect.ID != "c1" {
		t.Errorf("cluster b: subject %+v, ranking %+v", rep.Subject, rep.Ranking)
	}
	// No label: the default cluster.
	if _, rep = enrichOne(base()); rep.Subject.Cluster != "a" {
		t.Errorf("no cluster label: %+v, want the default a", rep.Subject)
	}
	// An unknown cluster: no Kubernetes answer, a clear error, and the
	// sources of every cluster still asked.
	calls := a.calls.Load() + b.calls.Load()
	al, rep := enrichOne(base("cluster", "c"))
	if a.calls.Load()+b.calls.Load() != calls || len(rep.Ranking) != 0 {
		t.Errorf("unknown cluster: asked a cluster's source, ranking %+v", rep.Ranking)
	}
	if got := al.Annotations["whatchanged_error"]; got != `cluster "c" is not configured (known: a, b)` {
		t.Errorf("whatchanged_error %q", got)
	}
	if pushed.calls.Load() == 0 {
		t.Errorf("the pushed-changes source was never asked")
	}
}

func TestNoDefaultClusterSaysSo(t *testing.T) {
	cl, err := NewClusters("k8s_cluster", []ClusterSpec{{Name: "eu"}, {Name: "us"}})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := NewResolver(nil)
	e := New(Options{}, r.WithClusters(cl), nil, nil)
	e.now = func() time.Time { return t0 }
	al := alert(map[string]string{"namespace": "shop", "deployment": "api"})
	e.Enrich(context.Background(), []*Alert{al}, nil)
	if got := al.Annotations["whatchanged_error"]; got != "the alert has no k8s_cluster label and no cluster is the default (known: eu, us)" {
		t.Errorf("whatchanged_error %q", got)
	}
	if _, err := NewClusters("", []ClusterSpec{{Name: "x", MatchRE: map[string]string{"cluster": "("}}}); err == nil || !strings.Contains(err.Error(), "clusters[0].match_re.cluster") {
		t.Errorf("bad matcher: %v", err)
	}
}
