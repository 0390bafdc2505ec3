package kube

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"

	"github.com/whatchanged/whatchanged/sources"
)

// Helm 3 keeps each revision of a release as a Secret (the default
// driver) or a ConfigMap labelled owner=helm, named
// sh.helm.release.v1.<release>.v<revision>, whose "release" key is the
// release as gzipped JSON in base64 (helm's pkg/storage/driver). The
// decoding function there is unexported, and importing Helm would pull its
// whole dependency tree for twenty lines, so it is read here.
//
// The record also holds the release's values and rendered manifests, which
// can carry secrets: the transform keeps the fields below and drops the rest.

const helmOwnerSelector = "owner=helm"

// annHelmNamespace names the namespace of the release owning an object.
const annHelmNamespace = "meta.helm.sh/release-namespace"

// byRelease indexes Helm records by "<namespace>/<release>".
const byRelease = "release"

// helmRecord is what the cache keeps of one release revision.
type helmRecord struct {
	metav1.TypeMeta
	metav1.ObjectMeta
	Release      string
	Revision     int
	Chart        string // name-version
	AppVersion   string
	Status       string // deployed, superseded, failed, pending-upgrade, …
	Description  string // "Upgrade complete", "Rollback to 3"
	LastDeployed time.Time
	// Written is when the record was last written: a release that waited
	// for its resources (--wait) is marked deployed at the end.
	Written time.Time
}

func (r *helmRecord) DeepCopyObject() runtime.Object {
	c := *r
	c.ObjectMeta = *r.ObjectMeta.DeepCopy()
	return &c
}

// helmRelease is the part of Helm's release JSON kept.
type helmRelease struct {
	Name string `json:"name"`
	Info struct {
		LastDeployed time.Time `json:"last_deployed"`
		Description  string    `json:"description"`
		Status       string    `json:"status"`
	} `json:"info"`
	Chart struct {
		Metadata struct {
			Name       string `json:"name"`
			Version    string `json:"version"`
			AppVersion string `json:"appVersion"`
		} `json:"metadata"`
	} `json:"chart"`
	Version   int    `json:"version"`
	Namespace string `json:"namespace"`
}

// maxRelease bounds a decompressed record (Helm's own limit on a Secret
// is 1 MiB compressed; a manifest rarely passes a few MiB).
const maxRelease = 32 << 20

// decodeHelmRelease reads a record's "release" value: base64, then gzip
// (Helm writes gzip; older records may be plain JSON), then JSON.
func decodeHelmRelease(data []byte) (helmRelease, error) {
	var rel helmRelease
	raw := make([]byte, base64.StdEncoding.DecodedLen(len(data)))
	n, err := base64.StdEncoding.Decode(raw, data)
	if err != nil {
		return rel, err
	}
	raw = raw[:n]
	var r io.Reader = bytes.NewReader(raw)
	if bytes.HasPrefix(raw, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return rel, err
		}
		defer zr.Close()
		r = zr
	}
	err = json.NewDecoder(io.LimitReader(r, maxRelease)).Decode(&rel)
	return rel, err
}

// helmTransform turns a record Secret or ConfigMap into a helmRecord; one
// that does not decode is kept as its labels say (name, version, status).
func helmTransform(obj any) (any, error) {
	var meta metav1.ObjectMeta
	var data []byte
	switch o := obj.(type) {
	case *corev1.Secret:
		meta, data = o.ObjectMeta, o.Data["release"]
	case *corev1.ConfigMap:
		meta, data = o.ObjectMeta, []byte(o.Data["release"])
	default:
		return obj, nil
	}
	rec := &helmRecord{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "HelmRecord"},
		ObjectMeta: metav1.ObjectMeta{Name: meta.Name, Namespace: meta.Namespace, UID: meta.UID,
			ResourceVersion: meta.ResourceVersion, CreationTimestamp: meta.CreationTimestamp},
		Release: meta.Labels["name"], Status: meta.Labels["status"], Written: lastWritten(meta.ManagedFields)}
	rec.Revision, _ = strconv.Atoi(meta.Labels["version"])
	rec.LastDeployed = meta.CreationTimestamp.UTC()
	if rel, err := decodeHelmRelease(data); err == nil {
		m := rel.Chart.Metadata
		rec.Release = cmp.Or(rel.Name, rec.Release)
		if rel.Version > 0 {
			rec.Revision = rel.Version
		}
		if m.Name != "" {
			rec.Chart = m.Name + "-" + m.Version
		}
		rec.AppVersion, rec.Description = m.AppVersion, rel.Info.Description
		rec.Status = cmp.Or(rel.Info.Status, rec.Status)
		if !rel.Info.LastDeployed.IsZero() {
			rec.LastDeployed = rel.Info.LastDeployed.UTC()
		}
	}
	return rec, nil
}

func helmIndex(obj any) ([]string, error) {
	if r, ok := obj.(*helmRecord); ok && r.Release != "" {
		return []string{r.Namespace + "/" + r.Release}, nil
	}
	return nil, nil
}

// helmChanges are the revisions in [since, until] of the Helm release
// owning the workload (meta.helm.sh/release-name).
func (s *Source) helmChanges(w workload, since, until time.Time) []sources.Change {
	if w.scope.helmSecrets == nil {
		return nil
	}
	ann := w.meta.GetAnnotations()
	release := ann[annHelmRelease]
	if release == "" {
		return nil
	}
	ns := cmp.Or(ann[annHelmNamespace], w.meta.GetNamespace())
	var recs []*helmRecord
	for _, sc := range s.scopesFor(ns) {
		for _, inf := range []cache.Indexer{sc.helmSecrets.GetIndexer(), sc.helmConfigMaps.GetIndexer()} {
			objs, _ := inf.ByIndex(byRelease, ns+"/"+release)
			for _, o := range objs {
				if r, ok := o.(*helmRecord); ok {
					recs = append(recs, r)
				}
			}
		}
	}
	byRev := map[int]*helmRecord{}
	for _, r := range recs {
		byRev[r.Revision] = r
	}
	var out []sources.Change
	for _, r := range recs {
		if r.LastDeployed.Before(since) || r.LastDeployed.After(until) || r.Status == "uninstalled" || r.Status == "uninstalling" {
			continue
		}
		ch := sources.Change{
			Source: s.name, Kind: sources.KindHelm, ID: "helm/" + ns + "/" + release + "@" + strconv.Itoa(r.Revision),
			Subject:  sources.Subject{Namespace: ns, App: release, Cluster: s.cfg.Cluster},
			Revision: strconv.Itoa(r.Revision), Version: r.AppVersion, Chart: r.Chart,
			StartedAt: r.LastDeployed, Message: r.Description, Status: helmStatus(r.Status),
		}
		// The record's last write ends a current release (marked deployed or
		// failed once its resources were applied or waited for); a
		// superseded one is written again when the next upgrade runs,
		// which says nothing of when it finished.
		if (r.Status == "deployed" || r.Status == "failed") && r.Written.After(r.LastDeployed) {
			ch.FinishedAt = r.Written
		}
		if next := byRev[r.Revision+1]; next != nil && !ch.FinishedAt.IsZero() && ch.FinishedAt.After(next.LastDeployed) {
			ch.FinishedAt = next.LastDeployed
		}
		if prev := byRev[r.Revision-1]; prev != nil {
			ch.PreviousRevision = strconv.Itoa(prev.Revision)
			if prev.AppVersion != r.AppVersion {
				ch.PreviousVersion = prev.AppVersion
			}
		}
		out = append(out, ch)
	}
	return out
}

func helmStatus(s string) string {
	switch {
	case s == "deployed" || s == "superseded":
		return sources.StatusSucceeded
	case s == "failed":
		return sources.StatusFailed
	case strings.HasPrefix(s, "pending"):
		return sources.StatusInProgress
	}
	return sources.StatusUnknown
}
