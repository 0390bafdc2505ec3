package kube_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

	"github.com/whatchanged/whatchanged/sources"
	"github.com/whatchanged/whatchanged/sources/argocd"
	"github.com/whatchanged/whatchanged/sources/kube"
)

// applyChartRBAC renders the chart with the real helm binary and creates
// its ServiceAccount and RBAC objects in the real API server.
func applyChartRBAC(t *testing.T, release, ns string, helmArgs ...string) {
	t.Helper()
	bin := os.Getenv("WHATCHANGED_HELM")
	if bin == "" {
		t.Fatal("WHATCHANGED_HELM is not set; run `make test`")
	}
	args := append([]string{"template", release, "../../charts/whatchanged", "--namespace", ns}, helmArgs...)
	out, err := exec.Command(bin, args...).Output()
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	dec := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme.Scheme, scheme.Scheme, json.SerializerOptions{Yaml: true, Strict: true})
	c := context.Background()
	for _, doc := range bytes.Split(out, []byte("\n---")) {
		if !bytes.Contains(doc, []byte("kind:")) {
			continue
		}
		obj, _, err := dec.Decode(doc, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		switch o := obj.(type) {
		case *corev1.ServiceAccount:
			_, err = client.CoreV1().ServiceAccounts(ns).Create(c, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRole:
			_, err = client.RbacV1().ClusterRoles().Create(c, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRoleBinding:
			_, err = client.RbacV1().ClusterRoleBindings().Create(c, o, metav1.CreateOptions{})
		case *rbacv1.Role:
			_, err = client.RbacV1().Roles(o.Namespace).Create(c, o, metav1.CreateOptions{})
		case *rbacv1.RoleBinding:
			_, err = client.RbacV1().RoleBindings(o.Namespace).Create(c, o, metav1.CreateOptions{})
		default:
			continue
		}
		if err != nil {
			t.Fatalf("the API server refused the rendered %T: %v", obj, err)
		}
	}
}

// asServiceAccount is the admin config impersonating the chart's
// ServiceAccount: every request is authorized by the rendered RBAC alone.
func asServiceAccount(ns, name string) *rest.Config {
	rc := rest.CopyConfig(env.Config)
	rc.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + ns + ":" + name,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns}}
	return rc
}

func startAs(t *testing.T, rc *rest.Config, cfg kube.Config) *kube.Source {
	t.Helper()
	clients, err := kube.ClientsFor(rc)
	if err != nil {
		t.Fatal(err)
	}
	s := kube.New("kubernetes", cfg, clients, quietLog())
	if err := s.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	wc, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if !s.WaitForSync(wc) {
		t.Fatal("caches did not sync as the ServiceAccount: the rendered RBAC is not sufficient")
	}
	return s
}

// denied checks that each write, Secrets and resources the sources do not
// read are forbidden to the ServiceAccount.
func denied(t *testing.T, rc *rest.Config, ns string) {
	t.Helper()
	cs := kubernetes.NewForConfigOrDie(rc)
	c := context.Background()
	checks := map[string]error{}
	_, checks["create deployment"] = cs.AppsV1().Deployments(ns).Create(c, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
	checks["delete pod"] = cs.CoreV1().Pods(ns).Delete(c, "x", metav1.DeleteOptions{})
	checks["delete replicasets"] = cs.AppsV1().ReplicaSets(ns).DeleteCollection(c, metav1.DeleteOptions{}, metav1.ListOptions{})
	_, checks["patch service"] = cs.CoreV1().Services(ns).Patch(c, "x", "application/merge-patch+json", []byte(`{}`), metav1.PatchOptions{})
	_, checks["list secrets"] = cs.CoreV1().Secrets(ns).List(c, metav1.ListOptions{})
	_, checks["get secret"] = cs.CoreV1().Secrets(ns).Get(c, "x", metav1.GetOptions{})
	_, checks["list nodes"] = cs.CoreV1().Nodes().List(c, metav1.ListOptions{})
	_, checks["list namespaces"] = cs.CoreV1().Namespaces().List(c, metav1.ListOptions{})
	_, checks["list jobs"] = cs.BatchV1().Jobs(ns).List(c, metav1.ListOptions{})
	_, checks["create pod exec"] = cs.CoreV1().RESTClient().Post().Namespace(ns).Resource("pods").Name("x").SubResource("exec").DoRaw(c)
	for what, err := range checks {
		if !forbidden(err) {
			t.Errorf("%s as the ServiceAccount: err = %v, want forbidden", what, err)
		}
	}
}

// The chart's cluster-wide RBAC lets the Kubernetes source and the Argo CD
// source (resource mode) sync, and nothing more.
func TestChartRBACClusterWide(t *testing.T) {
	newNamespace(t, "monitoring")
	applyChartRBAC(t, "whatchanged", "monitoring", "--set", "sources.argocd.enabled=true", "--set", "sources.argocd.kubernetes.enabled=true",
		"--set", "sources.argocd.kubernetes.namespaces=null")
	rc := asServiceAccount("monitoring", "whatchanged")
	s := startAs(t, rc, kube.Config{})
	if _, err := s.Changes(context.Background(), sources.Query{Subject: sources.Subject{Namespace: "shop", Name: "web"}, Since: time.Now().Add(-time.Hour), Until: time.Now()}); err != nil {
		t.Errorf("query as the ServiceAccount: %v", err)
	}
	clients, _ := kube.ClientsFor(rc)
	a := argocd.New("argocd", argocd.Config{Kubernetes: argocd.KubernetesMode{Enabled: true}}, nil, clients.Dynamic, quietLog())
	if err := a.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "Argo CD applications synced as the ServiceAccount", a.Ready)
	denied(t, rc, "shop")
}

// Namespace-scoped: a Role per listed namespace; the source limited to
// them syncs; other namespaces and cluster-wide lists are forbidden.
func TestChartRBACNamespaced(t *testing.T) {
	for _, ns := range []string{"team-b", "team-c", "other"} {
		newNamespace(t, ns)
	}
	applyChartRBAC(t, "wc-team", "team-b", "--set", "sources.kubernetes.namespaces={team-b,team-c}")
	rc := asServiceAccount("team-b", "wc-team-whatchanged") // the chart's fullname for release wc-team
	startAs(t, rc, kube.Config{Namespaces: []string{"team-b", "team-c"}})
	denied(t, rc, "team-b")
	cs := kubernetes.NewForConfigOrDie(rc)
	if _, err := cs.AppsV1().Deployments("other").List(context.Background(), metav1.ListOptions{}); !forbidden(err) {
		t.Errorf("list deployments in an unlisted namespace: %v", err)
	}
	if _, err := cs.AppsV1().Deployments("").List(context.Background(), metav1.ListOptions{}); !forbidden(err) {
		t.Errorf("list deployments cluster-wide: %v", err)
	}
}

// forbidden: a 403 from the API server (exec answers 403 without a Status body).
func forbidden(err error) bool {
	var se *apierrors.StatusError
	return apierrors.IsForbidden(err) || (errors.As(err, &se) && se.ErrStatus.Code == 403)
}
