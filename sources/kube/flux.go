package kube

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/whatchanged/whatchanged/sources"
)

// Flux applies what its Kustomizations and HelmReleases say and labels
// every object it applies with the owner's name and namespace. Their status
// says which revision was applied when: a sync, as an Argo CD sync is.

var (
	kustomizationsGVR  = schema.GroupVersionResource{Group: "kustomize.toolkit.fluxcd.io", Version: "v1", Resource: "kustomizations"}
	helmReleasesGVR    = schema.GroupVersionResource{Group: "helm.toolkit.fluxcd.io", Version: "v2", Resource: "helmreleases"}
	gitRepositoriesGVR = schema.GroupVersionResource{Group: "source.toolkit.fluxcd.io", Version: "v1", Resource: "gitrepositories"}
)

// Labels Flux writes on the objects it applies.
const (
	labelKustomizationName      = "kustomize.toolkit.fluxcd.io/name"
	labelKustomizationNamespace = "kustomize.toolkit.fluxcd.io/namespace"
	labelHelmReleaseName        = "helm.toolkit.fluxcd.io/name"
	labelHelmReleaseNamespace   = "helm.toolkit.fluxcd.io/namespace"
)

// fluxSource is the change source name of Flux syncs: they are told as
// "flux sync of …", whatever the Kubernetes source is called.
const fluxSource = "flux"

// fluxObject is what the cache keeps of a Kustomization, HelmRelease or
// GitRepository.
type fluxObject struct {
	metav1.TypeMeta
	metav1.ObjectMeta
	SourceKind, SourceName, SourceNamespace string
	URL                                     string // a GitRepository's
	Applied, Attempted                      string // last applied / attempted revision
	Ready                                   string // the Ready condition's status
	ReadyMessage                            string
	ReadyAt                                 time.Time
	History                                 []fluxSnapshot // newest first, as Flux writes it
}

// fluxSnapshot is one applied revision (status.history).
type fluxSnapshot struct {
	Revision          string
	First, Last       time.Time
	Duration          time.Duration
	Failed            bool
	Chart, AppVersion string
	HelmRevision      int
}

func (f *fluxObject) DeepCopyObject() runtime.Object {
	c := *f
	c.ObjectMeta = *f.ObjectMeta.DeepCopy()
	c.History = slices.Clone(f.History)
	return &c
}

// fluxTransform keeps the source reference, revisions, Ready condition and
// history; the inventory and the rest go.
func fluxTransform(obj any) (any, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return obj, nil
	}
	f := &fluxObject{TypeMeta: metav1.TypeMeta{APIVersion: u.GetAPIVersion(), Kind: u.GetKind()}, ObjectMeta: metav1.ObjectMeta{
		Name: u.GetName(), Namespace: u.GetNamespace(), UID: u.GetUID(), ResourceVersion: u.GetResourceVersion(),
		CreationTimestamp: u.GetCreationTimestamp()}}
	str := func(fields ...string) string { v, _, _ := unstructured.NestedString(u.Object, fields...); return v }
	f.SourceKind, f.SourceName, f.SourceNamespace = str("spec", "sourceRef", "kind"), str("spec", "sourceRef", "name"), str("spec", "sourceRef", "namespace")
	if f.SourceName == "" { // a HelmRelease names its chart's source under spec.chart.spec
		f.SourceKind, f.SourceName, f.SourceNamespace = str("spec", "chart", "spec", "sourceRef", "kind"),
			str("spec", "chart", "spec", "sourceRef", "name"), str("spec", "chart", "spec", "sourceRef", "namespace")
	}
	f.URL = str("spec", "url")
	f.Applied, f.Attempted = str("status", "lastAppliedRevision"), str("status", "lastAttemptedRevision")
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == "Ready" {
			f.Ready, _ = m["status"].(string)
			f.ReadyMessage, _ = m["message"].(string)
			if s, ok := m["lastTransitionTime"].(string); ok {
				f.ReadyAt, _ = time.Parse(time.RFC3339, s)
			}
		}
	}
	hist, _, _ := unstructured.NestedSlice(u.Object, "status", "history")
	for _, h := range hist {
		m, ok := h.(map[string]any)
		if !ok {
			continue
		}
		get := func(k string) string { s, _ := m[k].(string); return s }
		var snap fluxSnapshot
		if md, ok := m["metadata"].(map[string]any); ok {
			snap.Revision, _ = md["revision"].(string)
		}
		// Kustomization snapshots: firstReconciled…; HelmRelease: firstDeployed….
		snap.First, _ = time.Parse(time.RFC3339, cmp.Or(get("firstReconciled"), get("lastDeployed")))
		snap.Last, _ = time.Parse(time.RFC3339, cmp.Or(get("lastReconciled"), get("lastDeployed")))
		snap.Duration, _ = time.ParseDuration(get("lastReconciledDuration"))
		status := cmp.Or(get("lastReconciledStatus"), get("status"))
		snap.Failed = status != "" && status != "ReconciliationSucceeded" && status != "deployed" && status != "superseded"
		if name := get("chartName"); name != "" {
			snap.Chart = name + "-" + get("chartVersion")
		}
		snap.AppVersion = get("appVersion")
		if v, ok := m["version"].(int64); ok {
			snap.HelmRevision = int(v)
		}
		f.History = append(f.History, snap)
	}
	return f, nil
}

// fluxChanges are the syncs in [since, until] of the Kustomization or
// HelmRelease that applied the workload.
func (s *Source) fluxChanges(w workload, since, until time.Time) []sources.Change {
	l := w.meta.GetLabels()
	var owner *fluxObject
	var kind string
	for _, sc := range s.scopes {
		switch {
		case sc.kustomizations != nil && l[labelKustomizationName] != "":
			kind = "Kustomization"
			owner = fluxGet(sc.kustomizations.GetIndexer(), l[labelKustomizationNamespace], l[labelKustomizationName])
		case sc.helmReleases != nil && l[labelHelmReleaseName] != "":
			kind = "HelmRelease"
			owner = fluxGet(sc.helmReleases.GetIndexer(), l[labelHelmReleaseNamespace], l[labelHelmReleaseName])
		}
		if owner != nil {
			break
		}
	}
	if owner == nil {
		return nil
	}
	repo := s.fluxRepo(owner)
	subj := s.subjectOf(w)
	if subj.Repo == "" {
		subj.Repo = sources.NormalizeRepo(repo)
	}
	if repo == "" {
		repo = subj.Repo // the workload's repo annotation, without a GitRepository
	}
	mk := func(rev string, start, finish time.Time, failed bool) sources.Change {
		ref, sha := splitFluxRevision(rev)
		ch := sources.Change{
			Source: fluxSource, Kind: sources.KindSync, Subject: subj,
			ID:       "flux/" + kind + "/" + owner.Namespace + "/" + owner.Name + "@" + rev,
			Revision: sha, Version: ref, StartedAt: start.UTC(), FinishedAt: finish.UTC(), Status: sources.StatusSucceeded,
			DeployedBy: "flux " + kind + " " + owner.Namespace + "/" + owner.Name,
		}
		if failed {
			ch.Status = sources.StatusFailed
		}
		return ch
	}
	var out []sources.Change
	if len(owner.History) > 0 {
		// Newest first; the one before each is what it replaced.
		for i, h := range owner.History {
			rev := h.Revision
			if i == 0 && rev == "" {
				rev = cmp.Or(owner.Applied, owner.Attempted)
			}
			if h.First.Before(since) || h.First.After(until) {
				continue
			}
			ch := mk(rev, h.First, h.First.Add(h.Duration), h.Failed)
			if h.Chart != "" {
				ch.Chart, ch.Version = h.Chart, h.AppVersion
				if h.HelmRevision > 0 {
					ch.ID = "flux/" + kind + "/" + owner.Namespace + "/" + owner.Name + "@" + strconv.Itoa(h.HelmRevision)
				}
			}
			// What it replaced: the next older commit (Flux keeps an entry
			// per digest and status, so the same commit may come next).
			for _, older := range owner.History[i+1:] {
				_, prev := splitFluxRevision(older.Revision)
				if prev == ch.Revision {
					continue
				}
				ch.PreviousRevision = prev
				if prev != "" && ch.Revision != "" {
					ch.CompareURL = sources.CompareURL(repo, prev, ch.Revision)
				}
				break
			}
			out = append(out, ch)
		}
		return out
	}
	// Without history (older Flux): the Ready condition's last transition
	// is when the last applied (or failed) revision finished.
	if owner.ReadyAt.IsZero() || owner.ReadyAt.Before(since) || owner.ReadyAt.After(until) {
		return nil
	}
	failed := owner.Ready == "False" && owner.Attempted != "" && owner.Attempted != owner.Applied
	rev := owner.Applied
	if failed {
		rev = owner.Attempted
	}
	ch := mk(rev, owner.ReadyAt, owner.ReadyAt, failed)
	if failed {
		ch.Message = owner.ReadyMessage
	}
	return append(out, ch)
}

func fluxGet(idx interface {
	GetByKey(string) (any, bool, error)
}, ns, name string) *fluxObject {
	obj, ok, _ := idx.GetByKey(ns + "/" + name)
	if f, isFlux := obj.(*fluxObject); ok && isFlux {
		return f
	}
	return nil
}

// fluxRepo is the URL of a Flux object's GitRepository, when it has one.
func (s *Source) fluxRepo(f *fluxObject) string {
	if f.SourceKind != "GitRepository" {
		return ""
	}
	ns := cmp.Or(f.SourceNamespace, f.Namespace)
	for _, sc := range s.scopesFor(ns) {
		if sc.gitRepositories != nil {
			if g := fluxGet(sc.gitRepositories.GetIndexer(), ns, f.SourceName); g != nil {
				return g.URL
			}
		}
	}
	return ""
}

// splitFluxRevision reads Flux's "<ref>@<algo>:<digest>" ("main@sha1:9f1c…",
// "v1.2.0@sha256:…" for OCI); a revision without "@" is the digest alone
// (older Flux: "main/9f1c…").
func splitFluxRevision(rev string) (ref, sha string) {
	ref, digest, ok := strings.Cut(rev, "@")
	if !ok {
		if r, d, ok := strings.Cut(rev, "/"); ok && sources.IsSHA(d) {
			return r, d
		}
		if sources.IsSHA(rev) {
			return "", rev
		}
		return rev, "" // a chart version
	}
	_, d, _ := strings.Cut(digest, ":")
	if strings.HasPrefix(digest, "sha1:") {
		return ref, d
	}
	return ref, "" // an OCI digest names content, not a commit
}
