package kube

import (
	"slices"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/cache"

	"github.com/whatchanged/whatchanged/sources"
)

// Workload kinds, as the Subject and changes name them (Kubernetes kinds;
// sources.KindGitHubDeployment is the change kind of a GitHub deployment).
const (
	WorkloadDeployment  = "Deployment"
	WorkloadStatefulSet = "StatefulSet"
	WorkloadDaemonSet   = "DaemonSet"
	WorkloadRollout     = "Rollout"
)

var workloadKinds = []string{WorkloadDeployment, WorkloadStatefulSet, WorkloadDaemonSet, WorkloadRollout}

// workload is one cached workload object with the scope it came from.
type workload struct {
	kind  string
	meta  metav1.Object
	obj   any // *appsv1.Deployment, *appsv1.StatefulSet, *appsv1.DaemonSet, *unstructured.Unstructured
	scope *scope
}

func (w workload) key() string { return w.kind + "/" + w.meta.GetNamespace() + "/" + w.meta.GetName() }

func (sc *scope) informer(kind string) cache.SharedIndexInformer {
	switch kind {
	case WorkloadDeployment:
		return sc.deployments
	case WorkloadStatefulSet:
		return sc.statefulSets
	case WorkloadDaemonSet:
		return sc.daemonSets
	case WorkloadRollout:
		return sc.rollouts
	}
	return nil
}

func asWorkload(kind string, obj any, sc *scope) (workload, bool) {
	m, err := metaOf(obj)
	if err != nil {
		return workload{}, false
	}
	switch obj.(type) {
	case *appsv1.Deployment, *appsv1.StatefulSet, *appsv1.DaemonSet, *unstructured.Unstructured:
		return workload{kind: kind, meta: m, obj: obj, scope: sc}, true
	}
	return workload{}, false
}

// collectWorkloads asks pick for the objects of each workload informer
// of the scopes covering ns (all scopes when ns is empty).
func (s *Source) collectWorkloads(ns string, pick func(kind string, idx cache.Indexer) []any) []workload {
	var out []workload
	for _, sc := range s.scopesFor(ns) {
		for _, k := range workloadKinds {
			if inf := sc.informer(k); inf != nil {
				for _, obj := range pick(k, inf.GetIndexer()) {
					if w, ok := asWorkload(k, obj, sc); ok {
						out = append(out, w)
					}
				}
			}
		}
	}
	return out
}

// workloadsIn lists every workload of a namespace.
func (s *Source) workloadsIn(ns string) []workload {
	return s.collectWorkloads(ns, func(_ string, idx cache.Indexer) []any {
		objs, _ := idx.ByIndex(cache.NamespaceIndex, ns)
		return objs
	})
}

// recentlyRevised lists the workloads of a namespace that got a new
// ReplicaSet or ControllerRevision in [since, until].
func (s *Source) recentlyRevised(ns string, since, until time.Time) []workload {
	var out []workload
	seen := map[string]bool{}
	var days []string
	scan := since.Before(s.now().Add(-(recentDays - 1) * 24 * time.Hour)) // older than the day index holds
	for d := since.UTC().Truncate(24 * time.Hour); !scan && !d.After(until); d = d.Add(24 * time.Hour) {
		days = append(days, dayKey(ns, d))
	}
	for _, sc := range s.scopesFor(ns) {
		for _, inf := range []cache.SharedIndexInformer{sc.replicaSets, sc.revisions} {
			var objs []any
			if scan {
				objs, _ = inf.GetIndexer().ByIndex(cache.NamespaceIndex, ns)
			}
			for _, k := range days {
				more, _ := inf.GetIndexer().ByIndex(byDay, k)
				objs = append(objs, more...)
			}
			for _, obj := range objs {
				m, err := metaOf(obj)
				if err != nil {
					continue
				}
				created := m.GetCreationTimestamp().Time
				ref := controllerRef(m)
				if ref == nil || created.Before(since) || created.After(until) {
					continue
				}
				if key := ref.Kind + "/" + ns + "/" + ref.Name; !seen[key] {
					seen[key] = true
					out = append(out, s.findWorkloads(ns, ref.Kind, ref.Name)...)
				}
			}
		}
	}
	return out
}

// findWorkloads finds a workload by namespace and name, of the given kind or,
// when kind is empty, of any kind.
func (s *Source) findWorkloads(ns, kind, name string) []workload {
	return s.collectWorkloads(ns, func(k string, idx cache.Indexer) []any {
		if kind != "" && !strings.EqualFold(kind, k) {
			return nil
		}
		if ns != "" {
			if obj, ok, _ := idx.GetByKey(ns + "/" + name); ok {
				return []any{obj}
			}
			return nil
		}
		var objs []any
		for _, obj := range idx.List() {
			if m, err := metaOf(obj); err == nil && m.GetName() == name {
				objs = append(objs, obj)
			}
		}
		return objs
	})
}

// workloadsOfApp finds the workloads carrying an app name (Argo CD tracking
// or instance label, app.kubernetes.io/name, app), sorted by key.
func (s *Source) workloadsOfApp(ns, app string) []workload {
	out := s.collectWorkloads(ns, func(_ string, idx cache.Indexer) []any {
		if ns != "" {
			objs, _ := idx.ByIndex(byApp, ns+"/"+app)
			return objs
		}
		var objs []any
		for _, key := range idx.ListIndexFuncValues(byApp) {
			if strings.HasSuffix(key, "/"+app) {
				more, _ := idx.ByIndex(byApp, key)
				objs = append(objs, more...)
			}
		}
		return objs
	})
	sort.Slice(out, func(i, j int) bool { return out[i].key() < out[j].key() })
	return out
}

// argoApp reads the Argo CD application of an object: the tracking-id
// annotation "<app>:<group>/<kind>:<ns>/<name>", where <app> is written
// "<appNamespace>_<app>" for an app outside Argo CD's own namespace (app
// names cannot contain "_"; kept, as two teams may both have an "api"),
// else the instance label.
func (s *Source) argoApp(m metav1.Object) (app, from string) {
	if id := m.GetAnnotations()[annTrackingID]; id != "" {
		if a, _, _ := strings.Cut(id, ":"); a != "" {
			return a, "annotation " + annTrackingID
		}
	}
	if v := m.GetLabels()[s.cfg.InstanceLabel]; v != "" {
		return v, "label " + s.cfg.InstanceLabel
	}
	return "", ""
}

// appNames are every name the workload may be called by as an app, the
// deploy unit first: the Argo CD app, the Helm release or instance, the
// app label, then app.kubernetes.io/name (a chart's name, often shared by
// unrelated releases, so last).
func (s *Source) appNames(m metav1.Object) []string {
	seen := map[string]bool{}
	var out []string
	add := func(v string) {
		if v != "" && !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	app, _ := s.argoApp(m)
	if _, name, ok := strings.Cut(app, "_"); ok {
		add(name) // the app's name; its qualified "<appNamespace>_<app>" next
	}
	add(app)
	l := m.GetLabels()
	add(l["app.kubernetes.io/instance"])
	add(m.GetAnnotations()[annHelmRelease]) // the Helm release that owns it
	add(l["helm.toolkit.fluxcd.io/name"])   // Flux HelmRelease
	add(l["release"])                       // Helm 2-era charts
	add(l["app"])
	add(l["app.kubernetes.io/name"])
	return out
}

// appAliases are the app names a workload's subject goes by: its app
// names, without the chart's name when a release names the app (two
// releases of one chart are two apps).
func (s *Source) appAliases(m metav1.Object) []string {
	apps := s.appNames(m)
	l := m.GetLabels()
	if chart := l["app.kubernetes.io/name"]; chart != "" && len(apps) > 1 && chart != l["app"] {
		apps = slices.DeleteFunc(apps, func(a string) bool { return a == chart })
	}
	return apps
}

// subjectOf is the subject a workload's changes carry.
func (s *Source) subjectOf(w workload) sources.Subject {
	subj := sources.Subject{
		Namespace: w.meta.GetNamespace(), Kind: w.kind, Name: w.meta.GetName(), Cluster: s.cfg.Cluster,
		Repo: sources.NormalizeRepo(w.meta.GetAnnotations()[s.cfg.RepoAnnotation]),
	}
	if apps := s.appAliases(w.meta); len(apps) > 0 {
		subj.App, subj.Apps = apps[0], apps[1:]
	}
	return subj
}
