package scenarios_test

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/restmapper"
)

// The control plane has no controllers, so the runner writes every object
// the way its controller would (workloads.go); this file is the bookkeeping:
// what was created, back-dating it, and deleting it again (there is no
// garbage collector either).

var (
	gvrDeployment = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	gvrReplicaSet = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "replicasets"}
	gvrSts        = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "statefulsets"}
	gvrDs         = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "daemonsets"}
	gvrRevision   = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "controllerrevisions"}
	gvrPod        = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	gvrService    = schema.GroupVersionResource{Version: "v1", Resource: "services"}
	gvrRollout    = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"}
)

// etcdKeyOf is where the API server stores an object of a resource the
// runner writes (verified by listing /registry/ in etcd): built-in
// resources without their group, services under specs/, custom resources
// under their group.
func etcdKeyOf(gvr schema.GroupVersionResource, namespace, name string) string {
	switch {
	case gvr == gvrService:
		return "/registry/services/specs/" + namespace + "/" + name
	case gvr.Group == "" || gvr.Group == "apps":
		return "/registry/" + gvr.Resource + "/" + namespace + "/" + name
	}
	return "/registry/" + gvr.Group + "/" + gvr.Resource + "/" + namespace + "/" + name
}

type created struct {
	gvr             schema.GroupVersionResource
	namespace, name string
	key             string // etcd key; "" until found (objects:)
	apiVersion      string
	kind            string
	at              time.Time
	// updated is when the object was last written (managedFields times):
	// a rollback's reused ReplicaSet or ControllerRevision got its new
	// revision then. Zero: at.
	updated time.Time
	// managers are when each field manager last wrote the object, where
	// they differ (a ConfigMap created by one and edited by another).
	managers map[string]time.Time
}

// cluster is one scenario's objects in the control plane.
type cluster struct {
	startsAt time.Time
	objects  []created
	// owners of pods: "Deployment/ns/name@rev" → the ReplicaSet, "StatefulSet/ns/name" → the workload.
	podOwners map[string]podOwner
}

type podOwner struct {
	ref       metav1.OwnerReference
	labels    map[string]string // labels its controller puts on its pods
	images    Images
	createdAt time.Time
}

// setupKube writes the scenario's Kubernetes objects and back-dates them.
func setupKube(ctx context.Context, sc *Scenario, startsAt time.Time) (*cluster, error) {
	c := &cluster{startsAt: startsAt, podOwners: map[string]podOwner{}}
	if err := c.namespaces(ctx, sc); err != nil {
		return c, err
	}
	for i := range sc.Workloads {
		if err := c.workload(ctx, &sc.Workloads[i]); err != nil {
			return c, fmt.Errorf("workload %s %s/%s: %w", sc.Workloads[i].Kind, sc.Workloads[i].Namespace, sc.Workloads[i].Name, err)
		}
	}
	for _, p := range sc.Pods {
		if err := c.pod(ctx, p); err != nil {
			return c, fmt.Errorf("pod %s/%s: %w", p.Namespace, p.Name, err)
		}
	}
	for _, s := range sc.Services {
		if err := c.service(ctx, s); err != nil {
			return c, fmt.Errorf("service %s/%s: %w", s.Namespace, s.Name, err)
		}
	}
	for _, o := range sc.Objects {
		if err := c.object(ctx, o); err != nil {
			return c, err
		}
	}
	for _, o := range sc.ConfigMaps {
		if err := c.config(ctx, kindConfigMap, o); err != nil {
			return c, fmt.Errorf("configMap %s/%s: %w", o.Namespace, o.Name, err)
		}
	}
	for _, o := range sc.Secrets {
		if err := c.config(ctx, kindSecret, o); err != nil {
			return c, fmt.Errorf("secret %s/%s: %w", o.Namespace, o.Name, err)
		}
	}
	for _, h := range sc.Helm {
		if err := c.helmRelease(ctx, h); err != nil {
			return c, fmt.Errorf("helm release %s/%s: %w", h.Namespace, h.Name, err)
		}
	}
	return c, c.backdateAll(ctx)
}

// namespaces creates every namespace the scenario uses. There is no
// namespace controller to finalize a deleted namespace, so namespaces are
// kept between scenarios and only their objects are deleted.
func (c *cluster) namespaces(ctx context.Context, sc *Scenario) error {
	set := map[string]bool{}
	for _, w := range sc.Workloads {
		set[w.Namespace] = true
	}
	for _, p := range sc.Pods {
		set[p.Namespace] = true
	}
	for _, s := range sc.Services {
		set[s.Namespace] = true
	}
	for _, o := range sc.Objects {
		if ns, _, _ := unstructured.NestedString(o.Obj, "metadata", "namespace"); ns != "" {
			set[ns] = true
		}
	}
	for _, o := range append(append([]ConfigObject{}, sc.ConfigMaps...), sc.Secrets...) {
		set[o.Namespace] = true
	}
	for _, h := range sc.Helm {
		set[h.Namespace] = true
	}
	for ns := range set {
		if err := ensureNamespace(ctx, ns); err != nil {
			return err
		}
	}
	return nil
}

func ensureNamespace(ctx context.Context, ns string) error {
	if ns == "" {
		return nil
	}
	_, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("namespace %s: %w", ns, err)
	}
	return nil
}

// create writes obj (a typed or unstructured object) through the dynamic
// client with strict field validation, so a field the API does not know is
// an error here and not silently dropped, and records it.
func cmpTime(t, otherwise time.Time) time.Time {
	if t.IsZero() {
		return otherwise
	}
	return t
}

// updatedAt records when the object created last was last written.
func (c *cluster) updatedAt(t time.Time) { c.objects[len(c.objects)-1].updated = t }

func (c *cluster) create(ctx context.Context, gvr schema.GroupVersionResource, obj runtime.Object, at time.Time) (*unstructured.Unstructured, error) {
	u, err := toUnstructured(obj)
	if err != nil {
		return nil, err
	}
	out, err := dyn.Resource(gvr).Namespace(u.GetNamespace()).Create(ctx, u, metav1.CreateOptions{FieldValidation: "Strict", FieldManager: creator(u)})
	if err != nil {
		return nil, fmt.Errorf("create %s %s/%s: %w", gvr.Resource, u.GetNamespace(), u.GetName(), err)
	}
	c.objects = append(c.objects, created{gvr: gvr, namespace: out.GetNamespace(), name: out.GetName(),
		key: etcdKeyOf(gvr, out.GetNamespace(), out.GetName()), apiVersion: out.GetAPIVersion(), kind: out.GetKind(), at: at})
	return out, nil
}

// updateStatus writes status through the status subresource, as a
// controller does.
func updateStatus(ctx context.Context, gvr schema.GroupVersionResource, obj *unstructured.Unstructured, status map[string]any) error {
	obj = obj.DeepCopy()
	obj.Object["status"] = status
	manager := "kube-controller-manager"
	switch gvr {
	case gvrRollout:
		manager = "rollouts-controller"
	case gvrPod:
		manager = "kubelet"
	}
	_, err := dyn.Resource(gvr).Namespace(obj.GetNamespace()).UpdateStatus(ctx, obj, metav1.UpdateOptions{FieldValidation: "Strict", FieldManager: manager})
	if err != nil {
		return fmt.Errorf("update status of %s %s/%s: %w", gvr.Resource, obj.GetNamespace(), obj.GetName(), err)
	}
	return nil
}

// creator is the field manager that writes an object in a cluster: the
// controller of an owned object, a deploy tool otherwise.
func creator(u *unstructured.Unstructured) string {
	for _, ref := range u.GetOwnerReferences() {
		switch {
		case ref.Kind == "Rollout":
			return "rollouts-controller"
		case ref.Controller != nil && *ref.Controller:
			return "kube-controller-manager"
		}
	}
	return "kubectl-client-side-apply"
}

func toUnstructured(obj runtime.Object) (*unstructured.Unstructured, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		return u, nil
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: m}
	// ToUnstructured writes zero creationTimestamp as null and an empty status.
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(u.Object, "status")
	return u, nil
}

func (c *cluster) service(ctx context.Context, s Service) error {
	svc := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace, Labels: s.Selector},
		Spec: corev1.ServiceSpec{Selector: s.Selector, Type: corev1.ServiceTypeClusterIP,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}},
	}
	// A Service has no time of its own in a scenario; it predates the incident.
	_, err := c.create(ctx, gvrService, svc, c.startsAt.Add(-30*24*time.Hour))
	return err
}

func (c *cluster) object(ctx context.Context, o Object) error {
	u := &unstructured.Unstructured{Object: o.Obj}
	gv, err := schema.ParseGroupVersion(u.GetAPIVersion())
	if err != nil || u.GetKind() == "" || u.GetName() == "" {
		return fmt.Errorf("objects: every object needs apiVersion, kind and metadata.name (got %s %s %s)", u.GetAPIVersion(), u.GetKind(), u.GetName())
	}
	mapping, err := restMapper().RESTMapping(gv.WithKind(u.GetKind()).GroupKind(), gv.Version)
	if err != nil {
		return fmt.Errorf("objects: %s %s: %w", u.GetAPIVersion(), u.GetKind(), err)
	}
	at := c.startsAt.Add(-30 * 24 * time.Hour)
	if o.At != nil {
		at = o.At.From(c.startsAt)
	}
	var ri interface {
		Create(context.Context, *unstructured.Unstructured, metav1.CreateOptions, ...string) (*unstructured.Unstructured, error)
	} = dyn.Resource(mapping.Resource)
	if mapping.Scope.Name() == "namespace" {
		ri = dyn.Resource(mapping.Resource).Namespace(u.GetNamespace())
	}
	u.Object = withTimes(u.Object, c.startsAt).(map[string]any)
	status, hasStatus := u.Object["status"]
	out, err := ri.Create(ctx, u, metav1.CreateOptions{FieldValidation: "Strict"})
	if err != nil {
		return fmt.Errorf("objects: create %s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
	}
	// A resource with a status subresource drops status on create (or
	// keeps only its defaults): its controller writes it (Flux's toolkit
	// controllers, for their kinds).
	if hasStatus && !equality.Semantic.DeepEqual(out.Object["status"], status) {
		out.Object["status"] = status
		manager := strings.SplitN(mapping.Resource.Group, ".", 2)[0] + "-controller" // kustomize-controller, helm-controller, source-controller
		ri := dyn.Resource(mapping.Resource).Namespace(out.GetNamespace())
		if _, err := ri.UpdateStatus(ctx, out, metav1.UpdateOptions{FieldValidation: "Strict", FieldManager: manager}); err != nil {
			return fmt.Errorf("objects: status of %s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
		}
	}
	c.objects = append(c.objects, created{gvr: mapping.Resource, namespace: out.GetNamespace(), name: out.GetName(),
		apiVersion: out.GetAPIVersion(), kind: out.GetKind(), at: at})
	return nil
}

// backdateAll sets every object's creationTimestamp in etcd, then reads it
// back through the API server: whatchanged starts only once the API
// answers with the scenario's times.
func (c *cluster) backdateAll(ctx context.Context) error {
	for i := range c.objects {
		o := &c.objects[i]
		if o.key == "" {
			k, err := etcd.FindKey(ctx, o.apiVersion, o.kind, o.namespace, o.name)
			if err != nil {
				return err
			}
			o.key = k
		}
		if err := etcd.Backdate(ctx, o.key, o.at, cmpTime(o.updated, o.at), o.managers); err != nil {
			return fmt.Errorf("back-date %s %s/%s: %w", o.kind, o.namespace, o.name, err)
		}
	}
	for _, o := range c.objects {
		want := o.at.UTC().Truncate(time.Second)
		deadline := time.Now().Add(5 * time.Second)
		for {
			got, err := o.client().Get(ctx, o.name, metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("read back %s %s/%s: %w", o.kind, o.namespace, o.name, err)
			}
			ts := got.GetCreationTimestamp().UTC()
			if ts.Equal(want) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("back-dating %s %s/%s did not stick: the API server says creationTimestamp %s, want %s (etcd key %s)",
					o.kind, o.namespace, o.name, ts.Format(time.RFC3339), want.Format(time.RFC3339), o.key)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return nil
}

type resourceClient interface {
	Get(context.Context, string, metav1.GetOptions, ...string) (*unstructured.Unstructured, error)
	Delete(context.Context, string, metav1.DeleteOptions, ...string) error
}

func (o created) client() resourceClient {
	if o.namespace == "" {
		return dyn.Resource(o.gvr)
	}
	return dyn.Resource(o.gvr).Namespace(o.namespace)
}

// cleanup deletes what the scenario created, newest first. Nothing runs
// that would wait on a finalizer, and pods without a node go at once.
func (c *cluster) cleanup(ctx context.Context) error {
	zero := int64(0)
	bg := metav1.DeletePropagationBackground
	var errs []error
	for i := len(c.objects) - 1; i >= 0; i-- {
		o := c.objects[i]
		err := o.client().Delete(ctx, o.name, metav1.DeleteOptions{GracePeriodSeconds: &zero, PropagationPolicy: &bg})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete %s %s/%s: %w", o.kind, o.namespace, o.name, err))
		}
	}
	c.objects = nil
	if len(errs) > 0 {
		return fmt.Errorf("%v", errs)
	}
	return nil
}

// templateHash is how the controllers name a template's ReplicaSet or
// ControllerRevision: an FNV-32a hash of the template, its decimal digits
// encoded as "safe" letters (k8s.io/kubernetes/pkg/controller.ComputeHash).
func templateHash(v any) string {
	b, _ := json.Marshal(v)
	h := fnv.New32a()
	_, _ = h.Write(b)
	return rand.SafeEncodeString(strconv.FormatUint(uint64(h.Sum32()), 10))
}

func merged(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		maps.Copy(out, m)
	}
	return out
}

var (
	mapperOnce sync.Once
	mapper     meta.RESTMapper
)

// restMapper maps an `objects:` entry's kind to its resource, from the API
// server's discovery.
func restMapper() meta.RESTMapper {
	mapperOnce.Do(func() {
		mapper = restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(kube.Discovery()))
	})
	return mapper
}
