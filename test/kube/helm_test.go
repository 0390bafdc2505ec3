package kube_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/whatchanged/whatchanged/enrich"
	"github.com/whatchanged/whatchanged/sources"
	"github.com/whatchanged/whatchanged/sources/kube"
)

// helmCmd runs the real helm binary against the control plane, with its
// own cache and config directories.
func helmCmd(t *testing.T, args ...string) string {
	t.Helper()
	return helmCmdEnv(t, nil, args...)
}

// helmCmdEnv is helmCmd with more environment (HELM_DRIVER).
func helmCmdEnv(t *testing.T, env []string, args ...string) string {
	t.Helper()
	bin := os.Getenv("WHATCHANGED_HELM")
	if bin == "" {
		t.Fatal("WHATCHANGED_HELM is not set; run `make test`")
	}
	home := t.TempDir()
	cmd := exec.Command(bin, append(args, "--kubeconfig", kubeconfig)...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+filepath.Join(home, "cache"), "HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"))
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func helmChange(chs []sources.Change, rev string) *sources.Change {
	for i := range chs {
		if chs[i].Kind == sources.KindHelm && chs[i].Revision == rev {
			return &chs[i]
		}
	}
	return nil
}

// `helm install` then `helm upgrade` (new chart and app version, a changed
// ConfigMap value, the chart's checksum annotation rolling the pods), run
// from CI with the real helm against the real API server: the release
// records are read back as two helm changes, and the upgrade, the rollout
// it caused and the ConfigMap it edited are one line.
func TestHelmInstallAndUpgrade(t *testing.T) {
	const marker = "helm-values-MARKER-password" // a value the release record keeps
	ns := "helm-orders"
	newNamespace(t, ns)
	s := startSource(t, kube.Config{Namespaces: []string{ns}, Helm: true})
	subj := sources.Subject{Namespace: ns, Kind: "Deployment", Name: "orders"}

	helmCmd(t, "install", "orders", "testdata/orders", "--namespace", ns, "--set", "dbPassword="+marker)
	eventually(t, 30*time.Second, "helm rev 1 and rollout rev 1", func() bool {
		chs := changesOf(t, s, subj)
		return helmChange(chs, "1") != nil && rollout(chs, "1") != nil
	})
	rs, err := client.AppsV1().ReplicaSets(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil || len(rs.Items) != 1 {
		t.Fatalf("ReplicaSets after install: %v %d", err, len(rs.Items))
	}
	nextSecond(rs.Items[0].CreationTimestamp.Time)

	dir := t.TempDir()
	helmCmd(t, "package", "testdata/orders", "--version", "0.2.0", "--app-version", "2.0.0", "--destination", dir)
	helmCmd(t, "upgrade", "orders", filepath.Join(dir, "orders-0.2.0.tgz"), "--namespace", ns, "-f", "testdata/values-v2.yaml", "--set", "dbPassword="+marker)
	eventually(t, 30*time.Second, "helm rev 2, rollout rev 2 and the ConfigMap edit", func() bool {
		chs := changesOf(t, s, subj)
		return helmChange(chs, "2") != nil && rollout(chs, "2") != nil && edited(configChange(chs, "ConfigMap", "orders-config"), "rates.yaml")
	})
	chs := changesOf(t, s, subj)
	var helms int
	for _, ch := range chs {
		if ch.Kind == sources.KindHelm {
			helms++
		}
	}
	install, upgrade := helmChange(chs, "1"), helmChange(chs, "2")
	if helms != 2 || install.Chart != "orders-0.1.0" || install.Version != "1.0.0" || install.Message != "Install complete" ||
		install.Status != sources.StatusSucceeded || install.Subject.Namespace != ns || install.Subject.App != "orders" {
		t.Errorf("%d helm changes; install = %+v", helms, install)
	}
	if upgrade.Chart != "orders-0.2.0" || upgrade.Version != "2.0.0" || upgrade.PreviousVersion != "1.0.0" || upgrade.PreviousRevision != "1" ||
		upgrade.Message != "Upgrade complete" || upgrade.Status != sources.StatusSucceeded || upgrade.ID != "helm/helm-orders/orders@2" {
		t.Errorf("upgrade = %+v", upgrade)
	}
	if !upgrade.StartedAt.After(install.StartedAt) || time.Since(upgrade.StartedAt) > time.Minute {
		t.Errorf("install started %s, upgrade %s", install.StartedAt, upgrade.StartedAt)
	}
	if r2 := rollout(chs, "2"); r2.Version != "acme/orders:2.0.0" || r2.PreviousVersion != "acme/orders:1.0.0" {
		t.Errorf("rollout rev 2 = %+v", r2)
	}

	// The pipeline: one suspect naming the upgrade, its chart, the
	// ConfigMap it edited and the rollout it caused.
	resolver, err := enrich.NewResolver(nil, s)
	if err != nil {
		t.Fatal(err)
	}
	e := enrich.New(enrich.Options{}, resolver, []enrich.SourceEntry{{Source: s}}, nil)
	alert := &enrich.Alert{Labels: map[string]string{"alertname": "OrdersLatency", "namespace": ns, "deployment": "orders"}, StartsAt: time.Now().Add(time.Second)}
	rep := e.Enrich(context.Background(), []*enrich.Alert{alert}, nil)
	suspect := alert.Annotations["whatchanged_suspect"]
	t.Logf("whatchanged_suspect: %s", suspect)
	for _, want := range []string{
		`helm upgrade of orders rev 2 (orders-0.2.0, app 2.0.0 (was 1.0.0)): "Upgrade complete"`,
		"changed ConfigMap orders-config edited (keys: rates.yaml)",
		"rolled out as helm-orders/orders rev 2 (acme/orders:2.0.0)",
		"[kubernetes]",
	} {
		if !strings.Contains(suspect, want) {
			t.Errorf("whatchanged_suspect lacks %q:\n%s\nsummary:\n%s", want, suspect, alert.Annotations["whatchanged_summary"])
		}
	}
	if n := strings.Count(alert.Annotations["whatchanged_summary"], "orders-config"); n != 1 {
		t.Errorf("the ConfigMap edit is on %d lines of the summary, want 1 (folded into the upgrade):\n%s", n, alert.Annotations["whatchanged_summary"])
	}
	if sp := rep.Alerts[0].Suspect; sp == nil || sp.Kind != sources.KindHelm || len(sp.Rollouts) != 1 || sp.Rollouts[0].Revision != "2" {
		t.Errorf("suspect = %+v", sp)
	}

	// The record holds the release's values; they stay in the record.
	out, err := json.Marshal(map[string]any{"changes": chs, "report": rep, "annotations": alert.Annotations})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte("MARKER")) {
		t.Errorf("a value of the release is in the output:\n%s", out)
	}
}

// Helm's ConfigMap driver (HELM_DRIVER=configmap) keeps the records as
// ConfigMaps; a `helm rollback` is a new revision that says so.
func TestHelmConfigMapDriverAndRollback(t *testing.T) {
	ns := "helm-cm"
	newNamespace(t, ns)
	s := startSource(t, kube.Config{Namespaces: []string{ns}, Helm: true})
	driver := []string{"HELM_DRIVER=configmap"}
	dir := t.TempDir()
	helmCmd(t, "package", "testdata/orders", "--version", "0.2.0", "--app-version", "2.0.0", "--destination", dir)
	helmCmdEnv(t, driver, "install", "orders", "testdata/orders", "--namespace", ns)
	helmCmdEnv(t, driver, "upgrade", "orders", filepath.Join(dir, "orders-0.2.0.tgz"), "--namespace", ns)
	helmCmdEnv(t, driver, "rollback", "orders", "1", "--namespace", ns)
	records, err := client.CoreV1().ConfigMaps(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "owner=helm"})
	if err != nil || len(records.Items) != 3 {
		t.Fatalf("helm's ConfigMap records: %v, %d", err, len(records.Items))
	}
	subj := sources.Subject{Namespace: ns, Name: "orders"}
	eventually(t, 30*time.Second, "helm rev 3", func() bool { return helmChange(changesOf(t, s, subj), "3") != nil })
	chs := changesOf(t, s, subj)
	rb := helmChange(chs, "3")
	if rb.Message != "Rollback to 1" || rb.Chart != "orders-0.1.0" || rb.Version != "1.0.0" || rb.PreviousVersion != "2.0.0" || rb.PreviousRevision != "2" {
		t.Errorf("rollback = %+v", rb)
	}
	if up := helmChange(chs, "2"); up == nil || up.Chart != "orders-0.2.0" || up.Status != sources.StatusSucceeded { // superseded
		t.Errorf("upgrade, superseded by the rollback = %+v", up)
	}
}
