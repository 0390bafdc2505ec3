package kube_test

import (
	"context"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/util/retry"

	"github.com/whatchanged/whatchanged/enrich"
	"github.com/whatchanged/whatchanged/sources"
	"github.com/whatchanged/whatchanged/sources/kube"
)

func newNamespace(t *testing.T, name string) {
	t.Helper()
	if _, err := client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// startSource runs the real source against the control plane through the
// admin kubeconfig, as `serve` would with --kubeconfig.
func startSource(t *testing.T, cfg kube.Config) *kube.Source {
	t.Helper()
	if cfg.Kubeconfig == "" {
		cfg.Kubeconfig = kubeconfig
	}
	clients, _, err := kube.ClientsFromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := kube.New("kubernetes", cfg, clients, quietLog())
	c := ctx(t)
	if err := s.Start(c); err != nil {
		t.Fatal(err)
	}
	wc, cancel := context.WithTimeout(c, 30*time.Second)
	defer cancel()
	if !s.WaitForSync(wc) || !s.Ready() {
		t.Fatal("caches did not sync against the real API server")
	}
	return s
}

func changesOf(t *testing.T, s *kube.Source, subj sources.Subject) []sources.Change {
	t.Helper()
	now := time.Now()
	got, err := s.Changes(context.Background(), sources.Query{Subject: subj, Since: now.Add(-time.Hour), Until: now.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func revision(chs []sources.Change, rev string) *sources.Change {
	for i := range chs {
		if chs[i].Revision == rev {
			return &chs[i]
		}
	}
	return nil
}

func webDeployment(ns, image string) *appsv1.Deployment {
	labels := map[string]string{"app": "web"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web", Annotations: map[string]string{
			"argocd.argoproj.io/tracking-id": "shop-web:apps/Deployment:" + ns + "/web", "whatchanged.dev/repo": "https://github.com/acme/web.git"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: func() *int32 { r := int32(2); return &r }(),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: image}, {Name: "proxy", Image: "envoy:1.30"}}}},
		},
	}
}

// setImage updates the web container's image, retrying when the
// controller wrote the object in between (as kubectl set image does).
func setImage(t *testing.T, ns, image string) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := client.AppsV1().Deployments(ns).Get(context.Background(), "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		d.Spec.Template.Spec.Containers[0].Image = image
		_, err = client.AppsV1().Deployments(ns).Update(context.Background(), d, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// An image update, then a rollback, as the real deployment controller
// records them; and the pipeline turning an alert that names only a pod
// into the owning Deployment's rollout as its suspect.
func TestDeploymentRolloutAndRollback(t *testing.T) {
	ns := "shop"
	newNamespace(t, ns)
	s := startSource(t, kube.Config{})
	subj := sources.Subject{Namespace: ns, Kind: "Deployment", Name: "web"}

	if _, err := client.AppsV1().Deployments(ns).Create(context.Background(), webDeployment(ns, "acme/web:1.0"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "revision 1 created by the deployment controller", func() bool { return revision(changesOf(t, s, subj), "1") != nil })

	setImage(t, ns, "acme/web:1.1")
	took := eventually(t, 30*time.Second, "revision 2 after the image update", func() bool { return revision(changesOf(t, s, subj), "2") != nil })
	t.Logf("revision 2 visible to whatchanged %s after the update", took)
	r2 := revision(changesOf(t, s, subj), "2")
	if r2.Version != "acme/web:1.1" || r2.PreviousVersion != "acme/web:1.0" || r2.PreviousRevision != "1" || len(r2.Images) != 1 || r2.Images[0].Container != "web" {
		t.Errorf("revision 2 = %+v", r2)
	}
	if r2.Subject.App != "shop-web" || r2.Subject.Repo != "github.com/acme/web" {
		t.Errorf("subject metadata: %+v", r2.Subject)
	}
	if r2.Status != sources.StatusInProgress { // no kubelet: the new pods never become available
		t.Errorf("status = %s, want in_progress", r2.Status)
	}

	// The pipeline: an alert with only namespace + pod (a real pod name
	// created by the real ReplicaSet controller).
	var podName string
	eventually(t, 30*time.Second, "a pod of revision 2", func() bool {
		pods, _ := client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=web"})
		for _, p := range pods.Items {
			if strings.Contains(p.Spec.Containers[0].Image, "1.1") {
				podName = p.Name
				return true
			}
		}
		return false
	})
	eventually(t, 10*time.Second, "the pod in the cache", func() bool {
		got, steps := s.ResolveSubject(map[string]string{"pod": podName}, sources.Subject{Namespace: ns})
		return got.Name == "web" && len(steps) > 0
	})
	resolver, err := enrich.NewResolver(nil, s)
	if err != nil {
		t.Fatal(err)
	}
	e := enrich.New(enrich.Options{}, resolver, []enrich.SourceEntry{{Source: s}}, nil)
	alert := &enrich.Alert{Labels: map[string]string{"alertname": "WebErrors", "namespace": ns, "pod": podName}, StartsAt: time.Now().Add(time.Second)}
	rep := e.Enrich(context.Background(), []*enrich.Alert{alert}, nil).Alerts[0]
	if rep.Suspect == nil || rep.Suspect.Revision != "2" || rep.Suspect.Subject.Name != "web" {
		t.Fatalf("suspect = %+v\nresolution %+v", rep.Suspect, rep.Resolution)
	}
	if !hasStep(rep.Resolution, "owner walk: Pod "+podName+" → ReplicaSet web-") {
		t.Errorf("resolution does not show the owner walk: %+v", rep.Resolution)
	}
	want := "rollout of shop/web rev 2 acme/web:1.1 (was acme/web:1.0), 0s before the alert started (in progress) [kubernetes]"
	if got := alert.Annotations["whatchanged_suspect"]; !strings.HasPrefix(got, "rollout of shop/web rev 2 acme/web:1.1 (was acme/web:1.0)") || !strings.HasSuffix(got, "(in progress) [kubernetes]") {
		t.Errorf("whatchanged_suspect = %q, want like %q", got, want)
	}

	// Rollback: the controller reuses revision 1's ReplicaSet as revision 3.
	setImage(t, ns, "acme/web:1.0")
	eventually(t, 30*time.Second, "revision 3 (rollback)", func() bool { return revision(changesOf(t, s, subj), "3") != nil })
	r3 := revision(changesOf(t, s, subj), "3")
	if r3.Kind != sources.KindRollback || r3.Version != "acme/web:1.0" || r3.PreviousVersion != "acme/web:1.1" || !strings.Contains(r3.Message, "revision 1") {
		t.Errorf("rollback = %+v", r3)
	}
	if time.Since(r3.StartedAt) > time.Minute {
		t.Errorf("rollback started %s: the watch saw it now, not when the old ReplicaSet was created", r3.StartedAt)
	}
	if revision(changesOf(t, s, subj), "1") != nil {
		t.Errorf("revision 1 is still listed after its ReplicaSet became revision 3")
	}
}

func TestStatefulSetUpdate(t *testing.T) {
	ns := "db"
	newNamespace(t, ns)
	s := startSource(t, kube.Config{})
	labels := map[string]string{"app": "pg"}
	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pg"},
		Spec: appsv1.StatefulSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, ServiceName: "pg",
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "pg", Image: "postgres:15"}}}}}}
	if _, err := client.AppsV1().StatefulSets(ns).Create(context.Background(), sts, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	subj := sources.Subject{Namespace: ns, Name: "pg"}
	eventually(t, 30*time.Second, "controller revision 1", func() bool { return revision(changesOf(t, s, subj), "1") != nil })
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		got, err := client.AppsV1().StatefulSets(ns).Get(context.Background(), "pg", metav1.GetOptions{})
		if err != nil {
			return err
		}
		got.Spec.Template.Spec.Containers[0].Image = "postgres:16"
		_, err = client.AppsV1().StatefulSets(ns).Update(context.Background(), got, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "controller revision 2", func() bool { return revision(changesOf(t, s, subj), "2") != nil })
	r2 := revision(changesOf(t, s, subj), "2")
	if r2.Subject.Kind != "StatefulSet" || r2.Version != "postgres:16" || r2.PreviousVersion != "postgres:15" || r2.Status != sources.StatusInProgress {
		t.Errorf("statefulset revision 2 = %+v", r2)
	}
}

var rolloutsGVR = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"}

// An Argo Rollout under the real Rollout CRD: the source watches it because
// the CRD is served, and reads its ReplicaSets' rollout revisions.
func TestArgoRollout(t *testing.T) {
	ns := "canary"
	newNamespace(t, ns)
	dyn, err := dynamic.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	rollout := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
		"metadata": map[string]any{"name": "api", "namespace": ns},
		"spec": map[string]any{
			"replicas": int64(1),
			"selector": map[string]any{"matchLabels": map[string]any{"app": "api"}},
			"template": map[string]any{"metadata": map[string]any{"labels": map[string]any{"app": "api"}},
				"spec": map[string]any{"containers": []any{map[string]any{"name": "api", "image": "acme/api:2.0"}}}},
			"strategy": map[string]any{"canary": map[string]any{"steps": []any{map[string]any{"setWeight": int64(20)}}}},
		},
	}}
	created, err := dyn.Resource(rolloutsGVR).Namespace(ns).Create(context.Background(), rollout, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create Rollout (validated by the real CRD): %v", err)
	}
	created.Object["status"] = map[string]any{"phase": "Degraded", "message": "ProgressDeadlineExceeded"}
	if _, err := dyn.Resource(rolloutsGVR).Namespace(ns).UpdateStatus(context.Background(), created, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("set Rollout status: %v", err)
	}
	owner := metav1.OwnerReference{APIVersion: "argoproj.io/v1alpha1", Kind: "Rollout", Name: "api", UID: created.GetUID(), Controller: func() *bool { b := true; return &b }()}
	// What the Argo Rollouts controller would create: one ReplicaSet per revision.
	for rev, img := range map[string]string{"1": "acme/api:1.9", "2": "acme/api:2.0"} {
		rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "api-rev" + rev, OwnerReferences: []metav1.OwnerReference{owner},
			Annotations: map[string]string{"rollout.argoproj.io/revision": rev}, Labels: map[string]string{"app": "api", "rev": rev}},
			Spec: appsv1.ReplicaSetSpec{Replicas: func() *int32 { r := int32(0); return &r }(),
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "api", "rev": rev}},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "api", "rev": rev}},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "api", Image: img}}}}}}
		if _, err := client.AppsV1().ReplicaSets(ns).Create(context.Background(), rs, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	s := startSource(t, kube.Config{})
	subj := sources.Subject{Namespace: ns, Kind: "Rollout", Name: "api"}
	eventually(t, 10*time.Second, "rollout revision 2", func() bool { return revision(changesOf(t, s, subj), "2") != nil })
	r2 := revision(changesOf(t, s, subj), "2")
	if r2.Subject.Kind != "Rollout" || r2.Version != "acme/api:2.0" || r2.PreviousVersion != "acme/api:1.9" || r2.Status != sources.StatusFailed {
		t.Errorf("rollout revision 2 = %+v", r2)
	}
}

// The connection to the API server breaks (an API server restart, a
// network blip): every watch is cut and new connections are refused for 3s.
// The reflectors must re-list and re-watch by themselves, and changes made
// during and after the outage must be seen.
func TestWatchRecoversAfterConnectionLoss(t *testing.T) {
	ns := "rewatch"
	newNamespace(t, ns)
	apiURL, err := url.Parse(env.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newCutProxy(t, apiURL.Host)
	s := startSource(t, kube.Config{Namespaces: []string{ns}, Kubeconfig: proxy.kubeconfig(t)})

	proxy.cut(3 * time.Second)
	// Made while whatchanged cannot reach the API server.
	if _, err := client.AppsV1().Deployments(ns).Create(context.Background(), webDeployment(ns, "acme/web:9"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	took := eventually(t, 60*time.Second, "a Deployment created during the outage", func() bool {
		return revision(changesOf(t, s, sources.Subject{Namespace: ns, Name: "web"}), "1") != nil
	})
	t.Logf("seen %s after creation (3s outage)", took)
	if proxy.accepted.Load() < 2 {
		t.Fatalf("the source did not reconnect (%d connections)", proxy.accepted.Load())
	}
	setImage(t, ns, "acme/web:10")
	eventually(t, 30*time.Second, "an update after the outage", func() bool {
		return revision(changesOf(t, s, sources.Subject{Namespace: ns, Name: "web"}), "2") != nil
	})
}

// cutProxy forwards TCP to the API server and can cut every connection.
type cutProxy struct {
	ln       net.Listener
	target   string
	mu       sync.Mutex
	conns    []net.Conn
	down     atomic.Bool
	accepted atomic.Int64
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.closeAll() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if p.down.Load() {
				c.Close()
				continue
			}
			p.accepted.Add(1)
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// cut closes every connection and refuses new ones for d.
func (p *cutProxy) cut(d time.Duration) {
	p.down.Store(true)
	p.closeAll()
	time.AfterFunc(d, func() { p.down.Store(false) })
}

// kubeconfig is the admin kubeconfig pointed at the proxy; the API
// server's certificate is valid for 127.0.0.1, so TLS passes through.
func (p *cutProxy) kubeconfig(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	out := strings.ReplaceAll(string(b), "https://"+p.target, "https://"+p.ln.Addr().String())
	if out == string(b) {
		t.Fatalf("API server address %s not found in the kubeconfig", p.target)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func hasStep(steps []sources.ResolutionStep, prefix string) bool {
	for _, s := range steps {
		if strings.HasPrefix(s.From, prefix) {
			return true
		}
	}
	return false
}
