// Package kube_test runs the Kubernetes source and the pipeline against a
// real kube-apiserver with etcd (envtest) and the real
// kube-controller-manager, so ReplicaSets, revisions and
// ControllerRevisions are what a cluster really produces. `make test`
// builds the binaries and passes KUBEBUILDER_ASSETS and
// WHATCHANGED_KUBE_CONTROLLER_MANAGER.
package kube_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/whatchanged/whatchanged/test/controlplane"
)

var (
	env        *envtest.Environment
	kubeconfig string // admin kubeconfig file
	client     kubernetes.Interface
	cmLog      string
)

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kube integration:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" || os.Getenv("WHATCHANGED_KUBE_CONTROLLER_MANAGER") == "" {
		return 1, fmt.Errorf("KUBEBUILDER_ASSETS and WHATCHANGED_KUBE_CONTROLLER_MANAGER are not set; run `make test`, which builds the control plane")
	}
	env = controlplane.Environment(filepath.Join("..", "testdata"))
	if _, err := env.Start(); err != nil {
		return 1, fmt.Errorf("start control plane: %w", err)
	}
	defer env.Stop()

	dir, err := os.MkdirTemp("", "whatchanged-kube-")
	if err != nil {
		return 1, err
	}
	defer os.RemoveAll(dir)
	kc, cfg, err := controlplane.Admin(env, dir)
	if err != nil {
		return 1, err
	}
	kubeconfig = kc
	client, err = kubernetes.NewForConfig(cfg)
	if err != nil {
		return 1, err
	}

	// The real controllers that turn Deployments and StatefulSets into
	// ReplicaSets and ControllerRevisions.
	cmLog = filepath.Join(dir, "kube-controller-manager.log")
	logFile, err := os.Create(cmLog)
	if err != nil {
		return 1, err
	}
	cm := exec.Command(os.Getenv("WHATCHANGED_KUBE_CONTROLLER_MANAGER"),
		"--kubeconfig="+kubeconfig, "--leader-elect=false", "--use-service-account-credentials=false",
		"--controllers=deployment-controller,replicaset-controller,statefulset-controller,daemonset-controller,serviceaccount-controller",
		"--secure-port=0", "--concurrent-deployment-syncs=2")
	cm.Stdout, cm.Stderr = logFile, logFile
	if err := cm.Start(); err != nil {
		return 1, fmt.Errorf("start kube-controller-manager: %w", err)
	}
	defer func() { _ = cm.Process.Kill(); _ = cm.Wait(); logFile.Close() }()
	return m.Run(), nil
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// eventually polls cond until it holds or the timeout passes, and returns
// how long it took.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < timeout {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	b, _ := os.ReadFile(cmLog)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	t.Fatalf("%s: not within %s\n--- kube-controller-manager log (tail):\n%s", what, timeout, b)
	return 0
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return c
}
