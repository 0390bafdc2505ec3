package kube

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/whatchanged/whatchanged/sources"
)

// realisticTemplate is a pod template as clusters have them: env, resources,
// probes, volumes; what the transforms drop.
func realisticTemplate(name, image string) corev1.PodTemplateSpec {
	env := make([]corev1.EnvVar, 15)
	for i := range env {
		env[i] = corev1.EnvVar{Name: fmt.Sprintf("SETTING_%d", i), Value: strings.Repeat("v", 30)}
	}
	probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz"}}, PeriodSeconds: 10}
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name, "team": "shop", "tier": "backend"}},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{
				{Name: "app", Image: image, Env: env, LivenessProbe: probe, ReadinessProbe: probe,
					Resources:    corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")}},
					VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: "/etc/app"}}},
				{Name: "proxy", Image: "envoy:1.30", Args: []string{"--config", "/etc/envoy/envoy.yaml", "--log-level", "info"}},
			},
			Volumes: []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: name}}}}},
		},
	}
}

var bigManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: "Apply", APIVersion: "apps/v1",
	FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:labels":{}},"f:spec":{"f:template":{"f:spec":{"f:containers":{` + strings.Repeat(`"k:{\"name\":\"x\"}":{".":{}},`, 40) + `"x":{}}}}}}}`)}}}

// largeCluster: deployments × rsPer ReplicaSets, pods in total, spread over 50 namespaces.
func largeCluster(deployments, rsPer, pods int) ([]kruntime.Object, []kruntime.Object) {
	base := time.Now().Add(-30 * 24 * time.Hour)
	objs := make([]kruntime.Object, 0, deployments*(rsPer+1))
	podObjs := make([]kruntime.Object, 0, pods)
	lastApplied := strings.Repeat("{\"apiVersion\":\"apps/v1\"}", 60)
	for d := 0; d < deployments; d++ {
		ns, name := fmt.Sprintf("ns-%d", d%50), fmt.Sprintf("svc-%d", d)
		uid := types.UID(fmt.Sprintf("uid-d-%d", d))
		dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: uid, Generation: int64(rsPer),
			Labels: map[string]string{"app": name}, ManagedFields: bigManagedFields,
			Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": lastApplied, annRevision: fmt.Sprint(rsPer)}},
			Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}, Template: realisticTemplate(name, fmt.Sprintf("acme/%s:%d", name, rsPer))},
			Status: appsv1.DeploymentStatus{ObservedGeneration: int64(rsPer), Conditions: []appsv1.DeploymentCondition{
				{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable", LastUpdateTime: metav1.NewTime(base.Add(time.Duration(d) * time.Minute))}}}}
		objs = append(objs, dep)
		for r := 1; r <= rsPer; r++ {
			rsName := fmt.Sprintf("%s-%08x", name, r)
			objs = append(objs, &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: rsName, UID: types.UID("uid-" + ns + rsName),
				CreationTimestamp: metav1.NewTime(base.Add(time.Duration(d+r*deployments) * time.Second)), ManagedFields: bigManagedFields,
				Labels:          map[string]string{"app": name, "pod-template-hash": fmt.Sprintf("%08x", r)},
				Annotations:     map[string]string{annRevision: fmt.Sprint(r), "deployment.kubernetes.io/desired-replicas": "3"},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: name, UID: uid, Controller: ptr(true)}}},
				Spec: appsv1.ReplicaSetSpec{Template: realisticTemplate(name, fmt.Sprintf("acme/%s:%d", name, r))}})
		}
	}
	for p := 0; p < pods; p++ {
		d := p % deployments
		ns, name := fmt.Sprintf("ns-%d", d%50), fmt.Sprintf("svc-%d", d)
		rsName := fmt.Sprintf("%s-%08x", name, rsPer)
		podObjs = append(podObjs, &corev1.Pod{
			Spec:   realisticTemplate(name, fmt.Sprintf("acme/%s:%d", name, rsPer)).Spec,
			Status: corev1.PodStatus{PodIP: fmt.Sprintf("10.%d.%d.%d", p>>16&255, p>>8&255, p&255)},
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("%s-%05d", rsName, p), ManagedFields: bigManagedFields,
				Labels:          map[string]string{"app": name, "pod-template-hash": fmt.Sprintf("%08x", rsPer)},
				Annotations:     map[string]string{"kubectl.kubernetes.io/restartedAt": "2026-11-01T00:00:00Z", "prometheus.io/scrape": "true"},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rsName, UID: types.UID("uid-" + ns + rsName), Controller: ptr(true)}}}})
	}
	return objs, podObjs
}

func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// configObjects: n ConfigMaps and n Secrets over the 50 namespaces, the
// first `used` named after a Deployment (and mounted by it), the rest
// unrelated; created long ago, as most are.
func configObjects(n, used int) []kruntime.Object {
	created := metav1.NewTime(time.Now().Add(-90 * 24 * time.Hour))
	value := strings.Repeat("setting: value\n", 100) // 1.5 KB a key
	out := make([]kruntime.Object, 0, 2*n)
	for i := 0; i < n; i++ {
		ns, name := fmt.Sprintf("ns-%d", i%50), fmt.Sprintf("svc-%d", i)
		if i >= used {
			name = fmt.Sprintf("other-%d", i)
		}
		meta := func() metav1.ObjectMeta {
			return metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-cfg-" + ns + name), CreationTimestamp: created,
				Labels: map[string]string{"app": name}, ManagedFields: bigManagedFields}
		}
		out = append(out,
			&corev1.ConfigMap{ObjectMeta: meta(), Data: map[string]string{"app.yaml": value, "logging.yaml": value, "features.yaml": value}},
			&corev1.Secret{ObjectMeta: meta(), Data: map[string][]byte{"password": []byte(value[:64]), "tls.key": []byte(value)}})
	}
	return out
}

// BenchmarkLargeCluster loads 5,000 Deployments × 10 ReplicaSets and 20,000
// pods through the informers (client-go's fake clients stand in for the API
// server) with and without the transforms, reports the heap the caches
// take, and times one alert's resolution + query. "config-objects" adds
// 20,000 ConfigMaps and 20,000 Secrets (5,000 of each used by the
// Deployments) with Secrets and Helm records watched.
func BenchmarkLargeCluster(b *testing.B) {
	objs, pods := largeCluster(5000, 10, 20000)
	configs := configObjects(20000, 5000)
	for _, mode := range []string{"transforms", "config-objects", "no-transforms"} {
		b.Run(mode, func(b *testing.B) {
			all := append(append([]kruntime.Object(nil), objs...), pods...)
			cfg := Config{}
			if mode == "config-objects" {
				all = append(all, configs...)
				cfg.Secrets, cfg.Helm = true, true
			}
			clients := Clients{Kube: fake.NewSimpleClientset(all...),
				Dynamic: dynamicfake.NewSimpleDynamicClient(kruntime.NewScheme())}
			before := heapAfterGC()
			s := New("kubernetes", cfg, clients, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if mode == "no-transforms" {
				s.tf.disabled = true
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			start := time.Now()
			if err := s.Start(ctx); err != nil {
				b.Fatal(err)
			}
			if !s.WaitForSync(ctx) {
				b.Fatal("no sync")
			}
			syncTook := time.Since(start)
			cacheHeap := heapAfterGC() - before
			b.ResetTimer() // also clears metrics: report them after
			rss := processRSSMB()
			report := func() {
				b.ReportMetric(float64(cacheHeap)/(1<<20), "cache-MB")
				b.ReportMetric(syncTook.Seconds(), "sync-s")
				// Includes the fake API server's own full copy of every object.
				b.ReportMetric(rss, "process-RSS-MB")
			}
			if mode == "no-transforms" {
				// Only the heap is comparable (ns/op is meaningless here): the
				// source reads its own compact types, which only the
				// transforms produce.
				report()
				runtime.KeepAlive(clients)
				return
			}
			now := time.Now()
			labels := map[string]string{"namespace": "ns-7", "pod": "svc-4057-0000000a-04057"}
			for b.Loop() {
				subj, _ := s.ResolveSubject(labels, sources.Subject{Namespace: "ns-7"})
				// The pipeline's query: a day's look-back for the namespace,
				// the workload's own history further back.
				chs, err := s.Changes(ctx, sources.Query{Subject: subj, Since: now.Add(-24 * time.Hour), Until: now,
					History: now.Add(-60 * 24 * time.Hour), MaxLoose: 30})
				if err != nil || len(chs) != 10 || subj.Name != "svc-4057" {
					b.Fatalf("resolved %+v, %d changes, err %v", subj, len(chs), err)
				}
			}
			report()
			runtime.KeepAlive(clients)
		})
	}
}

func processRSSMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb float64
			fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kb)
			return kb / 1024
		}
	}
	return 0
}
