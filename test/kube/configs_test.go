package kube_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"

	"github.com/whatchanged/whatchanged/enrich"
	"github.com/whatchanged/whatchanged/sources"
	"github.com/whatchanged/whatchanged/sources/kube"
	"github.com/whatchanged/whatchanged/test/proctest"
)

// podDeployment is a one-replica Deployment labelled app=<name> running spec.
func podDeployment(ns, name string, labels map[string]string, spec corev1.PodSpec) *appsv1.Deployment {
	sel := map[string]string{"app": name}
	all := map[string]string{"app": name}
	for k, v := range labels {
		all[k] = v
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: all},
		Spec: appsv1.DeploymentSpec{
			Replicas: func() *int32 { r := int32(1); return &r }(),
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: sel}, Spec: spec},
		},
	}
}

func createDeployment(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	if _, err := client.AppsV1().Deployments(d.Namespace).Create(context.Background(), d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// rollout is the workload revision rev (revision() also matches a Helm
// release revision or a sync).
func rollout(chs []sources.Change, rev string) *sources.Change {
	for i := range chs {
		if (chs[i].Kind == sources.KindRollout || chs[i].Kind == sources.KindRollback) && chs[i].Revision == rev {
			return &chs[i]
		}
	}
	return nil
}

// configChange is the config change of a workload about the named object.
func configChange(chs []sources.Change, kind, name string) *sources.Change {
	for i := range chs {
		if chs[i].Kind == sources.KindConfig && len(chs[i].Objects) == 1 && chs[i].Objects[0].Kind == kind && chs[i].Objects[0].Name == name {
			return &chs[i]
		}
	}
	return nil
}

// edited: the object's last data change was an edit of exactly these keys.
func edited(c *sources.Change, keys ...string) bool {
	return c != nil && !c.Objects[0].Created && slices.Equal(c.Objects[0].Keys, keys)
}

// editConfigMap sets data keys, retrying when someone wrote in between
// (as kubectl edit does).
func editConfigMap(t *testing.T, ns, name string, data map[string]string) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm, err := client.CoreV1().ConfigMaps(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for k, v := range data {
			cm.Data[k] = v
		}
		_, err = client.CoreV1().ConfigMaps(ns).Update(context.Background(), cm, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// restart is `kubectl rollout restart`: a new template annotation, which the
// real deployment controller turns into a new ReplicaSet.
func restart(t *testing.T, ns, name string) {
	t.Helper()
	patch := `{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"` + time.Now().Format(time.RFC3339) + `"}}}}}`
	if _, err := client.AppsV1().Deployments(ns).Patch(context.Background(), name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// nextSecond waits until the wall clock is in a later second than t: the
// API server's timestamps have second precision, and an edit made in the
// second a ReplicaSet was created cannot be told before or after it.
func nextSecond(t time.Time) {
	time.Sleep(time.Until(t.Truncate(time.Second).Add(time.Second + 50*time.Millisecond)))
}

// A ConfigMap mounted by one Deployment and read as env by another: an edit
// is a config change of each, naming the changed key and how it reaches the
// pods; the env one is picked up by the rollout restart that follows.
func TestConfigMapEditMountedAndEnv(t *testing.T) {
	ns := "pricing-cfg"
	newNamespace(t, ns)
	c := context.Background()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pricing-config"},
		Data: map[string]string{"rates.yaml": "standard: 1.00\n", "limits.yaml": "max: 10\n"}}
	if _, err := client.CoreV1().ConfigMaps(ns).Create(c, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	createDeployment(t, podDeployment(ns, "pricing", nil, corev1.PodSpec{
		Containers: []corev1.Container{{Name: "pricing", Image: "acme/pricing:1.0",
			VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: "/etc/pricing"}}}},
		Volumes: []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{
			ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "pricing-config"}}}}},
	}))
	createDeployment(t, podDeployment(ns, "checkout", nil, corev1.PodSpec{
		Containers: []corev1.Container{{Name: "checkout", Image: "acme/checkout:1.0",
			EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "pricing-config"}}}}}},
	}))
	s := startSource(t, kube.Config{Namespaces: []string{ns}})
	pricing := sources.Subject{Namespace: ns, Kind: "Deployment", Name: "pricing"}
	checkout := sources.Subject{Namespace: ns, Kind: "Deployment", Name: "checkout"}
	for _, subj := range []sources.Subject{pricing, checkout} {
		eventually(t, 30*time.Second, "revision 1 of "+subj.Name, func() bool { return rollout(changesOf(t, s, subj), "1") != nil })
	}
	// Before any edit: the ConfigMap's creation, which revision 1 of each picked up.
	if ch := configChange(changesOf(t, s, checkout), "ConfigMap", "pricing-config"); ch == nil || !ch.Objects[0].Created ||
		ch.Detail != "read as env by pricing-cfg/checkout; rolled out since as rev 1" {
		t.Errorf("the ConfigMap's creation = %+v", ch)
	}

	rs, err := client.AppsV1().ReplicaSets(ns).List(c, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	newest := time.Time{}
	for _, r := range rs.Items {
		if r.CreationTimestamp.After(newest) {
			newest = r.CreationTimestamp.Time
		}
	}
	nextSecond(newest)
	editConfigMap(t, ns, "pricing-config", map[string]string{"rates.yaml": "standard: 1.10\n"})
	eventually(t, 10*time.Second, "the edit seen on both workloads", func() bool {
		return edited(configChange(changesOf(t, s, pricing), "ConfigMap", "pricing-config"), "rates.yaml") &&
			edited(configChange(changesOf(t, s, checkout), "ConfigMap", "pricing-config"), "rates.yaml")
	})
	mounted := configChange(changesOf(t, s, pricing), "ConfigMap", "pricing-config")
	env := configChange(changesOf(t, s, checkout), "ConfigMap", "pricing-config")
	for _, ch := range []*sources.Change{mounted, env} {
		if ch.Source != "kubernetes" || ch.Status != sources.StatusSucceeded || ch.Objects[0].Namespace != ns ||
			time.Since(ch.StartedAt) > time.Minute || time.Since(ch.StartedAt) < -time.Second {
			t.Errorf("config change = %+v", ch)
		}
	}
	if mounted.Subject.Name != "pricing" || mounted.Detail != "mounted by pricing-cfg/pricing; the pods pick it up within about a minute (no restart)" {
		t.Errorf("mounted: subject %+v, detail %q", mounted.Subject, mounted.Detail)
	}
	if env.Subject.Name != "checkout" || env.Detail != "read as env by pricing-cfg/checkout; not rolled out (pods older than the edit)" {
		t.Errorf("env: subject %+v, detail %q", env.Subject, env.Detail)
	}

	restart(t, ns, "checkout")
	eventually(t, 30*time.Second, "revision 2 of checkout after the restart", func() bool { return rollout(changesOf(t, s, checkout), "2") != nil })
	env = configChange(changesOf(t, s, checkout), "ConfigMap", "pricing-config")
	if !edited(env, "rates.yaml") || env.Detail != "read as env by pricing-cfg/checkout; rolled out since as rev 2" {
		t.Errorf("env after the restart = %+v", env)
	}
	if again := configChange(changesOf(t, s, pricing), "ConfigMap", "pricing-config"); again == nil || again.ID != mounted.ID || strings.Contains(again.Detail, "rolled out") {
		t.Errorf("the mounting workload, not restarted = %+v", again)
	}

	// Through the pipeline: the edit and the restart that picked it up
	// are one line, the suspect of an alert on checkout.
	resolver, err := enrich.NewResolver(nil, s)
	if err != nil {
		t.Fatal(err)
	}
	e := enrich.New(enrich.Options{}, resolver, []enrich.SourceEntry{{Source: s}}, nil)
	alert := &enrich.Alert{Labels: map[string]string{"alertname": "CheckoutErrors", "namespace": ns, "deployment": "checkout"}, StartsAt: time.Now().Add(time.Second)}
	rep := e.Enrich(c, []*enrich.Alert{alert}, nil).Alerts[0]
	got := alert.Annotations["whatchanged_suspect"]
	if rep.Suspect == nil || !strings.Contains(got, "ConfigMap pricing-config edited (keys: rates.yaml)") || !strings.Contains(got, "rolled out as pricing-cfg/checkout rev 2") {
		t.Errorf("whatchanged_suspect = %q\nsummary:\n%s", got, alert.Annotations["whatchanged_summary"])
	}
}

// Labels and annotations written on a ConfigMap (kubectl label, a
// controller's bookkeeping) change nothing a pod reads: not a change.
func TestConfigMapMetadataEditIsNotAChange(t *testing.T) {
	ns := "meta-cfg"
	newNamespace(t, ns)
	c := context.Background()
	for _, name := range []string{"app-config", "sentinel"} {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: map[string]string{"a": "1", "b": "2"}}
		if _, err := client.CoreV1().ConfigMaps(ns).Create(c, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	vol := func(name string) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{
			ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: name}}}}
	}
	createDeployment(t, podDeployment(ns, "app", nil, corev1.PodSpec{
		Containers: []corev1.Container{{Name: "app", Image: "acme/app:1"}}, Volumes: []corev1.Volume{vol("app-config"), vol("sentinel")}}))
	s := startSource(t, kube.Config{Namespaces: []string{ns}})
	subj := sources.Subject{Namespace: ns, Name: "app"}
	eventually(t, 30*time.Second, "the workload", func() bool { return rollout(changesOf(t, s, subj), "1") != nil })
	time.Sleep(1100 * time.Millisecond)
	editConfigMap(t, ns, "app-config", map[string]string{"b": "3"})
	eventually(t, 10*time.Second, "the data edit", func() bool { return edited(configChange(changesOf(t, s, subj), "ConfigMap", "app-config"), "b") })
	before := *configChange(changesOf(t, s, subj), "ConfigMap", "app-config")

	time.Sleep(1100 * time.Millisecond) // a change now would start in a later second
	patch := `{"metadata":{"labels":{"team":"payments"},"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{}","note":"reviewed"}}}`
	if _, err := client.CoreV1().ConfigMaps(ns).Patch(c, "app-config", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	// An update that writes the same data back, as an apply without a diff does.
	editConfigMap(t, ns, "app-config", map[string]string{"b": "3"})
	// The watch delivers a namespace's ConfigMaps in order: once the
	// sentinel's later edit is seen, so were the metadata edits.
	editConfigMap(t, ns, "sentinel", map[string]string{"a": "9"})
	eventually(t, 10*time.Second, "the sentinel's edit", func() bool { return edited(configChange(changesOf(t, s, subj), "ConfigMap", "sentinel"), "a") })
	after := configChange(changesOf(t, s, subj), "ConfigMap", "app-config")
	if after == nil || after.ID != before.ID || !after.StartedAt.Equal(before.StartedAt) || !slices.Equal(after.Objects[0].Keys, []string{"b"}) {
		t.Errorf("after a metadata-only edit:\n got %+v\nwant %+v", after, before)
	}
}

// startSourceLogging is startSource with the source's log kept.
func startSourceLogging(t *testing.T, cfg kube.Config, log *slog.Logger) *kube.Source {
	t.Helper()
	cfg.Kubeconfig = kubeconfig
	clients, _, err := kube.ClientsFromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := kube.New("kubernetes", cfg, clients, log)
	if err := s.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	wc, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if !s.WaitForSync(wc) {
		t.Fatal("caches did not sync against the real API server")
	}
	return s
}

// A rotated Secret is told by the key that changed; its values, before and
// after, appear in no change, annotation, report or log line.
func TestSecretRotationTellsKeysOnly(t *testing.T) {
	const (
		oldMarker = "s3cr3t-MARKER-value"
		newMarker = "r0tated-MARKER-value"
	)
	ns := "secret-cfg"
	newNamespace(t, ns)
	c := context.Background()
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db-credentials"},
		StringData: map[string]string{"username": "orders", "password": oldMarker}}
	if _, err := client.CoreV1().Secrets(ns).Create(c, sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	createDeployment(t, podDeployment(ns, "orders-db", nil, corev1.PodSpec{
		Containers: []corev1.Container{{Name: "orders", Image: "acme/orders:3.2", Env: []corev1.EnvVar{{Name: "DB_PASSWORD",
			ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "db-credentials"}, Key: "password"}}}}}},
	}))
	var logs proctest.Log
	s := startSourceLogging(t, kube.Config{Namespaces: []string{ns}, Secrets: true},
		slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	subj := sources.Subject{Namespace: ns, Kind: "Deployment", Name: "orders-db"}
	eventually(t, 30*time.Second, "revision 1", func() bool { return rollout(changesOf(t, s, subj), "1") != nil })
	nextSecond(time.Now())

	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		got, err := client.CoreV1().Secrets(ns).Get(c, "db-credentials", metav1.GetOptions{})
		if err != nil {
			return err
		}
		got.Data["password"] = []byte(newMarker)
		_, err = client.CoreV1().Secrets(ns).Update(c, got, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the rotation", func() bool {
		return edited(configChange(changesOf(t, s, subj), "Secret", "db-credentials"), "password")
	})
	chs := changesOf(t, s, subj)
	rot := configChange(chs, "Secret", "db-credentials")
	if rot.Detail != "read as env by secret-cfg/orders-db; not rolled out (pods older than the edit)" {
		t.Errorf("rotation detail = %q", rot.Detail)
	}

	resolver, err := enrich.NewResolver(nil, s)
	if err != nil {
		t.Fatal(err)
	}
	e := enrich.New(enrich.Options{}, resolver, []enrich.SourceEntry{{Source: s}}, nil)
	alert := &enrich.Alert{Labels: map[string]string{"alertname": "DBAuthFailures", "namespace": ns, "deployment": "orders-db"}, StartsAt: time.Now().Add(time.Second)}
	rep := e.Enrich(c, []*enrich.Alert{alert}, nil)
	if got := alert.Annotations["whatchanged_suspect"]; !strings.HasPrefix(got, "Secret db-credentials edited (keys: password) ") {
		t.Errorf("whatchanged_suspect = %q", got)
	}

	out, err := json.Marshal(map[string]any{"changes": chs, "report": rep, "annotations": alert.Annotations})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), `"secrets":true`) {
		t.Fatalf("the source logged nothing (the log check below would prove nothing):\n%s", logs.String())
	}
	for _, m := range []string{oldMarker, newMarker} {
		for _, form := range []string{m, base64.StdEncoding.EncodeToString([]byte(m)), "MARKER"} {
			if bytes.Contains(out, []byte(form)) {
				t.Errorf("%q is in the changes, report or annotations:\n%s", form, out)
			}
			if strings.Contains(logs.String(), form) {
				t.Errorf("%q is in the source's log:\n%s", form, logs.String())
			}
		}
	}
}
