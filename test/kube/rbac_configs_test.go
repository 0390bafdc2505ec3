package kube_test

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/whatchanged/whatchanged/sources/kube"
)

var (
	configMapsGVR = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	secretsGVR    = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
)

// access lists a resource as the ServiceAccount (a real request, so the
// rendered RBAC alone decides) and reports whether it was allowed; any
// other error fails the test.
func access(t *testing.T, rc *rest.Config, gvr schema.GroupVersionResource, ns string) bool {
	t.Helper()
	_, err := dynamic.NewForConfigOrDie(rc).Resource(gvr).Namespace(ns).List(context.Background(), metav1.ListOptions{Limit: 1})
	if err != nil && !forbidden(err) {
		t.Fatalf("list %s in %q: %v", gvr.Resource, ns, err)
	}
	return err == nil
}

// readOnly checks that the ServiceAccount cannot write the config objects
// and Flux objects it reads.
func readOnly(t *testing.T, rc *rest.Config, ns string) {
	t.Helper()
	d := dynamic.NewForConfigOrDie(rc)
	c := context.Background()
	obj := func(apiVersion, kind string) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": map[string]any{"name": "x", "namespace": ns}}}
	}
	checks := map[string]error{}
	_, checks["create configmap"] = d.Resource(configMapsGVR).Namespace(ns).Create(c, obj("v1", "ConfigMap"), metav1.CreateOptions{})
	_, checks["create secret"] = d.Resource(secretsGVR).Namespace(ns).Create(c, obj("v1", "Secret"), metav1.CreateOptions{})
	checks["delete secrets"] = d.Resource(secretsGVR).Namespace(ns).DeleteCollection(c, metav1.DeleteOptions{}, metav1.ListOptions{})
	_, checks["patch configmap"] = d.Resource(configMapsGVR).Namespace(ns).Patch(c, "x", "application/merge-patch+json", []byte(`{}`), metav1.PatchOptions{})
	_, checks["create kustomization"] = d.Resource(kustomizationsGVR).Namespace(ns).Create(c, obj("kustomize.toolkit.fluxcd.io/v1", "Kustomization"), metav1.CreateOptions{})
	_, checks["patch helmrelease"] = d.Resource(helmReleasesGVR).Namespace(ns).Patch(c, "x", "application/merge-patch+json", []byte(`{}`), metav1.PatchOptions{})
	checks["delete gitrepositories"] = d.Resource(gitRepositoriesGVR).Namespace(ns).DeleteCollection(c, metav1.DeleteOptions{}, metav1.ListOptions{})
	for what, err := range checks {
		if !forbidden(err) {
			t.Errorf("%s as the ServiceAccount: err = %v, want forbidden", what, err)
		}
	}
}

// The chart's RBAC for the config objects, Helm records and Flux objects
// the Kubernetes source reads, per setting, proved by the source syncing
// as the chart's ServiceAccount with the matching config (Flux's CRDs
// installed, so "auto" watches them). Values keys assumed:
// sources.kubernetes.{configmaps,secrets,helm,flux}, as the source's
// config keys.
func TestChartRBACConfigObjects(t *testing.T) {
	installFluxCRDs(t)
	ns := "wc-rbac"
	newNamespace(t, ns)
	off := false
	flux := []schema.GroupVersionResource{kustomizationsGVR, helmReleasesGVR, gitRepositoriesGVR}
	for _, tc := range []struct {
		release        string
		set            []string
		cfg            kube.Config
		secrets, cms   bool
		fluxReadable   bool
		namespacedOnly string // the chart limited to this namespace
	}{
		{release: "wc-defaults", cfg: kube.Config{}, cms: true, fluxReadable: true},
		{release: "wc-secrets", set: []string{"sources.kubernetes.secrets=true"}, cfg: kube.Config{Secrets: true}, secrets: true, cms: true, fluxReadable: true},
		{release: "wc-helm", set: []string{"sources.kubernetes.helm=true"}, cfg: kube.Config{Helm: true}, secrets: true, cms: true, fluxReadable: true},
		{release: "wc-minimal", set: []string{"sources.kubernetes.configmaps=false", "sources.kubernetes.flux=off"},
			cfg: kube.Config{ConfigMaps: &off, Flux: "off"}},
		{release: "wc-team", set: []string{"sources.kubernetes.namespaces={" + ns + "}", "sources.kubernetes.secrets=true", "sources.kubernetes.helm=true"},
			cfg: kube.Config{Namespaces: []string{ns}, Secrets: true, Helm: true}, secrets: true, cms: true, fluxReadable: true, namespacedOnly: ns},
	} {
		t.Run(tc.release, func(t *testing.T) {
			var args []string
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			applyChartRBAC(t, tc.release, ns, args...)
			rc := asServiceAccount(ns, tc.release+"-whatchanged")
			startAs(t, rc, tc.cfg)
			scope := "" // cluster-wide
			if tc.namespacedOnly != "" {
				scope = tc.namespacedOnly
			}
			if got := access(t, rc, configMapsGVR, scope); got != tc.cms {
				t.Errorf("list configmaps allowed = %v, want %v", got, tc.cms)
			}
			if got := access(t, rc, secretsGVR, scope); got != tc.secrets {
				t.Errorf("list secrets allowed = %v, want %v", got, tc.secrets)
			}
			for _, gvr := range flux {
				if got := access(t, rc, gvr, scope); got != tc.fluxReadable {
					t.Errorf("list %s allowed = %v, want %v", gvr.Resource, got, tc.fluxReadable)
				}
			}
			if tc.namespacedOnly != "" {
				for _, gvr := range append(flux, configMapsGVR, secretsGVR) {
					if access(t, rc, gvr, "") {
						t.Errorf("list %s cluster-wide allowed to a namespaced release", gvr.Resource)
					}
				}
			}
			readOnly(t, rc, ns)
		})
	}
}
