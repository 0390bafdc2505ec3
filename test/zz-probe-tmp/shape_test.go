package scenarios_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// TestFakeApplicationShape creates every application the fake argocd-server
// serves, for every scenario, as an Application resource with strict field
// validation against the upstream CRD: a field the real Application does
// not have, or of the wrong type, fails here.
func TestFakeApplicationShape(t *testing.T) {
	scenarios, err := loadScenarios(".") // files that do not load are TestScenarios' to report
	if err != nil {
		t.Fatal(err)
	}
	gvr := schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applications"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := 0
	for _, sc := range scenarios {
		f := &argocdFake{sc: sc, startsAt: time.Now().UTC().Truncate(time.Second)}
		for _, a := range sc.ArgoCD.Applications {
			b, err := json.Marshal(f.application(a))
			if err != nil {
				t.Fatal(err)
			}
			u := &unstructured.Unstructured{}
			if err := json.Unmarshal(b, &u.Object); err != nil {
				t.Fatal(err)
			}
			u.SetAPIVersion("argoproj.io/v1alpha1")
			u.SetKind("Application")
			// Set by the API server, not by a client.
			for _, f := range []string{"uid", "resourceVersion", "generation", "creationTimestamp"} {
				unstructured.RemoveNestedField(u.Object, "metadata", f)
			}
			ns := u.GetNamespace()
			if err := ensureNamespace(ctx, ns); err != nil {
				t.Fatal(err)
			}
			_, err = dyn.Resource(gvr).Namespace(ns).Create(ctx, u, metav1.CreateOptions{FieldValidation: "Strict"})
			if err != nil {
				t.Errorf("%s: application %s/%s does not have the real shape: %v\n%s", sc.file, ns, a.Name, err, b)
				continue
			}
			n++
			if err := dyn.Resource(gvr).Namespace(ns).Delete(ctx, u.GetName(), metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("%d applications validated", n)
}

func TestParseOffset(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"0": 0, "-6m": -6 * time.Minute, "+10m": 10 * time.Minute, "-3d": -72 * time.Hour,
		"-1d12h": -36 * time.Hour, "90s": 90 * time.Second, "-2h30m": -150 * time.Minute,
	} {
		got, err := ParseOffset(in)
		if err != nil || got.D != want {
			t.Errorf("ParseOffset(%q) = %v, %v; want %v", in, got.D, err, want)
		}
	}
	for _, in := range []string{"", "-", "yesterday", "-3x", "--5m", "d"} {
		if _, err := ParseOffset(in); err == nil {
			t.Errorf("ParseOffset(%q): want an error", in)
		}
	}
}
