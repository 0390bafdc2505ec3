package history

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/whatchanged/whatchanged/enrich"
	"github.com/whatchanged/whatchanged/sources/store"
)

// BenchmarkHistoryBytesPerAlert records 10,000 alerts with typical labels
// (kube-prometheus-stack's), a suspect and two links, in notifications of
// ten, half of them resolved, and reports the bbolt file's size per alert
// (what the disk holds, page slack included) and the keys and values
// written per alert (what any store holds before its own overhead).
func BenchmarkHistoryBytesPerAlert(b *testing.B) {
	const alerts = 10_000
	for b.Loop() {
		dir := b.TempDir()
		st, err := store.OpenBolt(dir, time.Second)
		if err != nil {
			b.Fatal(err)
		}
		now := t0
		h := New(st, Config{}, nil, slog.New(slog.DiscardHandler))
		h.now = func() time.Time { return now }
		h.Start(context.Background())
		for i := 0; i < alerts; i += 10 {
			group := make([]*enrich.Alert, 10)
			for j := range group {
				n := i + j
				a := &enrich.Alert{Status: "firing", StartsAt: t0.Add(time.Duration(n) * time.Second), Labels: map[string]string{
					"alertname": "KubePodCrashLooping", "namespace": fmt.Sprintf("team-%d", n%40), "pod": fmt.Sprintf("orders-7d9f8c6b5-%05d", n),
					"container": "orders", "job": "kube-state-metrics", "instance": "10.42.3.17:8080", "severity": "warning",
					"prometheus": "monitoring/kube-prometheus-stack-prometheus", "service": "kube-prometheus-stack-kube-state-metrics",
					"endpoint": "http", "uid": fmt.Sprintf("3f1c2b6e-9a4d-4e2b-8c1f-%012d", n)},
					Annotations: map[string]string{
						"whatchanged_suspect":     `argocd sync of orders 5f2c1e9 by Alice Kim: "raise DB pool to 200", rolled out as shop/orders rev 42 (acme/orders:5f2c1e9), 6m before the alert started [argocd, kubernetes]`,
						"whatchanged_compare_url": "https://github.com/acme/orders/compare/1a2b3c4...5f2c1e9",
						"whatchanged_argocd_url":  "https://argocd.example.com/applications/argocd/orders",
					}}
				a.Fingerprint = fingerprint(a.Labels)
				group[j] = a
			}
			h.Observe("webhook default", "whatchanged_", group)
			if j := i / 10; j%2 == 1 { // every other group resolves
				for _, a := range group {
					a.Status, a.EndsAt = "resolved", a.StartsAt.Add(10*time.Minute)
				}
				h.Observe("webhook default", "whatchanged_", group)
			}
			if err := h.Flush(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
		h.Close(time.Minute)
		kv := 0
		for _, bucket := range []string{bucketAlerts, bucketEnds, bucketFingerprints} {
			if err := st.Scan(context.Background(), bucket, "", "", func(k string, v []byte) bool { kv += len(k) + len(v); return true }); err != nil {
				b.Fatal(err)
			}
		}
		got, _, err := h.Alerts(context.Background(), t0, t0.Add(alerts*time.Second), nil, 0)
		if err != nil || len(got) != alerts {
			b.Fatalf("%d alerts recorded, want %d (%v)", len(got), alerts, err)
		}
		st.Close()
		fi, err := os.Stat(filepath.Join(dir, "whatchanged.db"))
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(fi.Size())/alerts, "file-bytes/alert")
		b.ReportMetric(float64(kv)/alerts, "kv-bytes/alert")
	}
}
