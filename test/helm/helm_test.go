// Package helm_test renders the chart with the real helm binary (built by
// `make tools`, passed in WHATCHANGED_HELM) for every documented mode and
// decodes every manifest strictly into the real Kubernetes types.
package helm_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

const chart = "../../charts/whatchanged"

func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin := os.Getenv("WHATCHANGED_HELM")
	if bin == "" {
		t.Fatal("WHATCHANGED_HELM is not set; run `make test`, which builds helm into the tool cache")
	}
	cmd := exec.Command(bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String() + errb.String(), fmt.Errorf("helm %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

// Render runs helm template and decodes every document strictly: an
// unknown or misspelt field in a manifest fails.
func render(t *testing.T, args ...string) []runtime.Object {
	t.Helper()
	out, err := helm(t, append([]string{"template", "whatchanged", chart, "--namespace", "monitoring"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	strict := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme.Scheme, scheme.Scheme, json.SerializerOptions{Yaml: true, Strict: true})
	var objs []runtime.Object
	for _, doc := range strings.Split(out, "\n---") {
		if strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(doc), "---")) == "" || !strings.Contains(doc, "kind:") {
			continue
		}
		var probe unstructured.Unstructured
		if err := yaml.Unmarshal([]byte(doc), &probe.Object); err != nil {
			t.Fatalf("not YAML: %v\n%s", err, doc)
		}
		if probe.GetKind() == "ServiceMonitor" { // a CRD type, not in client-go's scheme
			if probe.GetAPIVersion() != "monitoring.coreos.com/v1" {
				t.Errorf("ServiceMonitor apiVersion %q", probe.GetAPIVersion())
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

func kinds(objs []runtime.Object) map[string]int {
	m := map[string]int{}
	for _, o := range objs {
		m[o.GetObjectKind().GroupVersionKind().Kind]++
	}
	return m
}

func TestEveryModeLintsAndRendersStrictly(t *testing.T) {
	modes := map[string]map[string]int{
		"":                         {"Deployment": 1, "Service": 1, "ServiceAccount": 1, "ConfigMap": 1, "ClusterRole": 1, "ClusterRoleBinding": 1},
		"examples/standalone.yaml": {"Deployment": 1, "PodDisruptionBudget": 1, "ServiceMonitor": 1, "NetworkPolicy": 1, "ClusterRole": 1},
		"examples/namespaced.yaml": {"Role": 3, "RoleBinding": 3, "PersistentVolumeClaim": 1, "Secret": 1, "ClusterRole": 0},
		"examples/inline.yaml":     {"Deployment": 1, "ClusterRole": 1},
		"examples/sidecar.yaml":    {"Deployment": 0, "Service": 0, "ServiceAccount": 0, "ConfigMap": 1, "ClusterRoleBinding": 1},
	}
	for file, want := range modes {
		t.Run(strings.TrimSuffix(filepath.Base(file+"default"), ".yaml"), func(t *testing.T) {
			args := []string{}
			if file != "" {
				args = append(args, "-f", filepath.Join(chart, file))
			}
			if out, err := helm(t, append([]string{"lint", "--strict", chart}, args...)...); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			got := kinds(render(t, args...))
			for kind, n := range want {
				if got[kind] != n {
					t.Errorf("%d %s, want %d (all: %v)", got[kind], kind, n, got)
				}
			}
		})
	}
}

func TestSchemaRejectsTyposAndWrongTypes(t *testing.T) {
	for _, set := range []string{"replica=2", "replicas=two", "sources.kubernetes.namespace=shop", "mode=daemon", "downstream.url=ftp://x", "enrich.budget=fast"} {
		out, err := helm(t, "template", "whatchanged", chart, "--set", set)
		if err == nil || !strings.Contains(out+err.Error(), "values don't meet the specifications of the schema") {
			t.Errorf("--set %s was accepted:\n%s", set, out)
		}
	}
}

func TestSecuritySecretsAndRBAC(t *testing.T) {
	objs := render(t, "--set", "auth.token=inbound-s3cret", "--set", "downstream.url=https://hooks.example.com/T0/B0/d0wnstream-s3cret",
		"--set", "sources.github.enabled=true", "--set", "sources.github.token=ghp_s3cret")
	var dep *appsv1.Deployment
	var role *rbacv1.ClusterRole
	var rendered bytes.Buffer
	for _, o := range objs {
		switch v := o.(type) {
		case *appsv1.Deployment:
			dep = v
		case *rbacv1.ClusterRole:
			role = v
		case *corev1.Secret:
			continue // the only place secrets may be
		}
		b, _ := yaml.Marshal(o)
		rendered.Write(b)
	}
	for _, s := range []string{"inbound-s3cret", "d0wnstream-s3cret", "ghp_s3cret"} {
		if strings.Contains(rendered.String(), s) {
			t.Errorf("secret %q appears outside the Secret", s)
		}
	}
	pod := dep.Spec.Template.Spec
	c := pod.Containers[0]
	if len(c.Env) != 0 || len(c.EnvFrom) != 0 {
		t.Errorf("environment in the manifest: %+v %+v", c.Env, c.EnvFrom)
	}
	sc := c.SecurityContext
	if pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot || pod.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
		t.Errorf("security context not restricted: pod %+v container %+v", pod.SecurityContext, sc)
	}
	mounts := map[string]bool{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = true
	}
	for _, p := range []string{"/etc/whatchanged/secrets/auth-token", "/etc/whatchanged/secrets/downstream-url", "/etc/whatchanged/secrets/github-token"} {
		if !mounts[p] {
			t.Errorf("secret not mounted as a file at %s", p)
		}
	}
	if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("probes: %+v %+v", c.ReadinessProbe, c.LivenessProbe)
	}
	for _, r := range role.Rules {
		for _, v := range r.Verbs {
			if v != "get" && v != "list" && v != "watch" {
				t.Errorf("write verb %q in %+v", v, r)
			}
		}
	}
	// Kubernetes off and Argo CD REST only: no RBAC at all.
	none := kinds(render(t, "--set", "sources.kubernetes.enabled=false"))
	if none["ClusterRole"]+none["Role"]+none["ClusterRoleBinding"]+none["RoleBinding"] != 0 {
		t.Errorf("RBAC rendered with Kubernetes reading off: %v", none)
	}
}

// The rendered config is what whatchanged itself accepts.
func TestRenderedConfigPassesConfigCheck(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "whatchanged")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/whatchanged").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	for _, file := range []string{"", "examples/standalone.yaml", "examples/namespaced.yaml", "examples/inline.yaml", "examples/sidecar.yaml"} {
		args := []string{"--set", "sources.argocd.insecureSkipVerify=false"}
		if file != "" {
			args = append(args, "-f", filepath.Join(chart, file))
		}
		for _, o := range render(t, args...) {
			cm, ok := o.(*corev1.ConfigMap)
			if !ok {
				continue
			}
			// Secret files the config names: stand-ins with content.
			cfg := cm.Data["whatchanged.yaml"]
			for _, line := range strings.Split(cfg, "\n") {
				if _, path, ok := strings.Cut(line, "_file: "); ok {
					p := filepath.Join(dir, strings.TrimSpace(path))
					_ = os.MkdirAll(filepath.Dir(p), 0o755)
					content := "stand-in-token\n"
					if strings.Contains(path, "url") {
						content = "https://hooks.example.com/T0/B0/x\n"
					}
					_ = os.WriteFile(p, []byte(content), 0o600)
					cfg = strings.ReplaceAll(cfg, strings.TrimSpace(path), p)
				}
			}
			cfg = strings.ReplaceAll(cfg, "/var/lib/whatchanged", filepath.Join(dir, "data"))
			f := filepath.Join(dir, "c.yaml")
			_ = os.WriteFile(f, []byte(cfg), 0o600)
			if out, err := exec.Command(bin, "config", "check", "--config", f).CombinedOutput(); err != nil {
				t.Errorf("%s: rendered config rejected: %v\n%s\n%s", file, err, out, cfg)
			}
		}
	}
}

// The kube-prometheus-stack values example: its container and volumes
// decode strictly into the real types, and reference what this chart
// renders in sidecar mode.
func TestKubePrometheusStackSidecarExample(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(chart, "examples/kube-prometheus-stack-sidecar.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Alertmanager struct {
			AlertmanagerSpec struct {
				Containers []any `json:"containers"`
				Volumes    []any `json:"volumes"`
			} `json:"alertmanagerSpec"`
			Config map[string]any `json:"config"`
		} `json:"alertmanager"`
	}
	if err := yaml.UnmarshalStrict(b, &v); err != nil {
		t.Fatal(err)
	}
	var c corev1.Container
	cb, _ := yaml.Marshal(v.Alertmanager.AlertmanagerSpec.Containers[0])
	if err := yaml.UnmarshalStrict(cb, &c); err != nil {
		t.Fatalf("container does not decode strictly into corev1.Container: %v", err)
	}
	configMaps := map[string]bool{}
	for _, raw := range v.Alertmanager.AlertmanagerSpec.Volumes {
		var vol corev1.Volume
		vb, _ := yaml.Marshal(raw)
		if err := yaml.UnmarshalStrict(vb, &vol); err != nil {
			t.Fatalf("volume does not decode strictly into corev1.Volume: %v", err)
		}
		if vol.ConfigMap != nil {
			configMaps[vol.ConfigMap.Name] = true
		}
	}
	for _, o := range render(t, "-f", filepath.Join(chart, "examples/sidecar.yaml")) {
		if cm, ok := o.(*corev1.ConfigMap); ok && !configMaps[cm.Name] {
			t.Errorf("the sidecar does not mount the chart's ConfigMap %q (mounts %v)", cm.Name, configMaps)
		}
	}
	if c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem {
		t.Errorf("sidecar security context: %+v", c.SecurityContext)
	}
	if !strings.Contains(string(b), "url: http://127.0.0.1:8080/webhook") || !strings.Contains(strings.Join(c.Args, " "), "--listen 127.0.0.1:8080") {
		t.Errorf("the webhook receiver and the listener are not both on localhost")
	}
}
