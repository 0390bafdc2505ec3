package changes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/whatchanged/whatchanged/sources"
	"github.com/whatchanged/whatchanged/sources/sourcetest"
	"github.com/whatchanged/whatchanged/sources/store"
)

var now = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

func newSource(t *testing.T, dir string, cfg Config) (*Source, *store.Bolt) {
	t.Helper()
	st, err := store.OpenBolt(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s := New("changes", cfg, st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.now = func() time.Time { return now }
	return s, st
}

func event(id string, at time.Time) Event {
	return Event{ID: id, Kind: "deploy", Subject: sources.Subject{Namespace: "shop", Kind: "Deployment", Name: "api"}, Version: "api:" + id, Time: at}
}

func TestContract(t *testing.T) {
	s, st := newSource(t, t.TempDir(), Config{})
	defer st.Close()
	if _, _, err := s.Record(context.Background(), event("1", now.Add(-time.Hour))); err != nil {
		t.Fatal(err)
	}
	sourcetest.Contract(t, s, sources.Query{Subject: sources.Subject{Namespace: "shop", Name: "api"}, Since: now.Add(-2 * time.Hour), Until: now})
}

func TestRecordIsIdempotent(t *testing.T) {
	s, st := newSource(t, t.TempDir(), Config{})
	defer st.Close()
	ctx := context.Background()
	first, created, err := s.Record(ctx, event("ci-1", now.Add(-time.Minute)))
	if err != nil || !created {
		t.Fatalf("first record: created=%v err=%v", created, err)
	}
	ev := event("ci-1", now.Add(-time.Minute))
	ev.Version = "different"
	again, created, err := s.Record(ctx, ev)
	if err != nil || created {
		t.Fatalf("second record: created=%v err=%v", created, err)
	}
	if again.Version != first.Version {
		t.Errorf("second push replaced the first: %q", again.Version)
	}
	// Without an id, a retry of the same content within the minute is the same change.
	noID := event("", time.Time{})
	a, c1, _ := s.Record(ctx, noID)
	b, c2, _ := s.Record(ctx, noID)
	if !c1 || c2 || a.ID != b.ID {
		t.Errorf("retry without id: created %v then %v, ids %q %q", c1, c2, a.ID, b.ID)
	}
	list, _ := s.List(ctx, now.Add(-time.Hour), 0)
	if len(list) != 2 {
		t.Errorf("stored %d changes, want 2", len(list))
	}
}

func TestChangesWindowAndRelation(t *testing.T) {
	s, st := newSource(t, t.TempDir(), Config{})
	defer st.Close()
	ctx := context.Background()
	for _, ev := range []Event{
		event("old", now.Add(-5*time.Hour)),
		event("in", now.Add(-30*time.Minute)),
		{ID: "other-ns", Kind: "deploy", Subject: sources.Subject{Namespace: "billing", Name: "api"}, Time: now.Add(-10 * time.Minute)},
		{ID: "same-app", Kind: "config", Subject: sources.Subject{App: "shop-api"}, Time: now.Add(-10 * time.Minute)},
		{ID: "boundary", Kind: "flag", Subject: sources.Subject{Namespace: "shop"}, Time: now},
	} {
		if _, _, err := s.Record(ctx, ev); err != nil {
			t.Fatalf("%s: %v", ev.ID, err)
		}
	}
	got, err := s.Changes(ctx, sources.Query{Subject: sources.Subject{Namespace: "shop", Name: "api", App: "shop-api"}, Since: now.Add(-time.Hour), Until: now})
	if err != nil {
		t.Fatal(err)
	}
	if ids := idsOf(got); ids != "boundary,same-app,in" {
		t.Errorf("got %v, want boundary,same-app,in (newest first)", ids)
	}
}

func TestMaxLooseBoundsNamespaceOnlyChanges(t *testing.T) {
	s, st := newSource(t, t.TempDir(), Config{})
	defer st.Close()
	ctx := context.Background()
	for i := 0; i < 30; i++ {
		ev := Event{ID: fmt.Sprintf("ns-%02d", i), Kind: "deploy", Subject: sources.Subject{Namespace: "shop", Name: fmt.Sprintf("svc-%d", i)}, Time: now.Add(-time.Duration(30-i) * time.Minute)}
		if _, _, err := s.Record(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.Record(ctx, event("own", now.Add(-50*time.Minute))); err != nil {
		t.Fatal(err)
	}
	got, err := s.Changes(ctx, sources.Query{Subject: sources.Subject{Namespace: "shop", Name: "api"}, Since: now.Add(-time.Hour), Until: now, MaxLoose: 5})
	if err != nil {
		t.Fatal(err)
	}
	// The five newest namespace-only changes, and the workload's own change however old.
	if ids := idsOf(got); ids != "ns-29,ns-28,ns-27,ns-26,ns-25,own" {
		t.Errorf("got %v", ids)
	}
}

func TestPersistsAcrossRestartAndPrunes(t *testing.T) {
	dir := t.TempDir()
	s, st := newSource(t, dir, Config{Retention: 24 * time.Hour, MaxEvents: 3})
	ctx := context.Background()
	for i, at := range []time.Duration{-48 * time.Hour, -4 * time.Hour, -3 * time.Hour, -2 * time.Hour, -time.Hour} {
		if _, _, err := s.Record(ctx, event(string(rune('a'+i)), now.Add(at))); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()

	s, st = newSource(t, dir, Config{Retention: 24 * time.Hour, MaxEvents: 3})
	defer st.Close()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if !s.Ready() {
		t.Fatal("not ready after Start")
	}
	list, _ := s.List(ctx, now.Add(-100*time.Hour), 0)
	// "a" is past retention; "b" is the oldest beyond MaxEvents.
	if ids := idsOf(list); ids != "e,d,c" {
		t.Fatalf("after restart and prune: %v, want e,d,c", ids)
	}
	// A pruned id may be pushed again and is new again.
	if _, created, _ := s.Record(ctx, event("b", now.Add(-30*time.Minute))); !created {
		t.Error("pruned id not accepted again")
	}
}

func TestSecondProcessGetsLockedError(t *testing.T) {
	dir := t.TempDir()
	st, err := store.OpenBolt(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, err = store.OpenBolt(dir, 50*time.Millisecond)
	if !errors.Is(err, store.ErrLocked) {
		t.Fatalf("err = %v, want ErrLocked", err)
	}
}

func idsOf(changes []sources.Change) string {
	ids := make([]string, len(changes))
	for i, c := range changes {
		ids[i] = c.ID
	}
	return strings.Join(ids, ",")
}
