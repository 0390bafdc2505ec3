package kube_test

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/whatchanged/whatchanged/enrich"
	"github.com/whatchanged/whatchanged/sources"
	"github.com/whatchanged/whatchanged/sources/argocd"
	"github.com/whatchanged/whatchanged/sources/kube"
)

var applicationsGVR = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applications"}

// The Argo CD fixtures the REST tests serve are created here, status
// included, under the real Application CRD (so they match the real
// schema), and the Kubernetes-resource mode reads them.
func TestArgoCDApplicationsFromTheKubernetesAPI(t *testing.T) {
	newNamespace(t, "argocd")
	newNamespace(t, "team-a")
	clients, _, err := kube.ClientsFromConfig(kube.Config{Kubeconfig: kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"../../sources/argocd/testdata/shop-api.json", "../../sources/argocd/testdata/platform.json"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var obj map[string]any
		if err := json.Unmarshal(b, &obj); err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{Object: obj}
		created, err := clients.Dynamic.Resource(applicationsGVR).Namespace(u.GetNamespace()).Create(context.Background(), u, metav1.CreateOptions{FieldValidation: "Strict"})
		if err != nil {
			t.Fatalf("%s does not fit the real Application CRD: %v", file, err)
		}
		if h, _, _ := unstructured.NestedSlice(created.Object, "status", "history"); len(h) == 0 {
			t.Fatalf("%s: status was not stored", file)
		}
	}

	s := argocd.New("argocd", argocd.Config{UIURL: "https://argocd.example.com", Kubernetes: argocd.KubernetesMode{Enabled: true}},
		nil, clients.Dynamic, quietLog())
	if err := s.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "applications synced", s.Ready)

	since, until := time.Date(2026, 11, 20, 10, 14, 0, 0, time.UTC), time.Date(2026, 11, 21, 10, 19, 0, 0, time.UTC)
	got, err := s.Changes(context.Background(), sources.Query{Subject: sources.Subject{App: "shop-api"}, Since: since, Until: until})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %+v", got)
	}
	c := got[1]
	// Without the REST API there is no commit metadata: who deployed it is known, not who wrote it.
	if c.Revision != "9f1c2e7a4b3d5e6f7a8b9c0d1e2f3a4b5c6d7e8f" || c.DeployedBy != "alice" || c.Author != "" || c.Version != "deploy/prod@9f1c2e7" ||
		c.URL != "https://argocd.example.com/applications/argocd/shop-api" ||
		c.CompareURL != "https://github.com/acme/api/compare/1111111aaaaaaabbbbbbbcccccccdddddddeeeee...9f1c2e7a4b3d5e6f7a8b9c0d1e2f3a4b5c6d7e8f" {
		t.Errorf("sync 42 from the Application resource = %+v", c)
	}
	if got[0].DeployedBy != "automated sync" {
		t.Errorf("sync 41 deployed by %q", got[0].DeployedBy)
	}
	got, _ = s.Changes(context.Background(), sources.Query{Subject: sources.Subject{App: "team-a_platform"}, Since: since, Until: until})
	if len(got) != 3 || got[2].Status != sources.StatusFailed || !strings.Contains(got[2].Message, "admission webhook") {
		t.Errorf("multi-source app from the Application resource = %+v", got)
	}

	// Through the pipeline, as an alert on the app would be.
	r, _ := enrich.NewResolver(nil, s)
	e := enrich.New(enrich.Options{}, r, []enrich.SourceEntry{{Source: s}}, nil)
	a := &enrich.Alert{Labels: map[string]string{"argocd_app": "shop-api"}, StartsAt: time.Date(2026, 11, 21, 10, 14, 0, 0, time.UTC)}
	rep := e.Enrich(context.Background(), []*enrich.Alert{a}, nil).Alerts[0]
	if got := a.Annotations["whatchanged_suspect"]; got != "argocd sync of shop-api 9f1c2e7 deployed by alice, 11m before the alert started [argocd]" {
		t.Errorf("suspect = %q", got)
	}
	if rep.Subject.Repo != "github.com/acme/api" || rep.Subject.Namespace != "shop" {
		t.Errorf("subject from the app: %+v", rep.Subject)
	}
}
