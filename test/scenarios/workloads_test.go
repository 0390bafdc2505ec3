package scenarios_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Writing a workload and its history as the Deployment, StatefulSet and
// DaemonSet controllers and the Argo Rollouts controller write them.

// histObj is one ReplicaSet or ControllerRevision. A rollback reuses the
// object of an earlier revision: it takes the new number and remembers the
// old ones (deployment.kubernetes.io/revision-history).
type histObj struct {
	name, hash  string
	number      int64
	history     []int64
	images      Images
	changeCause string
	at          time.Time // created: the revision that first rolled it out
	template    corev1.PodTemplateSpec
}

type plan struct {
	w        *Workload
	selector map[string]string
	objs     []*histObj         // oldest first
	byRev    map[int64]*histObj // every revision number → its object
	revAt    map[int64]time.Time
	last     *histObj
	prev     *histObj // the object the newest replaced (nil for the first)
	replicas int32
	statusAt time.Time
	status   string
}

func (c *cluster) plan(w *Workload) (*plan, error) {
	p := &plan{w: w, byRev: map[int64]*histObj{}, revAt: map[int64]time.Time{}, replicas: 1, status: w.Status}
	if w.Replicas != nil {
		p.replicas = *w.Replicas
	}
	if p.status == "" {
		p.status = "succeeded"
	}
	p.selector = w.Labels
	if len(p.selector) == 0 {
		p.selector = map[string]string{"app": w.Name}
	}
	hashes := map[string]int64{}
	for _, r := range w.Revisions {
		at := r.At.From(c.startsAt)
		p.revAt[r.Revision] = at
		if r.Reuses != 0 {
			o := p.byRev[r.Reuses]
			o.history = append(o.history, o.number)
			o.number = r.Revision
			if r.ChangeCause != "" {
				o.changeCause = r.ChangeCause
			}
			p.byRev[r.Revision] = o
			p.prev, p.last = p.last, o
			continue
		}
		tmpl := corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: merged(p.selector, w.Labels, w.TemplateLabels)},
			Spec:       corev1.PodSpec{Containers: containers(r.Images)},
		}
		if len(r.TemplateAnnotations) > 0 || r.RestartedAt != nil {
			tmpl.Annotations = merged(r.TemplateAnnotations)
			if r.RestartedAt != nil {
				tmpl.Annotations["kubectl.kubernetes.io/restartedAt"] = r.RestartedAt.From(c.startsAt).Format(time.RFC3339)
			}
		}
		if err := withPodSpec(&tmpl.Spec, w.PodSpec); err != nil {
			return nil, fmt.Errorf("podSpec: %w", err)
		}
		hash := r.Hash
		if hash == "" {
			hash = templateHash(tmpl)
			if earlier, dup := hashes[hash]; dup {
				return nil, fmt.Errorf("revision %d has the same pod template as revision %d: write `reuses: %d` "+
					"(the controller would reuse that revision's object) or give it a `hash:`", r.Revision, earlier, earlier)
			}
		}
		hashes[hash] = r.Revision
		o := &histObj{name: w.Name + "-" + hash, hash: hash, number: r.Revision, images: r.Images,
			changeCause: r.ChangeCause, at: at, template: tmpl}
		p.objs = append(p.objs, o)
		p.byRev[r.Revision] = o
		p.prev, p.last = p.last, o
	}
	if p.prev == p.last {
		p.prev = nil
	}
	p.statusAt = p.revAt[w.Revisions[len(w.Revisions)-1].Revision]
	if w.StatusAt != nil {
		p.statusAt = w.StatusAt.From(c.startsAt)
	}
	return p, nil
}

// withPodSpec adds a workload's pod spec fragment to a revision's
// template: its volumes, and each of its containers' env, envFrom and
// volumeMounts to the container of that name. The fragment is decoded
// strictly as a PodSpec, so a misspelt field is an error.
func withPodSpec(spec *corev1.PodSpec, fragment map[string]any) error {
	if len(fragment) == 0 {
		return nil
	}
	b, err := json.Marshal(fragment)
	if err != nil {
		return err
	}
	var frag corev1.PodSpec
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&frag); err != nil {
		return err
	}
	spec.Volumes = append(spec.Volumes, frag.Volumes...)
	for _, fc := range frag.Containers {
		i := slices.IndexFunc(spec.Containers, func(c corev1.Container) bool { return c.Name == fc.Name })
		if i < 0 {
			return fmt.Errorf("container %q is not among the revision's images", fc.Name)
		}
		c := &spec.Containers[i]
		c.Env = append(c.Env, fc.Env...)
		c.EnvFrom = append(c.EnvFrom, fc.EnvFrom...)
		c.VolumeMounts = append(c.VolumeMounts, fc.VolumeMounts...)
	}
	return nil
}

func containers(images Images) []corev1.Container {
	out := make([]corev1.Container, 0, len(images))
	for _, im := range images {
		out = append(out, corev1.Container{Name: im.Name, Image: im.Image})
	}
	return out
}

func (c *cluster) workload(ctx context.Context, w *Workload) error {
	p, err := c.plan(w)
	if err != nil {
		return err
	}
	createdAt := p.revAt[w.Revisions[0].Revision]
	if w.CreatedAt != nil {
		createdAt = w.CreatedAt.From(c.startsAt)
	}
	switch w.Kind {
	case "Deployment":
		return c.deployment(ctx, p, createdAt)
	case "Rollout":
		return c.rollout(ctx, p, createdAt)
	case "StatefulSet", "DaemonSet":
		return c.revisioned(ctx, p, createdAt)
	}
	return fmt.Errorf("unknown kind %q", w.Kind)
}

func controllerRef(apiVersion, kind string, owner *unstructured.Unstructured) metav1.OwnerReference {
	yes := true
	return metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: owner.GetName(), UID: owner.GetUID(),
		Controller: &yes, BlockOwnerDeletion: &yes}
}

// progress is the rollout's replica counts and Progressing condition as
// the Deployment controller (and Argo Rollouts, alike) reports them.
func (p *plan) progress() (updated, available int32, cond appsv1.DeploymentCondition) {
	r := p.replicas
	name := p.last.name
	at := metav1.NewTime(p.statusAt)
	switch p.status {
	case "in_progress":
		return r / 2, r, appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue,
			Reason: "ReplicaSetUpdated", Message: fmt.Sprintf("ReplicaSet %q is progressing.", name),
			LastUpdateTime: at, LastTransitionTime: metav1.NewTime(p.revAt[p.last.number])}
	case "failed":
		return max(r/2, 1), r - 1, appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse,
			Reason: "ProgressDeadlineExceeded", Message: fmt.Sprintf("ReplicaSet %q has timed out progressing.", name),
			LastUpdateTime: at, LastTransitionTime: at}
	}
	return r, r, appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue,
		Reason: "NewReplicaSetAvailable", Message: fmt.Sprintf("ReplicaSet %q has successfully progressed.", name),
		LastUpdateTime: at, LastTransitionTime: metav1.NewTime(p.revAt[p.w.Revisions[0].Revision])}
}

// rsReplicas is how many pods each ReplicaSet has mid-rollout.
func (p *plan) rsReplicas(o *histObj) int32 {
	updated, _, _ := p.progress()
	switch o {
	case p.last:
		return updated
	case p.prev:
		return p.replicas - updated
	}
	return 0
}

func (c *cluster) deployment(ctx context.Context, p *plan, createdAt time.Time) error {
	w := p.w
	ann := merged(w.Annotations, map[string]string{"deployment.kubernetes.io/revision": strconv.FormatInt(p.last.number, 10)})
	if p.last.changeCause != "" {
		ann["kubernetes.io/change-cause"] = p.last.changeCause
	}
	dep := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: w.Name, Namespace: w.Namespace, Labels: w.Labels, Annotations: ann},
		Spec: appsv1.DeploymentSpec{Replicas: &p.replicas, Selector: &metav1.LabelSelector{MatchLabels: p.selector},
			Template: p.last.template},
	}
	obj, err := c.create(ctx, gvrDeployment, dep, createdAt)
	if err != nil {
		return err
	}
	updated, available, cond := p.progress()
	st := appsv1.DeploymentStatus{ObservedGeneration: obj.GetGeneration(), Replicas: p.replicas + (p.replicas - available),
		UpdatedReplicas: updated, ReadyReplicas: available, AvailableReplicas: available, UnavailableReplicas: p.replicas - available,
		Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue,
			Reason: "MinimumReplicasAvailable", Message: "Deployment has minimum availability.",
			LastUpdateTime: metav1.NewTime(createdAt), LastTransitionTime: metav1.NewTime(createdAt)}, cond}}
	if err := updateStatusTyped(ctx, gvrDeployment, obj, &st); err != nil {
		return err
	}
	return c.replicaSets(ctx, p, controllerRef("apps/v1", "Deployment", obj), "pod-template-hash", "deployment.kubernetes.io/")
}

// replicaSets writes the ReplicaSets of a Deployment or Rollout.
// hashLabel is pod-template-hash (Deployment) or rollouts-pod-template-hash
// (Argo Rollouts); annPrefix is where the controller keeps the revision.
func (c *cluster) replicaSets(ctx context.Context, p *plan, owner metav1.OwnerReference, hashLabel, annPrefix string) error {
	w := p.w
	surge := (p.replicas + 3) / 4 // maxSurge 25%, rounded up
	for _, o := range p.objs {
		ann := map[string]string{}
		for k, v := range w.Annotations { // the controller copies the owner's annotations
			if k != "kubectl.kubernetes.io/last-applied-configuration" {
				ann[k] = v
			}
		}
		ann[annPrefix+"revision"] = strconv.FormatInt(o.number, 10)
		ann[annPrefix+"desired-replicas"] = strconv.Itoa(int(p.replicas))
		if annPrefix == "deployment.kubernetes.io/" {
			ann[annPrefix+"max-replicas"] = strconv.Itoa(int(p.replicas + surge))
			if len(o.history) > 0 {
				ann[annPrefix+"revision-history"] = joinInts(o.history)
			}
		}
		if o.changeCause != "" {
			ann["kubernetes.io/change-cause"] = o.changeCause
		}
		tmpl := *o.template.DeepCopy()
		tmpl.Labels = merged(tmpl.Labels, map[string]string{hashLabel: o.hash})
		n := p.rsReplicas(o)
		rs := &appsv1.ReplicaSet{
			TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "ReplicaSet"},
			ObjectMeta: metav1.ObjectMeta{Name: o.name, Namespace: w.Namespace, Labels: tmpl.Labels, Annotations: ann,
				OwnerReferences: []metav1.OwnerReference{owner}},
			Spec: appsv1.ReplicaSetSpec{Replicas: &n, Template: tmpl,
				Selector: &metav1.LabelSelector{MatchLabels: merged(p.selector, map[string]string{hashLabel: o.hash})}},
		}
		obj, err := c.create(ctx, gvrReplicaSet, rs, o.at)
		if err == nil {
			c.updatedAt(p.revAt[o.number])
		}
		if err != nil {
			return err
		}
		if n > 0 {
			st := appsv1.ReplicaSetStatus{Replicas: n, FullyLabeledReplicas: n, ReadyReplicas: n, AvailableReplicas: n, ObservedGeneration: obj.GetGeneration()}
			if err := updateStatusTyped(ctx, gvrReplicaSet, obj, &st); err != nil {
				return err
			}
		}
		for _, rev := range append(append([]int64{}, o.history...), o.number) {
			c.podOwners[fmt.Sprintf("%s/%s/%s@%d", w.Kind, w.Namespace, w.Name, rev)] = podOwner{
				ref: controllerRef("apps/v1", "ReplicaSet", obj), labels: tmpl.Labels, images: o.images, createdAt: p.revAt[rev]}
		}
	}
	c.podOwners[fmt.Sprintf("%s/%s/%s@0", w.Kind, w.Namespace, w.Name)] = c.podOwners[fmt.Sprintf("%s/%s/%s@%d", w.Kind, w.Namespace, w.Name, p.last.number)]
	return nil
}

func (c *cluster) rollout(ctx context.Context, p *plan, createdAt time.Time) error {
	w := p.w
	ann := merged(w.Annotations, map[string]string{"rollout.argoproj.io/revision": strconv.FormatInt(p.last.number, 10)})
	ro := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
		"metadata": map[string]any{"name": w.Name, "namespace": w.Namespace, "labels": anyMap(w.Labels), "annotations": anyMap(ann)},
		"spec": map[string]any{
			"replicas":             int64(p.replicas),
			"revisionHistoryLimit": int64(10),
			"selector":             map[string]any{"matchLabels": anyMap(p.selector)},
			"template":             templateMap(p.last.template),
			"strategy": map[string]any{"canary": map[string]any{"steps": []any{
				map[string]any{"setWeight": int64(20)}, map[string]any{"pause": map[string]any{"duration": "1m"}}}}},
		},
	}}
	if len(w.Labels) == 0 {
		unstructured.RemoveNestedField(ro.Object, "metadata", "labels")
	}
	obj, err := c.create(ctx, gvrRollout, ro, createdAt)
	if err != nil {
		return err
	}
	updated, available, cond := p.progress()
	phase, stable := "Healthy", p.last.hash
	switch p.status {
	case "in_progress":
		phase = "Progressing"
	case "failed":
		phase = "Degraded"
	}
	if p.status != "succeeded" && p.prev != nil {
		stable = p.prev.hash
	}
	msg := ""
	if p.status == "failed" {
		msg = "ProgressDeadlineExceeded: " + cond.Message
	}
	status := map[string]any{
		"phase": phase, "observedGeneration": strconv.FormatInt(obj.GetGeneration(), 10),
		"currentPodHash": p.last.hash, "stableRS": stable,
		"replicas": int64(p.replicas), "updatedReplicas": int64(updated), "readyReplicas": int64(available), "availableReplicas": int64(available),
		"selector": labelString(merged(p.selector)),
		"conditions": []any{map[string]any{"type": "Progressing", "status": string(cond.Status), "reason": cond.Reason, "message": cond.Message,
			"lastUpdateTime": cond.LastUpdateTime.UTC().Format(time.RFC3339), "lastTransitionTime": cond.LastTransitionTime.UTC().Format(time.RFC3339)}},
	}
	if msg != "" {
		status["message"] = msg
	}
	if err := updateStatus(ctx, gvrRollout, obj, status); err != nil {
		return err
	}
	return c.replicaSets(ctx, p, controllerRef("argoproj.io/v1alpha1", "Rollout", obj), "rollouts-pod-template-hash", "rollout.argoproj.io/")
}

// revisioned writes a StatefulSet or DaemonSet and its ControllerRevisions.
func (c *cluster) revisioned(ctx context.Context, p *plan, createdAt time.Time) error {
	w := p.w
	var (
		gvr schema.GroupVersionResource
		obj *unstructured.Unstructured
		err error
	)
	hashLabel := "controller.kubernetes.io/hash"
	if w.Kind == "StatefulSet" {
		gvr = gvrSts
		sts := &appsv1.StatefulSet{
			TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
			ObjectMeta: metav1.ObjectMeta{Name: w.Name, Namespace: w.Namespace, Labels: w.Labels, Annotations: w.Annotations},
			Spec: appsv1.StatefulSetSpec{Replicas: &p.replicas, ServiceName: w.Name,
				Selector: &metav1.LabelSelector{MatchLabels: p.selector}, Template: p.last.template},
		}
		obj, err = c.create(ctx, gvr, sts, createdAt)
	} else {
		gvr, hashLabel = gvrDs, "controller-revision-hash"
		ds := &appsv1.DaemonSet{
			TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "DaemonSet"},
			ObjectMeta: metav1.ObjectMeta{Name: w.Name, Namespace: w.Namespace, Labels: w.Labels,
				Annotations: merged(w.Annotations, map[string]string{"deprecated.daemonset.template.generation": strconv.FormatInt(p.last.number, 10)})},
			Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: p.selector}, Template: p.last.template},
		}
		obj, err = c.create(ctx, gvr, ds, createdAt)
	}
	if err != nil {
		return err
	}
	owner := controllerRef("apps/v1", w.Kind, obj)
	for _, o := range p.objs {
		data, err := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{
			"$patch": "replace", "metadata": map[string]any{"labels": o.template.Labels},
			"spec": map[string]any{"containers": o.images.containerMaps()},
		}}})
		if err != nil {
			return err
		}
		ann := map[string]string{}
		if o.changeCause != "" {
			ann["kubernetes.io/change-cause"] = o.changeCause
		}
		cr := &appsv1.ControllerRevision{
			TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "ControllerRevision"},
			ObjectMeta: metav1.ObjectMeta{Name: o.name, Namespace: w.Namespace, Annotations: ann,
				Labels: merged(p.selector, map[string]string{hashLabel: o.hash}), OwnerReferences: []metav1.OwnerReference{owner}},
			Data:     runtime.RawExtension{Raw: data},
			Revision: o.number,
		}
		if _, err := c.create(ctx, gvrRevision, cr, o.at); err != nil {
			return err
		}
		c.updatedAt(p.revAt[o.number]) // a reused revision was renumbered then
		podLabels := merged(o.template.Labels, map[string]string{"controller-revision-hash": o.hash})
		if w.Kind == "StatefulSet" {
			podLabels["controller-revision-hash"] = o.name
		}
		for _, rev := range append(append([]int64{}, o.history...), o.number) {
			c.podOwners[fmt.Sprintf("%s/%s/%s@%d", w.Kind, w.Namespace, w.Name, rev)] = podOwner{
				ref: owner, labels: podLabels, images: o.images, createdAt: p.revAt[rev]}
		}
	}
	c.podOwners[fmt.Sprintf("%s/%s/%s@0", w.Kind, w.Namespace, w.Name)] = c.podOwners[fmt.Sprintf("%s/%s/%s@%d", w.Kind, w.Namespace, w.Name, p.last.number)]

	updated, available, _ := p.progress()
	current := p.last.name
	if p.status != "succeeded" && p.prev != nil {
		current = p.prev.name
	}
	var status any
	if w.Kind == "StatefulSet" {
		status = &appsv1.StatefulSetStatus{ObservedGeneration: obj.GetGeneration(), Replicas: p.replicas,
			ReadyReplicas: available, AvailableReplicas: available, CurrentReplicas: p.replicas - updated, UpdatedReplicas: updated,
			CurrentRevision: current, UpdateRevision: p.last.name}
		if p.status == "succeeded" {
			status.(*appsv1.StatefulSetStatus).CurrentReplicas = p.replicas
		}
	} else {
		status = &appsv1.DaemonSetStatus{ObservedGeneration: obj.GetGeneration(), DesiredNumberScheduled: p.replicas,
			CurrentNumberScheduled: p.replicas, NumberReady: available, UpdatedNumberScheduled: updated,
			NumberAvailable: available, NumberUnavailable: p.replicas - available}
	}
	return updateStatusTyped(ctx, gvr, obj, status)
}

func (c *cluster) pod(ctx context.Context, p Pod) error {
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, Labels: p.Labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "registry.k8s.io/pause:3.10"}}},
	}
	createdAt := c.startsAt.Add(-24 * time.Hour)
	if p.Owner != nil {
		owner, ok := c.podOwners[fmt.Sprintf("%s/%s/%s@%d", p.Owner.Kind, p.Namespace, p.Owner.Name, p.Owner.Revision)]
		if !ok {
			return fmt.Errorf("owner %s %s revision %d: no such revision", p.Owner.Kind, p.Owner.Name, p.Owner.Revision)
		}
		pod.OwnerReferences = []metav1.OwnerReference{owner.ref}
		pod.Labels = merged(owner.labels, p.Labels)
		pod.Spec.Containers = containers(owner.images)
		createdAt = owner.createdAt
		if p.Owner.Kind == "StatefulSet" {
			pod.Labels["statefulset.kubernetes.io/pod-name"] = p.Name
			pod.Spec.Hostname = p.Name
		}
	}
	obj, err := c.create(ctx, gvrPod, pod, createdAt)
	if err != nil || p.IP == "" {
		return err
	}
	start := metav1.NewTime(createdAt)
	st := corev1.PodStatus{Phase: corev1.PodRunning, PodIP: p.IP, PodIPs: []corev1.PodIP{{IP: p.IP}}, StartTime: &start,
		HostIP: "10.0.0.1", HostIPs: []corev1.HostIP{{IP: "10.0.0.1"}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: start}}}
	return updateStatusTyped(ctx, gvrPod, obj, &st)
}

func updateStatusTyped(ctx context.Context, gvr schema.GroupVersionResource, obj *unstructured.Unstructured, status any) error {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(status)
	if err != nil {
		return err
	}
	return updateStatus(ctx, gvr, obj, m)
}

// templateMap is a pod template as the Rollout CRD's schema takes it
// (metadata holds only labels and annotations there).
func templateMap(t corev1.PodTemplateSpec) map[string]any {
	meta := map[string]any{"labels": anyMap(t.Labels)}
	if len(t.Annotations) > 0 {
		meta["annotations"] = anyMap(t.Annotations)
	}
	spec := map[string]any{"containers": Images(imagesOf(t.Spec.Containers)).containerMaps()}
	if m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&t.Spec); err == nil && usesConfig(t.Spec) {
		for _, c := range m["containers"].([]any) {
			delete(c.(map[string]any), "resources") // written empty
		}
		spec = m
	}
	return map[string]any{"metadata": meta, "spec": spec}
}

// usesConfig: the template has more than containers and images (a
// scenario's podSpec fragment).
func usesConfig(s corev1.PodSpec) bool {
	if len(s.Volumes) > 0 {
		return true
	}
	return slices.ContainsFunc(s.Containers, func(c corev1.Container) bool {
		return len(c.Env) > 0 || len(c.EnvFrom) > 0 || len(c.VolumeMounts) > 0
	})
}

func imagesOf(cs []corev1.Container) []Container {
	out := make([]Container, len(cs))
	for i, c := range cs {
		out[i] = Container{Name: c.Name, Image: c.Image}
	}
	return out
}

func (im Images) containerMaps() []any {
	out := make([]any, 0, len(im))
	for _, c := range im {
		out = append(out, map[string]any{"name": c.Name, "image": c.Image})
	}
	return out
}

func anyMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func labelString(m map[string]string) string {
	return metav1.FormatLabelSelector(&metav1.LabelSelector{MatchLabels: m})
}

func joinInts(ns []int64) string {
	s := ""
	for i, n := range ns {
		if i > 0 {
			s += ","
		}
		s += strconv.FormatInt(n, 10)
	}
	return s
}
