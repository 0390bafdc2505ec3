package kube

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/whatchanged/whatchanged/sources"
	"github.com/whatchanged/whatchanged/sources/sourcetest"
)

var t0 = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

func ptr[T any](v T) *T { return &v }

func deployment(ns, name string, uid types.UID, lbls map[string]string, ann map[string]string, images ...string) *appsv1.Deployment {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: uid, Labels: lbls, Annotations: ann, Generation: 4,
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: "Apply"}}},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}}}},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 4, Conditions: []appsv1.DeploymentCondition{
			{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue},
			{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable",
				LastUpdateTime: metav1.NewTime(t0.Add(-8 * time.Minute)), LastTransitionTime: metav1.NewTime(t0.Add(-3 * time.Hour))},
		}},
	}
	for i, img := range images {
		d.Spec.Template.Spec.Containers = append(d.Spec.Template.Spec.Containers, corev1.Container{
			Name: containerName(i), Image: img, Env: []corev1.EnvVar{{Name: "BIG", Value: strings.Repeat("x", 1000)}}})
	}
	return d
}

func containerName(i int) string { return []string{"app", "sidecar", "proxy", "init"}[i] }

func newReplicaSet(owner *appsv1.Deployment, name string, rev string, created time.Time, ann map[string]string, images ...string) *appsv1.ReplicaSet {
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: owner.Namespace, Name: name, UID: types.UID("uid-" + name),
		CreationTimestamp: metav1.NewTime(created), Annotations: map[string]string{annRevision: rev},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: owner.Name, UID: owner.UID, Controller: ptr(true)}}}}
	for k, v := range ann {
		rs.Annotations[k] = v
	}
	for i, img := range images {
		rs.Spec.Template.Spec.Containers = append(rs.Spec.Template.Spec.Containers, corev1.Container{Name: containerName(i), Image: img})
	}
	return rs
}

func newPod(ns, name string, ownerKind, ownerName string, ownerUID types.UID) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: map[string]string{"dropped": "yes"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "dropped:1"}}}}
	if ownerKind != "" {
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: ownerKind, Name: ownerName, UID: ownerUID, Controller: ptr(true)}}
	}
	return p
}

// newFake starts the source on client-go's fake clients and waits for sync.
func newFake(t *testing.T, cfg Config, pods []runtime.Object, objs ...runtime.Object) *Source {
	t.Helper()
	clients := Clients{
		Kube:    fake.NewSimpleClientset(append(objs, pods...)...),
		Dynamic: dynamicfake.NewSimpleDynamicClient(runtime.NewScheme()),
	}
	s := New("kubernetes", cfg, clients, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.now = func() time.Time { return t0 }
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if !s.WaitForSync(wctx) || !s.Ready() {
		t.Fatal("caches did not sync")
	}
	return s
}

// shopCluster: api has revisions 1, 2 and 4 (3 was pruned: a gap) across two
// containers; an orphaned ReplicaSet; web and worker share app=shop.
func shopCluster() ([]runtime.Object, []runtime.Object) {
	api := deployment("shop", "api", "uid-api", map[string]string{"app": "api"},
		map[string]string{annTrackingID: "argocd_shop-api:apps/Deployment:shop/api", "whatchanged.dev/repo": "git@github.com:acme/api.git", "unrelated": "dropped"},
		"acme/api:1.8.4", "envoy:1.30")
	web := deployment("shop", "web", "uid-web", map[string]string{"app": "shop", "app.kubernetes.io/instance": "shop-web"}, nil, "acme/web:3")
	worker := deployment("shop", "worker", "uid-worker", map[string]string{"app": "shop"}, nil, "acme/worker:7")
	objs := []runtime.Object{api, web, worker,
		newReplicaSet(api, "api-5b6c7d8f9", "1", t0.Add(-48*time.Hour), nil, "acme/api:1.8.2", "envoy:1.29"),
		newReplicaSet(api, "api-6c7d8f9b5", "2", t0.Add(-20*time.Hour), map[string]string{annChangeCause: "bump"}, "acme/api:1.8.3", "envoy:1.29"),
		newReplicaSet(api, "api-7d9f8b6c4", "4", t0.Add(-12*time.Minute), map[string]string{annChangeCause: "kubectl set image"}, "acme/api:1.8.4", "envoy:1.30"),
		newReplicaSet(web, "web-8f9b5c6d7", "1", t0.Add(-30*time.Minute), nil, "acme/web:3"),
		newReplicaSet(worker, "worker-9b5c6d7f8", "1", t0.Add(-40*time.Minute), nil, "acme/worker:7"),
		&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orphan-5c6d7f8b9", UID: "uid-orphan",
			Annotations: map[string]string{annRevision: "9"}, CreationTimestamp: metav1.NewTime(t0.Add(-time.Minute))}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "api-svc"}, Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "api"}}},
	}
	pods := []runtime.Object{
		newPod("shop", "api-7d9f8b6c4-x2x9z", "ReplicaSet", "api-7d9f8b6c4", "uid-api-7d9f8b6c4"),
		newPod("shop", "orphan-5c6d7f8b9-abcde", "ReplicaSet", "orphan-5c6d7f8b9", "uid-orphan"),
		newPod("shop", "standalone", "", "", ""),
	}
	return objs, pods
}

func window() (time.Time, time.Time) { return t0.Add(-24 * time.Hour), t0.Add(5 * time.Minute) }

func TestDeploymentHistory(t *testing.T) {
	objs, pods := shopCluster()
	s := newFake(t, Config{}, pods, objs...)
	since, until := window()
	all, err := s.Changes(context.Background(), sources.Query{Subject: sources.Subject{Namespace: "shop", Kind: "Deployment", Name: "api"}, Since: since, Until: until})
	if err != nil {
		t.Fatal(err)
	}
	// api's own revisions, and the namespace's other workloads revised in
	// the window (web and worker, the orphan has no workload).
	var got []sources.Change
	neighbours := map[string]bool{}
	for _, c := range all {
		if c.Subject.Name == "api" {
			got = append(got, c)
		} else {
			neighbours[c.Subject.Name] = true
		}
	}
	if len(got) != 2 { // revision 1 is older than the window
		t.Fatalf("got %d changes, want revisions 2 and 4: %+v", len(got), got)
	}
	if len(neighbours) != 2 || !neighbours["web"] || !neighbours["worker"] {
		t.Errorf("namespace neighbours %v, want web and worker", neighbours)
	}
	// With History, the workload's own older revision is returned too.
	hist, _ := s.Changes(context.Background(), sources.Query{Subject: sources.Subject{Namespace: "shop", Kind: "Deployment", Name: "api"},
		Since: since, Until: until, History: t0.Add(-72 * time.Hour)})
	if n := len(hist) - len(all); n != 1 {
		t.Errorf("history added %d changes, want revision 1", n)
	}
	r4 := got[1]
	if r4.Revision != "4" || r4.PreviousRevision != "2" {
		t.Errorf("revision gap: rev %s prev %s, want 4 after 2", r4.Revision, r4.PreviousRevision)
	}
	if r4.Version != "app=acme/api:1.8.4, sidecar=envoy:1.30" || r4.PreviousVersion != "app=acme/api:1.8.3, sidecar=envoy:1.29" || len(r4.Images) != 2 {
		t.Errorf("images: %q ← %q %+v", r4.Version, r4.PreviousVersion, r4.Images)
	}
	if r4.Status != sources.StatusSucceeded || !r4.FinishedAt.Equal(t0.Add(-8*time.Minute)) || !r4.StartedAt.Equal(t0.Add(-12*time.Minute)) {
		t.Errorf("status %s started %v finished %v", r4.Status, r4.StartedAt, r4.FinishedAt)
	}
	if r4.Message != "kubectl set image" || r4.Kind != sources.KindRollout || r4.ID != "shop/Deployment/api@4" {
		t.Errorf("change = %+v", r4)
	}
	// The tracking-id's "<appNamespace>_<app>" is kept as an alias: two teams may both have an "api".
	if r4.Subject.App != "shop-api" || !r4.Subject.HasApp("argocd_shop-api") || r4.Subject.Repo != "github.com/acme/api" {
		t.Errorf("subject from metadata: %+v", r4.Subject)
	}
	if got[0].Status != sources.StatusUnknown || got[0].Version != "acme/api:1.8.3" {
		t.Errorf("older revision: %+v", got[0])
	}
}

func TestTransformsStripWhatIsNotRead(t *testing.T) {
	objs, pods := shopCluster()
	s := newFake(t, Config{}, pods, objs...)
	obj, _, _ := s.scopes[0].deployments.GetIndexer().GetByKey("shop/api")
	d := obj.(*appsv1.Deployment)
	if len(d.ManagedFields) != 0 || d.Annotations["unrelated"] != "" || d.Spec.Template.Spec.Containers[0].Env != nil {
		t.Errorf("deployment not stripped: managedFields=%d annotations=%v env=%v", len(d.ManagedFields), d.Annotations, d.Spec.Template.Spec.Containers[0].Env)
	}
	if d.Annotations[annTrackingID] == "" || d.Spec.Template.Spec.Containers[1].Image != "envoy:1.30" || len(d.Status.Conditions) != 1 {
		t.Errorf("deployment lost what is read: %+v", d)
	}
	p, _, _ := s.scopes[0].pods.GetIndexer().GetByKey("shop/api-7d9f8b6c4-x2x9z")
	if pm := p.(*pod); pm.Annotations != nil || len(pm.OwnerReferences) != 1 {
		t.Errorf("pod metadata not stripped: %+v", pm)
	}
}

func TestResolve(t *testing.T) {
	objs, pods := shopCluster()
	s := newFake(t, Config{}, pods, objs...)
	tests := []struct {
		name   string
		labels map[string]string
		in     sources.Subject
		want   sources.Subject
		from   string
	}{
		{name: "pod owner walk", labels: map[string]string{"pod": "api-7d9f8b6c4-x2x9z"}, in: sources.Subject{Namespace: "shop", Kind: "Deployment", Name: "api"},
			want: sources.Subject{Namespace: "shop", Kind: "Deployment", Name: "api", App: "shop-api", Repo: "github.com/acme/api", Apps: []string{"argocd_shop-api", "api"}},
			from: "owner walk: Pod api-7d9f8b6c4-x2x9z → ReplicaSet api-7d9f8b6c4 → Deployment api"},
		{name: "pod of a deleted replicaset pod", labels: map[string]string{"pod": "api-7d9f8b6c4-gone1"}, in: sources.Subject{Namespace: "shop"},
			want: sources.Subject{Namespace: "shop", Kind: "Deployment", Name: "api", App: "shop-api", Repo: "github.com/acme/api", Apps: []string{"argocd_shop-api", "api"}},
			from: "Pod api-7d9f8b6c4-gone1 (not in the cluster; ReplicaSet from its name)"},
		{name: "pod and replicaset deleted", labels: map[string]string{"pod": "cart-5f6d7c8b9-abcde"}, in: sources.Subject{Namespace: "shop", Kind: "Deployment", Name: "cart"},
			want: sources.Subject{Namespace: "shop", Kind: "Deployment", Name: "cart"}, from: "kubernetes: pod shop/cart-5f6d7c8b9-abcde and its ReplicaSet are not in the cluster"},
		{name: "pod of an orphaned replicaset", labels: map[string]string{"pod": "orphan-5c6d7f8b9-abcde"}, in: sources.Subject{Namespace: "shop"},
			want: sources.Subject{Namespace: "shop"}, from: "owner walk: Pod orphan-5c6d7f8b9-abcde → ReplicaSet orphan-5c6d7f8b9 has no controller (orphaned)"},
		{name: "pod without controller", labels: map[string]string{"pod": "standalone"}, in: sources.Subject{Namespace: "shop"},
			want: sources.Subject{Namespace: "shop"}, from: "owner walk: Pod standalone has no controller"},
		{name: "service selector", labels: map[string]string{"service": "api-svc"}, in: sources.Subject{Namespace: "shop"},
			want: sources.Subject{Namespace: "shop", Kind: "Deployment", Name: "api", App: "shop-api", Repo: "github.com/acme/api", Apps: []string{"argocd_shop-api", "api"}},
			from: "label service: service api-svc selects Deployment/shop/api"},
		{name: "app shared by two deployments", labels: map[string]string{"app": "shop"}, in: sources.Subject{Namespace: "shop", App: "shop"},
			want: sources.Subject{Namespace: "shop", App: "shop"}, from: "app shop has 2 workloads (Deployment/shop/web, Deployment/shop/worker)"},
		{name: "app of one deployment by instance label", labels: map[string]string{"app_kubernetes_io_instance": "shop-web"}, in: sources.Subject{Namespace: "shop", App: "shop-web"},
			want: sources.Subject{Namespace: "shop", Kind: "Deployment", Name: "web", App: "shop-web", Apps: []string{"shop"}}, from: "the only workload of app shop-web"},
		{name: "explicit argocd_app label wins over tracking-id", labels: map[string]string{"deployment": "api", "argocd_app": "other"},
			in:   sources.Subject{Namespace: "shop", Kind: "Deployment", Name: "api", App: "other"},
			want: sources.Subject{Namespace: "shop", Kind: "Deployment", Name: "api", App: "other", Repo: "github.com/acme/api", Apps: []string{"shop-api", "argocd_shop-api", "api"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, steps := s.ResolveSubject(tt.labels, tt.in)
			got.Images = nil
			if got.Key() != tt.want.Key() {
				t.Fatalf("subject %+v, want %+v; steps %+v", got, tt.want, steps)
			}
			if tt.from != "" && !hasFrom(steps, tt.from) {
				t.Errorf("no step from %q in %+v", tt.from, steps)
			}
		})
	}
}

func TestAppSharedByTwoDeploymentsGivesBoth(t *testing.T) {
	objs, pods := shopCluster()
	s := newFake(t, Config{}, pods, objs...)
	since, until := window()
	got, err := s.Changes(context.Background(), sources.Query{Subject: sources.Subject{Namespace: "shop", App: "shop"}, Since: since, Until: until})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, c := range got {
		if c.Subject.HasApp("shop") {
			names[c.Subject.Name] = true
		}
	}
	if len(names) != 2 || !names["web"] || !names["worker"] {
		t.Errorf("got %+v, want the rollouts of web and worker", got)
	}
}

func TestRollbackProgressDeadlineAndStatefulSet(t *testing.T) {
	api := deployment("shop", "api", "uid-api", nil, nil, "acme/api:1.8.3")
	api.Status.Conditions[1] = appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse,
		Reason: "ProgressDeadlineExceeded", LastUpdateTime: metav1.NewTime(t0.Add(-2 * time.Minute))}
	template := func(img string) runtime.RawExtension {
		b, _ := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
			"containers": []map[string]any{{"name": "pg", "image": img, "env": []map[string]string{{"name": "X", "value": "y"}}}}}}}})
		return runtime.RawExtension{Raw: b}
	}
	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "db", Name: "pg", UID: "uid-pg", Generation: 2},
		Spec:   appsv1.StatefulSetSpec{Replicas: ptr(int32(3))},
		Status: appsv1.StatefulSetStatus{ObservedGeneration: 2, CurrentRevision: "pg-1111", UpdateRevision: "pg-2222", UpdatedReplicas: 1}}
	owned := []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "pg", UID: "uid-pg", Controller: ptr(true)}}
	objs := []runtime.Object{api, sts,
		// Revision 1's ReplicaSet came back as revision 3: a rollback.
		newReplicaSet(api, "api-5b6c7d8f9", "3", t0.Add(-48*time.Hour), map[string]string{annRevisionHistory: "1"}, "acme/api:1.8.3"),
		newReplicaSet(api, "api-6c7d8f9b5", "2", t0.Add(-20*time.Hour), nil, "acme/api:1.8.4"),
		&appsv1.ControllerRevision{ObjectMeta: metav1.ObjectMeta{Namespace: "db", Name: "pg-1111", UID: "uid-cr1", OwnerReferences: owned,
			CreationTimestamp: metav1.NewTime(t0.Add(-5 * time.Hour))}, Revision: 1, Data: template("postgres:15")},
		&appsv1.ControllerRevision{ObjectMeta: metav1.ObjectMeta{Namespace: "db", Name: "pg-2222", UID: "uid-cr2", OwnerReferences: owned,
			CreationTimestamp: metav1.NewTime(t0.Add(-4 * time.Minute))}, Revision: 2, Data: template("postgres:16")},
	}
	s := newFake(t, Config{}, nil, objs...)
	since, until := window()
	got, _ := s.Changes(context.Background(), sources.Query{Subject: sources.Subject{Namespace: "shop", Name: "api"}, Since: since, Until: until})
	if len(got) != 2 {
		t.Fatalf("got %+v", got)
	}
	rb := got[1]
	if rb.Kind != sources.KindRollback || rb.Revision != "3" || rb.Version != "acme/api:1.8.3" || rb.PreviousVersion != "acme/api:1.8.4" ||
		rb.Status != sources.StatusFailed || !strings.Contains(rb.Message, "revision 1") {
		t.Errorf("rollback = %+v", rb)
	}
	// Not seen by the watch: the last progress time stands in for its start.
	if !rb.StartedAt.Equal(t0.Add(-2 * time.Minute)) {
		t.Errorf("rollback started %v, want the last progress time", rb.StartedAt)
	}
	got, _ = s.Changes(context.Background(), sources.Query{Subject: sources.Subject{Namespace: "db", Kind: "StatefulSet", Name: "pg"}, Since: since, Until: until})
	if len(got) != 2 || got[1].Version != "postgres:16" || got[1].PreviousVersion != "postgres:15" || got[1].Status != sources.StatusInProgress {
		t.Errorf("statefulset history = %+v", got)
	}
	obj, _, _ := s.scopes[0].revisions.GetIndexer().GetByKey("db/pg-2222")
	if cr := obj.(*appsv1.ControllerRevision); cr.Data.Raw != nil || cr.Annotations[annImages] != "pg=postgres:16" {
		t.Errorf("controller revision not reduced to its images: %+v", cr)
	}
}

func TestNamespaceOnlyIsBounded(t *testing.T) {
	objs, pods := shopCluster()
	s := newFake(t, Config{}, pods, objs...)
	since, until := window()
	got, _ := s.Changes(context.Background(), sources.Query{Subject: sources.Subject{Namespace: "shop"}, Since: since, Until: until, MaxLoose: 2})
	if len(got) != 2 || got[0].Subject.Name != "api" || got[1].Subject.Name != "web" {
		t.Errorf("got %+v, want the two newest rollouts in shop", got)
	}
}

func TestNotSyncedIsAnError(t *testing.T) {
	s := New("kubernetes", Config{}, Clients{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if _, err := s.Changes(context.Background(), sources.Query{Subject: sources.Subject{Namespace: "x", Name: "y"}}); !errors.Is(err, sources.ErrNotSynced) {
		t.Errorf("err = %v, want sources.ErrNotSynced", err)
	}
}

func TestContract(t *testing.T) {
	objs, pods := shopCluster()
	s := newFake(t, Config{}, pods, objs...)
	since, until := window()
	sourcetest.Contract(t, s, sources.Query{Subject: sources.Subject{Namespace: "shop", Kind: "Deployment", Name: "api"}, Since: since, Until: until})
}

func hasFrom(steps []sources.ResolutionStep, from string) bool {
	for _, s := range steps {
		if strings.HasPrefix(s.From, from) {
			return true
		}
	}
	return false
}
