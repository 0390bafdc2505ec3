package clusters_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// startsAt is when every test's alert started; the histories are written
// relative to it.
var startsAt = time.Now().Add(-5 * time.Minute).UTC().Truncate(time.Second)

// The same two Deployments run in both clusters with different histories:
// what one cluster rolled out must never be told of the other's alert.
// api carries Argo CD's tracking id (ApplicationSet-style app names, one
// per cluster); worker carries nothing, so only the apps' managed
// resources say which app runs it.
func history(name string) []workload {
	switch name {
	case "a":
		return []workload{
			{namespace: "shop", name: "api", annotations: map[string]string{"argocd.argoproj.io/tracking-id": "a-shop-api:apps/Deployment:shop/api"},
				revisions: []rollout{{"registry.example/shop/api:1.0.0", 72 * time.Hour}, {"registry.example/shop/api:1.1.0", 12 * time.Minute}}},
			{namespace: "shop", name: "worker",
				revisions: []rollout{{"registry.example/shop/worker:1.0.0", 48 * time.Hour}, {"registry.example/shop/worker:1.0.1", 20 * time.Minute}}},
		}
	case "b":
		return []workload{
			{namespace: "shop", name: "api", annotations: map[string]string{"argocd.argoproj.io/tracking-id": "b-shop-api:apps/Deployment:shop/api"},
				revisions: []rollout{{"registry.example/shop/api:2.0.0", 120 * time.Hour}, {"registry.example/shop/api:2.1.0", 48 * time.Hour},
					{"registry.example/shop/api:2.2.0", 30 * time.Minute}}},
			{namespace: "shop", name: "worker",
				revisions: []rollout{{"registry.example/shop/worker:3.0.0", 96 * time.Hour}, {"registry.example/shop/worker:3.1.0", 40 * time.Minute}}},
		}
	}
	return nil
}

// tags are the image tags only that cluster rolled out.
var tags = map[string][]string{
	"a": {"api:1.0.0", "api:1.1.0", "worker:1.0.0", "worker:1.0.1"},
	"b": {"api:2.0.0", "api:2.1.0", "api:2.2.0", "worker:3.0.0", "worker:3.1.0"},
}

// newest is the image each cluster's last api rollout deployed.
var newest = map[string]string{"a": "registry.example/shop/api:1.1.0", "b": "registry.example/shop/api:2.2.0"}

func writeHistory(c *cluster) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, w := range history(c.name) {
		if err := c.write(ctx, w, startsAt); err != nil {
			return fmt.Errorf("cluster %s: %s/%s: %w", c.name, w.namespace, w.name, err)
		}
	}
	return nil
}

func apiAlert(cluster string) map[string]string {
	l := map[string]string{"alertname": "KubeDeploymentReplicasMismatch", "namespace": "shop", "deployment": "api", "severity": "warning"}
	if cluster != "" {
		l["cluster"] = cluster
	}
	return l
}

// checkOwn: the answer is about cluster name's shop/api, its suspect is
// that cluster's last rollout, and nothing of the other cluster's history
// appears anywhere in it.
func checkOwn(t *testing.T, got answer, name string) {
	t.Helper()
	if got.Subject.Cluster != name || got.Subject.Name != "api" {
		t.Errorf("subject %+v, want shop/api in cluster %s", got.Subject, name)
	}
	switch {
	case got.Suspect == nil:
		t.Errorf("cluster %s: no suspect; want the rollout to %s\n%s", name, newest[name], got.body)
	case len(got.Suspect.Images) == 0 || got.Suspect.Images[0].To != newest[name]:
		t.Errorf("cluster %s: suspect %+v, want the rollout to %s", name, *got.Suspect, newest[name])
	case got.Suspect.Subject.Cluster != name:
		t.Errorf("cluster %s: suspect's subject says cluster %q", name, got.Suspect.Subject.Cluster)
	}
	other := map[string]string{"a": "b", "b": "a"}[name]
	for _, tag := range tags[other] {
		if strings.Contains(got.body, tag) {
			t.Errorf("cluster %s's answer tells of cluster %s's %s", name, other, tag)
		}
	}
	var asked []string
	for _, s := range got.Sources {
		asked = append(asked, s.Source)
	}
	if !slices.Contains(asked, "kubernetes@"+name) || slices.Contains(asked, "kubernetes@"+other) {
		t.Errorf("cluster %s's alert asked %v; want kubernetes@%s and not kubernetes@%s", name, asked, name, other)
	}
	if e := got.Annotations["whatchanged_error"]; e != "" {
		t.Errorf("cluster %s: whatchanged_error %q", name, e)
	}
}

// TestEachAlertItsOwnCluster: with a the default and with no default, an
// alert labelled cluster=a or cluster=b gets its own cluster's rollout of
// shop/api, an alert of an unknown cluster says which are known, and an
// alert without the label goes to the default or says there is none.
func TestEachAlertItsOwnCluster(t *testing.T) {
	for _, withDefault := range []bool{true, false} {
		t.Run(fmt.Sprintf("default=%v", withDefault), func(t *testing.T) {
			wc := startWhatchanged(t, clustersConfig(
				clusterEntry{name: "a", deflt: withDefault, kubeconfig: a.kubeconfig},
				clusterEntry{name: "b", kubeconfig: b.kubeconfig}), true)
			for _, name := range []string{"a", "b"} {
				checkOwn(t, wc.enrich(t, apiAlert(name), startsAt), name)
			}

			got := wc.enrich(t, apiAlert("c"), startsAt)
			want := `cluster "c" is not configured (known: a, b)`
			if e := got.Annotations["whatchanged_error"]; !strings.Contains(e, want) {
				t.Errorf("cluster c: whatchanged_error %q, want it to say %q", e, want)
			}
			if got.Suspect != nil {
				t.Errorf("cluster c: suspect %+v; no configured cluster is c's", *got.Suspect)
			}
			for _, tag := range append(tags["a"], tags["b"]...) {
				if strings.Contains(got.body, tag) {
					t.Errorf("cluster c's answer tells of %s", tag)
				}
			}

			got = wc.enrich(t, apiAlert(""), startsAt)
			if withDefault {
				checkOwn(t, got, "a")
				return
			}
			want = "the alert has no cluster label and no cluster is the default (known: a, b)"
			if e := got.Annotations["whatchanged_error"]; !strings.Contains(e, want) {
				t.Errorf("no cluster label: whatchanged_error %q, want it to say %q", e, want)
			}
			if got.Suspect != nil {
				t.Errorf("no cluster label, no default: suspect %+v", *got.Suspect)
			}
		})
	}
}

// TestClusterDown: a cluster's API server goes away. The other cluster's
// alerts are still answered, right and within the budget, and /readyz
// stays 200; the lost cluster's alerts say that their cluster is not
// answering. A whatchanged started while that cluster is down is ready
// once the cluster's sync_timeout has passed (not before: it waits that
// long for it), answers the other cluster's alerts, and says the lost
// cluster's caches are not synced.
func TestClusterDown(t *testing.T) {
	down, err := startCluster("b", filepath.Join(t.TempDir(), "b"))
	if err != nil {
		t.Fatal(err)
	}
	defer down.stop()
	if err := writeHistory(down); err != nil {
		t.Fatal(err)
	}
	config := clustersConfig(clusterEntry{name: "a", deflt: true, kubeconfig: a.kubeconfig}, clusterEntry{name: "b", kubeconfig: down.kubeconfig})
	wc := startWhatchanged(t, config, true)
	checkOwn(t, wc.enrich(t, apiAlert("b"), startsAt), "b")

	stopAt := time.Now()
	down.stop()
	t.Logf("cluster b's control plane stopped in %s", time.Since(stopAt).Round(time.Millisecond))
	for i := range 3 {
		got := wc.enrich(t, apiAlert("a"), startsAt)
		checkOwn(t, got, "a")
		if got.took > answerBound {
			t.Errorf("cluster a's alert #%d with cluster b down took %s, more than the budget's bound %s", i, got.took, answerBound)
		}
		got = wc.enrich(t, apiAlert("b"), startsAt)
		if got.took > answerBound {
			t.Errorf("cluster b's alert #%d with cluster b down took %s, more than the budget's bound %s", i, got.took, answerBound)
		}
		// The caches outlive the API server: b's last known history still
		// answers (and says so once the outage lasts; below).
		if got.Suspect == nil || len(got.Suspect.Images) == 0 || got.Suspect.Images[0].To != newest["b"] {
			t.Errorf("cluster b's alert #%d with its API server gone: suspect %+v, want the cached rollout to %s", i, got.Suspect, newest["b"])
		}
	}
	// Once the watches have failed longer than sync_timeout, b's answers
	// say they come from the cache.
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := wc.enrich(t, apiAlert("b"), startsAt)
		e := got.Annotations["whatchanged_error"]
		if strings.Contains(e, "kubernetes@b: API server unreachable since ") && strings.Contains(e, "(answered from the cache)") {
			t.Logf("cluster b's alerts say it is unreachable %s after it stopped: %s", time.Since(stopAt).Round(time.Second), e)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster b's alerts never said its API server is unreachable: whatchanged_error %q", e)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if got := wc.enrich(t, apiAlert("a"), startsAt); got.Annotations["whatchanged_error"] != "" {
		t.Errorf("cluster a's alert carries cluster b's trouble: %q", got.Annotations["whatchanged_error"])
	}
	if code, body := wc.get(t, "/readyz"); code != 200 {
		t.Errorf("/readyz with cluster b down: %d %s; want 200 (cluster a answers)", code, body)
	}

	// Started while b is down.
	wc = startWhatchanged(t, config, false)
	readyAt := wc.waitReady(t, 30*time.Second)
	t.Logf("started with cluster b down: /readyz 200 after %s", readyAt.Sub(wc.started).Round(time.Millisecond))
	if waited := readyAt.Sub(wc.started); waited < syncTimeout {
		t.Errorf("/readyz 200 %s after start, before cluster b's sync_timeout %s passed", waited, syncTimeout)
	}
	got := wc.enrich(t, apiAlert("a"), startsAt)
	checkOwn(t, got, "a")
	if got.took > answerBound {
		t.Errorf("cluster a's alert took %s, more than the budget's bound %s", got.took, answerBound)
	}
	got = wc.enrich(t, apiAlert("b"), startsAt)
	if got.took > answerBound {
		t.Errorf("cluster b's alert took %s, more than the budget's bound %s", got.took, answerBound)
	}
	e := got.Annotations["whatchanged_error"]
	if !strings.Contains(e, "kubernetes@b") || !strings.Contains(e, "not synced") {
		t.Errorf("cluster b (down since before start): whatchanged_error %q, want kubernetes@b's caches not synced", e)
	}
	if got.Suspect != nil {
		t.Errorf("cluster b (down since before start): suspect %+v", *got.Suspect)
	}
}
