package kube_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/whatchanged/whatchanged/test/proctest"
)

// `whatchanged explain --kubeconfig` against the real cluster shows the
// owner walk of a pod and the Deployment's rollout.
func TestExplainShowsTheOwnerWalk(t *testing.T) {
	ns := "explain"
	newNamespace(t, ns)
	bin, err := proctest.BuildWhatchanged(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.AppsV1().Deployments(ns).Create(context.Background(), webDeployment(ns, "acme/web:3.1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var podName string
	eventually(t, 30*time.Second, "a pod of the deployment", func() bool {
		pods, _ := client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=web"})
		if len(pods.Items) > 0 {
			podName = pods.Items[0].Name
			return true
		}
		return false
	})
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(cfg, []byte("data_dir: "+t.TempDir()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "explain", "--config", cfg, "--kubeconfig", kubeconfig,
		"--labels", "namespace="+ns+",pod="+podName, "--starts-at", time.Now().Add(5*time.Second).UTC().Format(time.RFC3339)).CombinedOutput()
	if err != nil {
		t.Fatalf("explain: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{
		"owner walk: Pod " + podName + " → ReplicaSet web-",
		"→ Deployment web",
		"app       = shop-web",
		"kubernetes 1 change(s)",
		"whatchanged_suspect:",
		"rollout of explain/web web=acme/web:3.1, proxy=envoy:1.30, ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("explain output lacks %q:\n%s", want, text)
		}
	}
}
