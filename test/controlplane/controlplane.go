// Package controlplane is what the integration tests that run a real
// kube-apiserver and etcd (envtest) share: the environment with the
// upstream CRDs the repository keeps, and an admin user's kubeconfig.
package controlplane

import (
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// CheckAssets is nil when KUBEBUILDER_ASSETS names a directory with the
// control plane's binaries, else an error that says how to get them.
func CheckAssets() error {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		return fmt.Errorf("KUBEBUILDER_ASSETS is not set; run `make test`, which builds the control plane")
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(assets, bin)); err != nil {
			return fmt.Errorf("%s: %w; run `make tools` (part of `make test`)", bin, err)
		}
	}
	return nil
}

// Environment is an envtest control plane that installs the Argo Rollouts
// and Argo CD Application CRDs from test/testdata (their provenance is in
// test/testdata/README.md). testdata is that directory's path from the
// calling test package.
func Environment(testdata string) *envtest.Environment {
	return &envtest.Environment{
		CRDInstallOptions: envtest.CRDInstallOptions{Paths: []string{
			filepath.Join(testdata, "argo-rollouts-rollout-crd.yaml"),
			filepath.Join(testdata, "argocd-application-crd.yaml"),
		}, ErrorIfPathMissing: true},
	}
}

// Admin adds a system:masters user to the started control plane and
// writes its kubeconfig into dir (for the whatchanged binary).
func Admin(env *envtest.Environment, dir string) (kubeconfig string, cfg *rest.Config, err error) {
	user, err := env.ControlPlane.AddUser(envtest.User{Name: "whatchanged-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", nil, err
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return "", nil, err
	}
	kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		return "", nil, err
	}
	return kubeconfig, user.Config(), nil
}
