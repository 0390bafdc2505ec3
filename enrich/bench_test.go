package enrich

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/whatchanged/whatchanged/sources/changes"
	"github.com/whatchanged/whatchanged/sources/store"
)

// BenchmarkNotification measures decode → enrich (real pushed-changes
// source on bbolt, 2000 changes over 50 workloads) → encode per notification.
func BenchmarkNotification(b *testing.B) {
	st, err := store.OpenBolt(b.TempDir(), time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	src := changes.New("changes", changes.Config{}, st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := context.Background()
	now := time.Now().UTC()
	for i := 0; i < 2000; i++ {
		w := i % 50
		ev, _ := changes.DecodeEvent(strings.NewReader(fmt.Sprintf(`{"id":"b-%d","kind":"deploy","subject":{"namespace":"shop","kind":"Deployment","name":"svc-%d"},"version":"v%d","time":%q}`,
			i, w, i, now.Add(-time.Duration(i)*40*time.Second).Format(time.RFC3339))))
		if _, _, err := src.Record(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
	r, _ := NewResolver(nil)
	e := New(Options{}, r, []SourceEntry{{Source: src}}, nil)
	for _, n := range []int{1, 10, 200, 45000} { // 45,000 small alerts: a body just under the 8 MiB limit
		var alerts []string
		for i := 0; i < n; i++ {
			alerts = append(alerts, fmt.Sprintf(`{"status":"firing","labels":{"alertname":"KubePodCrashLooping","namespace":"shop","pod":"svc-%d-7d9f8b6c4-x%04d"},"annotations":{"description":"d"},"startsAt":%q,"endsAt":"0001-01-01T00:00:00Z","fingerprint":"%x"}`,
				i%50, i, now.Format(time.RFC3339), i))
		}
		body := []byte(`{"version":"4","status":"firing","alerts":[` + strings.Join(alerts, ",") + `]}`)
		b.Run(fmt.Sprintf("alerts=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				p, err := DecodeWebhook(body)
				if err != nil {
					b.Fatal(err)
				}
				e.Enrich(ctx, p.Alerts, nil)
				if _, err := p.Encode(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMaxSizeNotificationHeap reports the live heap one max-size
// notification holds (a body just under the 8 MiB limit, 45,000 small
// alerts) after each step of the delivery path, in MiB above what was live
// before, the body included: decode, Annotate, Encode.
func BenchmarkMaxSizeNotificationHeap(b *testing.B) {
	now := time.Now().UTC()
	live := func() float64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return float64(m.HeapAlloc) / (1 << 20)
	}
	r, _ := NewResolver(nil)
	e := New(Options{}, r, nil, nil)
	b.Cleanup(e.StopProbes)
	for b.Loop() {
		base := live()
		var alerts []string
		for i := range 45000 {
			alerts = append(alerts, fmt.Sprintf(`{"status":"firing","labels":{"alertname":"Flood","namespace":"shop","pod":"svc-%d-7d9f8b6c4-x%05d"},"annotations":{},"startsAt":%q,"fingerprint":"%016x"}`,
				i%50, i, now.Format(time.RFC3339), i))
		}
		body := []byte(`{"version":"4","status":"firing","alerts":[` + strings.Join(alerts, ",") + `]}`)
		alerts = nil
		withBody := live() - base
		p, err := DecodeWebhook(body)
		if err != nil {
			b.Fatal(err)
		}
		decoded := live() - base
		e.Annotate(context.Background(), p.Alerts, nil)
		annotated := live() - base
		out, err := p.Encode()
		if err != nil {
			b.Fatal(err)
		}
		encoded := live() - base
		b.ReportMetric(float64(len(body))/(1<<20), "MiB-body")
		b.ReportMetric(withBody, "MiB-live-body")
		b.ReportMetric(decoded, "MiB-live-decoded")
		b.ReportMetric(annotated, "MiB-live-annotated")
		b.ReportMetric(encoded, "MiB-live-encoded")
		runtime.KeepAlive(p)
		runtime.KeepAlive(out)
		runtime.KeepAlive(body)
	}
}
