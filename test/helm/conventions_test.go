package helm_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

const conventionsValues = "testdata/conventions-values.yaml"

// The values every prometheus-community chart has reach the objects they
// are for (testdata/conventions-values.yaml sets them all).
func TestConventions(t *testing.T) {
	objs := render(t, "-f", conventionsValues)
	for _, o := range objs {
		m, _ := meta.Accessor(o)
		if m.GetLabels()["team"] != "sre" || m.GetLabels()["app.kubernetes.io/name"] != "wc" {
			t.Errorf("%T %s labels %v: want commonLabels and nameOverride", o, m.GetName(), m.GetLabels())
		}
		if m.GetName() != "whatchanged-wc" {
			t.Errorf("%T named %s, want <release>-<nameOverride>", o, m.GetName())
		}
	}
	dep := one[*appsv1.Deployment](t, objs)
	pod := dep.Spec.Template.Spec
	c := pod.Containers[0]
	check := func(what string, ok bool, got any) {
		t.Helper()
		if !ok {
			t.Errorf("%s: got %+v", what, got)
		}
	}
	check("image with digest", c.Image == "registry.example.com/whatchanged:1.2.3@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", c.Image)
	check("pullPolicy", c.ImagePullPolicy == corev1.PullAlways, c.ImagePullPolicy)
	check("imagePullSecrets", len(pod.ImagePullSecrets) == 1 && pod.ImagePullSecrets[0].Name == "regcred", pod.ImagePullSecrets)
	check("podSecurityContext", *pod.SecurityContext.RunAsUser == 10001 && *pod.SecurityContext.FSGroup == 10001, pod.SecurityContext)
	check("securityContext", *c.SecurityContext.RunAsUser == 10001, c.SecurityContext)
	check("resources", c.Resources.Requests.Cpu().String() == "10m" && c.Resources.Requests.Memory().String() == "32Mi", c.Resources)
	// GOMEMLIMIT follows the container's memory limit; extraEnv comes after.
	check("GOMEMLIMIT", len(c.Env) == 2 && c.Env[0].Name == "GOMEMLIMIT" && c.Env[0].ValueFrom.ResourceFieldRef.Resource == "limits.memory", c.Env)
	check("extraEnv", len(c.Env) == 2 && c.Env[1].Name == "HTTPS_PROXY", c.Env)
	check("extraArgs", strings.Join(c.Args, " ") == "serve --config /etc/whatchanged/config/whatchanged.yaml --log-level=debug", c.Args)
	check("extraVolumes", pod.Volumes[len(pod.Volumes)-1].Name == "ca", pod.Volumes)
	check("extraVolumeMounts", c.VolumeMounts[len(c.VolumeMounts)-1].MountPath == "/etc/ssl/corp", c.VolumeMounts)
	check("podLabels", dep.Spec.Template.Labels["tier"] == "alerting" && dep.Spec.Template.Labels["team"] == "sre", dep.Spec.Template.Labels)
	check("podAnnotations", dep.Spec.Template.Annotations["example.com/scrape"] == "false", dep.Spec.Template.Annotations)
	check("priorityClassName", pod.PriorityClassName == "system-cluster-critical", pod.PriorityClassName)
	check("topologySpreadConstraints", len(pod.TopologySpreadConstraints) == 1, pod.TopologySpreadConstraints)
	check("nodeSelector", pod.NodeSelector["kubernetes.io/os"] == "linux", pod.NodeSelector)
	check("tolerations", len(pod.Tolerations) == 1, pod.Tolerations)
	check("affinity", pod.Affinity != nil && pod.Affinity.NodeAffinity != nil, pod.Affinity)
	check("selector is stable", len(dep.Spec.Selector.MatchLabels) == 2, dep.Spec.Selector.MatchLabels)

	svc := one[*corev1.Service](t, objs)
	check("service", svc.Spec.Type == corev1.ServiceTypeNodePort && svc.Spec.Ports[0].Port == 80 && svc.Spec.Ports[0].TargetPort.StrVal == "http" &&
		svc.Annotations["example.com/lb"] == "internal", svc.Spec)
	check("container port", c.Ports[0].ContainerPort == 8080 && c.Ports[0].Name == "http", c.Ports)
	sa := one[*corev1.ServiceAccount](t, objs)
	check("serviceAccount.annotations", sa.Annotations["eks.amazonaws.com/role-arn"] != "", sa.Annotations)
	check("pod's ServiceAccount", pod.ServiceAccountName == sa.Name, pod.ServiceAccountName)

	var sm, pr *unstructured.Unstructured
	for _, u := range only[*unstructured.Unstructured](objs) {
		switch u.GetKind() {
		case "ServiceMonitor":
			sm = u
		case "PrometheusRule":
			pr = u
		}
	}
	if sm == nil || pr == nil {
		t.Fatalf("ServiceMonitor %v, PrometheusRule %v", sm != nil, pr != nil)
	}
	eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	ep := eps[0].(map[string]any)
	check("serviceMonitor", sm.GetLabels()["release"] == "kube-prometheus-stack" && ep["port"] == "http" && ep["interval"] == "15s" &&
		ep["scrapeTimeout"] == "5s" && ep["relabelings"] != nil && ep["metricRelabelings"] != nil, sm.Object)
	groups, _, _ := unstructured.NestedSlice(pr.Object, "spec", "groups")
	rules := groups[0].(map[string]any)["rules"].([]any)
	check("prometheusRule", pr.GetLabels()["release"] == "kube-prometheus-stack" && rules[len(rules)-1].(map[string]any)["alert"] == "WhatchangedSlow", rules)
}

func TestOverridesAndExistingServiceAccount(t *testing.T) {
	objs := render(t, "--set", "fullnameOverride=alert-context", "--set", "serviceAccount.create=false", "--set", "serviceAccount.name=shared-sa")
	if n := kinds(objs)["ServiceAccount"]; n != 0 {
		t.Errorf("%d ServiceAccounts with serviceAccount.create=false", n)
	}
	for _, o := range objs {
		if m, _ := meta.Accessor(o); m.GetName() != "alert-context" {
			t.Errorf("%T named %s, want the fullnameOverride", o, m.GetName())
		}
	}
	if sa := one[*appsv1.Deployment](t, objs).Spec.Template.Spec.ServiceAccountName; sa != "shared-sa" {
		t.Errorf("pod runs as %s", sa)
	}
	if s := one[*rbacv1.ClusterRoleBinding](t, objs).Subjects[0]; s.Name != "shared-sa" || s.Namespace != namespace {
		t.Errorf("RBAC bound to %+v", s)
	}
}

// The chart works as a dependency of another: Helm hands a subchart
// `global`, which the strict schema accepts, and a parent's
// global.imagePullSecrets reach the pod.
func TestAsSubchart(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "platform")
	copyTree(t, chart, filepath.Join(parent, "charts", "whatchanged"))
	files := map[string]string{
		"Chart.yaml": "apiVersion: v2\nname: platform\nversion: 1.0.0\ndependencies:\n  - name: whatchanged\n    version: 0.1.0\n",
		"values.yaml": "global:\n  imagePullSecrets: [corp-registry]\n  imageRegistry: registry.example.com\n" +
			"whatchanged:\n  auth:\n    existingSecret: whatchanged-auth\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(parent, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := helm(t, "lint", "--strict", "--kube-version", kubeVersion, parent); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	out, err := template(t, parent)
	if err != nil {
		t.Fatal(err)
	}
	var dep appsv1.Deployment
	for _, doc := range docs(out) {
		if strings.Contains(doc, "kind: Deployment") {
			if err := yaml.UnmarshalStrict([]byte(doc), &dep); err != nil {
				t.Fatal(err)
			}
		}
	}
	if ps := dep.Spec.Template.Spec.ImagePullSecrets; len(ps) != 1 || ps[0].Name != "corp-registry" {
		t.Errorf("pull secrets %v, want the parent's global one", ps)
	}
}

func ingressPeers(t *testing.T, objs []runtime.Object) []networkingv1.NetworkPolicyIngressRule {
	t.Helper()
	return one[*networkingv1.NetworkPolicy](t, objs).Spec.Ingress
}

// Enabled with no peers, the NetworkPolicy admits everyone to whatchanged's
// port (it breaks nothing); with peers, exactly them: Alertmanager,
// Prometheus and the change senders together.
func TestNetworkPolicy(t *testing.T) {
	open := ingressPeers(t, render(t, "--set", "networkPolicy.enabled=true"))
	if len(open) != 1 || len(open[0].From) != 0 || open[0].Ports[0].Port.IntValue() != 8080 {
		t.Errorf("no peers: %+v, want one rule admitting all to 8080", open)
	}
	rules := ingressPeers(t, render(t, "-f", filepath.Join(examples, "standalone.yaml")))
	if len(rules) != 1 {
		t.Fatalf("%+v", rules)
	}
	var selected []string
	for _, p := range rules[0].From {
		if p.PodSelector != nil {
			selected = append(selected, p.PodSelector.MatchLabels["app.kubernetes.io/name"])
		}
		if p.NamespaceSelector != nil && p.PodSelector == nil {
			selected = append(selected, "namespace "+p.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"])
		}
	}
	want := "alertmanager prometheus namespace ci argocd-notifications-controller"
	if strings.Join(selected, " ") != want {
		t.Errorf("standalone example admits %v, want %s", selected, want)
	}
}
