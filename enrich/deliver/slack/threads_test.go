package slack

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/whatchanged/whatchanged/sources/store"
)

// storedThreads counts the entries in the real bbolt bucket, expired or not.
func storedThreads(t testing.TB, st store.Store) int {
	t.Helper()
	n := 0
	if err := st.Scan(context.Background(), threadsBucket, "", "", func(string, []byte) bool { n++; return true }); err != nil {
		t.Fatal(err)
	}
	return n
}

// Threads past their retention are deleted as new ones are saved: after a
// day of new groups, yesterday's threads are gone from the file, and the
// live ones (and those kept without expiry) stay.
func TestBoltThreadsPruneExpired(t *testing.T) {
	ctx := context.Background()
	st := newBolt(t, t.TempDir())
	defer st.Close()
	clock := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	b := &BoltThreads{Store: st, now: func() time.Time { return clock }}
	put := func(key string, ttl time.Duration) {
		t.Helper()
		if err := b.Put(ctx, key, Thread{Channel: "C1", TS: "1763700000.000001", Firing: true}, ttl); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 1000 {
		put(fmt.Sprintf("old-%04d", i), time.Hour)
	}
	put("kept-forever", 0)
	if n := storedThreads(t, st); n != 1001 {
		t.Fatalf("%d threads stored before any expired, want 1001", n)
	}

	clock = clock.Add(2 * time.Hour) // every "old-" thread has expired
	for i := range 1000 {
		put(fmt.Sprintf("new-%04d", i), time.Hour)
	}
	if n := storedThreads(t, st); n != 1001 {
		t.Errorf("%d threads stored, want the 1000 live ones and the one without expiry (the expired ones deleted)", n)
	}
	if _, ok, err := b.Get(ctx, "new-0999"); err != nil || !ok {
		t.Errorf("a live thread was lost: ok=%v err=%v", ok, err)
	}
	if _, ok, err := b.Get(ctx, "kept-forever"); err != nil || !ok {
		t.Errorf("a thread without expiry was deleted: ok=%v err=%v", ok, err)
	}
	if v, ok, _ := st.Get(ctx, threadsBucket, "old-0000"); ok {
		t.Errorf("an expired thread is still in the file: %s", v)
	}
}

// BenchmarkBoundedState prints how many threads the file holds after a
// long run: one new alert group a minute for a week of simulated time,
// each thread kept 6 hours after its last notification.
func BenchmarkBoundedState(b *testing.B) {
	const groups, step, ttl = 7 * 24 * 60, time.Minute, 6 * time.Hour
	for b.Loop() {
		st, err := store.OpenBolt(b.TempDir(), time.Second)
		if err != nil {
			b.Fatal(err)
		}
		clock := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
		bt := &BoltThreads{Store: st, now: func() time.Time { return clock }}
		for i := range groups {
			clock = clock.Add(step)
			if err := bt.Put(context.Background(), fmt.Sprintf("group-%06d", i), Thread{Channel: "C1", TS: "1763700000.000001"}, ttl); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(groups), "threads-saved")
		b.ReportMetric(float64(ttl/step), "threads-live")
		b.ReportMetric(float64(storedThreads(b, st)), "threads-stored")
		st.Close()
	}
}
