package grafana

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/whatchanged/whatchanged/sources"
)

// BenchmarkChanges answers one alert from a full read (maxLimit
// annotations over 7 days, 200 services): the cost on the alert path.
// BenchmarkMapAll is the cost of one refresh's mapping.
func BenchmarkChanges(b *testing.B) {
	s, body := benchSource(b)
	index, err := s.mapAll(body)
	if err != nil {
		b.Fatal(err)
	}
	s.index = index
	s.attempted.Store(true)
	q := sources.Query{Subject: sources.Subject{Namespace: "svc-7", App: "svc-7"}, Since: t0.Add(-24 * time.Hour), Until: t0, History: t0.Add(-7 * 24 * time.Hour), MaxLoose: 20}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if got, err := s.Changes(context.Background(), q); err != nil || len(got) == 0 {
			b.Fatal(len(got), err)
		}
	}
}

func BenchmarkMapAll(b *testing.B) {
	s, body := benchSource(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.mapAll(body); err != nil {
			b.Fatal(err)
		}
	}
}

func benchSource(b *testing.B) (*Source, []byte) {
	s, err := New("grafana", Config{URL: "https://grafana.example.com", Limit: maxLimit, Rules: []Rule{
		{Tags: []string{"deploy"}, TagPattern: `^service:(.+)$`, Subject: SubjectTemplate{App: "$1", Namespace: "$1"}},
	}}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	list := make([]map[string]any, 0, maxLimit)
	step := 7 * 24 * time.Hour / maxLimit
	for i := range maxLimit {
		ms := t0.Add(-time.Duration(i) * step).UnixMilli()
		list = append(list, map[string]any{"id": 10_000 + i, "dashboardUID": "d", "panelId": 2, "login": "sa-1-ci", "time": ms, "timeEnd": ms + 60_000,
			"text": fmt.Sprintf(`Deployed <a href="https://ci.example.com/runs/%d">svc-%d</a>`, i, i%200),
			"tags": []string{"deploy", fmt.Sprintf("service:svc-%d", i%200), fmt.Sprintf("version:1.%d.0", i)}, "data": map[string]any{}})
	}
	body, err := json.Marshal(list)
	if err != nil {
		b.Fatal(err)
	}
	return s, body
}
