package kube_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/whatchanged/whatchanged/enrich"
	"github.com/whatchanged/whatchanged/sources"
	"github.com/whatchanged/whatchanged/sources/kube"
)

var (
	kustomizationsGVR  = schema.GroupVersionResource{Group: "kustomize.toolkit.fluxcd.io", Version: "v1", Resource: "kustomizations"}
	helmReleasesGVR    = schema.GroupVersionResource{Group: "helm.toolkit.fluxcd.io", Version: "v2", Resource: "helmreleases"}
	gitRepositoriesGVR = schema.GroupVersionResource{Group: "source.toolkit.fluxcd.io", Version: "v1", Resource: "gitrepositories"}
)

var fluxOnce struct {
	sync.Once
	err error
}

// installFluxCRDs installs Flux's Kustomization, HelmRelease and
// GitRepository CRDs (test/testdata, upstream files) once, and waits until
// they are served.
func installFluxCRDs(t *testing.T) {
	t.Helper()
	fluxOnce.Do(func() {
		_, fluxOnce.err = envtest.InstallCRDs(env.Config, envtest.CRDInstallOptions{Paths: []string{
			filepath.Join("..", "testdata", "flux-kustomization-crd.yaml"),
			filepath.Join("..", "testdata", "flux-helmrelease-crd.yaml"),
			filepath.Join("..", "testdata", "flux-gitrepository-crd.yaml"),
		}, ErrorIfPathMissing: true})
	})
	if fluxOnce.err != nil {
		t.Fatalf("install the Flux CRDs: %v", fluxOnce.err)
	}
}

// fluxObject creates a Flux object under its real CRD, then writes its
// status through the status subresource, as the controller does.
func fluxObject(t *testing.T, dyn dynamic.Interface, gvr schema.GroupVersionResource, obj, status map[string]any) {
	t.Helper()
	c := context.Background()
	u := &unstructured.Unstructured{Object: obj}
	created, err := dyn.Resource(gvr).Namespace(u.GetNamespace()).Create(c, u, metav1.CreateOptions{FieldValidation: "Strict"})
	if err != nil {
		t.Fatalf("create %s %s (validated by the real CRD): %v", u.GetKind(), u.GetName(), err)
	}
	if status == nil {
		return
	}
	created.Object["status"] = status
	if _, err := dyn.Resource(gvr).Namespace(u.GetNamespace()).UpdateStatus(c, created, metav1.UpdateOptions{FieldValidation: "Strict"}); err != nil {
		t.Fatalf("write the status of %s %s: %v", u.GetKind(), u.GetName(), err)
	}
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func ready(status, reason, message string, at time.Time) map[string]any {
	return map[string]any{"type": "Ready", "status": status, "reason": reason, "message": message, "lastTransitionTime": rfc3339(at)}
}

func fluxChange(chs []sources.Change, id string) *sources.Change {
	for i := range chs {
		if chs[i].Source == "flux" && chs[i].ID == id {
			return &chs[i]
		}
	}
	return nil
}

// Flux under its real CRDs: a Kustomization with status.history applied
// the workload (a sync with the commit, the one before and the compare
// link of its GitRepository); without history, the Ready condition says
// when the last revision was applied, or failed; a HelmRelease's history
// names the chart.
func TestFluxSyncs(t *testing.T) {
	installFluxCRDs(t)
	const (
		sha1     = "1111111aaaaaaabbbbbbbcccccccdddddddeeeee"
		sha2     = "9f1c2e7a4b3d5e6f7a8b9c0d1e2f3a4b5c6d7e8f"
		sha3     = "3333333aaaaaaabbbbbbbcccccccdddddddeeeee"
		sha4     = "4444444aaaaaaabbbbbbbcccccccdddddddeeeee"
		urlToken = "ghp-MARKER-token" // credentials in the URL, as some write them
	)
	newNamespace(t, "flux-system")
	ns := "cart"
	newNamespace(t, ns)
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	first1, first2 := now.Add(-50*time.Minute), now.Add(-2*time.Minute)

	fluxObject(t, dyn, gitRepositoriesGVR, map[string]any{
		"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
		"metadata": map[string]any{"name": "cart-repo", "namespace": "flux-system"},
		"spec": map[string]any{"interval": "1m", "url": "https://flux-bot:" + urlToken + "@github.com/acme/cart.git",
			"ref": map[string]any{"branch": "main"}},
	}, nil)
	kustomization := func(name string, status map[string]any) {
		fluxObject(t, dyn, kustomizationsGVR, map[string]any{
			"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
			"metadata": map[string]any{"name": name, "namespace": "flux-system"},
			"spec": map[string]any{"interval": "10m", "path": "./deploy/" + name, "prune": true,
				"sourceRef": map[string]any{"kind": "GitRepository", "name": "cart-repo"}},
		}, status)
	}
	snapshot := func(sha string, first time.Time, duration, status string) map[string]any {
		return map[string]any{"digest": "sha256:" + strings.Repeat(sha[:1], 64), "firstReconciled": rfc3339(first), "lastReconciled": rfc3339(first.Add(time.Minute)),
			"lastReconciledDuration": duration, "lastReconciledStatus": status, "totalReconciliations": int64(3),
			"metadata": map[string]any{"revision": "main@sha1:" + sha}}
	}
	kustomization("cart", map[string]any{
		"lastAppliedRevision": "main@sha1:" + sha2, "lastAttemptedRevision": "main@sha1:" + sha2,
		"conditions": []any{ready("True", "ReconciliationSucceeded", "Applied revision: main@sha1:"+sha2, first2.Add(3*time.Second))},
		"history": []any{ // newest first; Flux keeps one entry per digest and status
			snapshot(sha2, first2, "2.5s", "ReconciliationSucceeded"),
			snapshot(sha2, now.Add(-10*time.Minute), "5m0s", "HealthCheckFailed"), // the same commit, failing its health check first
			snapshot(sha1, first1, "49.8s", "HealthCheckFailed"),
		},
	})
	kustomization("legacy", map[string]any{
		"lastAppliedRevision": "main@sha1:" + sha3, "lastAttemptedRevision": "main@sha1:" + sha3,
		"conditions": []any{ready("True", "ReconciliationSucceeded", "Applied revision: main@sha1:"+sha3, now.Add(-5*time.Minute))},
	})
	kustomization("broken", map[string]any{
		"lastAppliedRevision": "main@sha1:" + sha3, "lastAttemptedRevision": "main@sha1:" + sha4,
		"conditions": []any{ready("False", "BuildFailed", "kustomize build failed: accumulating resources", now.Add(-4*time.Minute))},
	})
	fluxObject(t, dyn, helmReleasesGVR, map[string]any{
		"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
		"metadata": map[string]any{"name": "payments", "namespace": "flux-system"},
		"spec": map[string]any{"interval": "5m", "chart": map[string]any{"spec": map[string]any{
			"chart": "payments", "version": "1.3.x", "sourceRef": map[string]any{"kind": "HelmRepository", "name": "acme"}}}},
	}, map[string]any{
		"lastAttemptedRevision": "1.3.0",
		"conditions":            []any{ready("True", "UpgradeSucceeded", "Helm upgrade succeeded for release cart/payments.v4 with chart payments@1.3.0", now.Add(-3*time.Minute))},
		"history": []any{
			map[string]any{"name": "payments", "namespace": ns, "version": int64(4), "status": "deployed", "chartName": "payments", "chartVersion": "1.3.0",
				"appVersion": "2.1.0", "digest": "sha256:" + strings.Repeat("a", 64), "configDigest": "sha256:" + strings.Repeat("b", 64),
				"firstDeployed": rfc3339(now.Add(-40 * 24 * time.Hour)), "lastDeployed": rfc3339(now.Add(-3 * time.Minute))},
			map[string]any{"name": "payments", "namespace": ns, "version": int64(3), "status": "superseded", "chartName": "payments", "chartVersion": "1.2.0",
				"appVersion": "2.0.0", "digest": "sha256:" + strings.Repeat("c", 64), "configDigest": "sha256:" + strings.Repeat("d", 64),
				"firstDeployed": rfc3339(now.Add(-40 * 24 * time.Hour)), "lastDeployed": rfc3339(now.Add(-20 * time.Minute))},
		},
	})
	for name, labels := range map[string]map[string]string{
		"cart":     {"kustomize.toolkit.fluxcd.io/name": "cart", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"},
		"legacy":   {"kustomize.toolkit.fluxcd.io/name": "legacy", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"},
		"broken":   {"kustomize.toolkit.fluxcd.io/name": "broken", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"},
		"payments": {"helm.toolkit.fluxcd.io/name": "payments", "helm.toolkit.fluxcd.io/namespace": "flux-system"},
	} {
		createDeployment(t, podDeployment(ns, name, labels, corev1.PodSpec{Containers: []corev1.Container{{Name: name, Image: "acme/" + name + ":1"}}}))
	}

	s := startSource(t, kube.Config{})
	of := func(name string) []sources.Change {
		return changesOf(t, s, sources.Subject{Namespace: ns, Kind: "Deployment", Name: name})
	}

	eventually(t, 10*time.Second, "the workloads and the Flux objects cached", func() bool {
		return fluxChange(of("cart"), "flux/Kustomization/flux-system/cart@main@sha1:"+sha2) != nil
	})
	chs := of("cart")
	c := fluxChange(chs, "flux/Kustomization/flux-system/cart@main@sha1:"+sha2)
	if c.Kind != sources.KindSync || c.Revision != sha2 || c.Version != "main" || c.PreviousRevision != sha1 ||
		c.CompareURL != "https://github.com/acme/cart/compare/"+sha1+"..."+sha2 || !c.StartedAt.Equal(first2) ||
		!c.FinishedAt.Equal(first2.Add(2500*time.Millisecond)) || c.Status != sources.StatusSucceeded ||
		c.DeployedBy != "flux Kustomization flux-system/cart" || c.Subject.Name != "cart" || c.Subject.Repo != "github.com/acme/cart" {
		t.Errorf("sync of %s = %+v", sha2[:7], c)
	}
	if old := fluxChange(chs, "flux/Kustomization/flux-system/cart@main@sha1:"+sha1); old == nil || old.Revision != sha1 ||
		old.Status != sources.StatusFailed || old.PreviousRevision != "" || old.CompareURL != "" || !old.StartedAt.Equal(first1) {
		t.Errorf("the older snapshot (health check failed) = %+v", old)
	}

	if l := fluxChange(of("legacy"), "flux/Kustomization/flux-system/legacy@main@sha1:"+sha3); l == nil || l.Revision != sha3 || l.Version != "main" ||
		!l.StartedAt.Equal(now.Add(-5*time.Minute)) || l.Status != sources.StatusSucceeded || l.Subject.Repo != "github.com/acme/cart" {
		t.Errorf("without history, from the Ready condition = %+v (all: %+v)", l, of("legacy"))
	}
	if b := fluxChange(of("broken"), "flux/Kustomization/flux-system/broken@main@sha1:"+sha4); b == nil || b.Revision != sha4 ||
		b.Status != sources.StatusFailed || b.Message != "kustomize build failed: accumulating resources" || !b.StartedAt.Equal(now.Add(-4*time.Minute)) {
		t.Errorf("a failed apply without history = %+v (all: %+v)", b, of("broken"))
	}

	hr := of("payments")
	if p := fluxChange(hr, "flux/HelmRelease/flux-system/payments@4"); p == nil || p.Chart != "payments-1.3.0" || p.Version != "2.1.0" ||
		!p.StartedAt.Equal(now.Add(-3*time.Minute)) || p.Status != sources.StatusSucceeded || p.DeployedBy != "flux HelmRelease flux-system/payments" {
		t.Errorf("HelmRelease revision 4 = %+v (all: %+v)", p, hr)
	}
	if p := fluxChange(hr, "flux/HelmRelease/flux-system/payments@3"); p == nil || p.Chart != "payments-1.2.0" || p.Version != "2.0.0" {
		t.Errorf("HelmRelease revision 3 = %+v (all: %+v)", p, hr)
	}

	// Through the pipeline: alerts on cart and payments name the syncs.
	resolver, err := enrich.NewResolver(nil, s)
	if err != nil {
		t.Fatal(err)
	}
	e := enrich.New(enrich.Options{}, resolver, []enrich.SourceEntry{{Source: s}}, nil)
	for name, want := range map[string]string{
		"cart":     "flux sync of cart 9f1c2e7",
		"payments": "flux sync of payments",
	} {
		alert := &enrich.Alert{Labels: map[string]string{"alertname": "Errors", "namespace": ns, "deployment": name}, StartsAt: now.Add(-time.Minute)}
		e.Enrich(context.Background(), []*enrich.Alert{alert}, nil)
		t.Logf("%s: whatchanged_summary:\n%s", name, alert.Annotations["whatchanged_summary"])
		if got := alert.Annotations["whatchanged_suspect"]; !strings.HasPrefix(got, want) {
			t.Errorf("%s: whatchanged_suspect = %q, want %q…", name, got, want)
		}
	}

	out, err := json.Marshal(append(chs, hr...))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "MARKER") || strings.Contains(string(out), "flux-bot") {
		t.Errorf("the GitRepository's credentials are in the changes:\n%s", out)
	}
}
