package kube

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/whatchanged/whatchanged/sources"
)

func TestUsesOfReadsVolumesProjectedEnvAndSubPath(t *testing.T) {
	spec := &corev1.PodSpec{
		Containers: []corev1.Container{{
			Name: "app",
			Env: []corev1.EnvVar{{Name: "DB_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "password"}}}},
			EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "app-env"}}}},
			VolumeMounts: []corev1.VolumeMount{
				{Name: "rates", MountPath: "/etc/rates"},
				{Name: "nginx", MountPath: "/etc/nginx/nginx.conf", SubPath: "nginx.conf"},
				{Name: "both", MountPath: "/etc/both"}},
		}},
		Volumes: []corev1.Volume{
			{Name: "rates", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "pricing-config"}}}},
			{Name: "nginx", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "nginx"}}}},
			{Name: "both", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "app-env"}}},
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "tls"}}}}}}},
		},
	}
	got := usesOf(spec)
	want := "ConfigMap/app-env=env+mount,ConfigMap/nginx=subpath,ConfigMap/pricing-config=mount,Secret/db=env:password,Secret/tls=mount"
	if got != want {
		t.Errorf("uses\n got %s\nwant %s", got, want)
	}
	back := parseUses(got)
	if len(back) != 5 || back[1].name != "nginx" || !back[1].uses(useSubPath) || back[1].keys != nil ||
		!slices.Equal(back[3].keys, []string{"password"}) || !back[0].uses(useEnv) || !back[0].uses(useMount) {
		t.Errorf("parsed %+v", back)
	}
}

func fieldsFor(keys ...string) *metav1.FieldsV1 {
	data := map[string]any{}
	for _, k := range keys {
		data["f:"+k] = map[string]any{}
	}
	raw, _ := json.Marshal(map[string]any{"f:data": data})
	return &metav1.FieldsV1{Raw: raw}
}

func TestConfigTrackerTellsEditsByKeyAndIgnoresMetadata(t *testing.T) {
	now := t0
	tr := newConfigTracker(func() time.Time { return now })
	created := metav1.NewTime(t0.Add(-30 * 24 * time.Hour))
	edited := metav1.NewTime(t0.Add(-4 * time.Minute))
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "pricing-config", UID: "u1", CreationTimestamp: created,
		ManagedFields: []metav1.ManagedFieldsEntry{
			{Manager: "helm", Operation: metav1.ManagedFieldsOperationUpdate, Time: &created, FieldsV1: fieldsFor("rates.yaml", "tiers.yaml")},
			// kubectl edit took ownership of the key it changed.
			{Manager: "kubectl-edit", Operation: metav1.ManagedFieldsOperationUpdate, Time: &edited, FieldsV1: fieldsFor("rates.yaml")},
		}},
		Data: map[string]string{"rates.yaml": "eur: 1.1", "tiers.yaml": "gold: 3"}}
	obj, _ := tr.transform(cm)
	c := obj.(*configObject)
	if !c.changedAt.Equal(edited.Time) || !slices.Equal(c.changedKeys, []string{"rates.yaml"}) || c.created {
		t.Fatalf("first sight: changed %v keys %v created %v", c.changedAt, c.changedKeys, c.created)
	}

	// A label added: not a change.
	now = t0.Add(time.Minute)
	cm2 := cm.DeepCopy()
	cm2.Labels = map[string]string{"team": "pricing"}
	obj, _ = tr.transform(cm2)
	if c := obj.(*configObject); !c.changedAt.Equal(edited.Time) {
		t.Errorf("a metadata edit moved the change time to %v", c.changedAt)
	}

	// A value changed and a key added, seen by the watch.
	now = t0.Add(2 * time.Minute)
	cm3 := cm2.DeepCopy()
	cm3.Data["tiers.yaml"] = "gold: 4"
	cm3.Data["new.yaml"] = "x"
	obj, _ = tr.transform(cm3)
	c = obj.(*configObject)
	if !c.changedAt.Equal(now) || !slices.Equal(c.changedKeys, []string{"new.yaml", "tiers.yaml"}) {
		t.Errorf("live edit: changed %v keys %v", c.changedAt, c.changedKeys)
	}

	// A new object: created, not edited.
	fresh := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "new", UID: "u2", CreationTimestamp: edited,
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl", Time: &edited, FieldsV1: fieldsFor("a")}}}, Data: map[string]string{"a": "1"}}
	obj, _ = tr.transform(fresh)
	if c := obj.(*configObject); !c.created || !c.changedAt.Equal(edited.Time) {
		t.Errorf("created: %+v", c)
	}
}

func TestSecretValuesDoNotReachTheCache(t *testing.T) {
	const marker = "s3cr3t-MARKER-value"
	tr := newConfigTracker(time.Now)
	obj, _ := tr.transform(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db", UID: "s1"},
		Data: map[string][]byte{"DB_PASSWORD": []byte(marker)}, StringData: map[string]string{"x": marker}})
	dump := fmt.Sprintf("%+v %#v", obj, obj)
	raw, _ := json.Marshal(obj)
	for _, s := range []string{dump, string(raw)} {
		if strings.Contains(s, marker) || strings.Contains(s, base64.StdEncoding.EncodeToString([]byte(marker))) {
			t.Fatalf("the cached object carries the value: %s", s)
		}
	}
	if !strings.Contains(dump, "db") {
		t.Fatalf("dump does not show the object: %s", dump)
	}
}

// helmRecordData encodes a release as Helm's storage driver does.
func helmRecordData(t *testing.T, release map[string]any) []byte {
	t.Helper()
	raw, err := json.Marshal(release)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(raw)
	zw.Close()
	return []byte(base64.StdEncoding.EncodeToString(buf.Bytes()))
}

func TestHelmRecordKeepsTheReleaseAndDropsValuesAndManifest(t *testing.T) {
	const marker = "helm-values-MARKER"
	data := helmRecordData(t, map[string]any{
		"name": "orders", "version": 5, "namespace": "orders",
		"info":     map[string]any{"last_deployed": "2026-11-21T09:25:00Z", "status": "deployed", "description": "Upgrade complete"},
		"chart":    map[string]any{"metadata": map[string]any{"name": "orders", "version": "3.2.1", "appVersion": "3.2.0"}, "values": map[string]any{"password": marker}},
		"config":   map[string]any{"password": marker},
		"manifest": "kind: Secret\ndata:\n  password: " + marker,
	})
	obj, err := helmTransform(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "orders", Name: "sh.helm.release.v1.orders.v5",
		Labels: map[string]string{"owner": "helm", "name": "orders", "version": "5", "status": "deployed"}},
		Data: map[string][]byte{"release": data}})
	if err != nil {
		t.Fatal(err)
	}
	r := obj.(*helmRecord)
	if r.Release != "orders" || r.Revision != 5 || r.Chart != "orders-3.2.1" || r.AppVersion != "3.2.0" || r.Status != "deployed" ||
		r.Description != "Upgrade complete" || !r.LastDeployed.Equal(time.Date(2026, 11, 21, 9, 25, 0, 0, time.UTC)) {
		t.Errorf("record %+v", r)
	}
	if dump := fmt.Sprintf("%#v", r); strings.Contains(dump, marker) {
		t.Errorf("the record keeps values or manifest: %s", dump)
	}
	// A record that does not decode is kept as its labels say.
	obj, _ = helmTransform(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "orders", Name: "sh.helm.release.v1.orders.v6",
		Labels: map[string]string{"owner": "helm", "name": "orders", "version": "6", "status": "failed"}}, Data: map[string]string{"release": "!!"}})
	if r := obj.(*helmRecord); r.Release != "orders" || r.Revision != 6 || r.Status != "failed" {
		t.Errorf("undecodable record %+v", r)
	}
}

func TestSplitFluxRevision(t *testing.T) {
	for rev, want := range map[string][2]string{
		"main@sha1:9f1c2e7a4b3d5e6f7a8b9c0d1e2f3a4b5c6d7e8f": {"main", "9f1c2e7a4b3d5e6f7a8b9c0d1e2f3a4b5c6d7e8f"},
		"v1.2.0@sha256:abcdef0123":                           {"v1.2.0", ""},
		"main/9f1c2e7a4b3d5e6f7a8b9c0d1e2f3a4b5c6d7e8f":      {"main", "9f1c2e7a4b3d5e6f7a8b9c0d1e2f3a4b5c6d7e8f"},
		"6.5.0": {"6.5.0", ""},
	} {
		if ref, sha := splitFluxRevision(rev); ref != want[0] || sha != want[1] {
			t.Errorf("%s: %q %q, want %q", rev, ref, sha, want)
		}
	}
}

// A workload reading one key of a shared ConfigMap is not told of edits
// to the others (when the edit's keys are known).
func TestConfigEditOfKeysTheWorkloadDoesNotRead(t *testing.T) {
	created := metav1.NewTime(t0.Add(-30 * 24 * time.Hour))
	edited := metav1.NewTime(t0.Add(-4 * time.Minute))
	shared := func(name, key string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, UID: types.UID("cm-" + name), CreationTimestamp: created,
			ManagedFields: []metav1.ManagedFieldsEntry{
				{Manager: "helm", Time: &created, FieldsV1: fieldsFor("DB_HOST", "FEATURE_X")},
				{Manager: "kubectl-edit", Time: &edited, FieldsV1: fieldsFor(key)}}},
			Data: map[string]string{"DB_HOST": "db", "FEATURE_X": "on"}}
	}
	d := deployment("shop", "api", "uid-api", map[string]string{"app": "api"}, nil, "acme/api:1")
	d.Spec.Template.Spec.Containers[0].Env = append(d.Spec.Template.Spec.Containers[0].Env,
		corev1.EnvVar{Name: "DB_HOST", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "shared"}, Key: "DB_HOST"}}},
		corev1.EnvVar{Name: "DB_HOST2", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "shared2"}, Key: "DB_HOST"}}})
	s := newFake(t, Config{}, nil, d, shared("shared", "FEATURE_X"), shared("shared2", "DB_HOST"))
	s.now = func() time.Time { return t0 }
	since, until := window()
	chs, err := s.Changes(context.Background(), sources.Query{Subject: sources.Subject{Namespace: "shop", Kind: "Deployment", Name: "api"}, Since: since, Until: until})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range chs {
		if c.Kind == sources.KindConfig {
			got = append(got, c.Objects[0].Name+":"+strings.Join(c.Objects[0].Keys, ";")+" / "+c.Detail)
		}
	}
	want := []string{"shared2:DB_HOST / read as env by shop/api; not rolled out (pods older than the edit)"}
	if !slices.Equal(got, want) {
		t.Errorf("config changes\n got %q\nwant %q", got, want)
	}
}
