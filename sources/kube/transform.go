package kube

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"
)

// Annotations the source reads; everything else is dropped before caching.
const (
	annRevision        = "deployment.kubernetes.io/revision"
	annRevisionHistory = "deployment.kubernetes.io/revision-history"
	annChangeCause     = "kubernetes.io/change-cause"
	annRolloutRevision = "rollout.argoproj.io/revision"
	annTrackingID      = "argocd.argoproj.io/tracking-id"
	annHelmRelease     = "meta.helm.sh/release-name"
	// annImages is written by the transform: the images of a
	// ControllerRevision's template, so its raw data need not be kept.
	annImages = "whatchanged.dev/images"
	// annUpdated is written by the transform: when a ControllerRevision
	// was last written (its managedFields). A rollback renumbers an old
	// revision, and this is when.
	annUpdated = "whatchanged.dev/updated-at"
)

// transformer strips objects to what the source reads. A cluster of 5,000
// Deployments and 50,000 ReplicaSets is mostly pod templates and
// managedFields; keeping them would cost hundreds of megabytes.
type transformer struct {
	keepAnnotations map[string]bool
	disabled        bool // only for measuring what the transforms save
}

func newTransformer(cfg Config) *transformer {
	return &transformer{keepAnnotations: map[string]bool{
		annRevision: true, annRevisionHistory: true, annChangeCause: true, annRolloutRevision: true,
		annTrackingID: true, annHelmRelease: true, annHelmNamespace: true, annImages: true, annUpdated: true, cfg.RepoAnnotation: true,
	}}
}

func (t *transformer) transform(obj any) (any, error) {
	if t.disabled {
		return obj, nil
	}
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return &appsv1.Deployment{
			ObjectMeta: withUses(t.meta(o.ObjectMeta), &o.Spec.Template.Spec),
			Spec:       appsv1.DeploymentSpec{Selector: o.Spec.Selector, Template: slimTemplate(o.Spec.Template)},
			Status: appsv1.DeploymentStatus{ObservedGeneration: o.Status.ObservedGeneration,
				Conditions: progressing(o.Status.Conditions)},
		}, nil
	case *appsv1.ReplicaSet:
		// The most numerous object (ten per Deployment): kept as a compact
		// type, found by owner and name, so without labels.
		m := t.meta(o.ObjectMeta)
		m.Labels = nil
		return &replicaSet{TypeMeta: o.TypeMeta, ObjectMeta: m, Containers: containersOf(o.Spec.Template.Spec.Containers),
			Updated: lastWritten(o.ManagedFields)}, nil
	case *appsv1.StatefulSet:
		return &appsv1.StatefulSet{
			ObjectMeta: withUses(t.meta(o.ObjectMeta), &o.Spec.Template.Spec),
			Spec:       appsv1.StatefulSetSpec{Selector: o.Spec.Selector, Template: slimTemplate(o.Spec.Template), Replicas: o.Spec.Replicas},
			Status: appsv1.StatefulSetStatus{ObservedGeneration: o.Status.ObservedGeneration, CurrentRevision: o.Status.CurrentRevision,
				UpdateRevision: o.Status.UpdateRevision, UpdatedReplicas: o.Status.UpdatedReplicas, ReadyReplicas: o.Status.ReadyReplicas},
		}, nil
	case *appsv1.DaemonSet:
		return &appsv1.DaemonSet{
			ObjectMeta: withUses(t.meta(o.ObjectMeta), &o.Spec.Template.Spec),
			Spec:       appsv1.DaemonSetSpec{Selector: o.Spec.Selector, Template: slimTemplate(o.Spec.Template)},
			Status: appsv1.DaemonSetStatus{ObservedGeneration: o.Status.ObservedGeneration, DesiredNumberScheduled: o.Status.DesiredNumberScheduled,
				UpdatedNumberScheduled: o.Status.UpdatedNumberScheduled, NumberAvailable: o.Status.NumberAvailable},
		}, nil
	case *appsv1.ControllerRevision:
		m := t.meta(o.ObjectMeta)
		if m.Annotations == nil {
			m.Annotations = map[string]string{}
		}
		if imgs := revisionImages(o.Data.Raw); imgs != "" {
			m.Annotations[annImages] = imgs
		}
		if u := lastWritten(o.ManagedFields); !u.IsZero() {
			m.Annotations[annUpdated] = u.UTC().Format(time.RFC3339)
		}
		return &appsv1.ControllerRevision{ObjectMeta: m, Revision: o.Revision}, nil
	case *autoscalingv2.HorizontalPodAutoscaler:
		return &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: t.meta(o.ObjectMeta),
			Spec: autoscalingv2.HorizontalPodAutoscalerSpec{ScaleTargetRef: o.Spec.ScaleTargetRef}}, nil
	case *corev1.Service:
		return &corev1.Service{ObjectMeta: t.meta(o.ObjectMeta), Spec: corev1.ServiceSpec{Selector: o.Spec.Selector}}, nil
	case *corev1.Pod: // only the owner walk and the IP lookup read pods
		p := &pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: metav1.ObjectMeta{
			Name: o.Name, Namespace: o.Namespace, UID: o.UID, ResourceVersion: o.ResourceVersion,
			OwnerReferences: controllerOnly(o.OwnerReferences)}}
		for _, ip := range o.Status.PodIPs {
			p.IPs = append(p.IPs, ip.IP)
		}
		if len(p.IPs) == 0 && o.Status.PodIP != "" {
			p.IPs = []string{o.Status.PodIP}
		}
		return p, nil
	case *unstructured.Unstructured: // Argo Rollouts
		return t.rollout(o), nil
	case cache.DeletedFinalStateUnknown:
		return o, nil
	}
	return obj, nil
}

// replicaSet is what the cache keeps of a ReplicaSet: an
// appsv1.ReplicaSet would carry a full, mostly empty PodSpec (about 1 KB)
// for each of tens of thousands of objects.
type replicaSet struct {
	metav1.TypeMeta
	metav1.ObjectMeta
	Containers []container
	// Updated is when its controller last wrote it (managedFields): a
	// rollback renumbers an old ReplicaSet, no later than this.
	Updated time.Time
}

// pod is what the cache keeps of a Pod: its owner and its IPs (scrape
// targets name a pod by address).
type pod struct {
	metav1.TypeMeta
	metav1.ObjectMeta
	IPs []string
}

func (p *pod) DeepCopyObject() runtime.Object {
	c := *p
	c.ObjectMeta = *p.ObjectMeta.DeepCopy()
	c.IPs = slices.Clone(p.IPs)
	return &c
}

func (r *replicaSet) DeepCopyObject() runtime.Object {
	c := *r
	c.ObjectMeta = *r.ObjectMeta.DeepCopy()
	c.Containers = slices.Clone(r.Containers)
	return &c
}

func (t *transformer) meta(m metav1.ObjectMeta) metav1.ObjectMeta {
	out := metav1.ObjectMeta{
		Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
		Generation: m.Generation, CreationTimestamp: m.CreationTimestamp, Labels: m.Labels,
		OwnerReferences: controllerOnly(m.OwnerReferences),
	}
	for k, v := range m.Annotations {
		if t.keepAnnotations[k] {
			if out.Annotations == nil {
				out.Annotations = map[string]string{}
			}
			out.Annotations[k] = v
		}
	}
	return out
}

// withUses notes on a workload the config objects its pod template uses
// (the template itself is not kept).
func withUses(m metav1.ObjectMeta, spec *corev1.PodSpec) metav1.ObjectMeta {
	if uses := usesOf(spec); uses != "" {
		if m.Annotations == nil {
			m.Annotations = map[string]string{}
		}
		m.Annotations[annUses] = uses
	}
	return m
}

// lastWritten is the newest time a manager wrote the object itself (not
// its status).
func lastWritten(fields []metav1.ManagedFieldsEntry) time.Time {
	var t time.Time
	for _, f := range fields {
		if f.Subresource == "" && f.Time != nil && f.Time.After(t) {
			t = f.Time.Time
		}
	}
	return t
}

func controllerOnly(refs []metav1.OwnerReference) []metav1.OwnerReference {
	for _, r := range refs {
		if r.Controller != nil && *r.Controller {
			return []metav1.OwnerReference{{APIVersion: r.APIVersion, Kind: r.Kind, Name: r.Name, UID: r.UID, Controller: r.Controller}}
		}
	}
	return nil
}

// slimTemplate keeps the template's labels (service selectors match them)
// and each container's name and image.
func slimTemplate(t corev1.PodTemplateSpec) corev1.PodTemplateSpec {
	slim := func(cs []corev1.Container) []corev1.Container {
		if len(cs) == 0 {
			return nil
		}
		out := make([]corev1.Container, len(cs))
		for i, c := range cs {
			out[i] = corev1.Container{Name: c.Name, Image: c.Image}
		}
		return out
	}
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: t.Labels},
		Spec:       corev1.PodSpec{Containers: slim(t.Spec.Containers), InitContainers: slim(t.Spec.InitContainers)},
	}
}

func progressing(conds []appsv1.DeploymentCondition) []appsv1.DeploymentCondition {
	for _, c := range conds {
		if c.Type == appsv1.DeploymentProgressing {
			return []appsv1.DeploymentCondition{{Type: c.Type, Status: c.Status, Reason: c.Reason,
				LastUpdateTime: c.LastUpdateTime, LastTransitionTime: c.LastTransitionTime}}
		}
	}
	return nil
}

// revisionImages reads "name=image,…" from a ControllerRevision's data, a
// patch of the StatefulSet/DaemonSet holding spec.template.
func revisionImages(raw []byte) string {
	if len(raw) == 0 {
		return ""
	}
	var patch struct {
		Spec struct {
			Template struct {
				Spec struct {
					Containers []corev1.Container `json:"containers"`
				} `json:"spec"`
			} `json:"template"`
		} `json:"spec"`
	}
	if json.Unmarshal(raw, &patch) != nil {
		return ""
	}
	return formatImages(patch.Spec.Template.Spec.Containers)
}

func formatImages(cs []corev1.Container) string {
	parts := make([]string, 0, len(cs))
	for _, c := range cs {
		parts = append(parts, c.Name+"="+c.Image)
	}
	return strings.Join(parts, ",")
}

// rollout keeps an Argo Rollout's metadata, template images and phase.
func (t *transformer) rollout(u *unstructured.Unstructured) *unstructured.Unstructured {
	meta := t.meta(metav1.ObjectMeta{
		Name: u.GetName(), Namespace: u.GetNamespace(), UID: u.GetUID(), ResourceVersion: u.GetResourceVersion(),
		Generation: u.GetGeneration(), CreationTimestamp: u.GetCreationTimestamp(), Labels: u.GetLabels(),
		Annotations: u.GetAnnotations(), OwnerReferences: u.GetOwnerReferences(),
	})
	out := &unstructured.Unstructured{Object: map[string]any{}}
	out.SetAPIVersion(u.GetAPIVersion())
	out.SetKind(u.GetKind())
	out.SetName(meta.Name)
	out.SetNamespace(meta.Namespace)
	out.SetUID(meta.UID)
	out.SetResourceVersion(meta.ResourceVersion)
	out.SetGeneration(meta.Generation)
	out.SetCreationTimestamp(meta.CreationTimestamp)
	out.SetLabels(meta.Labels)
	if tmpl, ok, _ := unstructured.NestedMap(u.Object, "spec", "template", "spec"); ok {
		var spec corev1.PodSpec
		if runtime.DefaultUnstructuredConverter.FromUnstructured(tmpl, &spec) == nil {
			meta = withUses(meta, &spec)
		}
	}
	out.SetAnnotations(meta.Annotations)
	if labels, ok, _ := unstructured.NestedStringMap(u.Object, "spec", "template", "metadata", "labels"); ok {
		_ = unstructured.SetNestedStringMap(out.Object, labels, "spec", "template", "metadata", "labels")
	}
	if cs, ok, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers"); ok {
		slim := make([]any, 0, len(cs))
		for _, c := range cs {
			if m, ok := c.(map[string]any); ok {
				slim = append(slim, map[string]any{"name": m["name"], "image": m["image"]})
			}
		}
		_ = unstructured.SetNestedSlice(out.Object, slim, "spec", "template", "spec", "containers")
	}
	for _, f := range []string{"phase", "message", "currentPodHash", "stableRS"} {
		if v, ok, _ := unstructured.NestedString(u.Object, "status", f); ok {
			_ = unstructured.SetNestedField(out.Object, v, "status", f)
		}
	}
	return out
}
