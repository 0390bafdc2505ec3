package scenarios_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// ConfigMaps and Secrets as people and tools write them, and Helm's
// release records as its Secret storage driver writes them.

const (
	kindConfigMap = "ConfigMap"
	kindSecret    = "Secret"
)

var (
	gvrConfigMap = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	gvrSecret    = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
)

// config creates a ConfigMap or Secret as its creator's field manager,
// then applies each edit as an update by the edit's manager. The API
// server then records in managedFields which manager owns which data key
// (an edited key moves to its editor); back-dating gives each manager the
// time of its last write.
func (c *cluster) config(ctx context.Context, kind string, o ConfigObject) error {
	createdAt := c.startsAt.Add(-30 * 24 * time.Hour)
	if o.CreatedAt != nil {
		createdAt = o.CreatedAt.From(c.startsAt)
	}
	manager := o.Manager
	if manager == "" {
		manager = "kubectl-client-side-apply"
	}
	managers := map[string]time.Time{manager: createdAt}
	meta := metav1.ObjectMeta{Name: o.Name, Namespace: o.Namespace, Labels: o.Labels, Annotations: o.Annotations}
	data := maps.Clone(o.Data)
	if data == nil {
		data = map[string]string{}
	}
	write := func(create bool, manager string) error {
		var err error
		if kind == kindSecret {
			s := &corev1.Secret{ObjectMeta: meta, Type: corev1.SecretType(o.Type), Data: map[string][]byte{}}
			if s.Type == "" {
				s.Type = corev1.SecretTypeOpaque
			}
			for k, v := range data {
				s.Data[k] = []byte(v)
			}
			if create {
				_, err = kube.CoreV1().Secrets(o.Namespace).Create(ctx, s, metav1.CreateOptions{FieldManager: manager, FieldValidation: "Strict"})
			} else {
				_, err = kube.CoreV1().Secrets(o.Namespace).Update(ctx, s, metav1.UpdateOptions{FieldManager: manager, FieldValidation: "Strict"})
			}
			return err
		}
		cm := &corev1.ConfigMap{ObjectMeta: meta, Data: data}
		if create {
			_, err = kube.CoreV1().ConfigMaps(o.Namespace).Create(ctx, cm, metav1.CreateOptions{FieldManager: manager, FieldValidation: "Strict"})
		} else {
			_, err = kube.CoreV1().ConfigMaps(o.Namespace).Update(ctx, cm, metav1.UpdateOptions{FieldManager: manager, FieldValidation: "Strict"})
		}
		return err
	}
	if err := write(true, manager); err != nil {
		return err
	}
	gvr := gvrConfigMap
	if kind == kindSecret {
		gvr = gvrSecret
	}
	c.objects = append(c.objects, created{gvr: gvr, namespace: o.Namespace, name: o.Name, key: etcdKeyOf(gvr, o.Namespace, o.Name),
		apiVersion: "v1", kind: kind, at: createdAt, managers: managers})
	for i, e := range o.Edits {
		m := e.Manager
		if m == "" {
			m = "kubectl-edit"
		}
		data = maps.Clone(data)
		maps.Copy(data, e.Data)
		for _, k := range e.Remove {
			if _, ok := data[k]; !ok {
				return fmt.Errorf("edits[%d]: remove %q: no such key", i, k)
			}
			delete(data, k)
		}
		if e.Labels != nil {
			meta.Labels = merged(meta.Labels, e.Labels)
		}
		if e.Annotations != nil {
			meta.Annotations = merged(meta.Annotations, e.Annotations)
		}
		if err := write(false, m); err != nil {
			return fmt.Errorf("edits[%d]: %w", i, err)
		}
		managers[m] = e.At.From(c.startsAt)
	}
	return nil
}

// helmRelease writes a release's records as Helm 3's Secret driver does
// (helm pkg/storage/driver: newSecretsObject, encodeRelease): a Secret
// sh.helm.release.v1.<name>.v<revision> of type helm.sh/release.v1,
// labelled name, owner=helm, status, version; data.release is the release
// JSON, gzipped, in base64 (which the Secret's data encodes again). An
// upgrade writes its record pending, marks it deployed (or failed) when
// done, and marks the previous deployed record superseded then.
func (c *cluster) helmRelease(ctx context.Context, h HelmRelease) error {
	revs := h.Revisions
	first := revs[0].At.From(c.startsAt)
	finished := func(r HelmRevision) time.Time {
		if r.FinishedAt != nil {
			return r.FinishedAt.From(c.startsAt)
		}
		return r.At.From(c.startsAt)
	}
	for i, r := range revs {
		at := r.At.From(c.startsAt)
		status, written := r.Status, finished(r)
		if status == "" {
			status = "superseded"
			if i == len(revs)-1 {
				status = "deployed"
			}
		}
		if status == "superseded" && i+1 < len(revs) {
			written = finished(revs[i+1]) // when the next upgrade finished
		}
		desc := r.Description
		if desc == "" {
			desc = "Upgrade complete"
			if r.Revision == 1 {
				desc = "Install complete"
			}
		}
		rel := helmReleaseJSON(h, r, status, desc, first, at)
		enc, err := encodeHelmRelease(rel)
		if err != nil {
			return err
		}
		labels := map[string]string{"name": h.Name, "owner": "helm", "status": status, "version": strconv.Itoa(r.Revision),
			"createdAt": strconv.FormatInt(at.Unix(), 10)}
		if written.After(at) {
			labels["modifiedAt"] = strconv.FormatInt(written.Unix(), 10)
		}
		name := fmt.Sprintf("sh.helm.release.v1.%s.v%d", h.Name, r.Revision)
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: h.Namespace, Labels: labels},
			Type: "helm.sh/release.v1", Data: map[string][]byte{"release": []byte(enc)}}
		if _, err := kube.CoreV1().Secrets(h.Namespace).Create(ctx, s, metav1.CreateOptions{FieldManager: "helm", FieldValidation: "Strict"}); err != nil {
			return err
		}
		c.objects = append(c.objects, created{gvr: gvrSecret, namespace: h.Namespace, name: name, key: etcdKeyOf(gvrSecret, h.Namespace, name),
			apiVersion: "v1", kind: kindSecret, at: at, managers: map[string]time.Time{"helm": written}})
	}
	return nil
}

// helmReleaseJSON is a release as Helm 3 marshals it (pkg/release.Release:
// zero times as "", the chart with its metadata, templates and values).
func helmReleaseJSON(h HelmRelease, r HelmRevision, status, desc string, first, at time.Time) map[string]any {
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	return map[string]any{
		"name": h.Name,
		"info": map[string]any{"first_deployed": ts(first), "last_deployed": ts(at), "deleted": "",
			"description": desc, "status": status, "notes": "1. Get the application URL by running these commands:"},
		"chart": map[string]any{
			"metadata": map[string]any{"name": r.Chart, "version": r.ChartVersion, "appVersion": r.AppVersion,
				"apiVersion": "v2", "type": "application", "description": "A Helm chart for " + r.Chart},
			"lock": nil,
			"templates": []any{map[string]any{"name": "templates/deployment.yaml",
				"data": base64.StdEncoding.EncodeToString([]byte("apiVersion: apps/v1\nkind: Deployment\n"))}},
			"values": map[string]any{"replicaCount": 2}, "schema": nil, "files": []any{},
		},
		"config":    map[string]any{"image": map[string]any{"tag": r.AppVersion}},
		"manifest":  "---\n# Source: " + r.Chart + "/templates/deployment.yaml\napiVersion: apps/v1\nkind: Deployment\n",
		"version":   r.Revision,
		"namespace": h.Namespace,
	}
}

// encodeHelmRelease is helm's encodeRelease: JSON, gzip (best
// compression), base64.
func encodeHelmRelease(rel map[string]any) (string, error) {
	b, err := json.Marshal(rel)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	w, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return "", err
	}
	if _, err := w.Write(b); err != nil {
		return "", err
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}

// timeRef is a time in an `objects:` entry: "${-6m}" is that offset from
// the alert's start, in RFC 3339 (a Flux status's history and conditions).
var timeRef = regexp.MustCompile(`\$\{([^}]*)\}`)

// withTimes replaces every "${offset}" in an object's strings.
func withTimes(v any, startsAt time.Time) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = withTimes(e, startsAt)
		}
	case []any:
		for i, e := range x {
			x[i] = withTimes(e, startsAt)
		}
	case string:
		if !strings.Contains(x, "${") {
			return x
		}
		return timeRef.ReplaceAllStringFunc(x, func(m string) string {
			off, err := ParseOffset(timeRef.FindStringSubmatch(m)[1])
			if err != nil {
				return m // left as written: the API server's validation says where
			}
			return off.From(startsAt).UTC().Format(time.RFC3339)
		})
	}
	return v
}
