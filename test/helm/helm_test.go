// Package helm_test checks the chart the way a user meets it: rendered by
// the real helm (WHATCHANGED_HELM), linted strictly, every manifest decoded
// strictly into the real Kubernetes types and dry-run created on a real
// kube-apiserver with prometheus-operator's CRDs, the rendered config
// accepted by the real whatchanged binary, the kube-prometheus-stack
// examples merged into that chart's default values and checked by the real
// amtool, the PrometheusRule by the real promtool, and the README by the
// real helm-docs. `make test` builds each tool and passes its path.
package helm_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"github.com/whatchanged/whatchanged/test/proctest"
)

const (
	chart    = "../../charts/whatchanged"
	examples = chart + "/examples"
	// kubeVersion is the control plane's (the Makefile's KUBE_VERSION; its
	// kube-apiserver, built from source, reports no version), which the
	// dry-run tests apply to. helm built with `go install` would otherwise
	// assume v1.20.
	kubeVersion = "1.34.4"
	namespace   = "monitoring"
)

// tool is the path a `make test` env var gives, or a failure saying so.
func tool(t *testing.T, env string) string {
	t.Helper()
	p := os.Getenv(env)
	if p == "" {
		t.Fatalf("%s is not set; run `make test`, which builds the tools into the cache and sets it", env)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s: %v; run `make tools`", env, err)
	}
	return p
}

func run(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String() + errb.String(), fmt.Errorf("%s %s: %v\n%s%s", filepath.Base(bin), strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String(), nil
}

func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return run(t, tool(t, "WHATCHANGED_HELM"), args...)
}

// template is `helm template` of a chart directory as release "whatchanged"
// in the monitoring namespace.
func template(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	return helm(t, append([]string{"template", "whatchanged", dir, "--namespace", namespace, "--kube-version", kubeVersion}, args...)...)
}

// docs splits helm's output into its YAML documents.
func docs(out string) []string {
	var ds []string
	for _, doc := range strings.Split(out, "\n---") {
		if strings.Contains(doc, "kind:") {
			ds = append(ds, doc)
		}
	}
	return ds
}

// prometheus-operator's kinds are not in client-go's scheme: they are
// checked against their CRDs by the dry-run tests.
var crdKinds = map[string]string{"ServiceMonitor": "monitoring.coreos.com/v1", "PrometheusRule": "monitoring.coreos.com/v1"}

// render runs helm template on the chart and decodes every document
// strictly: an unknown or misspelt field in a manifest fails.
func render(t *testing.T, args ...string) []runtime.Object {
	t.Helper()
	out, err := template(t, chart, args...)
	if err != nil {
		t.Fatal(err)
	}
	strict := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme.Scheme, scheme.Scheme, json.SerializerOptions{Yaml: true, Strict: true})
	var objs []runtime.Object
	for _, doc := range docs(out) {
		var probe unstructured.Unstructured
		if err := yaml.Unmarshal([]byte(doc), &probe.Object); err != nil {
			t.Fatalf("not YAML: %v\n%s", err, doc)
		}
		if v, ok := crdKinds[probe.GetKind()]; ok {
			if probe.GetAPIVersion() != v {
				t.Errorf("%s apiVersion %q, want %s", probe.GetKind(), probe.GetAPIVersion(), v)
			}
			objs = append(objs, &probe)
			continue
		}
		obj, _, err := strict.Decode([]byte(doc), nil, nil)
		if err != nil {
			t.Fatalf("%s %s does not decode strictly into the real type: %v", probe.GetKind(), probe.GetName(), err)
		}
		objs = append(objs, obj)
	}
	return objs
}

// only returns the rendered objects of one Go type.
func only[T runtime.Object](objs []runtime.Object) []T {
	var out []T
	for _, o := range objs {
		if v, ok := o.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func one[T runtime.Object](t *testing.T, objs []runtime.Object) T {
	t.Helper()
	all := only[T](objs)
	if len(all) != 1 {
		var zero T
		t.Fatalf("%d %T rendered, want 1", len(all), zero)
	}
	return all[0]
}

func kinds(objs []runtime.Object) map[string]int {
	m := map[string]int{}
	for _, o := range objs {
		m[o.GetObjectKind().GroupVersionKind().Kind]++
	}
	return m
}

// chartExamples are the chart's own values files; kube-prometheus-stack-*.yaml
// are values of that chart, not this one.
func chartExamples(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(examples, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		if !strings.HasPrefix(filepath.Base(f), "kube-prometheus-stack") {
			out = append(out, f)
		}
	}
	return out
}

func exampleArgs(file string) []string {
	if file == "" {
		return nil
	}
	return []string{"-f", file}
}

func exampleName(file string) string {
	if file == "" {
		return "default"
	}
	return strings.TrimSuffix(filepath.Base(file), ".yaml")
}

// What each example renders; an example missing here fails, so a new one
// cannot go unchecked.
var exampleKinds = map[string]map[string]int{
	"default":    {"Deployment": 1, "Service": 1, "ServiceAccount": 1, "ConfigMap": 1, "ClusterRole": 1, "ClusterRoleBinding": 1, "Secret": 0, "NetworkPolicy": 0},
	"standalone": {"Deployment": 1, "PodDisruptionBudget": 0, "PersistentVolumeClaim": 1, "ServiceMonitor": 1, "PrometheusRule": 1, "NetworkPolicy": 1, "ClusterRole": 1},
	"namespaced": {"Role": 3, "RoleBinding": 3, "PersistentVolumeClaim": 1, "Secret": 1, "ClusterRole": 0},
	"inline":     {"Deployment": 1, "PodDisruptionBudget": 1, "ClusterRole": 1, "Secret": 0},
	// Every secret from an existing Secret; nothing kept in the pod.
	"ha":      {"Deployment": 1, "PodDisruptionBudget": 1, "PersistentVolumeClaim": 0, "Secret": 0, "ServiceMonitor": 1, "PrometheusRule": 1},
	"sidecar": {"Deployment": 0, "Service": 0, "ServiceAccount": 0, "ConfigMap": 1, "ClusterRoleBinding": 1, "NetworkPolicy": 0},
	// The local cluster's RBAC only; the remote ones' is remoteRBAC's.
	"multi-cluster": {"Deployment": 1, "ConfigMap": 1, "ClusterRole": 1, "ClusterRoleBinding": 1, "Role": 0, "Secret": 0},
}

func TestEveryExampleLintsAndRendersStrictly(t *testing.T) {
	files := append([]string{""}, chartExamples(t)...)
	if len(files) != len(exampleKinds) {
		t.Errorf("examples %v, but exampleKinds lists %d: add the new one there", files, len(exampleKinds))
	}
	for _, file := range files {
		t.Run(exampleName(file), func(t *testing.T) {
			want, ok := exampleKinds[exampleName(file)]
			if !ok {
				t.Fatalf("%s is not in exampleKinds", file)
			}
			if out, err := helm(t, append([]string{"lint", "--strict", "--kube-version", kubeVersion, chart}, exampleArgs(file)...)...); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			got := kinds(render(t, exampleArgs(file)...))
			for kind, n := range want {
				if got[kind] != n {
					t.Errorf("%d %s, want %d (all: %v)", got[kind], kind, n, got)
				}
			}
		})
	}
}

func TestSchemaRejectsTyposAndWrongTypes(t *testing.T) {
	for _, set := range []string{
		"replicas=2", // the old name: replicaCount
		"replicaCount=two",
		"sources.kubernetes.namespace=shop",
		"mode=daemon",
		"downstream.url=ftp://x",
		"enrich.budget=fast",
		"enrich.annotations.changes_json=sometimes",
		"image.digest=latest",
		"sidecar.port=8080", // the operator's config-reloader's
		"downstream.httpConfig.tlsConfig.insecure_skip_verify=true", // http_config is snake_case
		"inline.alertmanager.discovery=srv",
		"networkPolicy.prometheus=everyone",
		"serviceMonitor.interval=30",
		"redis.addr=redis.svc", // no port
		"redis.db=-1",
		"redis.keyPrefix={wc}", // the store adds the hash tag braces itself
		"podAntiAffinityPreset=strict",
		"zoneSpreadPreset=always",
		"configReloader.image.tag=",
	} {
		out, err := helm(t, "template", "whatchanged", chart, "--kube-version", kubeVersion, "--set", set)
		if err == nil || !strings.Contains(out+err.Error(), "values don't meet the specifications of the schema") {
			t.Errorf("--set %s was accepted:\n%s", set, out)
		}
	}
}

// Settings that would install something broken are refused at install,
// with the value to change.
func TestChartRefusesBrokenSettings(t *testing.T) {
	for _, c := range []struct {
		set  []string
		want string
	}{
		{[]string{"sources.argocd.enabled=true", "sources.argocd.server=https://argocd-server.argocd.svc"}, "sources.argocd.existingSecret"},
		{[]string{"sources.github.enabled=true"}, "sources.github.existingSecret"},
		{[]string{"sources.github.enabled=true", "sources.github.app.appID=1"}, "sources.github.app.existingSecret"},
		{[]string{"inline.enabled=true", "inline.alertmanager.enabled=false"}, "inline.enabled needs an upstream"},
		{[]string{"mode=sidecar"}, "sidecar.serviceAccountName"},
		{[]string{"serviceAccount.create=false"}, "serviceAccount.name"},
	} {
		var args []string
		for _, s := range c.set {
			args = append(args, "--set", s)
		}
		out, err := template(t, chart, args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: want an error naming %q, got %v\n%s", c.set, c.want, err, out)
		}
	}
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// whatchanged builds the real binary once for the package.
func whatchanged(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "whatchanged-helm-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath, binErr = proctest.BuildWhatchanged(dir)
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	stopAPIServer()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// setOf is the string set of xs.
func setOf(xs ...string) map[string]bool {
	m := map[string]bool{}
	for _, x := range xs {
		m[x] = true
	}
	return m
}
