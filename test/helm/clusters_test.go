package helm_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/yaml"
)

// Several clusters: each remote cluster's kubeconfig Secret is a projected
// file the rendered config names for that cluster; the cluster whatchanged
// runs in (no kubeconfigSecret) gets the chart's RBAC, with its own
// settings; sources.kubernetes is not rendered beside clusters (the
// config refuses both).
func TestMultiCluster(t *testing.T) {
	file := filepath.Join(examples, "multi-cluster.yaml")
	objs := render(t, "-f", file)
	pod := one[*appsv1.Deployment](t, objs).Spec.Template.Spec
	files := projected(pod.Volumes, "secrets")
	for path, src := range map[string]string{
		"kubeconfig-prod-us-1": "whatchanged-kubeconfig-prod-us-1/kubeconfig",
		"kubeconfig-staging":   "whatchanged-kubeconfig-staging/kubeconfig",
	} {
		if files[path] != src {
			t.Errorf("%s%s projected from %q, want %q (all: %v)", secretsDir, path, files[path], src, files)
		}
	}
	var cfg struct {
		ClusterLabel string `json:"cluster_label"`
		Clusters     []struct {
			Name       string            `json:"name"`
			Default    bool              `json:"default"`
			MatchRE    map[string]string `json:"match_re"`
			Kubernetes map[string]any    `json:"kubernetes"`
		} `json:"clusters"`
		Sources map[string]any `json:"sources"`
	}
	if err := yaml.Unmarshal([]byte(one[*corev1.ConfigMap](t, objs).Data["whatchanged.yaml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.ClusterLabel != "cluster" || len(cfg.Clusters) != 3 {
		t.Fatalf("cluster_label %q, %d clusters; want cluster and 3", cfg.ClusterLabel, len(cfg.Clusters))
	}
	if _, ok := cfg.Sources["kubernetes"]; ok {
		t.Error("sources.kubernetes rendered beside clusters")
	}
	local, us, staging := cfg.Clusters[0], cfg.Clusters[1], cfg.Clusters[2]
	if local.Name != "prod-eu-1" || !local.Default || local.Kubernetes["kubeconfig"] != nil {
		t.Errorf("local cluster %+v: want prod-eu-1, the default, in-cluster (no kubeconfig)", local)
	}
	if us.Kubernetes["kubeconfig"] != secretsDir+"kubeconfig-prod-us-1" || us.Default {
		t.Errorf("prod-us-1 %+v: want its projected kubeconfig", us)
	}
	if staging.MatchRE["cluster"] != "staging|stg-.*" || staging.Kubernetes["sync_timeout"] != "30s" ||
		!slices.Equal(anyStrings(staging.Kubernetes["namespaces"]), []string{"shop", "payments"}) {
		t.Errorf("staging %+v: want its match_re, sync_timeout and namespaces", staging)
	}

	// The local cluster's RBAC follows its own entry: a Role per namespace
	// it lists, Secrets when it reads them.
	objs = render(t, "--set", "clusters[0].name=here", "--set", "clusters[0].namespaces={shop,payments}", "--set", "clusters[0].secrets=true",
		"--set", "clusters[1].name=there", "--set", "clusters[1].kubeconfigSecret.name=kc-there")
	roles := only[*rbacv1.Role](objs)
	if k := kinds(objs); len(roles) != 2 || k["ClusterRole"] != 0 {
		t.Errorf("local cluster with namespaces: %v; want a Role in each of shop and payments, no ClusterRole", k)
	}
	for _, r := range roles {
		if !slices.ContainsFunc(r.Rules, func(p rbacv1.PolicyRule) bool { return slices.Contains(p.Resources, "secrets") }) {
			t.Errorf("Role %s/%s lacks secrets (clusters[0].secrets): %+v", r.Namespace, r.Name, r.Rules)
		}
	}
	// Every cluster remote: no RBAC here at all.
	k := kinds(render(t, "--set", "clusters[0].name=there", "--set", "clusters[0].kubeconfigSecret.name=kc-there"))
	if k["ClusterRole"]+k["Role"]+k["ClusterRoleBinding"]+k["RoleBinding"] != 0 {
		t.Errorf("every cluster remote, yet RBAC rendered: %v", k)
	}

	for _, c := range []struct {
		set  []string
		want string
	}{
		{[]string{"clusters[0].name=a", "clusters[1].name=b"}, "only the cluster whatchanged runs in may go without one"},
	} {
		var args []string
		for _, s := range c.set {
			args = append(args, "--set", s)
		}
		if out, err := template(t, chart, args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: want an error naming %q, got %v\n%s", c.set, c.want, err, out)
		}
	}
	for _, set := range []string{
		"clusters[0].name=us east",                 // not a label value whatchanged accepts
		"clusters[0].kubeconfig=/x",                // the chart's key is kubeconfigSecret
		"clusters[0].match_re.cluster=x",           // values are camelCase: matchRe
		"clusters[0].kubeconfigSecret.secret=x",    // {name, key}
		"remoteRBAC.enable=true",                   // enabled
		"sources.argocd.clusters.in-cluster[0]=eu", // destination → one cluster name
	} {
		out, err := helm(t, "template", "whatchanged", chart, "--kube-version", kubeVersion, "--set", "clusters[0].name=a", "--set", set)
		if err == nil || !strings.Contains(out+err.Error(), "values don't meet the specifications of the schema") {
			t.Errorf("--set %s was accepted:\n%s", set, out)
		}
	}
}

func anyStrings(v any) []string {
	var out []string
	if l, ok := v.([]any); ok {
		for _, x := range l {
			s, _ := x.(string)
			out = append(out, s)
		}
	}
	return out
}

// remoteRBAC renders only what a remote cluster needs: a ServiceAccount,
// the read-only rules the chart grants locally for the same
// sources.kubernetes settings, bound to it, and a token Secret for it;
// the API server accepts each object, and the notes say how to turn the
// token into the kubeconfig Secret.
func TestRemoteRBAC(t *testing.T) {
	c := apiServer(t)
	for _, settings := range [][]string{nil, {"--set", "sources.kubernetes.helm=true", "--set", "sources.kubernetes.rollouts=off", "--set", "sources.kubernetes.flux=off"}} {
		local := one[*rbacv1.ClusterRole](t, render(t, settings...))
		args := append([]string{"--set", "remoteRBAC.enabled=true"}, settings...)
		objs := render(t, args...)
		want := map[string]int{"ServiceAccount": 1, "Secret": 1, "ClusterRole": 1, "ClusterRoleBinding": 1}
		if got := kinds(objs); !equality.Semantic.DeepEqual(got, want) {
			t.Errorf("%v rendered %v, want only %v", args, got, want)
		}
		sa := one[*corev1.ServiceAccount](t, objs)
		sec := one[*corev1.Secret](t, objs)
		if sec.Type != corev1.SecretTypeServiceAccountToken || sec.Annotations[corev1.ServiceAccountNameKey] != sa.Name {
			t.Errorf("token Secret %s: type %s, annotations %v; want a service-account-token for %s", sec.Name, sec.Type, sec.Annotations, sa.Name)
		}
		role := one[*rbacv1.ClusterRole](t, objs)
		if !equality.Semantic.DeepEqual(role.Rules, local.Rules) {
			t.Errorf("%v: remote rules differ from the local ones:\n remote %+v\n local  %+v", args, role.Rules, local.Rules)
		}
		b := one[*rbacv1.ClusterRoleBinding](t, objs)
		if b.RoleRef.Name != role.Name || len(b.Subjects) != 1 || b.Subjects[0].Name != sa.Name || b.Subjects[0].Namespace != namespace {
			t.Errorf("binding %+v does not bind %s to %s/%s", b, role.Name, namespace, sa.Name)
		}
		out, err := template(t, chart, args...)
		if err != nil {
			t.Fatal(err)
		}
		for _, obj := range unstructuredDocs(t, out) {
			if err := dryRun(t, c, obj); err != nil {
				t.Error(err)
			}
		}
	}

	objs := render(t, "--set", "remoteRBAC.enabled=true", "--set", "remoteRBAC.namespaces={shop,payments}")
	if k := kinds(objs); k["Role"] != 2 || k["RoleBinding"] != 2 || k["ClusterRole"] != 0 || k["Deployment"]+k["ConfigMap"] != 0 {
		t.Errorf("remoteRBAC.namespaces: %v; want a Role and RoleBinding in shop and payments only", k)
	}
	out, err := template(t, chart, "--set", "remoteRBAC.enabled=true", "--set", "remoteRBAC.namespaces={shop,payments}")
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range unstructuredDocs(t, out) {
		if err := dryRun(t, c, obj); err != nil {
			t.Error(err)
		}
	}

	text := notes(t, "--set", "remoteRBAC.enabled=true")
	for _, w := range []string{"ServiceAccount\nwhatchanged in monitoring", "Secret whatchanged-token",
		"kubectl -n monitoring get secret whatchanged-token -o jsonpath='{.data.token}'", "clusters[].kubeconfigSecret"} {
		if !strings.Contains(text, w) {
			t.Errorf("remoteRBAC notes lack %q:\n%s", w, text)
		}
	}
	if strings.Contains(text, "webhook") {
		t.Errorf("remoteRBAC notes speak of whatchanged's webhook, which does not run there:\n%s", text)
	}
}
