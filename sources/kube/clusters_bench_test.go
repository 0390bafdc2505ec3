package kube

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"

	kruntime "k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/whatchanged/whatchanged/sources"
)

// BenchmarkThreeClusters is one whatchanged behind a central Alertmanager
// watching three clusters of 2,000 Deployments × 10 ReplicaSets and 8,000
// pods each (the same shape as BenchmarkLargeCluster, one source per
// cluster, as clusters: builds them). It reports the heap the three
// caches take together and per cluster, and times one alert's resolution
// and query against its own cluster's source. The fake clientsets' own
// copies are built before the first heap reading and not counted.
func BenchmarkThreeClusters(b *testing.B) {
	names := []string{"prod-eu-1", "prod-us-1", "staging"}
	clients := make([]Clients, len(names))
	for i := range names {
		objs, pods := largeCluster(2000, 10, 8000)
		clients[i] = Clients{Kube: fake.NewSimpleClientset(append(objs, pods...)...),
			Dynamic: dynamicfake.NewSimpleDynamicClient(kruntime.NewScheme())}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	srcs := make([]*Source, len(names))
	start := time.Now()
	before := heapAfterGC()
	prev := before
	for i, name := range names {
		srcs[i] = New("kubernetes@"+name, Config{Cluster: name}, clients[i], log)
		if err := srcs[i].Start(ctx); err != nil {
			b.Fatal(err)
		}
		if !srcs[i].WaitForSync(ctx) {
			b.Fatalf("%s: no sync", name)
		}
		now := heapAfterGC()
		b.Logf("cluster %s: caches take %.1f MB", name, float64(now-prev)/(1<<20))
		prev = now
	}
	syncTook := time.Since(start)
	total := float64(prev-before) / (1 << 20)

	// An alert of the second cluster, answered by that cluster's source
	// alone (the pipeline asks no other: enrich's fan-out skips them).
	src := srcs[1]
	labels := map[string]string{"cluster": names[1], "namespace": "ns-7", "pod": "svc-1057-0000000a-01057"}
	now := time.Now()
	for b.Loop() {
		subj, _ := src.ResolveSubject(labels, sources.Subject{Namespace: "ns-7", Cluster: names[1]})
		chs, err := src.Changes(ctx, sources.Query{Subject: subj, Since: now.Add(-24 * time.Hour), Until: now,
			History: now.Add(-60 * 24 * time.Hour), MaxLoose: 30})
		if err != nil || len(chs) != 10 || subj.Name != "svc-1057" {
			b.Fatalf("resolved %+v, %d changes, err %v", subj, len(chs), err)
		}
		for _, ch := range chs {
			if ch.Subject.Cluster != names[1] {
				b.Fatalf("change %s says cluster %q, want %q", ch.ID, ch.Subject.Cluster, names[1])
			}
		}
	}
	b.ReportMetric(total, "cache-MB")
	b.ReportMetric(total/float64(len(names)), "cache-MB-per-cluster")
	b.ReportMetric(syncTook.Seconds(), "sync-s")
	b.ReportMetric(processRSSMB(), "process-RSS-MB")
	runtime.KeepAlive(clients)
	runtime.KeepAlive(srcs)
}
