package clusters_test

import (
	"context"
	"fmt"
	"hash/fnv"
	"os"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/whatchanged/whatchanged/test/controlplane"
)

// cluster is one control plane: kube-apiserver and etcd, an admin
// kubeconfig for whatchanged, and a client for writing its objects.
type cluster struct {
	name       string
	env        *envtest.Environment
	kubeconfig string
	kube       kubernetes.Interface
	etcd       controlplane.Etcd
	stopped    bool
}

// startCluster starts a control plane whose objects are stored as JSON,
// so their creation times can be rewritten in etcd (backdate).
func startCluster(name, dir string) (*cluster, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	// An API server that still serves watches (whatchanged's) takes the
	// 20s default to stop; killed after 2s, it is gone as an unreachable
	// cluster's is.
	env := &envtest.Environment{ControlPlaneStopTimeout: 2 * time.Second}
	controlplane.JSONStorage(env)
	if _, err := env.Start(); err != nil {
		return nil, fmt.Errorf("start control plane %s: %w", name, err)
	}
	c := &cluster{name: name, env: env, etcd: controlplane.EtcdOf(env)}
	kc, cfg, err := controlplane.Admin(env, dir)
	if err != nil {
		c.stop()
		return nil, err
	}
	c.kubeconfig = kc
	if c.kube, err = kubernetes.NewForConfig(cfg); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// stop stops the control plane (once): its API server is gone, as a
// cluster whose API is unreachable from whatchanged is.
func (c *cluster) stop() {
	if !c.stopped {
		c.stopped = true
		_ = c.env.Stop()
	}
}

// rollout is one revision of a Deployment, ago before the alert started.
type rollout struct {
	image string
	ago   time.Duration
}

// workload is a Deployment and its history, oldest revision first.
type workload struct {
	namespace, name string
	annotations     map[string]string
	revisions       []rollout
}

// write creates the workload as the Deployment controller leaves it once
// the last revision rolled out: the Deployment at that revision, one
// ReplicaSet per revision (only the newest scaled up), each created when
// its revision rolled out.
func (c *cluster) write(ctx context.Context, w workload, startsAt time.Time) error {
	if _, err := c.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: w.namespace}},
		metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	selector := map[string]string{"app": w.name}
	template := func(image string) corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: selector},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: w.name, Image: image}}}}
	}
	last := w.revisions[len(w.revisions)-1]
	replicas := int32(1)
	ann := map[string]string{"deployment.kubernetes.io/revision": strconv.Itoa(len(w.revisions))}
	for k, v := range w.annotations {
		ann[k] = v
	}
	dep, err := c.kube.AppsV1().Deployments(w.namespace).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: w.name, Namespace: w.namespace, Labels: selector, Annotations: ann},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: selector},
			Template: template(last.image)},
	}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	created := startsAt.Add(-w.revisions[0].ago)
	done := metav1.NewTime(startsAt.Add(-last.ago + time.Minute))
	dep.Status = appsv1.DeploymentStatus{ObservedGeneration: dep.Generation, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1,
		Conditions: []appsv1.DeploymentCondition{
			{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable",
				Message: "Deployment has minimum availability.", LastUpdateTime: metav1.NewTime(created), LastTransitionTime: metav1.NewTime(created)},
			{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable",
				Message: "ReplicaSet has successfully progressed.", LastUpdateTime: done, LastTransitionTime: metav1.NewTime(created)}}}
	if _, err := c.kube.AppsV1().Deployments(w.namespace).UpdateStatus(ctx, dep, metav1.UpdateOptions{}); err != nil {
		return err
	}
	if err := c.backdate(ctx, "/registry/deployments/"+w.namespace+"/"+w.name, created); err != nil {
		return err
	}
	yes := true
	owner := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "Deployment", Name: w.name, UID: dep.UID, Controller: &yes, BlockOwnerDeletion: &yes}
	for i, r := range w.revisions {
		h := fnv.New32a()
		_, _ = h.Write([]byte(r.image))
		hash := fmt.Sprintf("%x", h.Sum32())[:8]
		tmpl := template(r.image)
		tmpl.Labels = map[string]string{"app": w.name, "pod-template-hash": hash}
		n := int32(0)
		if i == len(w.revisions)-1 {
			n = 1
		}
		rs := &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Name: w.name + "-" + hash, Namespace: w.namespace, Labels: tmpl.Labels,
				OwnerReferences: []metav1.OwnerReference{owner},
				Annotations: map[string]string{"deployment.kubernetes.io/revision": strconv.Itoa(i + 1),
					"deployment.kubernetes.io/desired-replicas": "1", "deployment.kubernetes.io/max-replicas": "2"}},
			Spec: appsv1.ReplicaSetSpec{Replicas: &n, Template: tmpl,
				Selector: &metav1.LabelSelector{MatchLabels: tmpl.Labels}},
		}
		if _, err := c.kube.AppsV1().ReplicaSets(w.namespace).Create(ctx, rs, metav1.CreateOptions{}); err != nil {
			return err
		}
		if err := c.backdate(ctx, "/registry/replicasets/"+w.namespace+"/"+rs.Name, startsAt.Add(-r.ago)); err != nil {
			return err
		}
	}
	return nil
}

// backdate rewrites a stored object's creation time in etcd: a history
// is hours old (controlplane.Etcd.Backdate).
func (c *cluster) backdate(ctx context.Context, key string, at time.Time) error {
	if err := c.etcd.Backdate(ctx, key, at, time.Time{}, nil); err != nil {
		return fmt.Errorf("cluster %s: %w", c.name, err)
	}
	return nil
}
