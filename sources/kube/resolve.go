package kube

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/whatchanged/whatchanged/sources"
)

// podRS cuts a Deployment pod's name to its ReplicaSet's:
// api-7d9f8b6c4-x2x9z → api-7d9f8b6c4.
var podRS = regexp.MustCompile(`^(.+-[a-z0-9]{6,10})-[a-z0-9]{5}$`)

// ResolveSubject improves a label-built subject from the cluster: the
// controller owner walk of a pod (also for pods already deleted, through
// their ReplicaSet's name), the workloads a service selects, the workloads
// of an app label, and from the workload's own metadata its Argo CD app
// and repository.
func (s *Source) ResolveSubject(lbls map[string]string, subj sources.Subject) (sources.Subject, []sources.ResolutionStep) {
	if !s.Ready() {
		return subj, []sources.ResolutionStep{{Field: "kind", Value: subj.Kind, From: "kubernetes: " + errNotSynced.Error() + "; owner walk skipped"}}
	}
	var steps []sources.ResolutionStep
	set := func(field string, dst *string, value, from string) {
		if value != "" && *dst != value {
			*dst = value
			steps = append(steps, sources.ResolutionStep{Field: field, Value: value, From: from})
		}
	}
	ns := subj.Namespace
	explicit := false // a workload label named the workload: no walk overrides it
	for _, l := range []string{"deployment", "statefulset", "daemonset", "rollout", "workload"} {
		explicit = explicit || lbls[l] != ""
	}

	if hpa := lbls["horizontalpodautoscaler"]; hpa != "" && ns != "" && !explicit {
		if kind, name, from := s.hpaTarget(ns, hpa); name != "" {
			subj.Kind, subj.Name = kind, name
			steps = append(steps, sources.ResolutionStep{Field: "name", Value: name, From: from})
		}
	}
	walked := false // the cluster itself named the workload
	if pod := lbls["pod"]; pod != "" && ns != "" && !explicit {
		if kind, name, path := s.ownerWalk(ns, pod); name != "" {
			walked = true
			// Recorded even when it confirms the name guess: explain shows the walk.
			subj.Kind, subj.Name = kind, name
			steps = append(steps, sources.ResolutionStep{Field: "kind", Value: kind, From: path},
				sources.ResolutionStep{Field: "name", Value: name, From: path})
		} else if path != "" {
			steps = append(steps, sources.ResolutionStep{Field: "name", Value: subj.Name, From: path})
		}
	}
	// A name guessed from a label (a pod name pattern, an HPA's name) that
	// the cluster does not have gives the other labels their turn, and is
	// kept only when none of them names a workload (a CI event may still
	// name it); a workload label the alert states is kept and reported.
	// A name taken from the service label waits for the Service's own
	// selector.
	var guess sources.Subject
	fromService := subj.Kind == "" && subj.Name != "" && subj.Name == lbls["service"]
	if subj.Name != "" && !explicit && !walked && ns != "" && (fromService || len(s.findWorkloads(ns, subj.Kind, subj.Name)) == 0) &&
		slices.ContainsFunc(workloadKinds, func(k string) bool { return subj.Kind == "" || strings.EqualFold(k, subj.Kind) }) {
		guess = subj
		subj.Kind, subj.Name = "", ""
	}

	if subj.Name == "" && ns != "" {
		s.resolveByName(lbls, ns, &subj, &steps)
	}
	if subj.Name == "" && lbls["service"] != "" && ns != "" {
		s.resolveService("service", ns, lbls["service"], &subj, &steps)
	}
	// A scrape target: its address, then its job (usually named after
	// the Service or app).
	if subj.Name == "" && lbls["instance"] != "" {
		ns = s.resolveInstance(lbls["instance"], &subj, &steps)
	}
	if job := lbls["job"]; subj.Name == "" && subj.App == "" && job != "" {
		// ServiceMonitor jobs are the Service's name; PodMonitor and Probe
		// jobs are "<namespace>/<name>" and "probe/<namespace>/<name>".
		parts := strings.Split(job, "/")
		name, jobNS := parts[len(parts)-1], ns
		if len(parts) >= 2 && (jobNS == "" || len(parts) >= 3) {
			jobNS = parts[len(parts)-2]
		}
		if jobNS != "" {
			before := subj.Name
			s.resolveService("job", jobNS, name, &subj, &steps)
			if subj.Name != before && subj.Namespace != jobNS {
				subj.Namespace = jobNS
				steps = append(steps, sources.ResolutionStep{Field: "namespace", Value: jobNS, From: "label job " + job})
			}
		}
	}
	if subj.Name == "" && subj.App != "" {
		ws := s.workloadsOfApp(ns, subj.App)
		if len(ws) == 1 {
			from := "the only workload of app " + subj.App
			set("kind", &subj.Kind, ws[0].kind, from)
			set("name", &subj.Name, ws[0].meta.GetName(), from)
			if subj.Namespace == "" {
				set("namespace", &subj.Namespace, ws[0].meta.GetNamespace(), from)
			}
		} else if len(ws) > 1 {
			steps = append(steps, sources.ResolutionStep{Field: "name", From: fmt.Sprintf(
				"app %s has %d workloads (%s); their changes are matched by app", subj.App, len(ws), names(ws))})
		}
	}
	if guess.Name != "" && subj.Name == "" {
		subj.Kind, subj.Name = guess.Kind, guess.Name
	}
	if subj.Name != "" {
		if subj.Kind != "" && !slices.ContainsFunc(workloadKinds, func(k string) bool { return strings.EqualFold(k, subj.Kind) }) {
			steps = append(steps, sources.ResolutionStep{Field: "kind", Value: subj.Kind,
				From: "kubernetes: a " + subj.Kind + " has no rollout history; its changes are matched by name and namespace"})
			return subj, steps
		}
		ws := s.findWorkloads(subj.Namespace, subj.Kind, subj.Name)
		if len(ws) == 0 {
			steps = append(steps, sources.ResolutionStep{Field: "name", Value: subj.Name,
				From: fmt.Sprintf("kubernetes: no %s %s/%s in the watched namespaces", orAny(subj.Kind), subj.Namespace, subj.Name)})
			return subj, steps
		}
		w := ws[0]
		set("kind", &subj.Kind, w.kind, "kubernetes: found "+w.key())
		if subj.Namespace == "" {
			set("namespace", &subj.Namespace, w.meta.GetNamespace(), "kubernetes: found "+w.key())
		}
		// The Argo CD app of the workload is the deploy unit; an explicit
		// argocd_app label (or a rule, applied later) still wins. The
		// workload's other app names (Helm release, app label) and the
		// alert's own app label stay as aliases, so neighbours of any of
		// them relate by app.
		apps := s.appAliases(w.meta)
		if subj.App != "" {
			apps = append(apps, subj.App) // the alert's own app label
		}
		if app, from := s.argoApp(w.meta); app != "" && lbls["argocd_app"] == "" {
			if _, name, ok := strings.Cut(app, "_"); ok {
				app = name // the qualified form stays among the aliases
			}
			set("app", &subj.App, app, "workload "+from)
		} else if subj.App == "" && len(apps) > 0 {
			set("app", &subj.App, apps[0], "workload labels")
		}
		subj.Apps = nil
		for _, a := range apps {
			if a != subj.App && !slices.Contains(subj.Apps, a) {
				subj.Apps = append(subj.Apps, a)
			}
		}
		if repo := w.meta.GetAnnotations()[s.cfg.RepoAnnotation]; repo != "" && subj.Repo == "" {
			set("repo", &subj.Repo, sources.NormalizeRepo(repo), "workload annotation "+s.cfg.RepoAnnotation)
		}
		if imgs := templateImages(w.obj); len(imgs) > 0 && len(subj.Images) == 0 {
			subj.Images = imgs
			steps = append(steps, sources.ResolutionStep{Field: "images", Value: strings.Join(imgs, ", "), From: "workload pod template"})
		}
	}
	return subj, steps
}

// resolveInstance finds the workload behind a scrape target's address: a
// pod with that IP (then its owner walk), or a Service's DNS name. It
// returns the namespace now known.
func (s *Source) resolveInstance(instance string, subj *sources.Subject, steps *[]sources.ResolutionStep) string {
	host := instance
	if u, err := url.Parse(instance); err == nil && u.Host != "" { // a probe's URL
		host = u.Hostname()
	} else if h, _, err := net.SplitHostPort(instance); err == nil {
		host = h
	}
	if ip := net.ParseIP(host); ip != nil {
		for _, sc := range s.scopesFor(subj.Namespace) {
			objs, _ := sc.pods.GetIndexer().ByIndex(byIP, ip.String())
			for _, obj := range objs {
				m, err := metaOf(obj)
				if err != nil || (subj.Namespace != "" && m.GetNamespace() != subj.Namespace) {
					continue
				}
				from := fmt.Sprintf("instance %s is pod %s/%s", instance, m.GetNamespace(), m.GetName())
				if subj.Namespace == "" {
					subj.Namespace = m.GetNamespace()
					*steps = append(*steps, sources.ResolutionStep{Field: "namespace", Value: subj.Namespace, From: from})
				}
				kind, name, path := s.ownerWalk(m.GetNamespace(), m.GetName())
				if name != "" {
					subj.Kind, subj.Name = kind, name
					*steps = append(*steps, sources.ResolutionStep{Field: "name", Value: name, From: from + "; " + path})
				}
				return subj.Namespace
			}
		}
		*steps = append(*steps, sources.ResolutionStep{Field: "name", From: fmt.Sprintf("kubernetes: no pod has IP %s (instance %s)", host, instance)})
		return subj.Namespace
	}
	// <service>.<namespace>[.svc[.cluster.local]], or a StatefulSet pod's
	// <pod>.<headless service>.<namespace>.svc[.cluster.local]. The
	// address names its namespace: a probe's alert carries the Probe's.
	parts := strings.Split(strings.TrimSuffix(host, "."), ".")
	setNS := func(ns, from string) {
		if subj.Namespace != ns {
			subj.Namespace = ns
			*steps = append(*steps, sources.ResolutionStep{Field: "namespace", Value: ns, From: from})
		}
	}
	switch {
	case len(parts) >= 4 && parts[3] == "svc":
		if kind, name, path := s.ownerWalk(parts[2], parts[0]); name != "" {
			setNS(parts[2], "instance "+instance+" is a pod address")
			subj.Kind, subj.Name = kind, name
			*steps = append(*steps, sources.ResolutionStep{Field: "name", Value: name, From: "instance " + instance + ": " + path})
		}
	case len(parts) >= 2 && (len(parts) == 2 || parts[2] == "svc"):
		if ws, path := s.serviceWorkloads(parts[1], parts[0]); len(ws) > 0 {
			setNS(parts[1], "instance "+instance+" is a Service address")
			subj.Kind, subj.Name = ws[0].kind, ws[0].meta.GetName()
			*steps = append(*steps, sources.ResolutionStep{Field: "name", Value: subj.Name, From: "instance " + instance + ": " + path})
		}
	}
	return subj.Namespace
}

// resolveService: the Service of that name selects the workload; with no
// such Service, the name is taken as an app's.
func (s *Source) resolveService(label, ns, name string, subj *sources.Subject, steps *[]sources.ResolutionStep) {
	if ws, path := s.serviceWorkloads(ns, name); len(ws) > 0 {
		subj.Kind, subj.Name = ws[0].kind, ws[0].meta.GetName()
		*steps = append(*steps, sources.ResolutionStep{Field: "name", Value: subj.Name, From: "label " + label + ": " + path})
		return
	}
	if subj.App != "" {
		return
	}
	if ws := s.workloadsOfApp(ns, name); len(ws) > 0 {
		subj.App = name
		*steps = append(*steps, sources.ResolutionStep{Field: "app", Value: name,
			From: fmt.Sprintf("label %s: no Service %s/%s selects a workload; %d workload(s) carry app %s", label, ns, name, len(ws), name)})
		return
	}
	if ws := s.findWorkloads(ns, "", name); len(ws) == 1 {
		subj.Kind, subj.Name = ws[0].kind, name
		*steps = append(*steps, sources.ResolutionStep{Field: "name", Value: name, From: fmt.Sprintf("label %s: no Service %s/%s; the workload of that name", label, ns, name)})
	}
}

// lastRevised is when the workload's newest revision appeared.
func (s *Source) lastRevised(w workload) time.Time {
	var t time.Time
	for _, r := range s.revisions(w) {
		if r.created.After(t) {
			t = r.created
		}
		if r.updated.After(t) {
			t = r.updated
		}
	}
	return t
}

// hpaTarget is the workload a HorizontalPodAutoscaler scales.
func (s *Source) hpaTarget(ns, name string) (kind, target, from string) {
	for _, sc := range s.scopesFor(ns) {
		obj, ok, _ := sc.hpas.GetIndexer().GetByKey(ns + "/" + name)
		if !ok {
			continue
		}
		ref := obj.(*autoscalingv2.HorizontalPodAutoscaler).Spec.ScaleTargetRef
		return ref.Kind, ref.Name, fmt.Sprintf("HorizontalPodAutoscaler %s/%s scales %s %s", ns, name, ref.Kind, ref.Name)
	}
	return "", "", ""
}

// jobOfCronJob: a CronJob's Job is <cronjob>-<minutes since epoch>.
var jobOfCronJob = regexp.MustCompile(`^(.+)-[0-9]{8,}$`)

// pvcOfStatefulSet: a volumeClaimTemplate's claim is <template>-<sts>-<ordinal>.
var pvcOfStatefulSet = regexp.MustCompile(`^(.+)-([0-9]+)$`)

// resolveByName finds the workload behind labels that name something a
// workload owns: a HorizontalPodAutoscaler (named after its target by
// convention), a StatefulSet's PersistentVolumeClaim, a container name
// only one workload of the namespace runs.
func (s *Source) resolveByName(lbls map[string]string, ns string, subj *sources.Subject, steps *[]sources.ResolutionStep) {
	found := func(w workload, from string) {
		subj.Kind, subj.Name = w.kind, w.meta.GetName()
		*steps = append(*steps, sources.ResolutionStep{Field: "name", Value: subj.Name, From: from})
	}
	if hpa := lbls["horizontalpodautoscaler"]; hpa != "" {
		if ws := s.findWorkloads(ns, "", hpa); len(ws) > 0 {
			found(ws[0], "label horizontalpodautoscaler: the workload it is named after, "+ws[0].key())
			return
		}
	}
	if pvc := lbls["persistentvolumeclaim"]; pvc != "" {
		if m := pvcOfStatefulSet.FindStringSubmatch(pvc); m != nil {
			for _, w := range s.workloadsIn(ns) {
				if w.kind == WorkloadStatefulSet && strings.HasSuffix(m[1], "-"+w.meta.GetName()) {
					found(w, fmt.Sprintf("label persistentvolumeclaim: %s is a volume claim of %s", pvc, w.key()))
					return
				}
			}
		}
	}
	if n := lbls["name"]; n != "" { // Argo Rollouts' and others' own metrics name the object so
		if ws := s.findWorkloads(ns, "", n); len(ws) == 1 {
			found(ws[0], "label name: "+ws[0].key())
			return
		}
	}
	if c := lbls["container"]; c != "" {
		var match []workload
		for _, w := range s.workloadsIn(ns) {
			if slices.Contains(templateContainers(w.obj), c) {
				match = append(match, w)
			}
		}
		if len(match) == 1 {
			found(match[0], "label container: the only workload in "+ns+" running a container "+c)
		}
	}
}

// ownerWalk follows controller owners from a pod to its workload. path
// explains the walk, or why it stopped.
func (s *Source) ownerWalk(ns, pod string) (kind, name, path string) {
	walk := []string{"Pod " + pod}
	for _, sc := range s.scopesFor(ns) {
		obj, ok, _ := sc.pods.GetIndexer().GetByKey(ns + "/" + pod)
		if !ok {
			continue
		}
		m, err := metaOf(obj)
		if err != nil {
			continue
		}
		ref := controllerRef(m)
		if ref == nil {
			return "", "", "owner walk: Pod " + pod + " has no controller"
		}
		switch ref.Kind {
		case "ReplicaSet":
			walk = append(walk, "ReplicaSet "+ref.Name)
			return s.replicaSetOwner(sc, ns, ref.Name, walk, "owner walk: ")
		case WorkloadStatefulSet, WorkloadDaemonSet:
			walk = append(walk, ref.Kind+" "+ref.Name)
			return ref.Kind, ref.Name, "owner walk: " + strings.Join(walk, " → ")
		case "Job":
			// A CronJob names its Jobs <cronjob>-<scheduled minute>.
			if m := jobOfCronJob.FindStringSubmatch(ref.Name); m != nil {
				walk = append(walk, "Job "+ref.Name, "CronJob "+m[1]+" (from the Job's name)")
				return "CronJob", m[1], "owner walk: " + strings.Join(walk, " → ")
			}
			return "Job", ref.Name, "owner walk: " + strings.Join(append(walk, "Job "+ref.Name), " → ")
		default:
			return "", "", fmt.Sprintf("owner walk: Pod %s is controlled by a %s, not a workload whatchanged follows", pod, ref.Kind)
		}
	}
	// Deleted pod (crash loops replace pods all the time): its ReplicaSet
	// name is in its own name.
	if m := podRS.FindStringSubmatch(pod); m != nil {
		for _, sc := range s.scopesFor(ns) {
			if _, ok, _ := sc.replicaSets.GetIndexer().GetByKey(ns + "/" + m[1]); ok {
				return s.replicaSetOwner(sc, ns, m[1], []string{"Pod " + pod + " (not in the cluster; ReplicaSet from its name)", "ReplicaSet " + m[1]}, "")
			}
		}
	}
	return "", "", fmt.Sprintf("kubernetes: pod %s/%s and its ReplicaSet are not in the cluster; kept the guess from the pod name", ns, pod)
}

func (s *Source) replicaSetOwner(sc *scope, ns, rsName string, walk []string, prefix string) (string, string, string) {
	obj, ok, _ := sc.replicaSets.GetIndexer().GetByKey(ns + "/" + rsName)
	if !ok {
		return "", "", prefix + strings.Join(walk, " → ") + " (not in the cluster)"
	}
	rs := obj.(*replicaSet)
	ref := controllerRef(rs)
	if ref == nil {
		return "", "", prefix + strings.Join(walk, " → ") + " has no controller (orphaned)"
	}
	walk = append(walk, ref.Kind+" "+ref.Name)
	if ref.Kind != WorkloadDeployment && ref.Kind != WorkloadRollout {
		return "", "", prefix + strings.Join(walk, " → ") + ": not a workload whatchanged follows"
	}
	return ref.Kind, ref.Name, prefix + strings.Join(walk, " → ")
}

// serviceWorkloads finds the workloads whose pod template a service selects.
func (s *Source) serviceWorkloads(ns, svc string) ([]workload, string) {
	for _, sc := range s.scopesFor(ns) {
		obj, ok, _ := sc.services.GetIndexer().GetByKey(ns + "/" + svc)
		if !ok {
			continue
		}
		sel := obj.(*corev1.Service).Spec.Selector
		if len(sel) == 0 {
			return nil, ""
		}
		// Controllers add a revision hash to the selectors of the Services
		// they manage (Argo Rollouts' active and preview Services): only
		// the ReplicaSets' templates carry it, not the workload's.
		sel = maps.Clone(sel)
		delete(sel, "rollouts-pod-template-hash")
		delete(sel, "pod-template-hash")
		selector := labels.SelectorFromSet(sel)
		var ws []workload
		for _, w := range s.workloadsIn(ns) {
			if selector.Matches(labels.Set(templateLabels(w.obj))) {
				ws = append(ws, w)
			}
		}
		// Of several (stable and canary), the most recently revised is
		// the likeliest to have changed what the service does.
		sort.Slice(ws, func(i, j int) bool {
			a, b := s.lastRevised(ws[i]), s.lastRevised(ws[j])
			if !a.Equal(b) {
				return a.After(b)
			}
			return ws[i].key() < ws[j].key()
		})
		switch len(ws) {
		case 0:
			return nil, ""
		case 1:
			return ws, fmt.Sprintf("service %s selects %s", svc, ws[0].key())
		}
		return ws, fmt.Sprintf("service %s selects %d workloads (%s); using the most recently revised", svc, len(ws), names(ws))
	}
	return nil, ""
}

func controllerRef(m metav1.Object) *metav1.OwnerReference {
	for _, r := range m.GetOwnerReferences() {
		if r.Controller != nil && *r.Controller {
			return &r
		}
	}
	return nil
}

func templateLabels(obj any) map[string]string {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return o.Spec.Template.Labels
	case *appsv1.StatefulSet:
		return o.Spec.Template.Labels
	case *appsv1.DaemonSet:
		return o.Spec.Template.Labels
	case *unstructured.Unstructured:
		l, _, _ := unstructured.NestedStringMap(o.Object, "spec", "template", "metadata", "labels")
		return l
	}
	return nil
}

func templateContainers(obj any) []string {
	var out []string
	switch o := obj.(type) {
	case *appsv1.Deployment:
		for _, c := range o.Spec.Template.Spec.Containers {
			out = append(out, c.Name)
		}
	case *appsv1.StatefulSet:
		for _, c := range o.Spec.Template.Spec.Containers {
			out = append(out, c.Name)
		}
	case *appsv1.DaemonSet:
		for _, c := range o.Spec.Template.Spec.Containers {
			out = append(out, c.Name)
		}
	case *unstructured.Unstructured:
		list, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		for _, c := range list {
			if m, ok := c.(map[string]any); ok {
				if n, ok := m["name"].(string); ok {
					out = append(out, n)
				}
			}
		}
	}
	return out
}

func templateImages(obj any) []string {
	var cs []corev1.Container
	switch o := obj.(type) {
	case *appsv1.Deployment:
		cs = o.Spec.Template.Spec.Containers
	case *appsv1.StatefulSet:
		cs = o.Spec.Template.Spec.Containers
	case *appsv1.DaemonSet:
		cs = o.Spec.Template.Spec.Containers
	case *unstructured.Unstructured:
		list, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		var out []string
		for _, c := range list {
			if m, ok := c.(map[string]any); ok {
				if img, ok := m["image"].(string); ok {
					out = append(out, img)
				}
			}
		}
		return out
	}
	out := make([]string, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.Image)
	}
	return out
}

func names(ws []workload) string {
	parts := make([]string, 0, len(ws))
	for _, w := range ws {
		parts = append(parts, w.key())
	}
	return strings.Join(parts, ", ")
}

func orAny(kind string) string {
	if kind == "" {
		return "workload"
	}
	return kind
}
