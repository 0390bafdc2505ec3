package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/whatchanged/whatchanged/enrich"
	"github.com/whatchanged/whatchanged/sources"
	"github.com/whatchanged/whatchanged/sources/changes"
	"github.com/whatchanged/whatchanged/sources/store"
	"github.com/whatchanged/whatchanged/test/redistest"
)

// The shared store (Redis) going away: a pushed change is answered 503
// with Retry-After, so the sender retries; an alert is still enriched, and
// says the other replicas' changes could not be read; when Redis answers
// again, both work.
func TestSharedStoreDown(t *testing.T) {
	rs := redistest.Start(t)
	st, err := store.NewRedis(store.RedisConfig{Addr: rs.Addr, KeyPrefix: "down-test:", Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	src := changes.New("changes", changes.Config{}, st, log)
	src.Shared()
	if err := src.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	resolver, _ := enrich.NewResolver(nil)
	reg := prometheus.NewRegistry()
	e := &env{}
	e.serve(t, Config{}, Deps{
		Enricher: enrich.New(enrich.Options{}, resolver, []enrich.SourceEntry{{Source: src}}, enrich.NewMetrics(reg)),
		Changes:  src, Ready: func() (bool, string) { return true, "" },
		Gatherer: reg, Metrics: NewMetrics(reg), Log: log,
	})
	push := func(id string) (int, string, http.Header) {
		req, _ := http.NewRequest(http.MethodPost, e.url+"/api/v1/changes",
			strings.NewReader(`{"id":"`+id+`","kind":"deploy","subject":{"namespace":"shop","name":"api"},"version":"api:2"}`))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	if code, body, _ := push("before"); code != http.StatusCreated {
		t.Fatalf("push with Redis up: %d %s", code, body)
	}

	rs.Stop()
	code, body, h := push("during")
	if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" || !strings.Contains(body, "could not store the change") {
		t.Errorf("push with Redis down: %d %s (Retry-After %q), want 503 with Retry-After", code, body, h.Get("Retry-After"))
	}
	chs, err := src.Changes(context.Background(), sources.Query{Subject: sources.Subject{Namespace: "shop", Name: "api"},
		Since: time.Now().Add(-time.Hour), Until: time.Now().Add(time.Minute)})
	if err == nil || !strings.Contains(err.Error(), "other replicas' changes") || len(chs) != 1 {
		t.Errorf("query with Redis down: %d changes, err %v; want what this replica knows and why it may not be all", len(chs), err)
	}

	rs.Start()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if code, _, _ := push("after"); code == http.StatusCreated {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("pushes not accepted again within 10s of Redis answering")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
