// Package clusters_test runs one whatchanged binary against two real
// kube-apiservers (two envtest control planes, a and b) that both run
// shop/api with different histories, as a central Alertmanager fed by
// two clusters would see them: each alert is answered from its own
// cluster, an unknown cluster is said so, and a cluster that goes away
// costs the other's alerts nothing. No controllers run: the tests write
// the Deployments and ReplicaSets as the Deployment controller would
// (world_test.go). `make test` passes KUBEBUILDER_ASSETS.
package clusters_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/whatchanged/whatchanged/test/controlplane"
	"github.com/whatchanged/whatchanged/test/proctest"
)

var (
	whatchangedBin string
	// a and b are the two clusters every test shares; a test that stops a
	// control plane starts its own (startCluster).
	a, b *cluster
)

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "clusters:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	if err := controlplane.CheckAssets(); err != nil {
		return 1, err
	}
	ctrllog.SetLogger(ctrllog.Log.WithSink(ctrllog.NullLogSink{})) // envtest's own logging
	dir, err := os.MkdirTemp("", "whatchanged-clusters-")
	if err != nil {
		return 1, err
	}
	defer os.RemoveAll(dir)

	// Build the binary while the control planes start.
	built := make(chan error, 1)
	go func() {
		var err error
		whatchangedBin, err = proctest.BuildWhatchanged(dir)
		built <- err
	}()
	start := time.Now()
	type started struct {
		c   *cluster
		err error
	}
	results := make(chan started, 2)
	for _, name := range []string{"a", "b"} {
		go func() {
			c, err := startCluster(name, filepath.Join(dir, name))
			results <- started{c, err}
		}()
	}
	var errs []error
	for range 2 {
		r := <-results
		if r.err != nil {
			errs = append(errs, r.err)
			continue
		}
		defer r.c.stop()
		switch r.c.name {
		case "a":
			a = r.c
		case "b":
			b = r.c
		}
	}
	if err := <-built; err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return 1, fmt.Errorf("%v", errs)
	}
	for _, c := range []*cluster{a, b} {
		if err := writeHistory(c); err != nil {
			return 1, err
		}
	}
	fmt.Fprintf(os.Stderr, "clusters: two control planes and the binary ready in %s\n", time.Since(start).Round(time.Millisecond))
	return m.Run(), nil
}
