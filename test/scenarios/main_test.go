// Package scenarios_test runs the incident scenarios of this directory
// (README.md) against the real whatchanged binary, a real kube-apiserver
// with etcd (envtest, no controllers: the runner writes what they would),
// a fake argocd-server and a fake GitHub API. `make test` passes
// KUBEBUILDER_ASSETS; `make quality` prints the quality summary.
package scenarios_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/whatchanged/whatchanged/test/controlplane"
	"github.com/whatchanged/whatchanged/test/proctest"
)

var (
	env            *envtest.Environment
	kubeconfig     string // admin kubeconfig file, for whatchanged
	kube           kubernetes.Interface
	dyn            dynamic.Interface
	restConfig     *rest.Config
	etcd           controlplane.Etcd
	whatchangedBin string
)

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "scenarios:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	if err := controlplane.CheckAssets(); err != nil {
		return 1, err
	}
	dir, err := os.MkdirTemp("", "whatchanged-scenarios-")
	if err != nil {
		return 1, err
	}
	defer os.RemoveAll(dir)

	// Build the binary while the control plane starts.
	built := make(chan error, 1)
	go func() {
		var err error
		whatchangedBin, err = proctest.BuildWhatchanged(dir)
		built <- err
	}()

	// The Rollout CRD serves Argo Rollouts; the Application CRD is only for
	// checking that the fake argocd-server's applications have the real
	// shape (TestFakeApplicationShape). Objects are stored as JSON so the
	// runner can back-date them in etcd (controlplane.Etcd).
	env = controlplane.Environment(filepath.Join("..", "testdata"))
	// Flux's Kustomization, HelmRelease and GitRepository: whatchanged
	// reads Flux syncs when they are served.
	env.CRDInstallOptions.Paths = append(env.CRDInstallOptions.Paths,
		filepath.Join("..", "testdata", "flux-kustomization-crd.yaml"),
		filepath.Join("..", "testdata", "flux-helmrelease-crd.yaml"),
		filepath.Join("..", "testdata", "flux-gitrepository-crd.yaml"))
	controlplane.JSONStorage(env)
	start := time.Now()
	if _, err := env.Start(); err != nil {
		<-built
		return 1, fmt.Errorf("start control plane: %w", err)
	}
	defer func() { _ = env.Stop() }()
	etcd = controlplane.EtcdOf(env)

	if kubeconfig, restConfig, err = controlplane.Admin(env, dir); err != nil {
		return 1, err
	}
	restConfig.QPS, restConfig.Burst = 1000, 1000 // the runner writes many objects in a row
	if kube, err = kubernetes.NewForConfig(restConfig); err != nil {
		return 1, err
	}
	if dyn, err = dynamic.NewForConfig(restConfig); err != nil {
		return 1, err
	}
	if err := <-built; err != nil {
		return 1, err
	}
	fmt.Fprintf(os.Stderr, "scenarios: control plane and binary ready in %s\n", time.Since(start).Round(time.Millisecond))
	return m.Run(), nil
}
