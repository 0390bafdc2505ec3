package helm_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/whatchanged/whatchanged/test/controlplane"
)

// The namespaces the examples' objects live in.
var exampleNamespaces = []string{namespace, "shop", "payments", "argocd"}

var (
	apiOnce   sync.Once
	apiEnv    *envtest.Environment
	apiClient client.Client
	apiErr    error
)

// apiServer starts, once for the package, a real kube-apiserver and etcd
// with prometheus-operator's CRDs (as kube-prometheus-stack installs them,
// test/testdata/prometheus-operator-crds) beside the Argo CRDs.
func apiServer(t *testing.T) client.Client {
	t.Helper()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set; run `make test`, which builds the control plane into the tool cache")
	}
	apiOnce.Do(func() {
		env := controlplane.Environment(filepath.Join("..", "testdata"))
		env.CRDInstallOptions.Paths = append(env.CRDInstallOptions.Paths, filepath.Join("..", "testdata", "prometheus-operator-crds"))
		cfg, err := env.Start()
		if err != nil {
			apiErr = fmt.Errorf("start control plane: %w", err)
			return
		}
		apiEnv = env
		if apiClient, err = client.New(cfg, client.Options{}); err != nil {
			apiErr = err
			return
		}
		for _, ns := range exampleNamespaces {
			if err := apiClient.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
				apiErr = fmt.Errorf("namespace %s: %w", ns, err)
				return
			}
		}
	})
	if apiErr != nil {
		t.Fatal(apiErr)
	}
	return apiClient
}

func stopAPIServer() {
	if apiEnv != nil {
		_ = apiEnv.Stop()
	}
}

// dryRun creates obj on the API server without storing it, rejecting
// unknown fields: the answer `kubectl apply --dry-run=server
// --validate=strict` gets. Namespaced objects without a namespace go where
// helm install would put them.
func dryRun(t *testing.T, c client.Client, obj *unstructured.Unstructured) error {
	t.Helper()
	namespaced, err := c.IsObjectNamespaced(obj)
	if err != nil {
		return fmt.Errorf("%s: %w", obj.GetKind(), err)
	}
	if namespaced && obj.GetNamespace() == "" {
		obj.SetNamespace(namespace)
	}
	err = c.Create(context.Background(), obj, client.DryRunAll, client.FieldValidation(metav1.FieldValidationStrict))
	if err != nil {
		return fmt.Errorf("the API server refused %s %s/%s: %w", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
	}
	return nil
}

func unstructuredDocs(t *testing.T, out string) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	for _, doc := range docs(out) {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatalf("not YAML: %v\n%s", err, doc)
		}
		objs = append(objs, u)
	}
	return objs
}

// Every object of every example, the ServiceMonitor and the PrometheusRule
// included, is accepted by the real API server with prometheus-operator's
// CRDs.
func TestEveryExampleIsAcceptedByTheAPIServer(t *testing.T) {
	c := apiServer(t)
	files := append([]string{"", fullValues, conventionsValues}, chartExamples(t)...)
	seen := map[string]bool{}
	for _, file := range files {
		t.Run(exampleName(file), func(t *testing.T) {
			out, err := template(t, chart, exampleArgs(file)...)
			if err != nil {
				t.Fatal(err)
			}
			for _, obj := range unstructuredDocs(t, out) {
				seen[obj.GetKind()] = true
				if err := dryRun(t, c, obj); err != nil {
					t.Error(err)
				}
			}
		})
	}
	for _, kind := range []string{"Deployment", "ServiceMonitor", "PrometheusRule", "NetworkPolicy", "PodDisruptionBudget", "PersistentVolumeClaim", "Role", "ClusterRole"} {
		if !seen[kind] {
			t.Errorf("no example renders a %s, so none was checked", kind)
		}
	}
}

// The API server's strictness is what the tests above rely on: the shape
// the inline example once had (bearerTokenSecret on an alerting endpoint,
// a field the Prometheus CRD does not have) is refused, where a plain
// apply would drop it silently and Prometheus would send no token.
func TestAPIServerRefusesUnknownFields(t *testing.T) {
	c := apiServer(t)
	prom := prometheusCR(t, []any{map[string]any{
		"namespace": namespace, "name": "whatchanged", "port": "http", "apiVersion": "v2",
		"bearerTokenSecret": map[string]any{"name": "whatchanged-auth", "key": "token"},
	}})
	err := dryRun(t, c, prom)
	if err == nil || !strings.Contains(err.Error(), "bearerTokenSecret") {
		t.Errorf("an alerting endpoint with bearerTokenSecret: err = %v, want it refused as an unknown field", err)
	}
}
